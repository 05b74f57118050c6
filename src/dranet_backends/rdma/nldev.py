"""RDMA netlink (``NETLINK_RDMA``, the ``nldev`` client): the few messages the rdma backend sends.

Neither pyroute2 nor the Python standard library speaks RDMA netlink, so this module encodes
and decodes it by hand from the kernel uapi (``include/uapi/rdma/rdma_netlink.h``):

* a message is a 16-byte ``nlmsghdr`` (``len u32, type u16, flags u16, seq u32, pid u32``,
  host byte order) followed directly by netlink attributes (no family header);
* the message type is ``RDMA_NL_GET_TYPE(client, op) = client << 10 + op`` with client
  ``RDMA_NL_NLDEV = 5``;
* an attribute is ``len u16, type u16`` + payload, padded to 4 bytes (``len`` excludes the
  padding); strings are NUL-terminated.

Messages used (all as ``rdma`` of iproute2 sends them):

=========================  ===========================================  =====================
request                    attributes                                   reply
=========================  ===========================================  =====================
``CMD_GET`` dump           none                                         one message per device
                                                                        (DEV_INDEX, DEV_NAME,
                                                                        ...), then NLMSG_DONE
``CMD_SET`` + ACK          DEV_INDEX u32, NET_NS_FD u32                 NLMSG_ERROR (0 = ok)
``CMD_SYS_GET`` + ACK      none                                         SYS_ATTR_NETNS_MODE u8
                                                                        (1 shared, 0
                                                                        exclusive), then ACK
=========================  ===========================================  =====================

The codec (``*_request``, :func:`decode`) is pure. :class:`NldevSocket` does the I/O on a
non-blocking socket it is given, so tests hand it one end of a ``socketpair`` whose other end
answers like the kernel. :func:`open_nldev_socket` opens a real ``NETLINK_RDMA`` socket in
a given network namespace without forking (``setns`` in a worker thread, then back).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import os
import socket
import struct
from collections.abc import Iterable, Mapping
from typing import Final

import attrs

from dranet_backends.netns import call_in_netns_at

__all__ = [
    "NETLINK_RDMA",
    "NETNS_EXCLUSIVE",
    "NETNS_SHARED",
    "NldevError",
    "NldevMessage",
    "NldevSocket",
    "RdmaLink",
    "decode",
    "dev_dump_request",
    "dev_set_netns_request",
    "msg_type",
    "open_nldev_socket",
    "probe_netns_mode",
    "sys_get_request",
]

NETLINK_RDMA: Final = 20
RDMA_NL_NLDEV: Final = 5

# enum rdma_nldev_command
CMD_GET: Final = 1
CMD_SET: Final = 2
CMD_PORT_GET: Final = 5
CMD_SYS_GET: Final = 6
CMD_SYS_SET: Final = 7

# enum rdma_nldev_attr (ABI: numbered in declaration order)
ATTR_DEV_INDEX: Final = 1  # u32
ATTR_DEV_NAME: Final = 2  # string
ATTR_PORT_INDEX: Final = 3  # u32
ATTR_NODE_GUID: Final = 6  # u64
ATTR_NDEV_NAME: Final = 51  # string
SYS_ATTR_NETNS_MODE: Final = 66  # u8
ATTR_DEV_PROTOCOL: Final = 67  # string
NET_NS_FD: Final = 68  # u32

NETNS_EXCLUSIVE: Final = 0
NETNS_SHARED: Final = 1

# linux/netlink.h
NLMSG_NOOP: Final = 1
NLMSG_ERROR: Final = 2
NLMSG_DONE: Final = 3
NLM_F_REQUEST: Final = 0x1
NLM_F_MULTI: Final = 0x2
NLM_F_ACK: Final = 0x4
NLM_F_DUMP: Final = 0x300
NLA_TYPE_MASK: Final = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER

_HDR = struct.Struct("=IHHII")
_NLA = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")


class NldevError(OSError):
    """The kernel (or a peer posing as it) answered a request with an error, or garbage."""


def msg_type(cmd: int) -> int:
    """``RDMA_NL_GET_TYPE(RDMA_NL_NLDEV, cmd)``."""
    return (RDMA_NL_NLDEV << 10) + cmd


def _align(n: int) -> int:
    return (n + 3) & ~3


def _nla(kind: int, payload: bytes) -> bytes:
    raw = _NLA.pack(_NLA.size + len(payload), kind) + payload
    return raw + b"\0" * (_align(len(raw)) - len(raw))


def _message(cmd: int, flags: int, seq: int, attrs: Iterable[bytes] = ()) -> bytes:
    body = b"".join(attrs)
    return _HDR.pack(_HDR.size + len(body), msg_type(cmd), flags, seq, 0) + body


def sys_get_request(seq: int) -> bytes:
    """``RDMA_NLDEV_CMD_SYS_GET`` with ACK (``rdma system show``)."""
    return _message(CMD_SYS_GET, NLM_F_REQUEST | NLM_F_ACK, seq)


def dev_dump_request(seq: int) -> bytes:
    """``RDMA_NLDEV_CMD_GET`` dump of every RDMA device visible in the socket's netns."""
    return _message(CMD_GET, NLM_F_REQUEST | NLM_F_DUMP, seq)


