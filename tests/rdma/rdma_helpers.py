"""Test helpers for the rdma backend: a fake sysfs tree builder and a fake RDMA netlink kernel.

The fake kernel answers on the other end of an AF_UNIX datagram ``socketpair`` the way
``drivers/infiniband/core/nldev.c`` does, written from the uapi facts (not from the
backend's codec): ``CMD_GET`` dumps list the devices visible in the socket's netns (all of
them in shared mode) with ``NLM_F_MULTI`` and end with ``NLMSG_DONE``; ``CMD_SYS_GET``
returns ``SYS_ATTR_NETNS_MODE`` then an ACK; ``CMD_SET`` with ``NET_NS_FD`` moves a device
(exclusive mode only; ``EOPNOTSUPP`` in shared mode, ``EINVAL`` for an index not visible
in the socket's netns). Network namespaces are stood in for by plain files: a namespace is
identified by ``(st_dev, st_ino)`` of its path, and ``NET_NS_FD`` by ``fstat`` of the fd.
Replies are sent from an ``add_reader`` callback, so no task is left behind.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

HDR = struct.Struct("=IHHII")
NLA = struct.Struct("=HH")
NLDEV = 5


def ns_key(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def _nla(kind: int, payload: bytes) -> bytes:
    raw = NLA.pack(4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


class FakeRdmaKernel:
    """RDMA devices ``index -> [name, netns key]`` behind fake RDMA netlink sockets."""

    def __init__(self, *, host: str, exclusive: bool = True) -> None:
        self.host = host
        self.exclusive = exclusive
        self.devices: dict[int, list[object]] = {}
        self.requests: list[tuple[str | None, int, int]] = []  # (netns, cmd, flags)
        self.moves: list[tuple[str, tuple[int, int]]] = []
        self.fail: dict[int, int] = {}  # cmd -> errno
        self.silent = False
        self.opened: list[str | None] = []
        self._ends: list[socket.socket] = []

    def add(self, index: int, name: str, netns: str | None = None) -> None:
        self.devices[index] = [name, ns_key(netns or self.host)]

    def where(self, name: str) -> tuple[int, int] | None:
        for n, key in self.devices.values():
            if n == name:
                assert isinstance(key, tuple)
                return key
        return None

    async def open(self, netns: str | None) -> socket.socket:
        path = netns or self.host
        key = ns_key(path)  # raises FileNotFoundError like os.open of a missing netns
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        a.setblocking(False)
        b.setblocking(False)
        self._ends.append(b)
        self.opened.append(netns)
        asyncio.get_running_loop().add_reader(b.fileno(), self._serve, b, key, netns)
        return a

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for b in self._ends:
            if b.fileno() >= 0:
                loop.remove_reader(b.fileno())
                b.close()
        self._ends.clear()

    # -- the "kernel" --------------------------------------------------------------------

    def _serve(self, b: socket.socket, key: tuple[int, int], netns: str | None) -> None:
        try:
            data = b.recv(1 << 16)
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(b.fileno())
            return
        length, mtype, flags, seq, _ = HDR.unpack_from(data)
        assert length == len(data), "one request per datagram"
        attrs: dict[int, bytes] = {}
        off = HDR.size
        while off < length:
            ln, kind = NLA.unpack_from(data, off)
            attrs[kind] = data[off + 4 : off + ln]
            off += (ln + 3) & ~3
        cmd = mtype & 0x3FF
        assert mtype >> 10 == NLDEV
        self.requests.append((netns, cmd, flags))
        if self.silent:
            return
        if cmd in self.fail:
            b.send(self._error(-self.fail[cmd], data))
            return
        b.send(self._answer(cmd, mtype, flags, seq, attrs, data, key))

    def _answer(
        self,
        cmd: int,
        mtype: int,
        flags: int,
        seq: int,
        attrs: dict[int, bytes],
        data: bytes,
        key: tuple[int, int],
    ) -> bytes:
        if cmd == 6:  # SYS_GET: NETNS_MODE u8, an attribute the codec does not know, ACK if asked
            body = _nla(66, bytes([0 if self.exclusive else 1])) + _nla(97, b"\x01")
            out = HDR.pack(HDR.size + len(body), mtype, 0, seq, 0) + body
            return out + self._error(0, data) if flags & 0x4 else out
        if cmd == 1 and flags & 0x300:  # GET dump
            return self._dump(mtype, seq, key)
        if cmd == 2:  # SET
            index = struct.unpack("=I", attrs[1])[0]
            fd = struct.unpack("=I", attrs[68])[0]
            dev = self.devices.get(index)
            if not self.exclusive:
                return self._error(-errno.EOPNOTSUPP, data)
            if dev is None or dev[1] != key:
                return self._error(-errno.EINVAL, data)
            st = os.fstat(fd)
            dev[1] = (st.st_dev, st.st_ino)
            self.moves.append((str(dev[0]), (st.st_dev, st.st_ino)))
            return self._error(0, data)
        return self._error(-errno.EOPNOTSUPP, data)

    def _dump(self, mtype: int, seq: int, key: tuple[int, int]) -> bytes:
        out = b""
        for index, (name, where) in sorted(self.devices.items()):
            if self.exclusive and where != key:
                continue
            assert isinstance(name, str)
            body = _nla(1, struct.pack("=I", index)) + _nla(2, name.encode() + b"\0") + _nla(67, b"roce\0")
            out += HDR.pack(HDR.size + len(body), mtype, 0x2, seq, 0) + body
        return out + HDR.pack(HDR.size + 4, 3, 0x2, seq, 0) + struct.pack("=i", 0)

    @staticmethod
    def _error(code: int, request: bytes) -> bytes:
        body = struct.pack("=i", code) + request  # the whole request (NLM_F_CAPPED unset)
        return HDR.pack(HDR.size + len(body), 2, 0, HDR.unpack_from(request)[3], 0) + body


# -- fake sysfs ----------------------------------------------------------------------------


def add_pci(
    root: Path, bdf: str, *, netdevs: Sequence[str] = (), numa: int = 0, bus: str = "pci0000:00"
) -> Path:
    """A PCI function under ``devices/<bus>/<bdf>`` with ``net/<netdev>`` entries."""
    real = root / "devices" / bus / bdf
    real.mkdir(parents=True, exist_ok=True)
    (real / "numa_node").write_text(f"{numa}\n")
    (real / "class").write_text("0x020000\n")
    for nd in netdevs:
        (real / "net" / nd).mkdir(parents=True, exist_ok=True)
    link = root / "bus" / "pci" / "devices" / bdf
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(os.path.relpath(real, link.parent))
    return real


def add_rdma(
    root: Path,
    name: str,
    *,
    pci: Path | None = None,
    parent: str | None = None,
    guid: str = "0c42:a103:0065:8b5e",
    ports: Iterable[tuple[int, str, str, Sequence[str]]] = ((1, "Ethernet", "4: ACTIVE", ()),),
) -> Path:
    """An RDMA device (under its PCI function, or virtual) linked from ``class/infiniband``."""
    real = (
        (pci / "infiniband" / name)
        if pci is not None
        else (root / "devices" / "virtual" / "infiniband" / name)
    )
    real.mkdir(parents=True, exist_ok=True)
    if pci is not None:
        (real / "device").symlink_to(os.path.relpath(pci, real))
    if parent is not None:
        (real / "parent").write_text(parent + "\n")
    (real / "node_guid").write_text(guid + "\n")
    for index, layer, state, ndevs in ports:
        p = real / "ports" / str(index)
        (p / "gid_attrs" / "ndevs").mkdir(parents=True, exist_ok=True)
        (p / "link_layer").write_text(layer + "\n")
        (p / "state").write_text(state + "\n")
        for i, nd in enumerate(ndevs):
            (p / "gid_attrs" / "ndevs" / str(i)).write_text(nd + "\n")
    cls = root / "class" / "infiniband"
    cls.mkdir(parents=True, exist_ok=True)
    (cls / name).symlink_to(os.path.relpath(real, cls))
    return real


def add_char(root: Path, cls: str, entry: str, ibdev: str, port: int | None = None) -> None:
    """A char device entry ``class/<cls>/<entry>`` naming ``ibdev``."""
    d = root / "class" / cls / entry
    d.mkdir(parents=True, exist_ok=True)
    (d / "ibdev").write_text(ibdev + "\n")
    if port is not None:
        (d / "port").write_text(f"{port}\n")
