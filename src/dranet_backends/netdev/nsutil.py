"""Network-namespace plumbing for the netdev mover: fds, threads inside a netns, netlink sockets.

Rules, all from measurements (see docs/mover.md):

* never ``AsyncIPRoute(netns=...)``: it forks once per instance (10-15 ms, and unsafe in a
  threaded process). A netlink socket for another netns is made by a thread that has
  ``setns()``-ed into it and comes straight back; a socket keeps the netns it was created in
  for its whole life.
* nothing that may wait on the kernel runs on the event loop: netlink exchanges, socket
  creation in a netns, host ethtool reads and ``/proc/sys/net`` work run on the netlink
  worker threads (:func:`on_worker`, which enters the netns and comes back,
  :func:`call_in_netns`); work a driver may make slow (ethtool feature *changes* reconfigure
  real NICs) runs in a fresh, short-lived thread (:func:`run_in_netns`) that exits
  afterwards, so no pooled thread is ever left in a pod's netns.
* the netns helpers live in :mod:`dranet_backends.netns` (shared with discovery and the rdma
  backend) and are re-exported here with ``setns``, ``open_netns`` and the path constants.
* a netns is held by an open fd (``O_RDONLY`` on ``/run/netns/x`` or ``/proc/<pid>/ns/net``),
  never by a name that may be reused.

:class:`Rtnl` is the mover's async rtnetlink client: one socket per namespace, the messages
built and decoded by hand (:mod:`.rtmsg`), kernel errors as ``OSError`` (``errno`` set, the
kernel's extended-ack message in the text). Every exchange runs on a small pool of
long-lived worker threads (:data:`WORKERS`) shared by all clients: the kernel does a
request's work inside ``sendmsg`` (and a dump's inside ``recvmsg``), under the rtnl lock that
link moves hold for milliseconds (``synchronize_net``), so doing it on the event loop would
stall the loop for as long as other moves hold that lock. Exchanges on one socket take turns;
different pods' sockets overlap (the kernel serialises what needs its lock anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno as errno_mod
import os
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from dranet_backends.netdev import rtmsg
from dranet_backends.netns import (
    CLONE_NEWNET,
    SELF_NETNS,
    THREAD_NETNS,
    call_in_netns,
    open_netns,
    run_in_netns,
    setns,
)

__all__ = [
    "CLONE_NEWNET",
    "NETLINK_ROUTE",
    "SELF_NETNS",
    "THREAD_NETNS",
    "Rtnl",
    "RtnlSync",
    "call_in_netns",
    "on_worker",
    "open_netns",
    "run_in_netns",
    "setns",
]

T = TypeVar("T")

NETLINK_ROUTE: Final = 0

_SOCK_BUF: Final = 4 << 20
SOL_NETLINK: Final = 270
NETLINK_EXT_ACK: Final = 11
NETLINK_GET_STRICT_CHK: Final = 12
SO_RCVBUFFORCE: Final = 33
REPLY_TIMEOUT: Final = 10.0
"""Seconds a request waits for the kernel's answer before it fails with ETIMEDOUT."""


def _new_socket() -> socket.socket:
    """A blocking NETLINK_ROUTE socket in the calling thread's netns: strict-checked dumps,
    extended acks, a reply timeout (:data:`REPLY_TIMEOUT`)."""

    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, _SOCK_BUF)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCK_BUF)
        # strict checking makes the kernel honour the filters in dump requests (RTA_OIF,
        # NDA_IFINDEX, ifa_index) instead of dumping everything for us to filter here
        sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        sock.settimeout(REPLY_TIMEOUT)
        sock.bind((0, 0))
    except BaseException:
        sock.close()
        raise
    return sock


WORKERS: Final = 4
"""Netlink worker threads: exchanges on different sockets (pods) overlap, one socket's
exchanges take turns (a per-socket lock held on the worker)."""