def dev_set_netns_request(seq: int, index: int, netns_fd: int) -> bytes:
    """``RDMA_NLDEV_CMD_SET`` of ``DEV_INDEX`` to the netns of ``NET_NS_FD``, with ACK."""
    return _message(
        CMD_SET,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        (_nla(ATTR_DEV_INDEX, _U32.pack(index)), _nla(NET_NS_FD, _U32.pack(netns_fd))),
    )


@attrs.frozen(kw_only=True)
class NldevMessage:
    """One decoded netlink message. ``error`` is set for NLMSG_ERROR (0 = ACK) and NLMSG_DONE."""

    type: int
    flags: int
    seq: int
    pid: int
    attrs: Mapping[int, bytes] = attrs.field(factory=dict)
    error: int | None = None

    @property
    def cmd(self) -> int:
        """The nldev command (``type & 0x3ff``)."""
        return self.type & 0x3FF

    def u8(self, kind: int) -> int | None:
        """Attribute ``kind`` as u8 (None if absent or too short)."""
        raw = self.attrs.get(kind)
        return raw[0] if raw else None

    def u32(self, kind: int) -> int | None:
        """Attribute ``kind`` as u32 (None if absent or too short)."""
        raw = self.attrs.get(kind)
        return _U32.unpack_from(raw)[0] if raw is not None and len(raw) >= 4 else None

    def string(self, kind: int) -> str | None:
        """Attribute ``kind`` as a NUL-terminated string (None if absent)."""
        raw = self.attrs.get(kind)
        if raw is None:
            return None
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _attrs(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    off = 0
    while off + _NLA.size <= len(data):
        length, kind = _NLA.unpack_from(data, off)
        if length < _NLA.size or off + length > len(data):
            raise NldevError(errno.EBADMSG, f"netlink attribute at {off}: bad length {length}")
        out.setdefault(kind & NLA_TYPE_MASK, bytes(data[off + _NLA.size : off + length]))
        off += _align(length)
    return out


def decode(data: bytes) -> list[NldevMessage]:
    """Decode every message of one datagram; raises :class:`NldevError` for a garbled one.

    ``NLMSG_NOOP`` is dropped; fewer than 16 bytes after the last message are ignored.
    """
    out: list[NldevMessage] = []
    off = 0
    while off + _HDR.size <= len(data):
        length, mtype, flags, seq, pid = _HDR.unpack_from(data, off)
        if length < _HDR.size or off + length > len(data):
            raise NldevError(errno.EBADMSG, f"netlink message at {off}: bad length {length}")
        body = data[off + _HDR.size : off + length]
        if mtype in (NLMSG_ERROR, NLMSG_DONE):
            err = _I32.unpack_from(body)[0] if len(body) >= 4 else 0
            out.append(NldevMessage(type=mtype, flags=flags, seq=seq, pid=pid, error=err))
        elif mtype == NLMSG_NOOP:
            pass
        else:
            out.append(NldevMessage(type=mtype, flags=flags, seq=seq, pid=pid, attrs=_attrs(body)))
        off += _align(length)
    return out


@attrs.frozen(kw_only=True)
class RdmaLink:
    """An RDMA device as ``CMD_GET`` reports it: kernel index and name."""

    index: int
    name: str


class NldevSocket:
    """Requests over one RDMA netlink socket (one request at a time).

    The socket must be non-blocking; it is owned (closed by :meth:`close`). ``timeout``
    bounds the wait for each reply datagram.
    """

    def __init__(self, sock: socket.socket, *, timeout: float = 5.0) -> None:
        self._sock = sock
        self._seq = 0
        self._lock = asyncio.Lock()
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"NldevSocket(fd={self._sock.fileno()}, seq={self._seq})"

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    async def __aenter__(self) -> NldevSocket:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def _request(self, build: bytes, seq: int) -> list[NldevMessage]:
        """Send one request; collect replies of ``seq`` until ACK/error or NLMSG_DONE."""
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(self._sock, build)
        out: list[NldevMessage] = []
        while True:
            try:
                data = await asyncio.wait_for(loop.sock_recv(self._sock, 1 << 16), self._timeout)
            except TimeoutError as exc:
                raise NldevError(errno.ETIMEDOUT, "no reply from RDMA netlink") from exc
            if not data:
                raise NldevError(errno.ECONNRESET, "RDMA netlink socket closed")
            for msg in decode(data):
                if msg.seq != seq:
                    continue  # a stale reply of an earlier, timed-out request
                if msg.type in (NLMSG_ERROR, NLMSG_DONE):
                    if msg.error:
                        code = -msg.error
                        raise NldevError(code, os.strerror(code))
                    return out
                out.append(msg)

    def _next_seq(self) -> int:
        self._seq = self._seq % 0xFFFFFFFF + 1
        return self._seq

    async def links(self) -> list[RdmaLink]:
        """Every RDMA device visible in this socket's netns."""
        async with self._lock:
            seq = self._next_seq()
            replies = await self._request(dev_dump_request(seq), seq)
        out: list[RdmaLink] = []
        for msg in replies:
            index, name = msg.u32(ATTR_DEV_INDEX), msg.string(ATTR_DEV_NAME)
            if index is not None and name is not None:
                out.append(RdmaLink(index=index, name=name))
        return out

    async def link(self, name: str) -> RdmaLink | None:
        """The RDMA device called ``name`` in this socket's netns, or None."""
        return next((lk for lk in await self.links() if lk.name == name), None)

    async def set_netns(self, index: int, netns_fd: int) -> None:
        """Move RDMA device ``index`` to the netns of ``netns_fd`` (exclusive mode only)."""
        async with self._lock:
            seq = self._next_seq()
            await self._request(dev_set_netns_request(seq, index, netns_fd), seq)


# -- sockets -------------------------------------------------------------------------------


def _new_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_RDMA)
    try:
        sock.bind((0, 0))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _socket_in(netns: str | None) -> socket.socket:
    """A NETLINK_RDMA socket in ``netns`` (a path; None = the calling thread's netns)."""
    if netns is None:
        return _new_socket()
    return call_in_netns_at(netns, _new_socket)


