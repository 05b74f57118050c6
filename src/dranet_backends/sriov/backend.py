"""The sriov backend object: userspace-bound NICs (vfio-pci, uio), SR-IOV VF checks and PF-side VF settings.

:class:`SriovBackend` implements these capabilities:

* **Discovery.** :meth:`~SriovBackend.scan` lists every PCI network function (class 0x02)
  bound to ``vfio-pci``, ``uio_pci_generic`` or ``igb_uio``: the NICs the netdev backend
  cannot see because they have no netdev. Each is a ``pci-<domain>-<bus>-<dev>-<fn>`` device
  with the attributes of :mod:`.attributes` and the facet of :mod:`.facet`. The whole sysfs
  read runs in a worker thread. A scan first reads a cheap fingerprint (per network
  function: address and driver, a kernel-bound VF's netdevs; for userspace-bound ones also
  IOMMU group and members, PF link and PF netdev names, ``sriov_numvfs``, see
  :func:`.sysfs.fingerprint`) and re-reads
  everything only when it changed or the last full read is older than ``full_resync``
  seconds (default 300); the Devices are rebuilt only when the facts changed.
  :meth:`~SriovBackend.watch` re-reads the fingerprint on every kernel uevent of the
  ``pci`` and ``net`` subsystems (a VF created, a driver rebind to vfio-pci: seen at once)
  and every ``poll_interval`` seconds (default 30) as a slow resync, and calls ``notify()``
  once at start and whenever it changed.
* **AdjustsContainers.** :meth:`~SriovBackend.device_nodes` gives every container of the
  pod ``/dev/vfio/vfio`` and ``/dev/vfio/<group>`` (vfio-pci) or ``/dev/uioN`` (uio), see
  :mod:`.devnodes`.
* **ValidatesConfig.** :meth:`~SriovBackend.validate_config` rejects an ``sriov`` section
  for a device that is not a VF with a known PF and VF number, netdev settings for a
  userspace-bound device, a VF MTU above its PF's (read from sysfs at prepare time), and a
  kernel-bound VF that no backend moves (no netdev facet); see :mod:`.validate`. It
  :meth:`~SriovBackend.owns` every device, so the ``sriov`` rule reaches them all.
* **NamespaceMover.** Runs before the netdev backend's mover (backend order ``sriov``,
  ``netdev``, ``rdma``), so on attach the PF-side settings are made before the VF moves and
  on detach they are restored after it came home:

  - a device with a claim ``sriov`` section (a VF: userspace-bound, or kernel-bound with the
    facet below) gets its VF settings through the PF (:mod:`.pfside`, messages of
    :mod:`.vfnl`): :meth:`~SriovBackend.snapshot` reads the VF's state from the PF
    (``RTM_GETLINK``), :meth:`~SriovBackend.attach` applies the settings one by one and, if
    one fails, restores those it applied before raising; :meth:`~SriovBackend.detach`
    restores the snapshot. The driver journals the snapshot before attach, so a restart
    between the two still restores it.
  - a userspace-bound device does not move: handing its device nodes to the containers is
    the attach. :meth:`~SriovBackend.attach` checks that the function is still bound to the
    driver it had at prepare time, still in the same IOMMU group, and that its device nodes
    exist, and reports a ``Ready`` condition.
  - **Release safety.** The reset on detach is keyed by claim UID and checked against the
    driver's journal (:meth:`~SriovBackend.bind_journal`): when another claim now holds the
    device (attaching or attached), a late release of an older claim leaves the VF alone,
    so it never resets a VF that a new pod owns.

Kernel-bound VFs (with a netdev) are published by the netdev backend; this backend adds to
them only its facet and the VF attributes (``sriovPfAddress``, ``sriovPfName``,
``sriovVfIndex``), and only for a VF whose netdev is in the host namespace and is not a
default-route uplink or enslaved to one: the inventory publishes the union of all backends'
devices and must not resurrect a VF the netdev backend deliberately left out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from dranet_backends.pci import PciIds
from dranet_backends.rdma.uplinks import default_route_interfaces, is_uplink
from dranet_backends.uevent import Uevent, UeventSource, UeventStream, watch_sysfs
from dranet_core.config.model import NetworkConfig
from dranet_core.errors import BackendError, ConfigError, ConfigIssue, DeviceError
from dranet_core.mover import AttachResult
from dranet_core.names import device_name_for_pci
from dranet_core.plans import PreparedDevice
from dranet_core.types import JSON, Condition, Device, DeviceNode, PodSandbox

from .attributes import sriov_attributes, vf_attributes
from .devnodes import StatFn, device_nodes_for
from .facet import FACET, SriovFacet
from .ownership import ClaimsView, other_holders
from .pfside import PfClient, Step, StepFailed, apply, restore, steps
from .sysfs import (
    PASSTHROUGH_DRIVERS,
    Fingerprint,
    SriovFunction,
    fingerprint,
    iommu_group,
    kernel_vfs,
    pf_netdev,
    pf_netdev_mtu,
    userspace_functions,
)
from .validate import netdev_config_issues, sriov_config_issues, vf_mtu_issues
from .vfnl import VfState

__all__ = ["DEFAULT_FULL_RESYNC", "DEFAULT_POLL_INTERVAL", "SriovBackend"]

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 30.0
"""Seconds between two sysfs polls of :meth:`SriovBackend.watch`."""

DEFAULT_FULL_RESYNC = 300.0
"""Seconds after which :meth:`SriovBackend.scan` re-reads everything even if the fingerprint is unchanged."""

_IS_VF = "dra.net/isSriovVf"
_PCI_ADDRESS = "dra.net/pciAddress"
_NETDEV_FACET = "netdev"
_UEVENT_SUBSYSTEMS = frozenset({"pci", "net"})


def _relevant(event: Uevent) -> bool:
    """A uevent that can change what this backend discovers: any PCI or netdev event."""
    return event.subsystem in _UEVENT_SUBSYSTEMS


class SriovBackend:
    """The ``sriov`` backend: userspace-bound PCI NICs and SR-IOV VF checks (module docstring)."""

    name = "sriov"

    def __init__(
        self,
        *,
        sysfs: Path = Path("/sys"),
        procfs: Path | None = None,
        dev_root: Path = Path("/dev"),
        pci_ids: PciIds | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        full_resync: float = DEFAULT_FULL_RESYNC,
        stat_fn: StatFn = os.stat,
        clock: Callable[[], float] = time.monotonic,
        pf_client: PfClient | None = None,
        uevents: Callable[[], UeventStream] | None = UeventSource.open,
    ) -> None:
        for what, value in (("poll_interval", poll_interval), ("full_resync", full_resync)):
            if not value > 0:
                raise BackendError("sriov", f"{what} must be > 0 seconds, got {value}")
        self.sysfs = Path(sysfs)
        self.procfs = procfs
        self.dev_root = Path(dev_root)
        self.pf = pf_client if pf_client is not None else PfClient()
        self._journal: ClaimsView | None = None
        self._uevents = uevents
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
        facts = tuple(userspace_functions(self.sysfs)) + tuple(self._kernel_vfs())
        if facts:
            self._ids.load()  # once; in this worker thread, not on the event loop
        return fp, facts

    def _kernel_vfs(self) -> list[SriovFunction]:
        vfs = kernel_vfs(self.sysfs)
        if not vfs or self.procfs is None:
            return vfs
        uplinks = default_route_interfaces(self.procfs)
        return [fn for fn in vfs if not any(is_uplink(self.sysfs, nd, uplinks) for nd in fn.netdevs)]

    async def scan(self) -> Sequence[Device]:
        """Every userspace-bound PCI network function, and the facet of every kernel-bound VF."""
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
                userspace = fn.driver in PASSTHROUGH_DRIVERS
                out.append(
                    Device(
                        name=name,
                        attributes=sriov_attributes(fn, self._ids) if userspace else vf_attributes(fn),
                        facets={FACET: SriovFacet.of(fn).to_json()},
                    )
                )
            except ValueError as exc:
                log.warning("sriov: leaving out PCI %s (%s): %s", fn.address, fn.driver, exc)
        return out

    async def watch(self, notify: Callable[[], None]) -> None:
        """``notify()`` at start and whenever the sysfs fingerprint changed: checked on every
        kernel uevent of the ``pci`` or ``net`` subsystem (a VF created through
        ``sriov_numvfs``, a driver bind or unbind, a netdev added, removed or renamed) and,
        as a slow resync, every ``poll_interval`` seconds (see :mod:`dranet_backends.uevent`)."""
        last: list[Fingerprint | None] = [None]

        async def check() -> bool:
            current = await asyncio.to_thread(fingerprint, self.sysfs)
            self.polls += 1
            if current == last[0]:
                return False
            if last[0] is not None:
                log.info("sriov: PCI network functions or their bindings changed")
            last[0] = current
            return True

        await watch_sysfs(
            "sriov",
            check,
            notify,
            relevant=_relevant,
            interval=self.poll_interval,
            open_source=self._uevents,
        )

    # -- AdjustsContainers -----------------------------------------------------------------

    def device_nodes(self, device: PreparedDevice) -> Sequence[DeviceNode]:
        """``/dev/vfio/vfio`` + ``/dev/vfio/<group>``, or ``/dev/uioN``, for a userspace-bound device.

        Empty for a kernel-bound one. Raises :class:`DeviceError` if a node is missing (see
        :func:`.devnodes.device_nodes_for`) or the facet is unreadable.
        """
        facet = self._facet(device.device, device.facets[FACET], "device nodes")
        if not facet.userspace:
            return []
        return device_nodes_for(device.device, facet, self.dev_root, self._stat)

    @staticmethod
    def _facet(device: str, raw: JSON, step: str) -> SriovFacet:
        try:
            return SriovFacet.from_json(raw)
        except ValueError as exc:
            raise DeviceError(device, step, str(exc)) from exc

    # -- ValidatesConfig -------------------------------------------------------------------

    def validate_config(self, device: Device, config: NetworkConfig) -> None:
        """Raise :class:`ConfigError` for an ``sriov`` section on a function of this backend
        that is not a VF it can configure, netdev settings on a userspace-bound device, or a VF
        MTU above its PF's (read now from sysfs); see :mod:`.validate`. (An ``sriov`` section
        on a device without this backend's facet is refused by the driver before this.)"""
        try:
            facet = SriovFacet.from_json(device.facets[FACET])
        except ValueError as exc:
            raise ConfigError(f"device {device.name}: {exc}") from exc
        issues: list[ConfigIssue] = []
        if not facet.userspace and _NETDEV_FACET not in device.facets:
            issues.append(
                ConfigIssue(
                    "",
                    f"device {device.name} is a kernel-bound VF that no backend moves "
                    "(enable the netdev backend, or bind the VF to vfio-pci)",
                )
            )
        if config.sriov is not None:
            issues += sriov_config_issues(device.name, facet)
            if not issues and facet.pf is not None and self._pf_name(facet) is None:
                issues.append(
                    ConfigIssue(
                        "sriov", f"not allowed: the PF {facet.pf} of VF {device.name} has no netdev here"
                    )
                )
        if facet.userspace:
            issues += netdev_config_issues(config, device.name, facet.driver)
        else:
            issues += self._vf_mtu(device, config)
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

    # -- NamespaceMover ----------------------------------------------------------------------

    def bind_journal(self, journal: ClaimsView) -> None:
        """Give the backend read access to the driver's journal (the release-safety check)."""
        self._journal = journal

    def _pf_name(self, facet: SriovFacet) -> str | None:
        assert facet.pf is not None
        return pf_netdev(self.sysfs, facet.pf) or facet.pf_ifname

    async def snapshot(self, device: PreparedDevice) -> JSON:
        """The driver and IOMMU group of a userspace-bound function, and, for a claim with an
        ``sriov`` section, the PF's name and the VF's state read from the PF (``vf``)."""
        raw = device.facets.get(FACET)
        if raw is None:
            return None
        facet = self._facet(device.device, raw, "snapshot")
        out: dict[str, JSON] = {}
        if facet.userspace:
            out["driver"] = self._driver_now(facet.pci_address)
            out["iommu_group"] = iommu_group(self.sysfs, facet.pci_address)
        if device.config.sriov is not None and facet.is_vf:
            assert facet.vf_index is not None
            pf = self._pf_name(facet)
            if pf is None:
                raise DeviceError(
                    device.device, "snapshot", f"the PF {facet.pf} of the VF has no netdev here"
                )
            try:
                state = await self.pf.get(pf, facet.vf_index)
            except (OSError, ValueError) as exc:
                raise DeviceError(
                    device.device, "snapshot", f"reading VF {facet.vf_index} of {pf}: {exc}"
                ) from exc
            out["pf"] = pf
            out["vf"] = state.to_json()
        return out

    async def attach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> AttachResult:
        """Verify a userspace-bound device; apply the claim's ``sriov`` settings through the PF.

        Transactional: raises :class:`DeviceError` (step ``sriov <setting>``) after restoring
        what it applied. Also raises if a userspace-bound function is gone, bound to another
        driver, moved to another IOMMU group, or its device nodes are missing.
        """
        raw = device.facets.get(FACET)
        if raw is None:
            return AttachResult()
        facet = self._facet(device.device, raw, "attach")
        conditions: tuple[Condition, ...] = ()
        if facet.userspace:
            nodes = self._verify(device.device, facet)
            addr, driver = facet.pci_address, facet.driver
            message = f"{addr} bound to {driver}; containers get {', '.join(n.path for n in nodes)}"
            log.info("sriov: %s for pod %s: %s", device.device, pod, message)
            conditions = (
                Condition(type="Ready", status="True", reason="UserspaceDeviceReady", message=message),
            )
        plan = self._plan(device, snapshot)
        if plan is not None:
            pf, todo = plan
            try:
                await apply(self.pf, pf, todo)
            except StepFailed as exc:
                raise DeviceError(
                    device.device, f"sriov {exc.step}", f"{pf} VF: {exc.cause.strerror or exc.cause}"
                ) from exc
            log.info(
                "sriov: %s: %s set through %s for pod %s",
                device.device,
                ", ".join(t.name for t in todo),
                pf,
                pod,
            )
        return AttachResult(conditions=conditions)

    def _plan(self, device: PreparedDevice, snapshot: JSON) -> tuple[str, list[Step]] | None:
        sriov = device.config.sriov
        if sriov is None or not isinstance(snapshot, dict) or "vf" not in snapshot:
            return None
        pf = snapshot.get("pf")
        try:
            before = VfState.from_json(snapshot["vf"])
        except ValueError as exc:
            raise DeviceError(device.device, "sriov snapshot", str(exc)) from exc
        if not isinstance(pf, str):
            raise DeviceError(device.device, "sriov snapshot", f"bad PF name {pf!r}")
        return pf, steps(sriov, before)

    async def detach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> None:
        """Restore the VF's PF-side settings from ``snapshot`` unless another claim holds it now.

        Raises :class:`DeviceError` when a setting cannot be restored (the driver keeps the
        device in its journal and retries).
        """
        if FACET not in device.facets:
            return
        plan = self._plan(device, snapshot)
        if plan is None:
            return
        others = other_holders(self._journal, device.device, pod.uid) if self._journal is not None else []
        if others:
            log.warning(
                "sriov: %s: not resetting the VF for pod %s: claim %s now holds it",
                device.device,
                pod.uid,
                ", ".join(others),
            )
            return
        pf, todo = plan
        failed = await restore(self.pf, pf, todo)
        if failed:
            raise DeviceError(device.device, "sriov restore", f"{pf} VF: cannot restore {', '.join(failed)}")

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