_worker_lock = threading.Lock()
_worker: list[ThreadPoolExecutor] = []
_local = threading.local()


def _executor() -> ThreadPoolExecutor:
    """The netlink worker threads (made on first use, live as long as the process)."""
    with _worker_lock:
        if not _worker:
            _worker.append(ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="dranet-rtnl"))
        return _worker[0]


def _buffer() -> bytearray:
    """This worker thread's receive buffer."""
    buf: bytearray | None = getattr(_local, "buf", None)
    if buf is None:
        buf = _local.buf = bytearray(1 << 20)
    return buf


async def on_worker(ns_fd: int | None, fn: Callable[[], T]) -> T:
    """Run quick ``fn`` on a netlink worker thread, inside netns ``ns_fd`` (``None``: the
    worker's own). For work the kernel may hold behind the rtnl lock -- ethtool ioctls, some
    ``/proc/sys/net`` writes -- which must not wait on the event loop."""
    if ns_fd is None:
        job = fn
    else:
        fd = ns_fd

        def job() -> T:
            return call_in_netns(fd, fn)

    return await asyncio.get_running_loop().run_in_executor(_executor(), job)


def _exchange(sock: socket.socket, req: rtmsg.Request, seq: int) -> list[rtmsg.Reply]:
    """Send one request and collect its answer (on the worker thread). A dump interrupted by
    a concurrent change (``NLM_F_DUMP_INTR``) is asked again, up to 5 times."""
    mtype, flags, body = req
    dump = bool(flags & rtmsg.NLM_F_DUMP)
    data = rtmsg.header(mtype, flags, seq, body)
    buf = _buffer()
    view = memoryview(buf)
    out: list[rtmsg.Reply] = []
    for _ in range(5 if dump else 1):
        sock.send(data)
        out, interrupted, done = [], False, False
        while not done:
            try:
                n = sock.recv_into(buf)
            except TimeoutError as exc:
                raise OSError(errno_mod.ETIMEDOUT, "the kernel did not answer") from exc
            for kind, mflags, mseq, rec, code, text in rtmsg.decode(bytes(view[:n])):
                if mseq != seq:
                    continue
                if mflags & rtmsg.NLM_F_DUMP_INTR:
                    interrupted = True
                if kind == rtmsg.NLMSG_ERROR:
                    if code:
                        reason = os.strerror(code)
                        raise OSError(code, f"{reason}: {text}" if text and text != reason else reason)
                    done = True
                elif kind == rtmsg.NLMSG_DONE:
                    done = True
                elif rec is not None:
                    out.append(rec)
                    done = not dump
        if not interrupted:
            break
    return out


