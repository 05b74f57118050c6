"""Attach: move a netdev into a pod netns and configure it, one named step at a time.

The steps, in order (:data:`ATTACH_STEPS`; the names of errors, of the step hook and of the
``dranet_attach_step_seconds`` histogram)::

    move       one RTM_NEWLINK from the host: IFLA_NET_NS_FD + IFLA_IFNAME (+ MTU, MAC,
               GSO/GRO sizes when configured): move, rename and resize in one request;
               the lookup at home, the move and the read in the pod are one trip to a
               netlink worker thread.
               For a subinterface device: create the claim's macvlan/ipvlan child in the
               pod instead (one RTM_NEWLINK with IFLA_LINK + IFLA_NET_NS_FD, the MAC
               journalled beforehand), then MTU and GSO/GRO sizes; the parent stays home
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

A subinterface gets only what its config asks for: the parent's host addresses, routes,
rules and neighbours stay with the parent.

Transactional: when a step fails, the rules and VRF it created in the pod are removed, the
device is brought home and the snapshot restored (:class:`.restore.Restorer`), or a
subinterface child is deleted; the error is a :class:`~dranet_core.errors.DeviceError`
naming the device, the step and the kernel's reason (and the item: the route, rule or
neighbour, the config field and its limit). Resumable: it finds the device at home *or*
already in the pod (after a crash half-way; a subinterface child is known by its journalled
name, kind and MAC) and runs the remaining steps, all of which are idempotent.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import attrs

from dranet_backends.netdev import ebpf, ethtool, subif, sysctl, vrf
from dranet_backends.netdev.child import ChildRecord
from dranet_backends.netdev.hostside import HostSide, home_link
from dranet_backends.netdev.nsutil import Rtnl, RtnlSync, on_worker, run_in_netns
from dranet_backends.netdev.restore import Restorer, family, is_transient
from dranet_backends.netdev.snapshot import NUD_PERMANENT, HostSnapshot, RouteRecord
from dranet_core.config.model import InterfaceConfig, NetworkConfig, RuleConfig
from dranet_core.errors import DeviceError, DeviceNotFoundError
from dranet_core.mover import AttachResult
from dranet_core.plans import PreparedDevice
from dranet_core.types import Condition, NetworkData

__all__ = [
    "ATTACH_STEPS",
    "MAX_NEIGHBORS",
    "MAX_ROUTES",
    "MAX_RULES",
    "AttachJob",
    "Attacher",
    "link_attrs",
    "plan_routes",
]

log = logging.getLogger(__name__)

MAX_ROUTES: Final = 16384
"""Routes applied to one device (configured plus the host's), at most: a longer list fails
the step, naming the count and the bound, before a single route is sent (the claim config
has its own, lower bound on configured routes)."""
MAX_RULES: Final = 16384
"""Policy rules applied for one device (configured plus the host's), at most."""
MAX_NEIGHBORS: Final = 16384
"""Permanent neighbours applied to one device (configured plus the host's), at most."""


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


@attrs.define
class AttachJob:
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
    child: ChildRecord | None = None
    """Set for a subinterface device: the child to create (``snap`` is then its identity)."""

    @property
    def cfg_mac(self) -> str | None:
        """The MAC the config asks for, if any."""
        return self.cfg.interface.hardware_addr if self.cfg.interface else None


def pod_addresses(cfg: NetworkConfig, snap: HostSnapshot) -> list[tuple[str, int]]:
    """The addresses the device gets in the pod: configured, else (no DHCP) the host's."""
    iface = cfg.interface
    if iface is not None and iface.addresses is not None:
        out = []
        for cidr in iface.addresses:
            net = ipaddress.ip_interface(cidr)
            out.append((str(net.ip), net.network.prefixlen))
        return out
    if iface is not None and iface.dhcp:
        return []
    return [(a.address, a.prefixlen) for a in snap.global_addresses]


def plan_routes(cfg: NetworkConfig, snap: HostSnapshot, vrf_table: int | None = None) -> list[dict[str, Any]]:
    """The routes to add in the pod: configured, then the host's; link scope first."""
    pod_addrs = pod_addresses(cfg, snap)
    pod_ips = {a for a, _ in pod_addrs}
    pod_nets = [ipaddress.ip_interface(f"{a}/{p}").network for a, p in pod_addrs]
    wanted: dict[tuple[str, int], dict[str, Any]] = {}
    for r in cfg.routes or ():
        if not r.destination:
            continue
        net = ipaddress.ip_network(r.destination, strict=False)
        kw: dict[str, Any] = {
            "dst": str(net.network_address),
            "dst_len": net.prefixlen,
            "family": family(r.destination),
            "scope": r.scope or 0,
            "table": r.table or 254,
        }
        if r.gateway:
            kw["gateway"] = r.gateway
        if r.source:
            kw["prefsrc"] = r.source
        wanted[(str(net), kw["table"])] = kw
    for h in snap.routes:
        host_kw = _host_route(h, pod_ips, pod_nets)
        if host_kw is not None:
            wanted.setdefault((f"{host_kw['dst']}/{host_kw['dst_len']}", host_kw["table"]), host_kw)
    routes = list(wanted.values())
    if vrf_table is not None:
        for kw in routes:
            kw["table"] = vrf_table
    routes.sort(key=lambda kw: -int(kw["scope"]))
    return routes


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
    if h.prefsrc and h.prefsrc in pod_ips:  # a source the pod lacks is EINVAL
        kw["prefsrc"] = h.prefsrc
    if h.priority is not None:
        kw["priority"] = h.priority
    return kw


def _route_text(kw: dict[str, Any]) -> str:
    text = f"route {kw['dst']}/{kw['dst_len']}"
    if kw.get("gateway"):
        text += f" via {kw['gateway']}"
    if kw.get("table", 254) != 254:
        text += f" table {kw['table']}"
    return text


def _rule_text(kw: dict[str, Any]) -> str:
    parts = ["rule"]
    if "priority" in kw:
        parts.append(f"priority {kw['priority']}")
    for key in ("src", "dst"):
        if key in kw:
            parts.append(f"{'from' if key == 'src' else 'to'} {kw[key]}/{kw[f'{key}_len']}")
    parts.append(f"table {kw['table']}")
    return " ".join(parts)


def _bounded(what: str, items: list[Any], limit: int) -> None:
    if len(items) > limit:
        raise ValueError(f"{len(items)} {what} for one device; at most {limit} are applied")


def _config_rule(r: RuleConfig) -> dict[str, Any]:
    kw: dict[str, Any] = {"table": r.table or 254, "family": socket.AF_INET}
    for key, val in (("src", r.source), ("dst", r.destination)):
        if val:
            net = ipaddress.ip_network(val, strict=False)
            kw[key], kw[f"{key}_len"] = str(net.network_address), net.prefixlen
            kw["family"] = family(val)
    if r.priority is not None:
        kw["priority"] = r.priority
    return kw


class Attacher:
    """Runs the attach steps for one mover (see the module docstring)."""

    def __init__(self, host: HostSide, restorer: Restorer) -> None:
        self.host = host
        self.restorer = restorer

    def __repr__(self) -> str:
        return f"Attacher({self.host!r})"

    async def run(self, job: AttachJob) -> AttachResult:
        """Every step in order; on a failed step, roll back and raise."""
        result: AttachResult | None = None
        try:
            for step, action in _STEPS:
                result = await self._step(job, step, action)
        except DeviceError as failed:
            reason = failed.reason
            try:
                await self._rollback(job)
            except Exception as exc:
                reason = f"{reason}; rollback failed: {exc}"
                log.error("attach rollback of %s failed: %s", job.device.device, exc)
            else:
                log.warning(
                    "attach of %s failed at %s; rolled back: %s", job.device.device, failed.step, reason
                )
            raise type(failed)(job.device.device, failed.step, reason, temporary=failed.temporary) from (
                failed.__cause__
            )
        assert isinstance(result, AttachResult)
        return result

    async def _step(self, job: AttachJob, step: str, action: _Action) -> Any:
        """Run one step; any ``Exception`` fails it (and rolls back). A ``BaseException``
        (cancellation, exit) does not: attach is resumable instead."""
        t0 = time.perf_counter()
        try:
            await self.host.at(job.device.device, step)
            return await action(self, job)
        except DeviceError as exc:
            raise type(exc)(job.device.device, step, exc.reason, temporary=exc.temporary) from exc
        except Exception as exc:
            reason = f"{job.name}: {exc}"
            raise DeviceError(job.device.device, step, reason, temporary=is_transient(exc)) from exc
        finally:
            self.host.observe(step, t0)

    async def _move(self, job: AttachJob) -> None:
        if job.child is not None:
            await self._create_child(job, job.child)
            return
        extra = link_attrs(job.cfg.interface)
        host = await self.host.rtnl()

        def move() -> tuple[bool, Any | None]:
            """On a worker, one trip: find the device at home, move it, read it in the pod."""
            with host.held() as h:
                home = home_link(h, job.snap, cfg_mac=job.cfg_mac)
                if home is None:
                    return False, None
                _check_mtu(job, home)
                h.link_set(
                    int(home["index"]), [("IFLA_NET_NS_FD", job.pod_fd), ("IFLA_IFNAME", job.name), *extra]
                )
            with job.pod.held() as p:  # one turn after the other, never nested
                return True, p.link_get(ifname=job.name)

        moved, link = await on_worker(None, move)
        if not moved:
            link = await self.host.find_in_pod(job.pod, job.snap, job.name, job.cfg_mac)
            if link is None:
                raise DeviceNotFoundError(
                    job.device.device, "move", f"{job.snap.ifname} is neither on the host nor in the pod"
                )
            _check_mtu(job, link)
            renaming = link.get("ifname") != job.name  # the move's rename failed earlier
            if renaming or any(nla == "IFLA_ADDRESS" for nla, _ in extra):
                await job.pod.link_set(int(link["index"]), [], up=False)  # the "up" step follows
            if renaming:
                await job.pod.link_set(int(link["index"]), [("IFLA_IFNAME", job.name)])
            if extra:
                await job.pod.link_set(int(link["index"]), extra)
            link = await job.pod.link_get(index=int(link["index"]))
        if link is None:
            raise OSError(errno.ENODEV, f"{job.name} not found in the pod after the move")
        job.index = int(link["index"])
        job.mac = str(link.get("address") or "")

    async def _create_child(self, job: AttachJob, rec: ChildRecord) -> None:
        """Create the claim's child in the pod, or adopt it there (resumed after a crash)."""
        link = await job.pod.link_get(ifname=rec.name)
        if link is not None and not rec.is_ours(link):
            kind = link.get(("linkinfo", "kind")) or "device"
            raise OSError(errno.EEXIST, f"the pod already has a {kind} link named {rec.name}")
        host = await self.host.rtnl()
        parent = await host.link_get(index=rec.parent_index)
        if parent is None or parent.get("ifname") != rec.parent:
            parent = await host.link_get(ifname=rec.parent)
        if parent is None:
            raise DeviceNotFoundError(
                job.device.device, "move", f"subinterface parent {rec.parent} is not on the host"
            )
        mtu = job.cfg.interface.mtu if job.cfg.interface else None
        if mtu is not None and parent.get("mtu") and mtu > int(parent["mtu"]):
            raise DeviceError(
                job.device.device,
                "move",
                f"interface.mtu {mtu} is above the MTU {parent['mtu']} "
                f"of the subinterface parent {rec.parent}",
            )
        if link is None:
            link = await subif.create_child(
                host,
                job.pod,
                kind=rec.kind,
                mode=rec.mode,
                flags=rec.flag or "bridge",
                parent_index=int(parent["index"]),
                name=rec.name,
                pod_netns_fd=job.pod_fd,
                mac=rec.mac if rec.kind == "macvlan" else None,
            )
        job.index = int(link["index"])
        job.mac = str(link.get("address") or "")
        extra = [(nla, v) for nla, v in link_attrs(job.cfg.interface) if nla != "IFLA_ADDRESS"]
        if extra:
            await job.pod.link_set(job.index, extra)

    async def _sysctls(self, job: AttachJob) -> None:
        iface = job.cfg.interface
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
            name, root = job.name, self.host.proc_sys
            await on_worker(
                job.pod_fd, lambda: sysctl.write_device(name, values, root, optional=("ipv6.forwarding",))
            )

    async def _addresses(self, job: AttachJob) -> None:
        addrs = pod_addresses(job.cfg, job.snap)
        index = job.index

        def add(p: RtnlSync) -> None:  # every address in one trip
            for addr, plen in addrs:
                try:
                    p.addr_add(index, addr, plen)
                except OSError as exc:
                    raise OSError(exc.errno, f"address {addr}/{plen}: {exc.strerror}") from exc

        if addrs:
            await job.pod.batch(add)

    async def _up(self, job: AttachJob) -> None:
        try:
            await job.pod.link_set(job.index, [], up=True)
        except OSError as exc:
            if job.child is not None and job.child.kind == "macvlan" and exc.errno == errno.EADDRINUSE:
                raise OSError(
                    exc.errno,
                    f"interface.hardwareAddr {job.child.mac}: another macvlan child of "
                    f"{job.child.parent} already uses this MAC",
                ) from exc
            raise

    async def _ethtool(self, job: AttachJob) -> None:
        eth = job.cfg.ethtool
        if eth is None or not (eth.features or eth.private_flags):
            return
        features, flags, name = dict(eth.features or {}), dict(eth.private_flags or {}), job.name

        def apply() -> None:
            with ethtool.inet_socket() as sock:
                if features:
                    ethtool.set_features(sock, name, features)
                if flags:
                    ethtool.set_private_flags(sock, name, flags)

        await run_in_netns(job.pod_fd, apply)

    async def _ebpf(self, job: AttachJob) -> None:
        iface = job.cfg.interface
        if iface is None or not iface.disable_ebpf_programs:
            return
        tc = await ebpf.detach_tc_programs(job.pod, job.index)
        index = job.index
        tcx = await on_worker(job.pod_fd, lambda: ebpf.detach_tcx_programs(index))
        log.info("detached %d TC and %d TCX program(s) from %s in the pod", tc, tcx, job.name)

    async def _vrf(self, job: AttachJob) -> None:
        iface = job.cfg.interface
        if iface is None or iface.vrf is None or not iface.vrf.name:
            return
        vname = iface.vrf.name
        table = iface.vrf.table or vrf.default_table(vname)
        link = await job.pod.link_get(ifname=vname)
        if link is None:
            await job.pod.link_new(vrf.create_request(vname, table))
            link = await job.pod.link_get(ifname=vname)
            if link is None:
                raise OSError(errno.ENODEV, f"VRF {vname} vanished after creation")
            job.vrf_created = int(link["index"])
        else:
            found = link.get(("linkinfo", "data", "vrf_table"))
            if link.get(("linkinfo", "kind")) != "vrf":
                raise OSError(errno.EEXIST, f"{vname} exists in the pod and is not a VRF")
            table = int(found) if found is not None else table
        job.vrf_table = table
        vidx = int(link["index"])
        await job.pod.link_set(vidx, [], up=True)
        await job.pod.link_set(job.index, [("IFLA_MASTER", vidx)])
        root = self.host.proc_sys

        def l3mdev() -> None:
            sysctl.write_global("ipv4/tcp_l3mdev_accept", 1, root)
            sysctl.write_global("ipv4/udp_l3mdev_accept", 1, root)

        await on_worker(job.pod_fd, l3mdev)

    async def _routes(self, job: AttachJob) -> None:
        routes = plan_routes(job.cfg, job.snap, job.vrf_table)
        _bounded("routes", routes, MAX_ROUTES)
        index = job.index

        def add(p: RtnlSync) -> None:  # every route in one trip
            for kw in routes:
                try:
                    p.route_add(oif=index, **kw)
                except OSError as exc:
                    raise OSError(exc.errno, f"{_route_text(kw)}: {exc.strerror}") from exc

        if routes:
            await job.pod.batch(add)

    async def _rules(self, job: AttachJob) -> None:
        if job.vrf_table is not None:
            return
        rules = [_config_rule(r) for r in job.cfg.rules or ()]
        tables = {int(kw["table"]) for kw in plan_routes(job.cfg, job.snap)}
        for h in job.snap.rules:
            if h.table in tables and not (h.iifname or h.oifname):
                kw: dict[str, Any] = {"family": h.family, "table": h.table}
                if h.priority is not None:
                    kw["priority"] = h.priority
                if h.src:
                    kw["src"], kw["src_len"] = h.src, h.src_len
                if h.dst:
                    kw["dst"], kw["dst_len"] = h.dst, h.dst_len
                rules.append(kw)
        _bounded("rules", rules, MAX_RULES)
        added = job.rules_added

        def add(p: RtnlSync) -> None:  # every rule in one trip; each one added is recorded
            for kw in rules:  # at once, so a failure part-way rolls back exactly those
                try:
                    if p.rule_add(**kw):
                        added.append(kw)
                except OSError as exc:
                    raise OSError(exc.errno, f"{_rule_text(kw)}: {exc.strerror}") from exc

        if rules:
            await job.pod.batch(add)

    async def _neighbors(self, job: AttachJob) -> None:
        pairs: dict[str, str] = {}
        for dst, mac in [(n.destination, n.hardware_addr) for n in job.cfg.neighbors or ()] + [
            (n.dst, n.lladdr) for n in job.snap.neighbors
        ]:
            if dst and mac:
                pairs.setdefault(dst, mac)
        _bounded("neighbors", list(pairs), MAX_NEIGHBORS)
        entries = [(dst, mac, family(dst)) for dst, mac in pairs.items()]
        index = job.index

        def add(p: RtnlSync) -> None:  # every neighbour in one trip
            for dst, mac, fam in entries:
                try:
                    p.neigh_add(dst=dst, lladdr=mac.lower(), ifindex=index, state=NUD_PERMANENT, family=fam)
                except OSError as exc:
                    raise OSError(exc.errno, f"neighbor {dst} lladdr {mac}: {exc.strerror}") from exc

        if entries:
            await job.pod.batch(add)

    async def _readback(self, job: AttachJob) -> AttachResult:
        ips = []
        for m in await job.pod.addr_dump(job.index):
            v6 = m["family"] == socket.AF_INET6
            addr = m.get("address") if v6 else (m.get("local") or m.get("address"))
            if not addr or (v6 and ipaddress.ip_address(addr).is_link_local):
                continue
            ips.append(f"{addr}/{m['prefixlen']}")
        return AttachResult(
            network_data=NetworkData(interface_name=job.name, hardware_address=job.mac, ips=tuple(ips[:16])),
            conditions=(
                Condition(type="Ready", status="True", reason="NetworkDeviceReady"),
                Condition(type="NetworkReady", status="True", reason="NetworkReady"),
            ),
        )

    async def _rollback(self, job: AttachJob) -> None:
        for kw in reversed(job.rules_added):
            await job.pod.rule_del(**kw)
        if job.vrf_created is not None:
            await job.pod.link_del(job.vrf_created)
        if job.child is not None:
            await subif.delete_child(job.pod, job.child.name, job.child.is_ours)
            return
        await self.restorer.bring_home(job.device.device, job.snap, job.pod, job.name, job.cfg_mac)


def _check_mtu(job: AttachJob, link: Any) -> None:
    """Refuse an MTU outside the device's range, naming the field, the value and the limit."""
    iface = job.cfg.interface
    mtu = iface.mtu if iface else None
    if mtu is None:
        return
    top, bottom = link.get("max_mtu"), link.get("min_mtu")
    if top and mtu > int(top):
        raise DeviceError(
            job.device.device,
            "move",
            f"interface.mtu {mtu} is above the maximum MTU {top} of {job.snap.ifname}",
        )
    if bottom and mtu < int(bottom):
        raise DeviceError(
            job.device.device,
            "move",
            f"interface.mtu {mtu} is below the minimum MTU {bottom} of {job.snap.ifname}",
        )


_Action = Callable[[Attacher, AttachJob], Awaitable[Any]]

_STEPS: Final[tuple[tuple[str, _Action], ...]] = (
    ("move", Attacher._move),
    ("sysctls", Attacher._sysctls),
    ("addresses", Attacher._addresses),
    ("up", Attacher._up),
    ("ethtool", Attacher._ethtool),
    ("ebpf", Attacher._ebpf),
    ("vrf", Attacher._vrf),
    ("routes", Attacher._routes),
    ("rules", Attacher._rules),
    ("neighbors", Attacher._neighbors),
    ("readback", Attacher._readback),
)

ATTACH_STEPS: Final = tuple(step for step, _ in _STEPS)
"""The attach step names, in order."""
