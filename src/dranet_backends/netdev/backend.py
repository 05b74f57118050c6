"""The netdev backend object: discovery of network devices (and, via mover.py, their moves).

:class:`NetdevBackend` implements :class:`~dranet_core.discovery.Discovery`:

* :meth:`~NetdevBackend.watch` opens an rtnetlink socket subscribed to the link, IPv4/IPv6
  address, IPv4/IPv6 route and tc groups, applies each event to a :class:`KernelView` and
  calls ``notify()`` when something discovery publishes may have changed. Socket overflow
  (``ENOBUFS``) marks the view stale, so the next scan re-dumps everything.
* :meth:`~NetdevBackend.scan` builds the device list from that view. While the watch runs,
  a scan after one link event re-reads nothing but what the event made dirty (one link's
  sysfs facts, the default routes if one changed, one link's tc filters); without a watch,
  after an overflow, or when the last full dump is older than ``full_resync`` seconds
  (default 60), it re-dumps links, addresses, routes and qdiscs first.

It also implements :class:`~dranet_core.capabilities.ReportsHealth` (a link down is
unhealthy) and :class:`~dranet_core.capabilities.ResolvesConfig`: a device whose config
has ``interface.dhcp: true`` gets a DHCP lease on its host interface at prepare time
(:mod:`dranet_backends.dhcp`).

Which network namespace is "the host" is a parameter (``netns``, a path such as
``/run/netns/x``; default: the process's own), so tests scan a throwaway namespace. Netlink
sockets are opened there without forking (:func:`rtnl.open_netlink_socket`).

Shareable parents: a netdev whose interface name matches one of ``subinterface_parents``
(shell patterns) is published with ``allowMultipleAllocations``: many claims can share it,
each getting its own macvlan/ipvlan child in its pod while the parent stays on the host.

Device names: a netdev on a PCI function is named after the function (``pci-0000-8a-00-0``)
and keeps that name when the netdev moves into a pod (the PCI function is still listed from
sysfs, with its PCI attributes only); other netdevs by normalised interface name.

Exclusions: loopback, ``docker0``, ``cilium_net``, ``cilium_host``, the default-route uplinks and every link
below them, PCI NICs without a driver or bound to a userspace driver (vfio/uio), and IPoIB
links when ``move_ib_interfaces`` is false (their PCI function is then listed without
netdev attributes, as the Go driver's IB-only devices).
"""

from __future__ import annotations

import asyncio
import errno
import fnmatch
import logging
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dranet_backends.netns import SELF_NETNS
from dranet_backends.pci import (
    USERSPACE_DRIVERS,
    PciFunction,
    PciIds,
    pci_attributes,
    pci_network_functions,
)
from dranet_core.discovery import ExcludedDevice
from dranet_core.errors import BackendError
from dranet_core.names import device_name_for_interface, device_name_for_pci
from dranet_core.types import AttributeValue, Device

from . import rtnl
from .attributes import netdev_attributes
from .facet import FACET, NetdevFacet
from .state import KernelView, uplinks
from .sysfs import netdev_sysfs
from .tcx import TcxReader

__all__ = ["NetdevBackend", "parse_ifname_patterns"]

log = logging.getLogger(__name__)

UNHEALTHY_STATES = frozenset({"down", "lowerlayerdown", "notpresent"})
"""Link operstates reported as unhealthy to the kubelet (KEP-4680)."""
IGNORED_NAMES = frozenset({"docker0", "cilium_net", "cilium_host"})
WATCH_GROUPS = (
    rtnl.RTMGRP_LINK
    | rtnl.RTMGRP_IPV4_IFADDR
    | rtnl.RTMGRP_IPV6_IFADDR
    | rtnl.RTMGRP_IPV4_ROUTE
    | rtnl.RTMGRP_IPV6_ROUTE
    | rtnl.RTMGRP_TC
)
_YIELD_EVERY = 64