class RtnlSync:
    """The blocking face of an :class:`Rtnl`: the same requests, answered on the calling thread.

    Only for code already on a netlink worker thread that holds the socket's turn
    (:meth:`Rtnl.held`, :meth:`Rtnl.batch`): a step that needs several exchanges does them
    in one trip to a worker instead of one trip each. Same errors and return values as the
    async methods of :class:`Rtnl`.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._seq = 0

    def call(self, req: rtmsg.Request) -> list[rtmsg.Reply]:
        """One request and its answer."""
        self._seq = self._seq % 0x7FFFFFFF + 1
        return _exchange(self._sock, req, self._seq)

    def call_ok(self, req: rtmsg.Request, ignore: tuple[int, ...]) -> bool:
        """Run ``req``; False if the kernel refused it with one of ``ignore``."""
        try:
            self.call(req)
        except OSError as exc:
            if exc.errno in ignore:
                return False
            raise
        return True

    # -- links ---------------------------------------------------------------------------

    def link_get(self, *, index: int | None = None, ifname: str | None = None) -> Any | None:
        """The link record for ``index`` or ``ifname``, or ``None`` if there is none."""
        try:
            res = self.call(rtmsg.link_get(index, ifname))
        except OSError as exc:
            if exc.errno in (errno_mod.ENODEV, errno_mod.ENOENT):
                return None
            raise
        return res[0] if res else None

    def link_dump(self) -> list[Any]:
        """Every link of the netns (a full dump: only for rare paths such as recovery)."""
        return self.call(rtmsg.link_dump())

    def link_set(self, index: int, attrs: list[tuple[str, Any]], *, up: bool | None = None) -> None:
        """One RTM_NEWLINK on ``index`` with ``IFLA_*`` attributes (and IFF_UP if given).

        ``IFLA_NET_NS_FD`` takes an int fd. The kernel applies the attributes in one request:
        a netns move plus rename plus MTU/MAC/GSO/GRO is one message.
        """
        self.call(rtmsg.link_set(index, attrs, up))

    def link_new(self, body: bytes) -> None:
        """Create a link from a prepared RTM_NEWLINK body (``NLM_F_CREATE|NLM_F_EXCL``)."""
        self.call(rtmsg.link_new(body))

    def link_del(self, index: int) -> None:
        """Delete a link; a missing one is not an error."""
        self.call_ok(rtmsg.link_del(index), (errno_mod.ENODEV, errno_mod.ENOENT))

    # -- addresses, routes, rules, neighbours --------------------------------------------

    def addr_dump(self, index: int) -> list[Any]:
        """Addresses of link ``index`` (both families), filtered by the kernel."""
        return [m for m in self.call(rtmsg.addr_dump(index)) if m["index"] == index]

    def addr_add(
        self, index: int, address: str, prefixlen: int, *, exist_ok: bool = True, **extra: Any
    ) -> None:
        """Add an address (``broadcast=``, ``scope=``, ``flags=`` pass through)."""
        self.call_ok(rtmsg.addr_add(index, address, prefixlen, **extra), _exists(exist_ok))

    def route_dump(self, family: int, oif: int | None = None) -> list[Any]:
        """Routes of one family, all tables; only those through ``oif`` when given (filtered
        by the kernel: ``RTA_OIF`` in a strict-checked dump request)."""
        return [m for m in self.call(rtmsg.route_dump(family, oif)) if oif is None or m.get("oif") == oif]

    def route_add(self, *, exist_ok: bool = True, **kwargs: Any) -> None:
        """Add a route (``family``, ``dst``, ``dst_len``, ``gateway``, ``oif``, ``table``, ...)."""
        self.call_ok(rtmsg.route_add(**kwargs), _exists(exist_ok))

    def rule_dump(self, family: int) -> list[Any]:
        """Policy rules of one family."""
        return self.call(rtmsg.rule_dump(family))

    def rule_add(self, *, exist_ok: bool = True, **kwargs: Any) -> bool:
        """Add a rule; returns False when it existed already (and ``exist_ok``)."""
        return self.call_ok(rtmsg.rule(True, **kwargs), _exists(exist_ok))

    def rule_del(self, **kwargs: Any) -> None:
        """Delete a rule; a missing one is not an error."""
        self.call_ok(rtmsg.rule(False, **kwargs), (errno_mod.ENOENT,))

    def neigh_dump(self, index: int) -> list[Any]:
        """Neighbour entries of link ``index`` (both families), filtered by the kernel."""
        return [m for m in self.call(rtmsg.neigh_dump(index)) if m["ifindex"] == index]

    def neigh_add(self, *, exist_ok: bool = True, **kwargs: Any) -> None:
        """Add a neighbour entry (``dst``, ``lladdr``, ``ifindex``, ``state``)."""
        self.call_ok(rtmsg.neigh_add(**kwargs), _exists(exist_ok))

    def tc_filters(self, index: int, parent: int) -> list[Any]:
        """TC filters of link ``index`` under ``parent`` (e.g. clsact ingress)."""
        try:
            return self.call(rtmsg.tc_filter_dump(index, parent))
        except OSError as exc:
            if exc.errno in (errno_mod.EINVAL, errno_mod.ENOENT):
                return []
            raise

    def tc_filter_del(self, index: int, parent: int, handle: int, info: int) -> None:
        """Delete one TC filter (kind-independent: handle, parent and prio/protocol ``info``)."""
        self.call_ok(rtmsg.tc_filter_del(index, parent, handle, info), (errno_mod.ENOENT, errno_mod.EINVAL))


class Rtnl:
    """An rtnetlink client bound to one netns (by the socket it was opened on).

    Every method raises ``OSError`` (with the kernel's errno) on a kernel error. Methods with
    ``exist_ok`` treat ``EEXIST`` as success, and ``*_get`` methods return ``None`` for
    ``ENODEV``. Concurrent calls on one instance are fine: its exchanges run one at a time
    on the worker threads (so a dump never meets another on the same socket, which the
    kernel refuses with ``EBUSY``). A call whose caller is cancelled still completes there.

    Each method is one trip to a worker thread (a thread hand-off each way: on a small VM
    about ten times the kernel's own time for a lookup). A step that needs several exchanges
    makes them in one trip: :meth:`batch` for one socket, or a function run with
    :func:`on_worker` that takes each socket's turn with :meth:`held`, one socket after
    another, never one inside another.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._sync = RtnlSync(sock)
        self._closed = False
        self._pending = 0  # batches submitted and not yet answered (counted on the loop)
        self._turn = threading.Lock()  # held on a worker thread for one exchange (or batch)

    @classmethod
    async def open(cls, ns_fd: int) -> Rtnl:
        """A client for netns ``ns_fd``; close it with :meth:`aclose`. The socket is made on
        the worker thread (entering the netns involves path lookups the event loop must not
        wait on)."""
        return cls(await on_worker(ns_fd, _new_socket))

    @classmethod
    def open_here(cls) -> Rtnl:
        """A client for the calling thread's netns, made on the calling thread: for code on
        a thread that has entered the netns (:func:`call_in_netns`)."""
        return cls(_new_socket())

    async def aclose(self) -> None:
        """Close the client and its socket (idempotent; after its pending exchanges)."""
        if self._closed:
            return
        self._closed = True
        if not self._pending and self._turn.acquire(blocking=False):  # nothing in flight
            try:
                self._sock.close()
            finally:
                self._turn.release()
            return
        await self._run(self._locked(self._sock.close))

    def close_now(self) -> None:
        """Close a client that nothing has used yet (its socket, on this thread)."""
        self._closed = True
        self._sock.close()

    async def __aenter__(self) -> Rtnl:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"Rtnl(fd={self._sock.fileno()}, closed={self._closed})"

    @staticmethod
    async def _run(fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(_executor(), fn)

    def _locked(self, fn: Callable[[], T]) -> Callable[[], T]:
        """``fn`` taking this socket's turn on the worker thread (so a cancelled caller
        never lets a second exchange start on the socket while one is still running)."""

        def run() -> T:
            with self._turn:
                return fn()

        return run

    @contextlib.contextmanager
    def held(self) -> Iterator[RtnlSync]:
        """This socket's turn, for code on a worker thread (see the class docstring):
        ``with rtnl.held() as s: s.link_get(...)``. ``OSError(EBADF)`` once closed."""
        with self._turn:
            if self._sock.fileno() < 0:
                raise OSError(errno_mod.EBADF, "the netlink client is closed")
            yield self._sync

    async def batch(self, fn: Callable[[RtnlSync], T]) -> T:
        """``fn(sync)`` on a worker thread with this socket's turn held: several exchanges
        in one trip."""
        if self._closed:
            raise OSError(errno_mod.EBADF, "the netlink client is closed")

        def run() -> T:
            with self.held() as sync:
                return fn(sync)

        self._pending += 1
        try:
            return await self._run(run)
        finally:
            self._pending -= 1

    # -- links ---------------------------------------------------------------------------

    async def link_get(self, *, index: int | None = None, ifname: str | None = None) -> Any | None:
        """The link record for ``index`` or ``ifname``, or ``None`` if there is none."""
        return await self.batch(lambda s: s.link_get(index=index, ifname=ifname))

    async def link_dump(self) -> list[Any]:
        """Every link of the netns (a full dump: only for rare paths such as recovery)."""
        return await self.batch(lambda s: s.link_dump())

    async def link_set(self, index: int, attrs: list[tuple[str, Any]], *, up: bool | None = None) -> None:
        """One RTM_NEWLINK on ``index`` (see :meth:`RtnlSync.link_set`)."""
        await self.batch(lambda s: s.link_set(index, attrs, up=up))

    async def link_new(self, body: bytes) -> None:
        """Create a link from a prepared RTM_NEWLINK body (``NLM_F_CREATE|NLM_F_EXCL``)."""
        await self.batch(lambda s: s.link_new(body))

    async def link_del(self, index: int) -> None:
        """Delete a link; a missing one is not an error."""
        await self.batch(lambda s: s.link_del(index))

    # -- addresses, routes, rules, neighbours --------------------------------------------

    async def addr_dump(self, index: int) -> list[Any]:
        """Addresses of link ``index`` (both families), filtered by the kernel."""
        return await self.batch(lambda s: s.addr_dump(index))

    async def addr_add(
        self, index: int, address: str, prefixlen: int, *, exist_ok: bool = True, **extra: Any
    ) -> None:
        """Add an address (``broadcast=``, ``scope=``, ``flags=`` pass through)."""
        await self.batch(lambda s: s.addr_add(index, address, prefixlen, exist_ok=exist_ok, **extra))

    async def route_dump(self, family: int, oif: int | None = None) -> list[Any]:
        """Routes of one family, all tables; only those through ``oif`` when given."""
        return await self.batch(lambda s: s.route_dump(family, oif))

    async def route_add(self, *, exist_ok: bool = True, **kwargs: Any) -> None:
        """Add a route (``family``, ``dst``, ``dst_len``, ``gateway``, ``oif``, ``table``, ...)."""
        await self.batch(lambda s: s.route_add(exist_ok=exist_ok, **kwargs))

    async def rule_dump(self, family: int) -> list[Any]:
        """Policy rules of one family."""
        return await self.batch(lambda s: s.rule_dump(family))

    async def rule_add(self, *, exist_ok: bool = True, **kwargs: Any) -> bool:
        """Add a rule; returns False when it existed already (and ``exist_ok``)."""
        return await self.batch(lambda s: s.rule_add(exist_ok=exist_ok, **kwargs))

    async def rule_del(self, **kwargs: Any) -> None:
        """Delete a rule; a missing one is not an error."""
        await self.batch(lambda s: s.rule_del(**kwargs))

    async def neigh_dump(self, index: int) -> list[Any]:
        """Neighbour entries of link ``index`` (both families), filtered by the kernel."""
        return await self.batch(lambda s: s.neigh_dump(index))

    async def neigh_add(self, *, exist_ok: bool = True, **kwargs: Any) -> None:
        """Add a neighbour entry (``dst``, ``lladdr``, ``ifindex``, ``state``)."""
        await self.batch(lambda s: s.neigh_add(exist_ok=exist_ok, **kwargs))

    async def tc_filters(self, index: int, parent: int) -> list[Any]:
        """TC filters of link ``index`` under ``parent`` (e.g. clsact ingress)."""
        return await self.batch(lambda s: s.tc_filters(index, parent))

    async def tc_filter_del(self, index: int, parent: int, handle: int, info: int) -> None:
        """Delete one TC filter (kind-independent: handle, parent and prio/protocol ``info``)."""
        await self.batch(lambda s: s.tc_filter_del(index, parent, handle, info))


def _exists(ok: bool) -> tuple[int, ...]:
    return (errno_mod.EEXIST,) if ok else ()
