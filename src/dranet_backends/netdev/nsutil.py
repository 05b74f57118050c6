"""Network-namespace plumbing for the netdev mover: fds, threads inside a netns, netlink sockets.

Three rules, all from measurements (see docs/mover.md):

* never ``AsyncIPRoute(netns=...)``: it forks once per instance (10-15 ms, and unsafe in a
  threaded process). A netlink socket for another netns is made by a thread that has
  ``setns()``-ed into it; a socket keeps the netns it was created in for its whole life, so
  the socket is then used from the event loop like any other (:func:`rtnl_socket`,
  :class:`Rtnl`).
* code that must *run* inside a netns takes one of two paths. Microsecond work that cannot
  block (creating a socket, ``/proc/sys/net`` reads and writes, ethtool *reads*, ``bpf(2)``
  queries) runs on the calling thread itself, which enters the netns and comes straight back
  (:func:`call_in_netns`): no other coroutine can run in between, since nothing awaits, and
  it costs microseconds where waking a thread costs 0.2-3 ms on a busy node. Work a driver
  may make slow (ethtool feature *changes* reconfigure real NICs) runs in a fresh,
  short-lived thread (:func:`run_in_netns`) that exits afterwards, so no pooled thread is
  ever left in a pod's netns.
* both live in :mod:`dranet_backends.netns` (shared with discovery and the rdma backend) and
  are re-exported here with ``setns``, ``open_netns`` and the netns path constants.
* a netns is held by an open fd (``O_RDONLY`` on ``/run/netns/x`` or ``/proc/<pid>/ns/net``),
  never by a name that may be reused.

:class:`Rtnl` is a thin async rtnetlink client on a pyroute2 ``AsyncIPRoute`` with
``use_socket=``. It knows the link attributes pyroute2 0.9.7 lacks (``IFLA_GSO_IPV4_MAX_SIZE``
and ``IFLA_GRO_IPV4_MAX_SIZE``) and turns kernel errors into ``OSError`` (``errno`` set, the
kernel's extended-ack message in the text).
"""

from __future__ import annotations

import asyncio
import errno as errno_mod
import os
import socket
from typing import Any, Final

from pyroute2 import AsyncIPRoute
from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_GETADDR, RTM_GETLINK, RTM_GETNEIGH, RTM_GETROUTE, RTM_NEWLINK
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.ndmsg import ndmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

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
    "LinkMsg",
    "Rtnl",
    "call_in_netns",
    "open_netns",
    "rtnl_socket",
    "run_in_netns",
    "setns",
]

NETLINK_ROUTE: Final = 0

_SOCK_BUF: Final = 1 << 20
RTEXT_FILTER_SKIP_STATS: Final = 1 << 3
SOL_NETLINK: Final = 270
NETLINK_GET_STRICT_CHK: Final = 12