def parse_ifname_patterns(text: str) -> tuple[str, ...]:
    """``eth1,ens*`` -> ``("eth1", "ens*")``; raises ValueError naming the rule."""
    items = tuple(item.strip() for item in text.split(","))
    for item in items:
        if not item or len(item) > 64 or "/" in item or any(c.isspace() for c in item):
            raise ValueError(
                "must be a ','-separated list of interface names or shell patterns (eth1,ens*), "
                f"got item {item!r}"
            )
    return items


def _ignored(link: rtnl.Link) -> bool:
    return bool(link.flags & rtnl.IFF_LOOPBACK) or link.name in IGNORED_NAMES


class NetdevBackend:
    """The ``netdev`` backend: network devices seen through rtnetlink and sysfs."""

    name = "netdev"

    def __init__(
        self,
        *,
        sysfs: Path = Path("/sys"),
        netns: str | None = None,
        pci_ids: PciIds | None = None,
        full_resync: float = 60.0,
        move_ib_interfaces: bool = True,
        clock: Callable[[], float] = time.monotonic,
        state_dir: Path | None = None,
        rename_retry_interval: float = 5.0,
        subinterface_parents: tuple[str, ...] = (),
    ) -> None:
        self.sysfs = Path(sysfs)
        self.netns = netns
        self._ids = pci_ids if pci_ids is not None else PciIds()
        self._full_resync = full_resync
        self.move_ib_interfaces = move_ib_interfaces
        self._clock = clock
        self._view = KernelView()
        self._tcx = TcxReader(netns)
        self._req: rtnl.RtnlSocket | None = None
        self._lock = asyncio.Lock()
        self._watching = False
        self._stale = True
        self._synced_at: float | None = None
        self._syncing = False
        self._replay: list[tuple[int, rtnl.Message]] = []
        self._uplinks: frozenset[int] = frozenset()
        self._pci: dict[str, PciFunction] = {}
        self._pci_attrs: dict[str, dict[str, AttributeValue]] = {}
        self._netdevs: dict[int, tuple[str, Device] | None] = {}
        self._uplink_pci: dict[int, str] = {}
        self.full_syncs = 0
        self.events = 0
        self.state_dir = state_dir
        self._rename_retry_interval = rename_retry_interval
        self._step_observer: Callable[[str, float], None] | None = None
        self.subinterface_parents = tuple(subinterface_parents)

    # -- Discovery -------------------------------------------------------------------------

    async def scan(self) -> Sequence[Device]:
        """Every netdev/PCI network device of the host netns, now (see the module docstring).

        Raises :class:`BackendError` if the kernel cannot be read (the netns is gone, the
        socket broke); the request socket is then reopened by the next scan.
        """
        async with self._lock:
            try:
                if self._needs_full_sync():
                    await self._full_sync()
                else:
                    await self._catch_up()
            except OSError as exc:
                self.close()
                self._stale = True
                raise BackendError(self.name, f"reading {self.netns or 'own netns'} failed: {exc}") from exc
            return await self._devices()

    async def watch(self, notify: Callable[[], None]) -> None:
        """Follow rtnetlink events and call ``notify()`` on relevant changes; runs until cancelled."""
        sock = await rtnl.open_netlink_socket(self.netns, WATCH_GROUPS)
        loop = asyncio.get_running_loop()
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        self._watching = True
        self._stale = True  # events before the subscription are unknown: re-dump once
        try:
            notify()
            while True:
                try:
                    n = await loop.sock_recv_into(sock, buf)
                except OSError as exc:
                    if exc.errno != errno.ENOBUFS:
                        raise
                    log.warning("netdev: event socket overflowed; the next scan re-dumps")
                    self._stale = True
                    notify()
                    continue
                if self._handle_events(bytes(view[:n])):
                    notify()
        finally:
            self._watching = False
            sock.close()

    def close(self) -> None:
        """Close the request socket (a later scan opens a new one)."""
        if self._req is not None:
            self._req.close()
            self._req = None

    async def aclose(self) -> None:
        """Close the request socket and the mover's sockets."""
        self.close()
        mover = getattr(self, "_mover", None)
        if mover is not None:
            del self._mover
            await mover.aclose()

    # -- NamespaceMover (delegated to mover.NetdevMover) -----------------------------------

    def _netdev_mover(self) -> Any:
        mover = getattr(self, "_mover", None)
        if mover is None:
            from .mover import NetdevMover
            from .renames import STATE_FILE

            mover = NetdevMover(
                host_netns=self.netns or SELF_NETNS,
                state_file=self.state_dir / STATE_FILE if self.state_dir else None,
                rename_retry_interval=self._rename_retry_interval,
                step_observer=self._step_observer,
            )
            self._mover = mover
        return mover

    def check_snapshot(self, snapshot: Any) -> None:
        """Raise ValueError unless ``snapshot`` is a netdev snapshot (or a subinterface record)
        this version can restore."""
        from .child import ChildRecord, is_child_record
        from .snapshot import HostSnapshot

        if is_child_record(snapshot):
            ChildRecord.from_json(snapshot)
        else:
            HostSnapshot.from_json(snapshot)

    def set_step_observer(self, observer: Callable[[str, float], None] | None) -> None:
        """Report the duration of each mover step as ``observer(step, seconds)``."""
        self._step_observer = observer
        if getattr(self, "_mover", None) is not None:
            self._mover.set_step_observer(observer)

    async def run(self) -> None:
        """The rename-back of parked devices, forever (a supervised background job)."""
        await self._netdev_mover().run()

    async def snapshot(self, device: Any) -> Any:
        """Host state of ``device`` before it moves (see :meth:`.mover.NetdevMover.snapshot`)."""
        return await self._netdev_mover().snapshot(device)

    async def attach(self, device: Any, pod: Any, snapshot: Any) -> Any:
        """Move ``device`` into ``pod.netns`` and configure it (:meth:`.mover.NetdevMover.attach`)."""
        return await self._netdev_mover().attach(device, pod, snapshot)

    async def detach(self, device: Any, pod: Any, snapshot: Any) -> None:
        """Bring ``device`` home and restore ``snapshot`` (:meth:`.mover.NetdevMover.detach`)."""
        await self._netdev_mover().detach(device, pod, snapshot)

    # -- ReportsHealth -----------------------------------------------------------------------

    async def health(self) -> Mapping[str, bool]:
        """Device name -> healthy: a host link whose operstate is down, lowerlayerdown or
        notpresent is unhealthy; every other device of this backend (also one in a pod) is healthy.
        A PCI function published without a facet (its netdev is elsewhere) is nobody's: not named."""
        return {
            d.name: d.attributes.get("dra.net/state") not in UNHEALTHY_STATES
            for d in await self.scan()
            if FACET in d.facets
        }

    # -- ResolvesConfig: interface.dhcp (dranet_backends.dhcp) ------------------------------

    async def resolve_config(self, device: Device, config: Any) -> Any:
        """``config`` with a DHCP lease of the host interface when ``interface.dhcp`` is true."""
        from dranet_backends.dhcp import dhcp_config

        ifname = NetdevFacet.from_json(device.facets[FACET]).ifname
        return await dhcp_config(config, device.name, ifname, netns=self.netns)

    # -- events ----------------------------------------------------------------------------

    def _handle_events(self, data: bytes) -> bool:
        changed = False
        try:
            for mtype, _, _, rec in rtnl.decode(data):
                if rec is None:
                    continue
                self.events += 1
                if self._syncing:
                    self._replay.append((mtype, rec))
                    changed = True
                elif self._view.apply(mtype, rec):
                    changed = True
        except (OSError, ValueError, IndexError, struct.error) as exc:
            log.warning("netdev: undecodable event (%s); the next scan re-dumps", exc)
            self._stale = True
            return True
        return changed

    # -- kernel reads ----------------------------------------------------------------------

    def _needs_full_sync(self) -> bool:
        if not self._watching or self._stale or self._synced_at is None:
            return True
        return self._clock() - self._synced_at >= self._full_resync

    async def _socket(self) -> rtnl.RtnlSocket:
        if self._req is None:
            self._req = await rtnl.RtnlSocket.open(self.netns)
        return self._req

    async def _full_sync(self) -> None:
        req = await self._socket()
        self._syncing = True
        self._replay = []
        self._stale = False
        try:
            links = [r for r in await req.request(rtnl.link_dump_request) if isinstance(r, rtnl.Link)]
            addrs = [r for r in await req.request(rtnl.addr_dump_request) if isinstance(r, rtnl.Addr)]
            routes = await self._dump_routes(req)
            qdiscs = [r for r in await req.request(rtnl.qdisc_dump_request) if isinstance(r, rtnl.Qdisc)]
        except BaseException:
            self._stale = True
            raise
        finally:
            self._syncing = False
        v = self._view
        v.load_links(links)
        v.load_addrs(addrs)
        v.load_routes(routes)
        v.load_qdiscs(qdiscs)
        for mtype, rec in self._replay:
            v.apply(mtype, rec)
        self._replay = []
        v.tc_dirty = set(v.tc_parents)
        if self._tcx.supported:
            v.tcx_names = await asyncio.to_thread(self._tcx.read, list(v.links))
        v.dirty.clear()
        self._netdevs.clear()
        self._synced_at = self._clock()
        self.full_syncs += 1
        await self._catch_up()

    async def _dump_routes(self, req: rtnl.RtnlSocket) -> list[rtnl.Route]:
        out: list[rtnl.Route] = []
        for family in (2, 10):
            out.extend(
                r for r in await req.request(rtnl.route_dump_request, family) if isinstance(r, rtnl.Route)
            )
        return out

    async def _catch_up(self) -> None:
        """Re-read what events made dirty: default routes, tc filters, the PCI list."""
        v = self._view
        req = await self._socket()
        if v.routes_dirty:
            v.load_routes(await self._dump_routes(req))
        while v.tc_dirty:
            idx = v.tc_dirty.pop()
            found: list[rtnl.TcFilter] = []
            if v.tc_parents.get(idx) and idx in v.links:
                for parent in (rtnl.TC_H_MIN_INGRESS, rtnl.TC_H_MIN_EGRESS):
                    recs = await req.request(rtnl.filter_dump_request, idx, parent)
                    found.extend(r for r in recs if isinstance(r, rtnl.TcFilter))
            old = v.tc_names.get(idx)
            v.set_tc_names(idx, found)
            if v.tc_names.get(idx) != old:
                v.dirty.add(idx)
        if v.links_changed:
            v.links_changed = False
            await self._read_pci()
        if v.dirty and self._tcx.supported:
            # TCX attachments have no events: re-read them for the links that changed
            dirty = [i for i in v.dirty if i in v.links]
            tcx = await asyncio.to_thread(self._tcx.read, dirty)
            for i in dirty:
                if i in tcx:
                    v.tcx_names[i] = tcx[i]
                else:
                    v.tcx_names.pop(i, None)
        ups = uplinks(v.routes, v.links)
        if ups != self._uplinks:
            log.info("netdev: uplinks now %s", sorted(v.links[i].name for i in ups if i in v.links))
            self._uplinks = ups
            self._netdevs.clear()
        for idx in v.dirty:
            self._netdevs.pop(idx, None)
        v.dirty.clear()

    async def _read_pci(self) -> None:
        funcs = pci_network_functions(self.sysfs)
        pci: dict[str, PciFunction] = {}
        for fn in funcs:
            if fn.driver is None or fn.driver in USERSPACE_DRIVERS:
                log.debug("netdev: PCI %s has driver %s: no netdev, not ours", fn.address, fn.driver)
                continue
            pci[fn.address] = fn
        if pci.keys() != self._pci.keys() or any(pci[a] != self._pci[a] for a in pci):
            if pci:
                await asyncio.to_thread(self._ids.load, {fn.vendor for fn in pci.values() if fn.vendor})
            self._pci = pci
            self._pci_attrs = {a: pci_attributes(fn, self._ids) for a, fn in pci.items()}
            self._netdevs.clear()

    # -- devices ---------------------------------------------------------------------------

    def _build(self, link: rtnl.Link) -> tuple[str, Device] | None:
        if _ignored(link) or (link.kind == "ipoib" and not self.move_ib_interfaces):
            return None
        sys = netdev_sysfs(self.sysfs, link.name, link.index)
        if link.index in self._uplinks:
            if sys.pci_address:
                self._uplink_pci[link.index] = sys.pci_address
            return None
        attrs = netdev_attributes(
            link,
            self._view.addresses(link.index),
            sys,
            self._view.tc_names.get(link.index, ()),
            self._view.tcx_names.get(link.index, ()),
        )
        if sys.pci_address is not None:
            name = device_name_for_pci(sys.pci_address)
            pci_attrs = self._pci_attrs.get(sys.pci_address)
            if pci_attrs is None:
                pci_attrs = {"dra.net/pciAddress": sys.pci_address}
            attrs = {**pci_attrs, **attrs}
        else:
            name = device_name_for_interface(link.name)
        facet = NetdevFacet(
            ifname=link.name,
            ifindex=link.index,
            mac=link.mac,
            perm_mac=link.perm_mac,
            pci_address=sys.pci_address,
            kind=link.kind or "device",
            virtual=sys.virtual,
            alias=link.alias,
        )
        try:
            shareable = any(fnmatch.fnmatchcase(link.name, p) for p in self.subinterface_parents)
            device = Device(
                name=name,
                attributes=attrs,
                facets={FACET: facet.to_json()},
                allow_multiple_allocations=shareable,
            )
            return name, device
        except ValueError as exc:
            log.warning("netdev: leaving out %s (%s): %s", link.name, name, exc)
            return None

    async def _devices(self) -> list[Device]:
        v = self._view
        out: dict[str, Device] = {}
        built = 0
        for idx in sorted(v.links):
            if idx in self._netdevs:
                entry = self._netdevs[idx]
            else:
                entry = self._build(v.links[idx])
                self._netdevs[idx] = entry
                built += 1
                if built % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            if entry is None:
                continue
            name, dev = entry
            if name in out:
                log.warning(
                    "netdev: %s (index %d) maps to device %s, already taken; left out",
                    v.links[idx].name,
                    idx,
                    name,
                )
                continue
            out[name] = dev
        excluded_pci = {a for i, a in self._uplink_pci.items() if i in self._uplinks}
        for addr, fn in self._pci.items():
            name = device_name_for_pci(addr)
            if name in out or addr in excluded_pci:
                continue
            try:
                out[name] = Device(name=name, attributes=self._pci_attrs[addr])
            except ValueError as exc:
                log.warning("netdev: leaving out PCI %s: %s", fn.address, exc)
        return list(out.values())

    def excluded(self) -> list[ExcludedDevice]:
        """The links and PCI functions the last scan left out, with the reason (``ReportsExclusions``)."""
        out: list[ExcludedDevice] = []
        for idx in sorted(self._view.links):
            link = self._view.links[idx]
            if link.flags & rtnl.IFF_LOOPBACK:
                out.append(ExcludedDevice(link.name, "loopback"))
            elif _ignored(link):
                out.append(ExcludedDevice(link.name, "container network interface (ignored by name)"))
            elif link.kind == "ipoib" and not self.move_ib_interfaces:
                out.append(ExcludedDevice(link.name, "IPoIB with --move-ib-interfaces=false"))
            elif idx in self._uplinks:
                out.append(ExcludedDevice(link.name, "uplink (default route) or below it"))
        for fn in pci_network_functions(self.sysfs):
            if fn.driver is None or fn.driver in USERSPACE_DRIVERS:
                bound = f"bound to {fn.driver}" if fn.driver else "with no driver"
                out.append(ExcludedDevice(device_name_for_pci(fn.address), f"PCI function {bound}"))
        return out

    def __repr__(self) -> str:
        return (
            f"NetdevBackend(netns={self.netns or 'own'}, sysfs={str(self.sysfs)!r}, "
            f"links={len(self._view.links)}, uplinks={len(self._uplinks)}, watching={self._watching}, "
            f"full_syncs={self.full_syncs})"
        )
