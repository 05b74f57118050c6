"""The netdev NamespaceMover: move a link into a pod netns and configure it; give it back.

Attach, in this order (each a named *step*; a failure names it)::

    move       one RTM_NEWLINK from the host: IFLA_NET_NS_FD + IFLA_IFNAME (+ MTU, MAC,
               GSO/GRO sizes when configured): move, rename and resize in one request
    sysctls    arp_ignore / arp_announce / forwarding (v4 and v6) of the device, in the pod
    addresses  the configured ones, else the host's global addresses (the kernel flushed them)
    up
    ethtool    features (kernel, long or short names) and private flags
    ebpf       TC programs detached when disableEbpfPrograms
    vrf        enslave to a VRF (created if missing) and force routes into its table
    routes     configured, then the host's routes of the device; link scope first
    rules      configured, then the host's rules for the tables used (not with a VRF)
    neighbors  configured, then the host's permanent neighbours
    readback   name, MAC and the IPs really present, for the claim status

Attach is transactional: when a step fails, the rules and VRF it created in the pod are
removed, the device is brought home and the host snapshot is restored; the error is a
:class:`~dranet_core.errors.DeviceError` naming the device, the step and the kernel's reason.
It is resumable: it finds the device at home *or* already in the pod (after a crash half-way)
and runs the remaining steps, all of which are idempotent.

Detach: down in the pod, move home under the original name in one request (if that name is
taken, under a temporary ``drn<ifindex-hex>`` name that :meth:`NetdevMover.retry_renames`
changes back once free), then restore the snapshot (:mod:`.snapshot`). A device already home
is only restored. If the pod netns is gone, a physical device is looked for at home (the
kernel returns it to the root netns, as ``devN`` if its name was taken) by permanent MAC, PCI
address or ifindex, renamed and restored; a virtual one died with the netns, which is
logged and recorded in :attr:`NetdevMover.lost`.

The host netns is a parameter (a path, default this process's netns, held by an fd opened at
construction): the whole mover runs between two test namespaces as well as between the root
netns and a pod.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, NoReturn

import attrs

from dranet_backends.netdev import ebpf, ethtool, sysctl, vrf
from dranet_backends.netdev.facet import FACET, NetdevFacet
from dranet_backends.netdev.nsutil import SELF_NETNS, Rtnl, call_in_netns, open_netns, run_in_netns
from dranet_backends.netdev.snapshot import (
    NUD_PERMANENT,
    HostSnapshot,
    RouteRecord,
    link_identity,
    take,
)
from dranet_core.config.model import InterfaceConfig, NetworkConfig, RuleConfig
from dranet_core.errors import DeviceError, DeviceNotFoundError
from dranet_core.mover import AttachResult
from dranet_core.plans import PreparedDevice
from dranet_core.types import JSON, Condition, NetworkData, PodSandbox

__all__ = ["ATTACH_STEPS", "FACET", "NetdevMover", "StepHook", "link_attrs", "temp_name"]

log = logging.getLogger(__name__)

ATTACH_STEPS: Final = (
    "move",
    "sysctls",
    "addresses",
    "up",
    "ethtool",
    "ebpf",
    "vrf",
    "routes",
    "rules",
    "neighbors",
    "readback",
)
StepHook = Callable[[str, str], Awaitable[None]]
"""Called as ``hook(device, step)`` before each attach step (:data:`ATTACH_STEPS`) and each
detach step (``return``, ``restore:name`` ... ``restore:neighbors``); raising fails that step.
A test seam for failure and crash injection."""

_IFA_F_PERMANENT: Final = 0x80
_IFA_RESTORE_FLAGS: Final = 0x02 | 0x10 | 0x100 | 0x200  # nodad, homeaddress, mngtmpaddr, noprefixroute


def temp_name(ifindex: int) -> str:
    """The temporary name of a device that came home while its name was taken."""
    return f"drn{ifindex:x}"


def link_attrs(iface: InterfaceConfig | None) -> list[tuple[str, Any]]:
    """The IFLA_* attributes the interface config asks for (MTU, MAC, GSO/GRO sizes)."""
    if iface is None:
        return []
    out: list[tuple[str, Any]] = []
    for value, nla in (
        (iface.mtu, "IFLA_MTU"),
        (iface.hardware_addr, "IFLA_ADDRESS"),
        (iface.gso_max_size, "IFLA_GSO_MAX_SIZE"),
        (iface.gro_max_size, "IFLA_GRO_MAX_SIZE"),
        (iface.gso_ipv4_max_size, "IFLA_GSO_IPV4_MAX_SIZE"),
        (iface.gro_ipv4_max_size, "IFLA_GRO_IPV4_MAX_SIZE"),
    ):
        if value is not None:
            out.append((nla, value.lower() if isinstance(value, str) else value))
    return out


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


_TRANSIENT: Final = frozenset({errno.EBUSY, errno.EAGAIN, errno.ENOBUFS, errno.EINTR})


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in _TRANSIENT


@attrs.define
class _Attach:
    """Working state of one attach (what to undo on failure)."""

    device: PreparedDevice
    snap: HostSnapshot
    cfg: NetworkConfig
    name: str
    pod_fd: int
    pod: Rtnl
    index: int = 0
    mac: str = ""
    rules_added: list[dict[str, Any]] = attrs.field(factory=list)
    vrf_created: int | None = None
    vrf_table: int | None = None


class NetdevMover:
    """Moves netdevs between the host netns and pod netns (implements ``NamespaceMover``).

    ``host_netns`` is the path of the host network namespace (default: this process's);
    ``step_hook`` is a test seam (see :data:`StepHook`). Close with :meth:`aclose`.
    """

    def __init__(
        self,
        *,
        host_netns: str = SELF_NETNS,
        proc_sys: str = sysctl.PROC_SYS_NET,
        step_hook: StepHook | None = None,
        rename_retry_interval: float = 5.0,
    ) -> None:
        self._host_fd = open_netns(host_netns)
        self._host_path = host_netns
        own, host = os.stat(SELF_NETNS), os.fstat(self._host_fd)
        self._host_is_self = (own.st_dev, own.st_ino) == (host.st_dev, host.st_ino)
        self._proc_sys = proc_sys
        self._hook = step_hook
        self._host: Rtnl | None = None
        self._host_lock = asyncio.Lock()
        self._retry_interval = rename_retry_interval
        self.pending_renames: dict[int, str] = {}
        """Host ifindex -> original name, for devices parked under a temporary name."""
        self._pending: dict[int, tuple[str, HostSnapshot]] = {}
        self.lost: list[str] = []
        """Devices (DRA names) found gone at detach: virtual devices that died with a pod netns."""

    def __repr__(self) -> str:
        return (
            f"NetdevMover(host_netns={self._host_path!r}, pending_renames={len(self.pending_renames)}, "
            f"lost={len(self.lost)})"
        )

    async def aclose(self) -> None:
        """Close the host netlink socket and the host netns fd (idempotent)."""
        if self._host is not None:
            await self._host.aclose()
            self._host = None
        if self._host_fd >= 0:
            os.close(self._host_fd)
            self._host_fd = -1

    async def __aenter__(self) -> NetdevMover:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _in_host_ns(self, fn: Callable[[], Any]) -> Any:
        """Run quick, non-blocking ``fn`` in the host netns, on this thread."""
        if self._host_is_self:
            return fn()
        return call_in_netns(self._host_fd, fn)

    async def _host_rtnl(self) -> Rtnl:
        if self._host is None:
            async with self._host_lock:
                if self._host is None:
                    self._host = await Rtnl.open(self._host_fd)
        return self._host

    # -- snapshot ------------------------------------------------------------------------

    @staticmethod
    def _facet(device: PreparedDevice, step: str) -> NetdevFacet:
        raw = device.facets.get(FACET)
        if not isinstance(raw, Mapping):
            raise DeviceError(device.device, step, "no netdev facet")
        try:
            return NetdevFacet.from_json(raw)
        except ValueError as exc:
            raise DeviceError(device.device, step, str(exc)) from exc

    async def snapshot(self, device: PreparedDevice) -> JSON:
        """Capture the host state of the device named by its netdev facet (JSON-able)."""
        facet = self._facet(device, "snapshot")
        host = await self._host_rtnl()
        try:
            link = await host.link_get(index=facet.ifindex)
            mac = facet.mac.lower()
            if link is not None and not (
                link.get("ifname") == facet.ifname or (mac and str(link.get("address")).lower() == mac)
            ):
                link = None  # the index was reused by another device
            if link is None:
                link = await host.link_get(ifname=facet.ifname)
            if link is None:
                raise DeviceNotFoundError(device.device, "snapshot", f"no link {facet.ifname} on the host")
            snap = await take(host, self._host_fd, link, facet.to_json(), self._proc_sys)
        except OSError as exc:
            raise DeviceError(device.device, "snapshot", f"{facet.ifname}: {exc}") from exc
        return snap.to_json()

    # -- finding the device --------------------------------------------------------------

    @staticmethod
    def _same(link: Any, snap: HostSnapshot, cfg_mac: str | None = None) -> bool:
        """Whether ``link`` is the snapshot's device: same permanent MAC, else same PCI
        function, else same kind and a MAC it may carry (the host's or the configured one).

        Neither a name nor an ifindex is proof: both are per netns, and a device that moves
        into a netns where its ifindex is taken gets a new one.
        """
        ident = link_identity(link)
        if snap.perm_mac and ident["perm_mac"]:
            return bool(ident["perm_mac"] == snap.perm_mac)
        if snap.pci_address and ident["pci_address"]:
            return bool(ident["pci_address"] == snap.pci_address)
        if ident["kind"] != snap.kind:
            return False
        macs = {m.lower() for m in (snap.mac, cfg_mac) if m}
        return (ident["mac"] or "").lower() in macs

    async def _find_home(
        self,
        snap: HostSnapshot,
        *,
        scan: bool = False,
        pod_name: str | None = None,
        cfg_mac: str | None = None,
    ) -> Any | None:
        """The device in the host netns, by ifindex, then by name (original, temporary, pod
        name), then (``scan``) among all links: a device back from a dead netns as devN."""
        host = await self._host_rtnl()
        link = await host.link_get(index=snap.ifindex) if snap.ifindex else None  # 0: not known
        if link is not None and self._same(link, snap, cfg_mac):
            return link
        for name in (snap.ifname, temp_name(snap.ifindex), pod_name):
            if name is None:
                continue
            link = await host.link_get(ifname=name)
            if link is not None and self._same(link, snap, cfg_mac):
                return link
        if scan:
            for link in await host.link_dump():
                if self._same(link, snap, cfg_mac):
                    return link
        return None

    async def _find_in_pod(self, pod: Rtnl, snap: HostSnapshot, name: str, cfg_mac: str | None) -> Any | None:
        link = await pod.link_get(ifname=name)
        if link is not None and self._same(link, snap, cfg_mac):
            return link
        link = await pod.link_get(index=snap.ifindex) if snap.ifindex else None
        if link is not None and self._same(link, snap, cfg_mac):
            return link
        # moved under another name, or given another ifindex: a pod has few links
        for link in await pod.link_dump():
            if self._same(link, snap, cfg_mac):
                return link
        return None

    # -- attach --------------------------------------------------------------------------

    @staticmethod
    def _parse(device: PreparedDevice, snapshot: JSON, step: str) -> HostSnapshot:
        try:
            return HostSnapshot.from_json(snapshot)
        except ValueError as exc:
            raise DeviceError(device.device, step, str(exc)) from exc

    async def attach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> AttachResult:
        """Move the device into ``pod.netns`` and configure it (see the module docstring)."""
        snap = self._parse(device, snapshot, "attach")
        cfg = device.config
        iface = cfg.interface
        name = (iface.name if iface and iface.name else None) or snap.ifname
        if not pod.netns:
            raise DeviceError(device.device, "netns", f"pod {pod} has no network namespace")
        try:
            pod_fd = open_netns(pod.netns)
        except OSError as exc:
            raise DeviceError(device.device, "netns", f"{pod.netns}: {exc.strerror}") from exc
        try:
            try:
                pod_rtnl = await Rtnl.open(pod_fd)
            except OSError as exc:  # e.g. EINVAL: the path is not a network namespace
                raise DeviceError(device.device, "netns", f"{pod.netns}: {exc}") from exc
            async with pod_rtnl:
                ctx = _Attach(device=device, snap=snap, cfg=cfg, name=name, pod_fd=pod_fd, pod=pod_rtnl)
                return await self._attach(ctx)
        finally:
            os.close(pod_fd)

    async def _step(self, ctx: _Attach, step: str, action: Callable[[], Awaitable[Any]]) -> Any:
        """Run one attach step; any ``Exception`` fails it (and rolls back). A
        ``BaseException`` (cancellation, exit) does not: attach is resumable instead."""
        try:
            if self._hook is not None:
                await self._hook(ctx.device.device, step)
            return await action()
        except DeviceError as exc:
            raise type(exc)(ctx.device.device, step, exc.reason, temporary=exc.temporary) from exc
        except Exception as exc:
            reason = f"{ctx.name}: {exc}"
            raise DeviceError(ctx.device.device, step, reason, temporary=_is_transient(exc)) from exc

    async def _attach(self, ctx: _Attach) -> AttachResult:
        try:
            await self._step(ctx, "move", lambda: self._move_in(ctx))
            await self._step(ctx, "sysctls", lambda: self._pod_sysctls(ctx))
            await self._step(ctx, "addresses", lambda: self._addresses(ctx))
            await self._step(ctx, "up", lambda: ctx.pod.link_set(ctx.index, [], up=True))
            await self._step(ctx, "ethtool", lambda: self._ethtool(ctx))
            await self._step(ctx, "ebpf", lambda: self._ebpf(ctx))
            await self._step(ctx, "vrf", lambda: self._vrf(ctx))
            await self._step(ctx, "routes", lambda: self._routes(ctx))
            await self._step(ctx, "rules", lambda: self._rules(ctx))
            await self._step(ctx, "neighbors", lambda: self._neighbors(ctx))
            result: AttachResult = await self._step(ctx, "readback", lambda: self._readback(ctx))
        except DeviceError as failed:
            reason = failed.reason
            try:
                await self._rollback(ctx)
            except Exception as exc:
                reason = f"{reason}; rollback failed: {exc}"
                log.error("attach rollback of %s failed: %s", ctx.device.device, exc)
            else:
                log.warning(
                    "attach of %s failed at %s; rolled back: %s", ctx.device.device, failed.step, reason
                )
            raise type(failed)(
                ctx.device.device, failed.step, reason, temporary=failed.temporary
            ) from failed.__cause__
        return result

    async def _move_in(self, ctx: _Attach) -> None:
        iface = ctx.cfg.interface
        extra = link_attrs(iface)
        cfg_mac = iface.hardware_addr if iface else None
        home = await self._find_home(ctx.snap, cfg_mac=cfg_mac)
        if home is not None:
            host = await self._host_rtnl()
            await host.link_set(
                int(home["index"]), [("IFLA_NET_NS_FD", ctx.pod_fd), ("IFLA_IFNAME", ctx.name), *extra]
            )
            link = await ctx.pod.link_get(ifname=ctx.name)
        else:
            link = await self._find_in_pod(ctx.pod, ctx.snap, ctx.name, cfg_mac)
            if link is None:
                raise DeviceNotFoundError(
                    ctx.device.device, "move", f"{ctx.snap.ifname} is neither on the host nor in the pod"
                )
            renaming = link.get("ifname") != ctx.name  # the move's rename failed earlier
            if renaming or any(nla == "IFLA_ADDRESS" for nla, _ in extra):
                await ctx.pod.link_set(int(link["index"]), [], up=False)  # the "up" step follows
            if renaming:
                await ctx.pod.link_set(int(link["index"]), [("IFLA_IFNAME", ctx.name)])
            if extra:
                await ctx.pod.link_set(int(link["index"]), extra)
            link = await ctx.pod.link_get(index=int(link["index"]))
        if link is None:
            raise OSError(errno.ENODEV, f"{ctx.name} not found in the pod after the move")
        ctx.index = int(link["index"])
        ctx.mac = str(link.get("address") or "")

    async def _pod_sysctls(self, ctx: _Attach) -> None:
        iface = ctx.cfg.interface
        if iface is None:
            return
        values: dict[str, int] = {}
        if iface.arp_ignore is not None:
            values["ipv4.arp_ignore"] = iface.arp_ignore
        if iface.arp_announce is not None:
            values["ipv4.arp_announce"] = iface.arp_announce
        if iface.forwarding is not None:
            values["ipv4.forwarding"] = int(iface.forwarding)
            values["ipv6.forwarding"] = int(iface.forwarding)
        if values:
            name, root = ctx.name, self._proc_sys
            call_in_netns(
                ctx.pod_fd, lambda: sysctl.write_device(name, values, root, optional=("ipv6.forwarding",))
            )

    def _pod_addresses(self, ctx: _Attach) -> list[tuple[str, int]]:
        iface = ctx.cfg.interface
        if iface is not None and iface.addresses is not None:
            out = []
            for cidr in iface.addresses:
                net = ipaddress.ip_interface(cidr)
                out.append((str(net.ip), net.network.prefixlen))
            return out
        if iface is not None and iface.dhcp:
            return []
        return [(a.address, a.prefixlen) for a in ctx.snap.global_addresses]

    async def _addresses(self, ctx: _Attach) -> None:
        for addr, plen in self._pod_addresses(ctx):
            await ctx.pod.addr_add(ctx.index, addr, plen)

    async def _ethtool(self, ctx: _Attach) -> None:
        eth = ctx.cfg.ethtool
        if eth is None or not (eth.features or eth.private_flags):
            return
        features, flags, name = dict(eth.features or {}), dict(eth.private_flags or {}), ctx.name

        def apply() -> None:
            with ethtool.inet_socket() as sock:
                if features:
                    ethtool.set_features(sock, name, features)
                if flags:
                    ethtool.set_private_flags(sock, name, flags)

        await run_in_netns(ctx.pod_fd, apply)

    async def _ebpf(self, ctx: _Attach) -> None:
        iface = ctx.cfg.interface
        if iface is None or not iface.disable_ebpf_programs:
            return
        tc = await ebpf.detach_tc_programs(ctx.pod, ctx.index)
        index = ctx.index
        tcx = call_in_netns(ctx.pod_fd, lambda: ebpf.detach_tcx_programs(index))
        log.info("detached %d TC and %d TCX program(s) from %s in the pod", tc, tcx, ctx.name)

    async def _vrf(self, ctx: _Attach) -> None:
        iface = ctx.cfg.interface
        if iface is None or iface.vrf is None or not iface.vrf.name:
            return
        vname = iface.vrf.name
        table = iface.vrf.table or vrf.default_table(vname)
        link = await ctx.pod.link_get(ifname=vname)
        if link is None:
            await ctx.pod.link_new(vrf.create_request(vname, table))
            link = await ctx.pod.link_get(ifname=vname)
            if link is None:
                raise OSError(errno.ENODEV, f"VRF {vname} vanished after creation")
            ctx.vrf_created = int(link["index"])
        else:
            found = link.get(("linkinfo", "data", "vrf_table"))
            if link.get(("linkinfo", "kind")) != "vrf":
                raise OSError(errno.EEXIST, f"{vname} exists in the pod and is not a VRF")
            table = int(found) if found is not None else table
        ctx.vrf_table = table
        vidx = int(link["index"])
        await ctx.pod.link_set(vidx, [], up=True)
        await ctx.pod.link_set(ctx.index, [("IFLA_MASTER", vidx)])
        root = self._proc_sys

        def l3mdev() -> None:
            sysctl.write_global("ipv4/tcp_l3mdev_accept", 1, root)
            sysctl.write_global("ipv4/udp_l3mdev_accept", 1, root)

        call_in_netns(ctx.pod_fd, l3mdev)

    def _pod_routes(self, ctx: _Attach) -> list[dict[str, Any]]:
        pod_addrs = self._pod_addresses(ctx)
        pod_ips = {a for a, _ in pod_addrs}
        pod_nets = [ipaddress.ip_interface(f"{a}/{p}").network for a, p in pod_addrs]
        wanted: dict[tuple[str, int], dict[str, Any]] = {}
        for r in ctx.cfg.routes or ():
            if not r.destination:
                continue
            net = ipaddress.ip_network(r.destination, strict=False)
            kw: dict[str, Any] = {
                "dst": str(net.network_address),
                "dst_len": net.prefixlen,
                "family": _family(r.destination),
                "scope": r.scope or 0,
                "table": r.table or 254,
            }
            if r.gateway:
                kw["gateway"] = r.gateway
            if r.source:
                kw["prefsrc"] = r.source
            wanted[(str(net), kw["table"])] = kw
        for h in ctx.snap.routes:
            host_kw = self._host_route(h, pod_ips, pod_nets)
            if host_kw is not None:
                wanted.setdefault((f"{host_kw['dst']}/{host_kw['dst_len']}", host_kw["table"]), host_kw)
        routes = list(wanted.values())
        if ctx.vrf_table is not None:
            for kw in routes:
                kw["table"] = ctx.vrf_table
        routes.sort(key=lambda kw: -int(kw["scope"]))
        return routes

    @staticmethod
    def _host_route(h: RouteRecord, pod_ips: set[str], pod_nets: list[Any]) -> dict[str, Any] | None:
        if h.dst is None:
            return None  # as the Go driver: routes without a destination are not copied
        if h.family == socket.AF_INET6 and ipaddress.ip_address(h.dst).is_link_local:
            return None
        if h.gateway and h.scope == 0 and not any(ipaddress.ip_address(h.gateway) in n for n in pod_nets):
            return None  # the gateway is off the pod's subnets: the kernel would refuse it
        kw: dict[str, Any] = {
            "dst": h.dst,
            "dst_len": h.dst_len,
            "family": h.family,
            "scope": h.scope,
            "table": h.table,
        }
        if h.gateway:
            kw["gateway"] = h.gateway
        if h.prefsrc and h.prefsrc in pod_ips:  # a source the pod lacks is EINVAL (Go PR #318)
            kw["prefsrc"] = h.prefsrc
        if h.priority is not None:
            kw["priority"] = h.priority
        return kw

    async def _routes(self, ctx: _Attach) -> None:
        for kw in self._pod_routes(ctx):
            await ctx.pod.route_add(oif=ctx.index, **kw)

    @staticmethod
    def _config_rule(r: RuleConfig) -> dict[str, Any]:
        kw: dict[str, Any] = {"table": r.table or 254, "family": socket.AF_INET}
        for key, val in (("src", r.source), ("dst", r.destination)):
            if val:
                net = ipaddress.ip_network(val, strict=False)
                kw[key], kw[f"{key}_len"] = str(net.network_address), net.prefixlen
                kw["family"] = _family(val)
        if r.priority is not None:
            kw["priority"] = r.priority
        return kw

    async def _rules(self, ctx: _Attach) -> None:
        if ctx.vrf_table is not None:
            return
        rules = [self._config_rule(r) for r in ctx.cfg.rules or ()]
        tables = {int(kw["table"]) for kw in self._pod_routes(ctx)}
        for h in ctx.snap.rules:
            if h.table in tables and not (h.iifname or h.oifname):
                kw: dict[str, Any] = {"family": h.family, "table": h.table}
                if h.priority is not None:
                    kw["priority"] = h.priority
                if h.src:
                    kw["src"], kw["src_len"] = h.src, h.src_len
                if h.dst:
                    kw["dst"], kw["dst_len"] = h.dst, h.dst_len
                rules.append(kw)
        for kw in rules:
            if await ctx.pod.rule_add(**kw):
                ctx.rules_added.append(kw)

    async def _neighbors(self, ctx: _Attach) -> None:
        seen: set[str] = set()
        pairs = [(n.destination, n.hardware_addr) for n in ctx.cfg.neighbors or ()]
        pairs += [(n.dst, n.lladdr) for n in ctx.snap.neighbors]
        for dst, mac in pairs:
            if not dst or not mac or dst in seen:
                continue
            seen.add(dst)
            await ctx.pod.neigh_add(
                dst=dst, lladdr=mac.lower(), ifindex=ctx.index, state=NUD_PERMANENT, family=_family(dst)
            )

    async def _readback(self, ctx: _Attach) -> AttachResult:
        ips = []
        for m in await ctx.pod.addr_dump(ctx.index):
            v6 = m["family"] == socket.AF_INET6
            addr = m.get("address") if v6 else (m.get("local") or m.get("address"))
            if not addr or (m["family"] == socket.AF_INET6 and ipaddress.ip_address(addr).is_link_local):
                continue
            ips.append(f"{addr}/{m['prefixlen']}")
        return AttachResult(
            network_data=NetworkData(interface_name=ctx.name, hardware_address=ctx.mac, ips=tuple(ips[:16])),
            conditions=(
                Condition(type="Ready", status="True", reason="NetworkDeviceReady"),
                Condition(type="NetworkReady", status="True", reason="NetworkReady"),
            ),
        )

    async def _rollback(self, ctx: _Attach) -> None:
        for kw in reversed(ctx.rules_added):
            await ctx.pod.rule_del(**kw)
        if ctx.vrf_created is not None:
            await ctx.pod.link_del(ctx.vrf_created)
        iface = ctx.cfg.interface
        cfg_mac = iface.hardware_addr if iface else None
        await self._bring_home(ctx.device, ctx.snap, ctx.pod, ctx.name, cfg_mac)

    # -- detach --------------------------------------------------------------------------

    async def detach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> None:
        """Bring the device home under its original name and restore the snapshot."""
        snap = self._parse(device, snapshot, "detach")
        iface = device.config.interface
        name = (iface.name if iface and iface.name else None) or snap.ifname
        cfg_mac = iface.hardware_addr if iface else None
        pod_fd = -1
        if pod.netns:
            try:
                pod_fd = open_netns(pod.netns)
            except OSError as exc:
                log.warning("detach of %s: pod netns %s is gone (%s)", device.device, pod.netns, exc.strerror)
        try:
            pod_rtnl = None
            if pod_fd >= 0:
                try:
                    pod_rtnl = await Rtnl.open(pod_fd)
                except OSError as exc:  # not a netns (a stale file): as good as gone
                    log.warning("detach of %s: %s is not a usable netns (%s)", device.device, pod.netns, exc)
            if pod_rtnl is not None:
                async with pod_rtnl:
                    await self._bring_home(device, snap, pod_rtnl, name, cfg_mac)
            else:
                await self._bring_home(device, snap, None, name, cfg_mac)
        finally:
            if pod_fd >= 0:
                os.close(pod_fd)

    @staticmethod
    async def _wrap(device: PreparedDevice, step: str, coro: Awaitable[Any]) -> Any:
        try:
            return await coro
        except (OSError, ValueError) as exc:
            raise DeviceError(device.device, step, str(exc), temporary=_is_transient(exc)) from exc

    async def _at(self, device: str, step: str) -> None:
        """The step hook for detach/restore steps (``return``, ``restore:*``)."""
        if self._hook is not None:
            await self._hook(device, step)

    async def _bring_home(
        self, device: PreparedDevice, snap: HostSnapshot, pod: Rtnl | None, name: str, cfg_mac: str | None
    ) -> None:
        fresh = False
        if pod is not None:
            link = await self._wrap(device, "detach", self._find_in_pod(pod, snap, name, cfg_mac))
            if link is not None:
                await self._wrap(device, "return", self._at(device.device, "return"))
                await self._wrap(device, "return", self._return(pod, int(link["index"]), snap))
                fresh = True
        home = await self._wrap(
            device, "detach", self._find_home(snap, scan=pod is None, pod_name=name, cfg_mac=cfg_mac)
        )
        if home is None and pod is None:
            if snap.virtual:
                log.warning(
                    "device %s (%s) was virtual and died with its pod netns", device.device, snap.ifname
                )
                self.lost.append(device.device)
                return
            raise DeviceNotFoundError(
                device.device, "detach", f"{snap.ifname} is not back on the host yet", temporary=True
            )
        if home is None:
            raise DeviceNotFoundError(
                device.device, "detach", f"{snap.ifname} is neither in the pod nor on the host"
            )
        await self._restore(device.device, snap, home, fresh=fresh)

    async def _return(self, pod: Rtnl, index: int, snap: HostSnapshot) -> None:
        """Down in the pod, then one RTM_NEWLINK: home, original name, original ifindex.

        The ifindex changes only if the pod had the original one taken; it is asked back
        (``IFLA_NEW_IFINDEX``) when it is free at home.
        """
        await pod.link_set(index, [], up=False)
        extra: list[tuple[str, Any]] = []
        if (
            snap.ifindex
            and index != snap.ifindex
            and await (await self._host_rtnl()).link_get(index=snap.ifindex) is None
        ):
            extra.append(("IFLA_NEW_IFINDEX", snap.ifindex))
        try:
            await pod.link_set(
                index, [("IFLA_NET_NS_FD", self._host_fd), ("IFLA_IFNAME", snap.ifname), *extra]
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
            await pod.link_set(index, [("IFLA_NET_NS_FD", self._host_fd), ("IFLA_IFNAME", tmp), *extra])

    async def _restore(self, device: str, snap: HostSnapshot, link: Any, *, fresh: bool = False) -> None:
        """Restore ``snap`` on home device ``link``.

        ``fresh``: the device has just arrived from another netns, so its sysctls are the host
        netns defaults (the kernel re-creates them); only those that differ are written.
        """
        host = await self._host_rtnl()
        index = int(link["index"])
        step = "restore"
        try:
            up_now = bool(link["flags"] & 1)
            cur_name = str(link.get("ifname"))
            if cur_name != snap.ifname:
                step = "restore:name"
                await self._at(device, step)
                cur_name = await self._rename_home(host, index, snap, device)
                up_now = False
            step = "restore:link"
            await self._at(device, step)
            diff = self._link_diff(link, snap)
            if diff:
                mac_change = any(a == "IFLA_ADDRESS" for a, _ in diff)
                await host.link_set(index, diff, up=False if up_now and mac_change else None)
            step = "restore:sysctls+ethtool"
            await self._at(device, step)
            await self._restore_settings(cur_name, snap, fresh)
            step = "restore:addresses"
            await self._at(device, step)
            await self._restore_addresses(host, index, snap)
            step = "restore:up"
            await self._at(device, step)
            if snap.up:
                await host.link_set(index, [], up=True)
            elif up_now:
                await host.link_set(index, [], up=False)
            step = "restore:routes"
            await self._at(device, step)
            await self._restore_routes(host, index, snap)
            step = "restore:rules"
            await self._at(device, step)
            for rule in snap.rules:
                kw = {k: v for k, v in attrs.asdict(rule).items() if v is not None}
                for key in ("src", "dst"):
                    if kw.get(f"{key}_len") == 0:
                        kw.pop(f"{key}_len")
                await host.rule_add(**kw)
            step = "restore:neighbors"
            await self._at(device, step)
            for n in snap.neighbors:
                await host.neigh_add(
                    dst=n.dst, lladdr=n.lladdr, ifindex=index, state=NUD_PERMANENT, family=_family(n.dst)
                )
        except (OSError, ValueError) as exc:
            raise DeviceError(device, step, f"{snap.ifname}: {exc}", temporary=_is_transient(exc)) from exc

    @staticmethod
    async def _restore_addresses(host: Rtnl, index: int, snap: HostSnapshot) -> None:
        for a in snap.addresses:
            if not a.flags & _IFA_F_PERMANENT:
                continue  # dynamic (SLAAC) addresses come back by themselves
            extra: dict[str, Any] = {"scope": a.scope}
            if a.broadcast:
                extra["broadcast"] = a.broadcast
            if a.flags & _IFA_RESTORE_FLAGS:
                extra["flags"] = a.flags & _IFA_RESTORE_FLAGS
            await host.addr_add(index, a.address, a.prefixlen, **extra)

    @staticmethod
    async def _restore_routes(host: Rtnl, index: int, snap: HostSnapshot) -> None:
        for r in sorted(snap.routes, key=lambda r: -r.scope):
            kw: dict[str, Any] = {
                "family": r.family,
                "dst_len": r.dst_len,
                "scope": r.scope,
                "table": r.table,
                "proto": r.proto,
                "oif": index,
            }
            for key in ("dst", "gateway", "prefsrc", "priority"):
                if getattr(r, key) is not None:
                    kw[key] = getattr(r, key)
            await host.route_add(**kw)

    @staticmethod
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

    async def _restore_settings(self, ifname: str, snap: HostSnapshot, fresh: bool) -> None:
        """Sysctls (on a fresh arrival only those differing from the netns defaults) and
        ethtool state (always compared: a netns move itself may change features, e.g. veth
        drops GRO, whatever the config asked for)."""
        sysctls = dict(snap.sysctls)
        if fresh and snap.sysctl_defaults:
            sysctls = {k: v for k, v in sysctls.items() if snap.sysctl_defaults.get(k) != v}
        if not (sysctls or snap.features or snap.private_flags):
            return
        features, flags = self._in_host_ns(lambda: self._restore_in_ns(ifname, snap, sysctls))
        if features or flags:  # changing offloads may reconfigure a real NIC: in a thread
            await run_in_netns(self._host_fd, lambda: self._set_ethtool(ifname, features, flags))

    def _restore_in_ns(
        self, ifname: str, snap: HostSnapshot, sysctls: Mapping[str, int]
    ) -> tuple[dict[str, bool], dict[str, bool]]:
        """Write ``sysctls``; return the features and private flags that differ from ``snap``."""
        if sysctls:
            sysctl.write_device(ifname, sysctls, self._proc_sys, optional=tuple(sysctls))
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

    @staticmethod
    def _set_ethtool(ifname: str, features: Mapping[str, bool], flags: Mapping[str, bool]) -> None:
        with ethtool.inet_socket() as sock:
            if features:
                ethtool.set_features(sock, ifname, features)
            if flags:
                ethtool.set_private_flags(sock, ifname, flags)

    async def _rename_home(self, host: Rtnl, index: int, snap: HostSnapshot, device: str) -> str:
        """Rename home device ``index`` to its host name; if taken, park it under its temporary
        name and remember it for :meth:`retry_renames`. Returns the name it now has."""
        name, tmp = snap.ifname, temp_name(snap.ifindex)
        await host.link_set(index, [], up=False)
        try:
            await host.link_set(index, [("IFLA_IFNAME", name)])
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
            link = await host.link_get(index=index)
            if link is not None and link.get("ifname") != tmp:
                await host.link_set(index, [("IFLA_IFNAME", tmp)])
            self.pending_renames[index] = name
            self._pending[index] = (device, snap)
            log.warning("host name %s is taken; device ifindex %d waits as %s", name, index, tmp)
            return tmp
        self.pending_renames.pop(index, None)
        self._pending.pop(index, None)
        return name

    # -- pending renames -----------------------------------------------------------------

    async def retry_renames(self) -> int:
        """Give parked devices their original names where now free; returns how many.

        The rename is tried with the link as it is (kernels >= 6.x rename an up link); if the
        kernel wants it down (EBUSY), it is taken down, renamed and the snapshot restored
        again, since taking a link down flushes its routes and IPv6 addresses.
        """
        if not self.pending_renames:
            return 0
        host = await self._host_rtnl()
        done = 0
        for index, name in list(self.pending_renames.items()):
            device, snap = self._pending[index]
            link = await host.link_get(index=index)
            if link is None:
                self.pending_renames.pop(index, None)
                self._pending.pop(index, None)
                continue
            if await host.link_get(ifname=name) is not None:
                continue
            try:
                try:
                    await host.link_set(index, [("IFLA_IFNAME", name)])
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        raise
                    await host.link_set(index, [], up=False)
                    await host.link_set(index, [("IFLA_IFNAME", name)])
                    link = await host.link_get(index=index)
                    await self._restore(device, snap, link)
            except (OSError, DeviceError) as exc:
                log.warning("renaming ifindex %d to %s failed: %s", index, name, exc)
                continue
            self.pending_renames.pop(index, None)
            self._pending.pop(index, None)
            done += 1
        return done

    async def run(self) -> NoReturn:
        """Retry pending renames forever, every ``rename_retry_interval`` seconds (supervised)."""
        while True:
            await asyncio.sleep(self._retry_interval)
            try:
                await self.retry_renames()
            except OSError as exc:
                log.warning("retrying renames: %s", exc)