def rtnl_socket(ns_fd: int) -> socket.socket:
    """A NETLINK_ROUTE socket that lives in netns ``ns_fd`` (buffers sized as pyroute2's),
    made on the calling thread (:func:`call_in_netns`)."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCK_BUF)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCK_BUF)
        # strict checking makes the kernel honour the filters in dump requests (RTA_OIF,
        # NDA_IFINDEX, ifa_index) instead of dumping everything for us to filter in Python
        sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
        return sock

    return call_in_netns(ns_fd, make)


class LinkMsg(ifinfmsg):  # type: ignore[misc]
    """``ifinfmsg`` with the link attributes pyroute2 0.9.7 does not know (kernel >= 6.3).

    pyroute2 compiles an NLA table once per class and marks it in a name-mangled class
    attribute that subclasses inherit; resetting it makes this class compile its own table.
    """

    _nlmsg_base__compiled_nla = False
    nla_map = (
        *ifinfmsg.nla_map,
        ("IFLA_DEVLINK_PORT", "hex"),
        ("IFLA_GSO_IPV4_MAX_SIZE", "uint32"),
        ("IFLA_GRO_IPV4_MAX_SIZE", "uint32"),
    )


def _failure(exc: NetlinkError) -> OSError:
    """A kernel refusal as an ``OSError``: errno plus the extended-ack text when there is one."""
    code = int(getattr(exc, "code", 0) or 0)
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    msg = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
    text = os.strerror(code) if code > 0 else f"netlink error {code}"
    if msg and msg != text:
        text = f"{text}: {msg}"
    return OSError(code, text)


class Rtnl:
    """An rtnetlink client bound to one netns (by the socket it was opened on).

    Every method raises ``OSError`` (with the kernel's errno) on a kernel error. Methods with ``exist_ok``
    treat ``EEXIST`` as success, and ``*_get`` methods return ``None`` for ``ENODEV``.
    Concurrent calls on one instance are fine (pyroute2 matches replies by sequence number):
    requests and gets run in parallel, while dumps take turns on a per-socket lock, because the
    kernel runs one dump per netlink socket at a time and refuses a second with ``EBUSY``.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._ipr = AsyncIPRoute(use_socket=sock, ext_ack=True)
        self._ipr.marshal.msg_map[RTM_NEWLINK] = LinkMsg
        self._closed = False
        self._dumping = asyncio.Lock()

    @classmethod
    async def open(cls, ns_fd: int) -> Rtnl:
        """A client for netns ``ns_fd``; close it with :meth:`aclose`."""
        sock = rtnl_socket(ns_fd)
        try:
            rtnl = cls(sock)
        except BaseException:
            sock.close()
            raise
        try:
            # pyroute2 sets its transport up lazily on the first request, and two concurrent
            # first requests would each make one (leaking the other): do it once, here
            await rtnl._ipr.setup_endpoint()
        except BaseException:
            await rtnl.aclose()
            raise
        return rtnl

    async def aclose(self) -> None:
        """Close the client and its socket (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._ipr.close()
        finally:
            self._sock.close()

    async def __aenter__(self) -> Rtnl:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"Rtnl(fd={self._sock.fileno()}, closed={self._closed})"

    # -- links ---------------------------------------------------------------------------

    async def link_get(self, *, index: int | None = None, ifname: str | None = None) -> Any | None:
        """The link message for ``index`` or ``ifname``, or ``None`` if there is none.

        Asks the kernel to leave the statistics out (``IFLA_EXT_MASK`` =
        ``RTEXT_FILTER_SKIP_STATS``): half the decoding time of a full message.
        """
        msg = LinkMsg()
        msg["index"] = index or 0
        attrs: list[tuple[str, Any]] = [("IFLA_EXT_MASK", RTEXT_FILTER_SKIP_STATS)]
        if index is None:
            attrs.append(("IFLA_IFNAME", ifname))
        msg["attrs"] = attrs
        try:
            res = [m async for m in await self._ipr.nlm_request(msg, RTM_GETLINK, NLM_F_REQUEST)]
        except NetlinkError as exc:
            if exc.code in (errno_mod.ENODEV, errno_mod.ENOENT):
                return None
            raise _failure(exc) from exc
        return res[0] if res else None

    async def link_dump(self) -> list[Any]:
        """Every link of the netns (a full dump: only for rare paths such as recovery)."""
        try:
            async with self._dumping:
                return [m async for m in await self._ipr.link("dump")]
        except NetlinkError as exc:
            raise _failure(exc) from exc

    async def link_set(self, index: int, attrs: list[tuple[str, Any]], *, up: bool | None = None) -> None:
        """One RTM_NEWLINK on ``index`` with raw ``IFLA_*`` attributes (and IFF_UP if given).

        ``IFLA_NET_NS_FD`` takes an int fd here. Attributes are applied by the kernel in one
        request: a netns move plus rename plus MTU/MAC/GSO/GRO is atomic from our side.
        """
        msg = LinkMsg()
        msg["index"] = index
        if up is not None:
            msg["flags"] = 1 if up else 0
            msg["change"] = 1
        msg["attrs"] = attrs
        await self._request(msg, RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK)

    async def link_new(self, msg: LinkMsg) -> None:
        """Create a link from a prepared RTM_NEWLINK body (``NLM_F_CREATE|NLM_F_EXCL``)."""
        await self._request(msg, RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)

    async def link_add(self, **kwargs: Any) -> None:
        """Create a link (pyroute2 keywords, e.g. ``ifname=, kind="vrf", vrf_table=``)."""
        try:
            await self._ipr.link("add", **kwargs)
        except NetlinkError as exc:
            raise _failure(exc) from exc

    async def link_del(self, index: int) -> None:
        """Delete a link; a missing one is not an error."""
        try:
            await self._ipr.link("del", index=index)
        except NetlinkError as exc:
            if exc.code not in (errno_mod.ENODEV, errno_mod.ENOENT):
                raise _failure(exc) from exc

    # -- addresses, routes, rules, neighbours --------------------------------------------

    async def addr_dump(self, index: int) -> list[Any]:
        """Addresses of link ``index`` (both families), filtered by the kernel."""
        msg = ifaddrmsg()
        msg["index"] = index
        return [m for m in await self._dump(msg, RTM_GETADDR) if m["index"] == index]

    async def addr_add(
        self, index: int, address: str, prefixlen: int, *, exist_ok: bool = True, **extra: Any
    ) -> None:
        """Add an address (``broadcast=``, ``scope=``, ``flags=`` pass through)."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        await self._call_exist_ok(
            self._ipr.addr("add", index=index, address=address, prefixlen=prefixlen, family=family, **extra),
            exist_ok,
        )

    async def route_dump(self, family: int, oif: int | None = None) -> list[Any]:
        """Routes of one family, all tables; only those through ``oif`` when given (filtered
        by the kernel: ``RTA_OIF`` in a strict-checked dump request)."""
        msg = rtmsg()
        msg["family"] = family
        if oif is not None:
            msg["attrs"] = [("RTA_OIF", oif)]
        return [m for m in await self._dump(msg, RTM_GETROUTE) if oif is None or m.get("oif") == oif]

    async def route_add(self, *, exist_ok: bool = True, **kwargs: Any) -> None:
        """Add a route (pyroute2 keywords: ``dst``, ``gateway``, ``oif``, ``table``, ...)."""
        await self._call_exist_ok(self._ipr.route("add", **kwargs), exist_ok)

    async def rule_dump(self, family: int) -> list[Any]:
        """Policy rules of one family."""
        try:
            async with self._dumping:
                return [m async for m in await self._ipr.rule("dump", family=family)]
        except NetlinkError as exc:
            raise _failure(exc) from exc

    async def rule_add(self, *, exist_ok: bool = True, **kwargs: Any) -> bool:
        """Add a rule; returns False when it existed already (and ``exist_ok``)."""
        return await self._call_exist_ok(self._ipr.rule("add", **kwargs), exist_ok)

    async def rule_del(self, **kwargs: Any) -> None:
        """Delete a rule; a missing one is not an error."""
        try:
            await self._ipr.rule("del", **kwargs)
        except NetlinkError as exc:
            if exc.code != errno_mod.ENOENT:
                raise _failure(exc) from exc

    async def neigh_dump(self, index: int) -> list[Any]:
        """Neighbour entries of link ``index`` (both families), filtered by the kernel."""
        msg = ndmsg()
        msg["attrs"] = [("NDA_IFINDEX", index)]
        return [m for m in await self._dump(msg, RTM_GETNEIGH) if m["ifindex"] == index]

    async def neigh_add(self, *, exist_ok: bool = True, **kwargs: Any) -> None:
        """Add a neighbour entry (``dst``, ``lladdr``, ``ifindex``, ``state``)."""
        await self._call_exist_ok(self._ipr.neigh("add", **kwargs), exist_ok)

    async def tc_filters(self, index: int, parent: int) -> list[Any]:
        """TC filters of link ``index`` under ``parent`` (e.g. clsact ingress)."""
        try:
            async with self._dumping:
                return [m async for m in await self._ipr.get_filters(index=index, parent=parent)]
        except NetlinkError as exc:
            if exc.code in (errno_mod.EINVAL, errno_mod.ENOENT):
                return []
            raise _failure(exc) from exc

    async def tc_filter_del(self, index: int, parent: int, handle: int, info: int) -> None:
        """Delete one TC filter (kind-independent: handle, parent and prio/protocol ``info``)."""
        try:
            await self._ipr.tc("del-filter", index=index, parent=parent, handle=handle, info=info)
        except NetlinkError as exc:
            if exc.code not in (errno_mod.ENOENT, errno_mod.EINVAL):
                raise _failure(exc) from exc

    # -- plumbing ------------------------------------------------------------------------

    async def _dump(self, msg: Any, msg_type: int) -> list[Any]:
        try:
            async with self._dumping:
                return [
                    m async for m in await self._ipr.nlm_request(msg, msg_type, NLM_F_REQUEST | NLM_F_DUMP)
                ]
        except NetlinkError as exc:
            raise _failure(exc) from exc

    async def _request(self, msg: Any, msg_type: int, flags: int) -> None:
        try:
            async for _ in await self._ipr.nlm_request(msg, msg_type, flags):
                pass
        except NetlinkError as exc:
            raise _failure(exc) from exc

    @staticmethod
    async def _call_exist_ok(call: Any, exist_ok: bool) -> bool:
        try:
            res = await call
            if hasattr(res, "__aiter__"):
                async for _ in res:
                    pass
        except NetlinkError as exc:
            if exist_ok and exc.code == errno_mod.EEXIST:
                return False
            raise _failure(exc) from exc
        return True
