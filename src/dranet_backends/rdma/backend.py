"""The rdma backend object: discovery, mover, config validation and container device nodes.

:class:`RdmaBackend` implements

* :class:`~dranet_core.discovery.Discovery`: one device per RDMA device under
  ``<sysfs>/class/infiniband``, named after its PCI function (``pci-0000-08-00-0``) so it
  merges with the netdev backend's device of the same function, or, for a software device
  (rxe, siw) without PCI function, after its netdev (merging with that netdev's device).
  Attributes: ``dra.net/rdma=true``, ``dra.net/rdmaDevice=<name>``; for IB-only devices
  (no netdev of the PCI function visible) also the PCI attributes of the function
  (:func:`dranet_backends.pci.pci_attributes`: ``pciAddress``, ``pciVendor``, ``pciDevice``,
  ``pciSubsystem``, ``numaNode`` and the standard ``numaNode`` and ``pcieRoot``), whatever
  its PCI class (Alibaba eRDMA is class 0x00ff, not a network controller). Facet
  ``facets["rdma"]`` (see :data:`FACET_KEYS`). :meth:`watch` re-reads sysfs on every
  kernel uevent of the RDMA, netdev and PCI subsystems and every ``poll_interval`` seconds
  (default 30; port state changes have no uevent), and notifies when what it reads
  changed. With ``procfs`` (``create`` passes ``BackendContext.procfs``), RDMA devices on a
  default-route uplink are left out, as the netdev backend leaves out the uplinks.
* :class:`~dranet_core.mover.NamespaceMover`: :class:`.mover.RdmaMover` in the RDMA netns
  mode probed once at start.
* :class:`~dranet_core.capabilities.ValidatesConfig`: a device without a netdev facet
  rejects netdev settings (:func:`dranet_core.config.validate_rdma_only`); a device without
  an rdma facet rejects an ``rdma`` section.
* :class:`~dranet_core.capabilities.ReportsHealth`: a device none of whose ports is ACTIVE
  (an RDMA port down) is unhealthy.
* :class:`~dranet_core.capabilities.AdjustsContainers`: the device's char devices plus
  ``/dev/infiniband/rdma_cm``, stat'ed under ``dev_root``, with mode, uid and gid from the
  claim's ``rdma`` section (default 0666, runtime's owner).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from dranet_backends.pci import PciIds, pci_attributes, pci_function
from dranet_backends.uevent import Uevent, UeventSource, UeventStream, watch_sysfs
from dranet_core.config import validate_rdma_only
from dranet_core.config.model import NetworkConfig
from dranet_core.mover import AttachResult
from dranet_core.names import device_name_for_interface, device_name_for_pci
from dranet_core.plans import PreparedDevice
from dranet_core.types import JSON, AttributeValue, Device, DeviceNode, PodSandbox

from .chardev import device_nodes
from .mover import FACET, NETDEV_FACET, NetnsMode, RdmaMover
from .sysfs import RDMA_CM, RdmaDevice, rdma_devices
from .uplinks import default_route_interfaces, is_uplink

__all__ = ["FACET_KEYS", "RdmaBackend", "device_for", "scan_sysfs"]

log = logging.getLogger(__name__)

D: Final = "dra.net/"
STD: Final = "resource.kubernetes.io/"
FACET_KEYS: Final = ("dev", "pci_address", "char_devices", "node_guid", "netdevs", "ports")
"""Keys of ``facets["rdma"]``: RDMA device name, PCI address (or null), char device paths
(container paths, without ``rdma_cm``), node GUID, netdevs seen at discovery, and ports
(``[{"index", "link_layer", "state"}]``)."""
_UEVENT_SUBSYSTEMS: Final = frozenset(
    {"infiniband", "infiniband_verbs", "infiniband_mad", "infiniband_cm", "net", "pci"}
)


def _relevant(event: Uevent) -> bool:
    """A uevent that can change the RDMA devices: RDMA classes, netdevs, PCI functions."""
    return event.subsystem in _UEVENT_SUBSYSTEMS


def device_for(rd: RdmaDevice, sysfs: Path | None = None, ids: PciIds | None = None) -> Device | None:
    """The published :class:`Device` for ``rd``; None (logged) when it cannot be named.

    With ``sysfs``, an IB-only device also gets its PCI function's attributes (names from
    ``ids``).
    """
    if rd.pci_address is not None:
        try:
            name = device_name_for_pci(rd.pci_address)
        except ValueError as exc:
            log.warning("rdma: leaving out %s: %s", rd.name, exc)
            return None
    elif rd.netdevs:
        try:
            name = device_name_for_interface(rd.netdevs[0])
        except ValueError as exc:
            log.warning("rdma: leaving out %s: %s", rd.name, exc)
            return None
    else:
        log.warning("rdma: %s has neither a PCI function nor a netdev; left out", rd.name)
        return None
    attrs: dict[str, AttributeValue] = {D + "rdma": True, D + "rdmaDevice": rd.name}
    if rd.ib_only and rd.pci_address is not None:
        attrs[D + "pciAddress"] = rd.pci_address
        if rd.numa_node is not None:
            attrs[D + "numaNode"] = rd.numa_node
            attrs[STD + "numaNode"] = rd.numa_node
        if rd.pcie_root is not None:
            attrs[STD + "pcieRoot"] = rd.pcie_root
        if sysfs is not None:
            pci = pci_attributes(pci_function(sysfs, rd.pci_address), ids)
            attrs.update((k, v) for k, v in pci.items() if k != D + "rdma")
    facet = {
        "dev": rd.name,
        "pci_address": rd.pci_address,
        "char_devices": list(rd.char_devices),
        "node_guid": rd.node_guid,
        "netdevs": list(rd.netdevs),
        "ports": [{"index": p.index, "link_layer": p.link_layer, "state": p.state} for p in rd.ports],
    }
    try:
        return Device(name=name, attributes=attrs, facets={FACET: facet})
    except ValueError as exc:
        log.warning("rdma: leaving out %s (%s): %s", rd.name, name, exc)
        return None


def scan_sysfs(sysfs: Path, procfs: Path | None = None, ids: PciIds | None = None) -> list[Device]:
    """The devices published for the RDMA devices under ``sysfs`` (blocking; one per name).

    PCI names come from ``ids`` (loaded here when an IB-only device needs them).

    With ``procfs``, RDMA devices whose netdev is a default-route uplink (or enslaved to
    one) are left out, as the netdev backend leaves out their netdevs (:mod:`.uplinks`).
    """
    uplinks = default_route_interfaces(procfs) if procfs is not None else frozenset()
    out: dict[str, Device] = {}
    for rd in rdma_devices(sysfs):
        up = [nd for nd in rd.netdevs if is_uplink(sysfs, nd, uplinks)]
        if up:
            log.debug("rdma: %s is on uplink %s; not published", rd.name, ", ".join(up))
            continue
        dev = device_for(rd, sysfs, ids)
        if dev is None:
            continue
        if dev.name in out:
            log.warning(
                "rdma: %s and %s share device %s; keeping %s",
                out[dev.name].facets[FACET]["dev"],
                rd.name,
                dev.name,
                out[dev.name].facets[FACET]["dev"],
            )
            continue
        out[dev.name] = dev
    return list(out.values())


def _held_device(device: PreparedDevice) -> Device:
    """A device for ``device`` rebuilt from its prepared facet (when no scan has seen it)."""
    facet = device.facets.get(FACET)
    name = facet.get("dev") if isinstance(facet, dict) else None
    attrs: dict[str, AttributeValue] = {D + "rdma": True}
    if isinstance(name, str):
        attrs[D + "rdmaDevice"] = name
    return Device(name=device.device, attributes=attrs, facets={FACET: facet})


class RdmaBackend:
    """The ``rdma`` backend (see the module docstring)."""

    name = "rdma"

    def __init__(
        self,
        *,
        sysfs: Path = Path("/sys"),
        procfs: Path | None = None,
        dev_root: Path = Path("/dev"),
        mode: NetnsMode = "shared",
        mover: RdmaMover | None = None,
        poll_interval: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        pci_ids: PciIds | None = None,
        uevents: Callable[[], UeventStream] | None = UeventSource.open,
    ) -> None:
        self.sysfs = Path(sysfs)
        self.procfs = procfs
        self.dev_root = Path(dev_root)
        self.mover = mover if mover is not None else RdmaMover(mode=mode)
        self.poll_interval = poll_interval
        self._sleep = sleep
        self._ids = pci_ids if pci_ids is not None else PciIds()
        self._uevents = uevents
        self.scans = 0
        self._seen: dict[str, Device] = {}
        self._held: dict[str, Device] = {}

    @property
    def mode(self) -> NetnsMode:
        """The RDMA netns mode the mover works in."""
        return self.mover.mode

    def __repr__(self) -> str:
        return f"RdmaBackend(sysfs={str(self.sysfs)!r}, mode={self.mode}, scans={self.scans})"

    # -- Discovery -------------------------------------------------------------------------

    async def scan(self) -> Sequence[Device]:
        """Every RDMA device under ``sysfs`` now (never raises for one bad device).

        In exclusive mode the kernel's ``infiniband`` class is netns-aware: a device moved
        into a pod vanishes from the host's sysfs. Devices this process moved are therefore
        kept in the list, with their last known attributes, until they are detached.
        """
        self.scans += 1
        found = await asyncio.to_thread(scan_sysfs, self.sysfs, self.procfs, self._ids)
        self._seen = {d.name: d for d in found}
        return found + [d for name, d in self._held.items() if name not in self._seen]

    async def health(self) -> Mapping[str, bool]:
        """Device name -> healthy: an RDMA device with ports none of which is ACTIVE (state 4)
        is unhealthy (a port down); devices this process moved into pods count as healthy."""
        out: dict[str, bool] = {}
        for d in await self.scan():
            ports = (d.facets.get(FACET) or {}).get("ports") or []
            states = [str(p.get("state", "")) for p in ports if isinstance(p, dict)]
            out[d.name] = not states or any(s.split(":")[0].strip() in ("4", "5") for s in states)
        return out

    async def watch(self, notify: Callable[[], None]) -> None:
        """``notify()`` when the devices changed: re-scanned on every kernel uevent of the RDMA,
        netdev or PCI subsystems (an RDMA device appearing: seen at once) and every
        ``poll_interval`` seconds (port states have no uevent)."""
        last = [await self.scan()]

        async def check() -> bool:
            now = await self.scan()
            if now == last[0]:
                return False
            last[0] = now
            return True

        await watch_sysfs(
            "rdma",
            check,
            notify,
            relevant=_relevant,
            interval=self.poll_interval,
            open_source=self._uevents,
            sleep=self._sleep,
        )

    # -- NamespaceMover --------------------------------------------------------------------

    async def snapshot(self, device: PreparedDevice) -> JSON:
        """See :meth:`.mover.RdmaMover.snapshot`."""
        return await self.mover.snapshot(device)

    async def attach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> AttachResult:
        """See :meth:`.mover.RdmaMover.attach` (a moved device is remembered for :meth:`scan`)."""
        result = await self.mover.attach(device, pod, snapshot)
        if any(c.type == "RDMALinkReady" for c in result.conditions):
            self._held[device.device] = self._seen.get(device.device) or _held_device(device)
        return result

    async def detach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> None:
        """See :meth:`.mover.RdmaMover.detach`."""
        await self.mover.detach(device, pod, snapshot)
        self._held.pop(device.device, None)

    # -- ValidatesConfig -------------------------------------------------------------------

    def validate_config(self, device: Device, config: NetworkConfig) -> None:
        """Reject netdev settings for an IB-only device (no netdev facet) (ConfigError). (An
        ``rdma`` section on a device without this backend's facet is refused by the driver.)"""
        if NETDEV_FACET not in device.facets:
            validate_rdma_only(config)

    # -- AdjustsContainers -----------------------------------------------------------------

    def device_nodes(self, device: PreparedDevice) -> Sequence[DeviceNode]:
        """The device's char devices and ``rdma_cm``, stat'ed (missing ones logged, skipped), with
        the mode, uid and gid of the claim's ``rdma`` section."""
        facet = device.facets.get(FACET)
        if not isinstance(facet, dict):
            return []
        chars = facet.get("char_devices")
        paths = [p for p in chars if isinstance(p, str)] if isinstance(chars, list) else []
        return device_nodes([*paths, RDMA_CM], self.dev_root, device.config.rdma)
