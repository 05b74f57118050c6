"""The sriov backend object: userspace-bound NICs (vfio-pci, uio) and the SR-IOV VF checks.

:class:`SriovBackend` implements these capabilities:

* **Discovery.** :meth:`~SriovBackend.scan` lists every PCI network function (class 0x02)
  bound to ``vfio-pci``, ``uio_pci_generic`` or ``igb_uio``: the NICs the netdev backend
  cannot see because they have no netdev. Each is a ``pci-<domain>-<bus>-<dev>-<fn>`` device
  with the attributes of :mod:`.attributes` and the facet of :mod:`.facet`. The whole sysfs
  read runs in a worker thread; the device list is rebuilt only when the sysfs facts
  changed. :meth:`~SriovBackend.watch` polls the same facts every ``poll_interval`` seconds
  (default 30; sysfs has no change events for driver binds and IOMMU groups) and calls
  ``notify()`` once at start and whenever they changed.
* **AdjustsContainers.** :meth:`~SriovBackend.device_nodes` gives every container of the
  pod ``/dev/vfio/vfio`` and ``/dev/vfio/<group>`` (vfio-pci) or ``/dev/uioN`` (uio), see
  :mod:`.devnodes`.
* **ValidatesConfig.** :meth:`~SriovBackend.validate_config` rejects netdev settings for a
  userspace-bound device and a VF MTU above its PF's, see :mod:`.validate`. It is asked for
  the devices it :meth:`~SriovBackend.owns`: those with an sriov facet *and* the netdev
  backend's VFs (``dra.net/isSriovVf`` with a ``dra.net/pciAddress``), whose PF MTU it reads
  from sysfs at prepare time.
* **NamespaceMover, verify-only.** A userspace-bound device does not move: handing its
  device nodes to the containers is the attach. The driver's pod glue refuses to attach a
  device that no mover handles, so this backend is the mover of its own devices with an
  :meth:`~SriovBackend.attach` that moves nothing: it checks that the function is still bound
  to the driver it had at prepare time, still in the same IOMMU group, and that its device
  nodes exist, and reports a ``Ready`` condition. :meth:`~SriovBackend.detach` does nothing.
  (PF-side VF admin settings, VLAN, spoofchk, trust, MAC, are not applied: future work.)

Kernel-bound VFs (with a netdev) are published by the netdev backend only; this backend adds
no device for them, because the inventory publishes the union of all backends' devices and
would otherwise resurrect a VF the netdev backend deliberately left out (a default-route
uplink).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dranet_backends.netdev.pciids import DEFAULT_PATHS, PciIds
from dranet_core.config.model import NetworkConfig
from dranet_core.errors import BackendError, ConfigError, ConfigIssue, DeviceError
from dranet_core.names import device_name_for_pci
from dranet_core.netns import AttachResult
from dranet_core.plans import PreparedDevice
from dranet_core.types import JSON, Condition, Device, DeviceNode, PodSandbox

from .attributes import sriov_attributes
from .devnodes import StatFn, device_nodes_for
from .facet import FACET, SriovFacet
from .sysfs import SriovFunction, iommu_group, pf_netdev_mtu, userspace_functions
from .validate import netdev_config_issues, vf_mtu_issues

__all__ = ["DEFAULT_POLL_INTERVAL", "SriovBackend"]

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 30.0
"""Seconds between two sysfs polls of :meth:`SriovBackend.watch`."""

_IS_VF = "dra.net/isSriovVf"
_PCI_ADDRESS = "dra.net/pciAddress"


class SriovBackend:
    """The ``sriov`` backend: userspace-bound PCI NICs and SR-IOV VF checks (module docstring)."""

    name = "sriov"

    def __init__(
        self,
        *,
        sysfs: Path = Path("/sys"),
        dev_root: Path = Path("/dev"),
        pci_ids: PciIds | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        stat_fn: StatFn = os.stat,
    ) -> None:
        if not poll_interval > 0:
            raise BackendError("sriov", f"poll_interval must be > 0 seconds, got {poll_interval}")
        self.sysfs = Path(sysfs)
        self.dev_root = Path(dev_root)
        self.poll_interval = poll_interval
        self._ids = pci_ids if pci_ids is not None else PciIds()
        self._stat = stat_fn
        self._facts: tuple[SriovFunction, ...] | None = None
        self._devices: list[Device] = []
        self.scans = 0
        self.polls = 0

    @classmethod
    def from_context(cls, context: Any) -> SriovBackend:
        """Build from a ``BackendContext``: ``sysfs``; options ``sriov.dev_root`` (default ``/dev``),
        ``sriov.poll_interval`` (seconds, default 30) and the shared ``pci_ids`` (``:``-separated).

        Raises :class:`BackendError` for an unusable option value.
        """
        options: Mapping[str, str] = getattr(context, "options", {}) or {}
        ids_opt = options.get("pci_ids")
        raw_interval = options.get("sriov.poll_interval", str(DEFAULT_POLL_INTERVAL))
        try:
            interval = float(raw_interval)
        except ValueError as exc:
            raise BackendError("sriov", f"sriov.poll_interval: not a number: {raw_interval!r}") from exc
        return cls(
            sysfs=Path(getattr(context, "sysfs", "/sys")),
            dev_root=Path(options.get("sriov.dev_root", "/dev")),
            pci_ids=PciIds(ids_opt.split(":") if ids_opt else DEFAULT_PATHS),
            poll_interval=interval,
        )

    def __repr__(self) -> str:
        return (
            f"SriovBackend(sysfs={str(self.sysfs)!r}, dev_root={str(self.dev_root)!r}, "
            f"devices={len(self._devices)}, scans={self.scans}, polls={self.polls})"
        )

    # -- Discovery -------------------------------------------------------------------------

    def _read_facts(self) -> tuple[SriovFunction, ...]:
        facts = tuple(userspace_functions(self.sysfs))
        if facts:
            self._ids.load()  # once; in this worker thread, not on the event loop
        return facts

    async def scan(self) -> Sequence[Device]:
        """Every userspace-bound PCI network function, now (see the module docstring)."""
        facts = await asyncio.to_thread(self._read_facts)
        self.scans += 1
        if facts != self._facts:
            self._facts = facts
            self._devices = self._build(facts)
        return list(self._devices)

    def _build(self, facts: Sequence[SriovFunction]) -> list[Device]:
        out: list[Device] = []
        for fn in facts:
            try:
                name = device_name_for_pci(fn.address)
                out.append(
                    Device(
                        name=name,
                        attributes=sriov_attributes(fn, self._ids),
                        facets={FACET: SriovFacet.of(fn).to_json()},
                    )
                )
            except ValueError as exc:
                log.warning("sriov: leaving out PCI %s (%s): %s", fn.address, fn.driver, exc)
        return out

    async def watch(self, notify: Callable[[], None]) -> None:
        """Poll sysfs every ``poll_interval`` seconds; ``notify()`` at start and on change."""
        last: tuple[SriovFunction, ...] | None = None
        while True:
            facts = await asyncio.to_thread(userspace_functions, self.sysfs)
            self.polls += 1
            current = tuple(facts)
            if current != last:
                if last is not None:
                    log.info("sriov: userspace-bound functions changed (%d now)", len(current))
                last = current
                notify()
            await asyncio.sleep(self.poll_interval)

    # -- AdjustsContainers -----------------------------------------------------------------

    def device_nodes(self, device: PreparedDevice) -> Sequence[DeviceNode]:
        """``/dev/vfio/vfio`` + ``/dev/vfio/<group>``, or ``/dev/uioN``, for a device with an sriov facet.

        Empty for other devices. Raises :class:`DeviceError` if a node is missing (see
        :func:`.devnodes.device_nodes_for`) or the facet is unreadable.
        """
        raw = device.facets.get(FACET)
        if raw is None:
            return []
        facet = self._facet(device.device, raw, "device nodes")
        return device_nodes_for(device.device, facet, self.dev_root, self._stat)

    @staticmethod
    def _facet(device: str, raw: JSON, step: str) -> SriovFacet:
        try:
            return SriovFacet.from_json(raw)
        except ValueError as exc:
            raise DeviceError(device, step, str(exc)) from exc

    # -- ValidatesConfig -------------------------------------------------------------------

    def owns(self, device: Device) -> bool:
        """Devices with an sriov facet, and VFs of other backends (``dra.net/isSriovVf`` + a PCI address)."""
        if FACET in device.facets:
            return True
        return device.attributes.get(_IS_VF) is True and isinstance(device.attributes.get(_PCI_ADDRESS), str)

    def validate_config(self, device: Device, config: NetworkConfig) -> None:
        """Raise :class:`ConfigError` for netdev settings on a userspace-bound device, or a VF MTU
        above its PF's (read now from sysfs); see :mod:`.validate`."""
        raw = device.facets.get(FACET)
        if raw is not None:
            try:
                facet = SriovFacet.from_json(raw)
            except ValueError as exc:
                raise ConfigError(f"device {device.name}: {exc}") from exc
            issues = netdev_config_issues(config, device.name, facet.driver)
        else:
            issues = self._vf_mtu(device, config)
        if issues:
            raise ConfigError(issues)

    def _vf_mtu(self, device: Device, config: NetworkConfig) -> list[ConfigIssue]:
        address = device.attributes.get(_PCI_ADDRESS)
        if device.attributes.get(_IS_VF) is not True or not isinstance(address, str):
            return []
        if config.interface is None or config.interface.mtu is None:
            return []
        pf = pf_netdev_mtu(self.sysfs, address)
        if pf is None:
            log.info("sriov: %s: PF of VF %s has no netdev here; MTU not checked", device.name, address)
            return []
        return vf_mtu_issues(config, *pf)

    # -- NamespaceMover (verify-only: nothing moves) ----------------------------------------

    async def snapshot(self, device: PreparedDevice) -> JSON:
        """The driver and IOMMU group of the function now (informational; nothing is restored)."""
        raw = device.facets.get(FACET)
        if raw is None:
            return None
        facet = self._facet(device.device, raw, "snapshot")
        return {
            "driver": self._driver_now(facet.pci_address),
            "iommu_group": iommu_group(self.sysfs, facet.pci_address),
        }

    async def attach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> AttachResult:
        """Check the device is still usable as prepared; moves nothing (module docstring).

        Raises :class:`DeviceError` (step ``attach``) if the function is gone, bound to another
        driver, moved to another IOMMU group, or its device nodes are missing.
        """
        raw = device.facets.get(FACET)
        if raw is None:
            return AttachResult()
        facet = self._facet(device.device, raw, "attach")
        nodes = self._verify(device.device, facet)
        addr, driver = facet.pci_address, facet.driver
        message = f"{addr} bound to {driver}; containers get {', '.join(n.path for n in nodes)}"
        log.info("sriov: %s for pod %s: %s", device.device, pod, message)
        return AttachResult(
            conditions=(
                Condition(type="Ready", status="True", reason="UserspaceDeviceReady", message=message),
            )
        )

    async def detach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> None:
        """Nothing to bring back: a userspace-bound device never left the host."""
        if FACET in device.facets:
            log.debug("sriov: %s released by pod %s (nothing to move)", device.device, pod)

    def _verify(self, device: str, facet: SriovFacet) -> list[DeviceNode]:
        """The device nodes of ``device`` if its function is still as prepared; DeviceError if not."""
        addr = facet.pci_address
        if not os.path.lexists(self.sysfs / "bus" / "pci" / "devices" / addr):
            raise DeviceError(device, "attach", f"PCI function {addr} is gone")
        driver = self._driver_now(addr)
        if driver != facet.driver:
            raise DeviceError(
                device,
                "attach",
                f"{addr} is bound to {driver or 'no driver'}, was {facet.driver} when the claim was prepared",
            )
        if facet.is_vfio:
            group = iommu_group(self.sysfs, addr)
            if group != facet.iommu_group:
                raise DeviceError(
                    device,
                    "attach",
                    f"{addr} is in IOMMU group {group}, was {facet.iommu_group} when the claim was prepared",
                )
        return device_nodes_for(device, facet, self.dev_root, self._stat)

    def _driver_now(self, address: str) -> str | None:
        link = self.sysfs / "bus" / "pci" / "devices" / address / "driver"
        try:
            return os.path.basename(os.readlink(link))
        except OSError:
            return None
