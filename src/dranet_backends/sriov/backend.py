"""The sriov backend object: userspace-bound NICs (vfio-pci, uio) and the SR-IOV VF checks.

:class:`SriovBackend` implements these capabilities:

* **Discovery.** :meth:`~SriovBackend.scan` lists every PCI network function (class 0x02)
  bound to ``vfio-pci``, ``uio_pci_generic`` or ``igb_uio``: the NICs the netdev backend
  cannot see because they have no netdev. Each is a ``pci-<domain>-<bus>-<dev>-<fn>`` device
  with the attributes of :mod:`.attributes` and the facet of :mod:`.facet`. The whole sysfs
  read runs in a worker thread. A scan first reads a cheap fingerprint (per network
  function: address and driver; for userspace-bound ones also IOMMU group and members, PF
  link and PF netdev names, ``sriov_numvfs``, see :func:`.sysfs.fingerprint`) and re-reads
  everything only when it changed or the last full read is older than ``full_resync``
  seconds (default 300); the Devices are rebuilt only when the facts changed.
  :meth:`~SriovBackend.watch` polls the fingerprint every ``poll_interval`` seconds
  (default 30; sysfs has no change events for driver binds and IOMMU groups) and calls
  ``notify()`` once at start and whenever it changed.
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
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dranet_backends.pci import DEFAULT_PATHS, PciIds
from dranet_core.config.model import NetworkConfig
from dranet_core.errors import BackendError, ConfigError, ConfigIssue, DeviceError
from dranet_core.mover import AttachResult
from dranet_core.names import device_name_for_pci
from dranet_core.plans import PreparedDevice
from dranet_core.types import JSON, Condition, Device, DeviceNode, PodSandbox

from .attributes import sriov_attributes
from .devnodes import StatFn, device_nodes_for
from .facet import FACET, SriovFacet
from .sysfs import Fingerprint, SriovFunction, fingerprint, iommu_group, pf_netdev_mtu, userspace_functions
from .validate import netdev_config_issues, vf_mtu_issues

__all__ = ["DEFAULT_FULL_RESYNC", "DEFAULT_POLL_INTERVAL", "SriovBackend"]

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 30.0
"""Seconds between two sysfs polls of :meth:`SriovBackend.watch`."""

DEFAULT_FULL_RESYNC = 300.0
"""Seconds after which :meth:`SriovBackend.scan` re-reads everything even if the fingerprint is unchanged."""

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
        full_resync: float = DEFAULT_FULL_RESYNC,
        stat_fn: StatFn = os.stat,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for what, value in (("poll_interval", poll_interval), ("full_resync", full_resync)):
            if not value > 0:
                raise BackendError("sriov", f"{what} must be > 0 seconds, got {value}")
        self.sysfs = Path(sysfs)
        self.dev_root = Path(dev_root)
        self.poll_interval = poll_interval
        self.full_resync = full_resync
        self._clock = clock
        self._fp: Fingerprint | None = None
        self._full_at = 0.0
        self.full_reads = 0
        self._ids = pci_ids if pci_ids is not None else PciIds()
        self._stat = stat_fn
        self._facts: tuple[SriovFunction, ...] | None = None
        self._devices: list[Device] = []
        self.scans = 0
        self.polls = 0

    @classmethod
    def from_context(cls, context: Any) -> SriovBackend:
        """Build from a ``BackendContext``: ``sysfs``; options ``sriov.dev_root`` (default ``/dev``),
        ``sriov.poll_interval`` (seconds, default 30), ``sriov.full_resync`` (seconds, default 300) and
        the shared ``pci_ids`` (``:``-separated).

        Raises :class:`BackendError` for an unusable option value.
        """
        options: Mapping[str, str] = getattr(context, "options", {}) or {}
        ids_opt = options.get("pci_ids")
        seconds: dict[str, float] = {}
        for key, default in (("poll_interval", DEFAULT_POLL_INTERVAL), ("full_resync", DEFAULT_FULL_RESYNC)):
            raw = options.get(f"sriov.{key}", str(default))
            try:
                seconds[key] = float(raw)
            except ValueError as exc:
                raise BackendError("sriov", f"sriov.{key}: not a number: {raw!r}") from exc
        return cls(
            sysfs=Path(getattr(context, "sysfs", "/sys")),
            dev_root=Path(options.get("sriov.dev_root", "/dev")),
            pci_ids=PciIds(ids_opt.split(":") if ids_opt else DEFAULT_PATHS),
            poll_interval=seconds["poll_interval"],
            full_resync=seconds["full_resync"],
        )

    def __repr__(self) -> str:
        return (
            f"SriovBackend(sysfs={str(self.sysfs)!r}, dev_root={str(self.dev_root)!r}, "
            f"devices={len(self._devices)}, scans={self.scans}, full_reads={self.full_reads}, "
            f"polls={self.polls})"
        )

    # -- Discovery -------------------------------------------------------------------------

    def _read_facts(self) -> tuple[Fingerprint, tuple[SriovFunction, ...] | None]:
        """Runs in a worker thread: the fingerprint, and the full facts unless nothing changed."""
        fp = fingerprint(self.sysfs)
        if fp == self._fp and self._clock() - self._full_at < self.full_resync:
            return fp, None
        facts = tuple(userspace_functions(self.sysfs))
        if facts:
            self._ids.load()  # once; in this worker thread, not on the event loop
        return fp, facts

    async def scan(self) -> Sequence[Device]:
        """Every userspace-bound PCI network function, now (see the module docstring)."""
        fp, facts = await asyncio.to_thread(self._read_facts)
        self.scans += 1
        if facts is not None:
            self._fp = fp
            self._full_at = self._clock()
            self.full_reads += 1
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
        """Poll the sysfs fingerprint every ``poll_interval`` seconds; ``notify()`` at start and on change."""
        last: Fingerprint | None = None
        while True:
            current = await asyncio.to_thread(fingerprint, self.sysfs)
            self.polls += 1
            if current != last:
                if last is not None:
                    log.info("sriov: PCI network functions or their bindings changed")
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
