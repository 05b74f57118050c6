"""Detach and restore: bring a netdev home from a pod, and restore its host snapshot.

Detach steps, in order (the step names of errors and of the step hook)::

    return               down in the pod, then one RTM_NEWLINK: home, original name (and ifindex)
    restore:name         the original name; taken -> parked as drn<ifindex hex> (.renames)
    restore:link         MTU, MAC, GSO/GRO sizes that differ from the snapshot
    restore:sysctls+ethtool
    restore:addresses    the permanent ones (the kernel flushed them on the move)
    restore:up           up or down as it was
    restore:routes       link scope first
    restore:rules        added if missing
    restore:neighbors    permanent ones

A device is forgotten only when it is verifiably home (restored) or verifiably gone: a virtual
device that no live namespace holds (:meth:`.hostside.HostSide.find_elsewhere`). A device the
pod's netns no longer has but exactly one other live namespace holds (the pod's old namespace,
kept alive by a container after its path went) is brought home from there. Every other case
raises :class:`~dranet_core.errors.DeviceError` so the caller keeps the claim and retries:
the device neither in a live pod netns nor at home nor anywhere visible; more than one
namespace holding a device like it; a physical device not back yet.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import attrs

from dranet_backends.netdev import ethtool, sysctl
from dranet_backends.netdev.hostside import HostSide, temp_name
from dranet_backends.netdev.nsutil import Rtnl, run_in_netns
from dranet_backends.netdev.renames import ParkedDevices
from dranet_backends.netdev.snapshot import NUD_PERMANENT, HostSnapshot
from dranet_core.errors import DeviceError, DeviceNotFoundError

__all__ = ["RESTORE_STEPS", "Restorer", "is_transient"]

log = logging.getLogger(__name__)

_IFA_F_PERMANENT: Final = 0x80
_IFA_RESTORE_FLAGS: Final = 0x02 | 0x10 | 0x100 | 0x200  # nodad, homeaddress, mngtmpaddr, noprefixroute
_TRANSIENT: Final = frozenset({errno.EBUSY, errno.EAGAIN, errno.ENOBUFS, errno.EINTR})


def is_transient(exc: BaseException) -> bool:
    """Whether a kernel refusal is worth retrying as it is."""
    return isinstance(exc, OSError) and exc.errno in _TRANSIENT


def family(addr: str) -> int:
    """The address family of an IP address."""
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


@attrs.define
class _Restore:
    """Working state of one restore."""

    device: str
    snap: HostSnapshot
    host: Rtnl
    index: int
    link: Any
    fresh: bool
    up_now: bool
    name: str


async def _wrap(device: str, step: str, coro: Awaitable[Any]) -> Any:
    try:
        return await coro
    except (OSError, ValueError) as exc:
        raise DeviceError(device, step, str(exc), temporary=is_transient(exc)) from exc


class Restorer:
    """Brings devices home and restores their snapshots (see the module docstring)."""

    def __init__(self, host: HostSide, parked: ParkedDevices) -> None:
        self.host = host
        self.parked = parked
        self.lost: list[str] = []
        """Devices (DRA names) found gone: virtual devices whose namespace no longer exists."""

    def __repr__(self) -> str:
        return f"Restorer(lost={len(self.lost)})"

    async def bring_home(
        self, device: str, snap: HostSnapshot, pod: Rtnl | None, name: str, cfg_mac: str | None
    ) -> None:
        """Bring the device home from ``pod`` (``None``: its netns is gone) and restore it."""
        fresh = False
        if pod is not None:
            link = await _wrap(device, "detach", self.host.find_in_pod(pod, snap, name, cfg_mac))
            if link is not None:
                await _wrap(device, "return", self.host.at(device, "return"))
                await _wrap(device, "return", self._return(pod, int(link["index"]), snap))
                fresh = True
        find = self.host.find_home(snap, scan=pod is None, pod_name=name, cfg_mac=cfg_mac)
        home = await _wrap(device, "detach", find)
        if home is None and await self._from_elsewhere(device, snap, name, cfg_mac):
            fresh = True
            home = await _wrap(device, "detach", self.host.find_home(snap, scan=True, cfg_mac=cfg_mac))
        if home is None and pod is None:
            if not snap.virtual:
                raise DeviceNotFoundError(
                    device, "detach", f"{snap.ifname} is not back on the host yet", temporary=True
                )
            log.warning("device %s (%s) was virtual and ended with its pod's namespace", device, snap.ifname)
            self.lost.append(device)
            return
        if home is None:
            raise DeviceNotFoundError(
                device, "detach", f"{snap.ifname} is neither in the pod nor on the host", temporary=True
            )
        await self.restore(device, snap, home, fresh=fresh)

    async def _from_elsewhere(self, device: str, snap: HostSnapshot, name: str, cfg_mac: str | None) -> bool:
        """The device is neither in the pod's netns (or that is gone) nor home: if exactly one
        other live namespace holds it (a container kept the pod's old namespace alive after
        its path went), bring it home from there. Returns whether it did; raises when more
        than one namespace holds a device that looks like it (never guesses)."""
        hits = await _wrap(device, "detach", self.host.find_elsewhere(snap, cfg_mac))
        try:
            if len(hits) > 1:
                where = ", ".join(path for _, path in hits[:4])
                raise DeviceNotFoundError(
                    device,
                    "detach",
                    f"{snap.ifname} is not in the pod and {len(hits)} other namespaces hold a device "
                    f"like it ({where}); not guessing which",
                    temporary=True,
                )
            if not hits:
                return False
            fd, path = hits[0]
            log.warning("device %s: the pod's netns is gone but %s holds it; bringing it home", device, path)
            try:
                other = await Rtnl.open(fd)
            except OSError as exc:
                raise DeviceError(device, "return", f"{path}: {exc}", temporary=True) from exc
            async with other:
                link = await _wrap(device, "detach", self.host.find_in_pod(other, snap, name, cfg_mac))
                if link is None:
                    return False
                await _wrap(device, "return", self.host.at(device, "return"))
                await _wrap(device, "return", self._return(other, int(link["index"]), snap))
            return True
        finally:
            for fd, _ in hits:
                os.close(fd)

    async def _return(self, pod: Rtnl, index: int, snap: HostSnapshot) -> None:
        """Down in the pod, then one RTM_NEWLINK: home, original name, original ifindex.

        The ifindex changes only if the pod had the original one taken; it is asked back
        (``IFLA_NEW_IFINDEX``) when it is free at home.
        """
        await pod.link_set(index, [], up=False)
        extra: list[tuple[str, Any]] = []
        host = await self.host.rtnl()
        if snap.ifindex and index != snap.ifindex and await host.link_get(index=snap.ifindex) is None:
            extra.append(("IFLA_NEW_IFINDEX", snap.ifindex))
        try:
            await pod.link_set(
                index, [("IFLA_NET_NS_FD", self.host.fd), ("IFLA_IFNAME", snap.ifname), *extra]
            )
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
            # The kernel moves first and renames after: if only the rename failed, the device
            # is home under its pod name already and restore renames (or parks) it.
            if await pod.link_get(index=index) is None:
                return
            tmp = temp_name(snap.ifindex)
            log.warning("%s is taken on the host; bringing the device home as %s", snap.ifname, tmp)
            await pod.link_set(index, [("IFLA_NET_NS_FD", self.host.fd), ("IFLA_IFNAME", tmp), *extra])

    async def restore(self, device: str, snap: HostSnapshot, link: Any, *, fresh: bool = False) -> None:
        """Restore ``snap`` on home device ``link``, step by step (:data:`RESTORE_STEPS`).

        ``fresh``: the device has just arrived from another netns, so its sysctls are the host
        netns defaults (the kernel re-creates them); only those that differ are written.
        """
        ctx = _Restore(
            device=device,
            snap=snap,
            host=await self.host.rtnl(),
            index=int(link["index"]),
            link=link,
            fresh=fresh,
            up_now=bool(link["flags"] & 1),
            name=str(link.get("ifname")),
        )
        for step, action in RESTORE_STEPS:
            try:
                await self.host.at(device, step)
                await action(self, ctx)
            except (OSError, ValueError) as exc:
                reason = f"{snap.ifname}: {exc}"
                raise DeviceError(device, step, reason, temporary=is_transient(exc)) from exc

    async def _name(self, ctx: _Restore) -> None:
        if ctx.name != ctx.snap.ifname:
            ctx.name = await self._rename_home(ctx)
            ctx.up_now = False

    async def _link(self, ctx: _Restore) -> None:
        diff = _link_diff(ctx.link, ctx.snap)
        if diff:
            mac_change = any(a == "IFLA_ADDRESS" for a, _ in diff)
            await ctx.host.link_set(ctx.index, diff, up=False if ctx.up_now and mac_change else None)

    async def _settings(self, ctx: _Restore) -> None:
        """Sysctls (on a fresh arrival only those differing from the netns defaults) and
        ethtool state (always compared: a netns move itself may change features, e.g. veth
        drops GRO, whatever the config asked for)."""
        snap = ctx.snap
        sysctls = dict(snap.sysctls)
        if ctx.fresh and snap.sysctl_defaults:
            sysctls = {k: v for k, v in sysctls.items() if snap.sysctl_defaults.get(k) != v}
        if not (sysctls or snap.features or snap.private_flags):
            return
        name, root = ctx.name, self.host.proc_sys
        features, flags = await self.host.in_ns(lambda: _settings_in_ns(name, snap, sysctls, root))
        if features or flags:  # changing offloads may reconfigure a real NIC: in a thread
            await run_in_netns(self.host.fd, lambda: _set_ethtool(name, features, flags))

    async def _addresses(self, ctx: _Restore) -> None:
        for a in ctx.snap.addresses:
            if not a.flags & _IFA_F_PERMANENT:
                continue  # dynamic (SLAAC) addresses come back by themselves
            extra: dict[str, Any] = {"scope": a.scope}
            if a.broadcast:
                extra["broadcast"] = a.broadcast
            if a.flags & _IFA_RESTORE_FLAGS:
                extra["flags"] = a.flags & _IFA_RESTORE_FLAGS
            await ctx.host.addr_add(ctx.index, a.address, a.prefixlen, **extra)

    async def _up(self, ctx: _Restore) -> None:
        if ctx.snap.up:
            await ctx.host.link_set(ctx.index, [], up=True)
        elif ctx.up_now:
            await ctx.host.link_set(ctx.index, [], up=False)

    async def _routes(self, ctx: _Restore) -> None:
        for r in sorted(ctx.snap.routes, key=lambda r: -r.scope):
            kw: dict[str, Any] = {
                "family": r.family,
                "dst_len": r.dst_len,
                "scope": r.scope,
                "table": r.table,
                "proto": r.proto,
                "oif": ctx.index,
            }
            for key in ("dst", "gateway", "prefsrc", "priority"):
                if getattr(r, key) is not None:
                    kw[key] = getattr(r, key)
            await ctx.host.route_add(**kw)

    async def _rules(self, ctx: _Restore) -> None:
        for rule in ctx.snap.rules:
            kw = {k: v for k, v in attrs.asdict(rule).items() if v is not None}
            for key in ("src", "dst"):
                if kw.get(f"{key}_len") == 0:
                    kw.pop(f"{key}_len")
            await ctx.host.rule_add(**kw)

    async def _neighbors(self, ctx: _Restore) -> None:
        for n in ctx.snap.neighbors:
            await ctx.host.neigh_add(
                dst=n.dst, lladdr=n.lladdr, ifindex=ctx.index, state=NUD_PERMANENT, family=family(n.dst)
            )

    async def _rename_home(self, ctx: _Restore) -> str:
        """Rename the home device to its host name; if taken, park it under its temporary
        name (:class:`.renames.ParkedDevices`). Returns the name it now has."""
        name, tmp = ctx.snap.ifname, temp_name(ctx.snap.ifindex)
        await ctx.host.link_set(ctx.index, [], up=False)
        try:
            await ctx.host.link_set(ctx.index, [("IFLA_IFNAME", name)])
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
            link = await ctx.host.link_get(index=ctx.index)
            if link is not None and link.get("ifname") != tmp:
                await ctx.host.link_set(ctx.index, [("IFLA_IFNAME", tmp)])
            self.parked.park(ctx.index, ctx.device, ctx.snap)
            log.warning("host name %s is taken; device ifindex %d waits as %s", name, ctx.index, tmp)
            return tmp
        self.parked.forget(ctx.index)
        return name


RESTORE_STEPS: Final[tuple[tuple[str, Callable[[Restorer, _Restore], Awaitable[None]]], ...]] = (
    ("restore:name", Restorer._name),
    ("restore:link", Restorer._link),
    ("restore:sysctls+ethtool", Restorer._settings),
    ("restore:addresses", Restorer._addresses),
    ("restore:up", Restorer._up),
    ("restore:routes", Restorer._routes),
    ("restore:rules", Restorer._rules),
    ("restore:neighbors", Restorer._neighbors),
)
"""The restore steps in order: (step name, action)."""


def _link_diff(link: Any, snap: HostSnapshot) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, nla in (
        ("mtu", "IFLA_MTU"),
        ("gso_max_size", "IFLA_GSO_MAX_SIZE"),
        ("gro_max_size", "IFLA_GRO_MAX_SIZE"),
        ("gso_ipv4_max_size", "IFLA_GSO_IPV4_MAX_SIZE"),
        ("gro_ipv4_max_size", "IFLA_GRO_IPV4_MAX_SIZE"),
    ):
        want = getattr(snap, key)
        if want is not None and link.get(key) is not None and link.get(key) != want:
            out.append((nla, want))
    if snap.mac and (link.get("address") or "").lower() != snap.mac.lower():
        out.append(("IFLA_ADDRESS", snap.mac))
    return out


def _settings_in_ns(
    ifname: str, snap: HostSnapshot, sysctls: Mapping[str, int], root: str
) -> tuple[dict[str, bool], dict[str, bool]]:
    """Write ``sysctls``; return the features and private flags that differ from ``snap``."""
    if sysctls:
        sysctl.write_device(ifname, sysctls, root, optional=tuple(sysctls))
    features: dict[str, bool] = {}
    flags: dict[str, bool] = {}
    if snap.features or snap.private_flags:
        with ethtool.inet_socket() as sock:
            if snap.features:
                cur = ethtool.get_features(sock, ifname)
                features = {
                    n: on
                    for n, on in snap.features.items()
                    if n in cur.changeable and cur.active.get(n) != on
                }
            if snap.private_flags:
                now = ethtool.get_private_flags(sock, ifname)
                flags = {n: on for n, on in snap.private_flags.items() if now.get(n) != on}
    return features, flags


def _set_ethtool(ifname: str, features: Mapping[str, bool], flags: Mapping[str, bool]) -> None:
    with ethtool.inet_socket() as sock:
        if features:
            ethtool.set_features(sock, ifname, features)
        if flags:
            ethtool.set_private_flags(sock, ifname, flags)