async def open_nldev_socket(netns: str | None = None) -> socket.socket:
    """A non-blocking ``NETLINK_RDMA`` socket in ``netns`` (path; None = this process's).

    Raises ``OSError`` (``EPROTONOSUPPORT`` on a kernel without RDMA, ``ENOENT`` for a
    missing netns path).
    """
    if netns is None:
        return _new_socket()
    return await asyncio.to_thread(_socket_in, netns)


def probe_netns_mode(netns: str | None = None, *, timeout: float = 2.0) -> int:
    """Ask the kernel for the RDMA netns mode, blocking (for start-up); raises ``OSError``.

    For another netns the socket is made in a short-lived worker thread, so the calling
    thread never changes namespace.
    """
    if netns is None:
        sock = _new_socket()
    else:
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rdma-netns") as pool:
            sock = pool.submit(_socket_in, netns).result()
    try:
        sock.setblocking(True)
        sock.settimeout(timeout)
        sock.sendall(sys_get_request(1))
        while True:
            for msg in decode(sock.recv(1 << 16)):
                if msg.seq != 1:
                    continue
                if msg.type in (NLMSG_ERROR, NLMSG_DONE):
                    if msg.error:
                        raise NldevError(-msg.error, os.strerror(-msg.error))
                    raise NldevError(errno.EPROTO, "SYS_GET reply without SYS_ATTR_NETNS_MODE")
                mode = msg.u8(SYS_ATTR_NETNS_MODE)
                if mode is not None:
                    return mode
    finally:
        sock.close()
