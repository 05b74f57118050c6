"""The netdev NamespaceMover: move a link into a pod netns and configure it; give it back.

:class:`NetdevMover` is the facade the netdev backend delegates to. The work lives in:

* :mod:`.hostside` -- the host netns, its shared netlink client, finding a device;
* :mod:`.attach` -- the attach steps (:data:`ATTACH_STEPS`), transactional and resumable;
* :mod:`.restore` -- detach: bring the device home and restore its snapshot, step by step;
* :mod:`.renames` -- devices parked under a temporary name, renamed back by :meth:`run`,
  durable across restarts when a state file is given;
* :mod:`.snapshot` -- the host snapshot taken before the move;
* :mod:`.child` and :mod:`.subif` -- subinterface devices: a shareable parent stays on the
  host and each claim gets its own macvlan/ipvlan child in its pod (the journal holds the
  child's record instead of a host snapshot); detach deletes the child.

Pod netns paths come from the runtime and are opened without blocking and checked
(:func:`dranet_backends.netns.open_pod_netns`): a path that is not a pod's network namespace
is a :class:`~dranet_core.errors.DeviceError` at step ``netns`` naming the path and the rule.

The host netns is a parameter (a path, default this process's netns, held by an fd opened at
construction): the whole mover runs between two test namespaces as well as between the root
netns and a pod.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from dranet_backends.netdev import subif, sysctl
from dranet_backends.netdev.attach import ATTACH_STEPS, Attacher, AttachJob, link_attrs
from dranet_backends.netdev.child import ChildRecord, is_child_record, record_child
from dranet_backends.netdev.facet import FACET, NetdevFacet
from dranet_backends.netdev.hostside import HostSide, StepHook, StepObserver, temp_name
from dranet_backends.netdev.nsutil import SELF_NETNS, Rtnl, on_worker
from dranet_backends.netdev.renames import ParkedDevices
from dranet_backends.netdev.restore import Restorer
from dranet_backends.netdev.snapshot import HostSnapshot, take
from dranet_backends.netns import shown_path
from dranet_core.errors import DeviceError, DeviceNotFoundError
from dranet_core.mover import AttachResult
from dranet_core.plans import PreparedDevice
from dranet_core.types import JSON, PodSandbox

__all__ = [
    "ATTACH_STEPS",
    "FACET",
    "NetdevMover",
    "StepHook",
    "StepObserver",
    "link_attrs",
    "temp_name",
]

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 8
"""Snapshots, attaches and detaches one mover runs at once (see :class:`NetdevMover`)."""


class NetdevMover:
    """Moves netdevs between the host netns and pod netns (implements ``NamespaceMover``).

    ``host_netns`` is the path of the host network namespace (default: this process's);
    ``step_hook`` is a test seam (:data:`StepHook`); ``step_observer`` gets each step's
    duration (:data:`StepObserver`); ``state_file`` makes parked devices durable
    (:mod:`.renames`). Close with :meth:`aclose`.

    At most ``max_in_flight`` snapshots, attaches and detaches run at once; the rest wait
    their turn in arrival order. The kernel serialises link moves on one lock, so more in
    flight adds no throughput: it only piles up ready callbacks, and one event-loop turn
    that resumes a hundred of them stalls every other call the driver serves (kubelet,
    NRI, the API watch) for tens of milliseconds.
    """

    def __init__(
        self,
        *,
        host_netns: str = SELF_NETNS,
        proc_sys: str = sysctl.PROC_SYS_NET,
        step_hook: StepHook | None = None,
        step_observer: StepObserver | None = None,
        rename_retry_interval: float = 5.0,
        state_file: Path | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight: must be at least 1, got {max_in_flight}")
        self._slots = asyncio.Semaphore(max_in_flight)
        self._host = HostSide(host_netns, proc_sys, step_hook, step_observer)
        self._parked = ParkedDevices(self._host, state_file=state_file, interval=rename_retry_interval)
        self._restorer = Restorer(self._host, self._parked)
        self._attacher = Attacher(self._host, self._restorer)

    def __repr__(self) -> str:
        return (
            f"NetdevMover(host_netns={self._host.path!r}, pending_renames={len(self.pending_renames)}, "
            f"lost={len(self.lost)})"
        )

    @property
    def pending_renames(self) -> dict[int, str]:
        """Host ifindex -> original name, for devices parked under a temporary name."""
        return self._parked.names

    @property
    def lost(self) -> list[str]:
        """Devices (DRA names) found gone at detach: virtual devices whose netns ended."""
        return self._restorer.lost

    def set_step_observer(self, observer: StepObserver | None) -> None:
        """Report each step's duration to ``observer`` from now on."""
        self._host.observer = observer

    async def aclose(self) -> None:
        """Close the host netlink socket and the host netns fd (idempotent)."""
        await self._host.aclose()

    async def __aenter__(self) -> NetdevMover:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

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
        """Capture the host state of the device named by its netdev facet (JSON-able); for a
        subinterface device, the record of the child to create (:mod:`.child`)."""
        async with self._slots:
            return await self._snapshot(device)

    async def _snapshot(self, device: PreparedDevice) -> JSON:
        t0 = time.perf_counter()
        facet = self._facet(device, "snapshot")
        host = await self._host.rtnl()
        if device.config.subinterface is not None:
            try:
                return (await record_child(host, device, facet)).to_json()
            except OSError as exc:
                raise DeviceError(device.device, "snapshot", f"{facet.ifname}: {exc}") from exc
            finally:
                self._host.observe("snapshot", t0)
        ns_fd = self._host.ns_fd_for_thread
        proc_sys = self._host.proc_sys

        def take_on_worker() -> HostSnapshot:  # the lookup and the snapshot in one trip
            with host.held() as rtnl:
                link = rtnl.link_get(index=facet.ifindex)
                mac = facet.mac.lower()
                if link is not None and not (
                    link.get("ifname") == facet.ifname or (mac and str(link.get("address")).lower() == mac)
                ):
                    link = None  # the index was reused by another device
                if link is None:
                    link = rtnl.link_get(ifname=facet.ifname)
                if link is None:
                    raise DeviceNotFoundError(
                        device.device, "snapshot", f"no link {facet.ifname} on the host"
                    )
                return take(rtnl, ns_fd, link, facet.to_json(), proc_sys, self._host.ethtool_socket)

        try:
            snap = await on_worker(None, take_on_worker)
        except OSError as exc:
            raise DeviceError(device.device, "snapshot", f"{facet.ifname}: {exc}") from exc
        finally:
            self._host.observe("snapshot", t0)
        return snap.to_json()

    @staticmethod
    def _parse(device: PreparedDevice, snapshot: JSON, step: str) -> HostSnapshot:
        try:
            return HostSnapshot.from_json(snapshot)
        except ValueError as exc:
            raise DeviceError(device.device, step, str(exc)) from exc

    @staticmethod
    def _child(device: PreparedDevice, snapshot: JSON, step: str) -> ChildRecord | None:
        """The journalled child record, or None for a device that moves."""
        if not is_child_record(snapshot):
            if device.config.subinterface is not None:
                raise DeviceError(device.device, step, "subinterface config but no subinterface record")
            return None
        try:
            return ChildRecord.from_json(snapshot)
        except ValueError as exc:
            raise DeviceError(device.device, step, str(exc)) from exc

    @staticmethod
    def _pod_name(device: PreparedDevice, snap: HostSnapshot) -> str:
        iface = device.config.interface
        return (iface.name if iface and iface.name else None) or snap.ifname

    # -- attach --------------------------------------------------------------------------

    async def attach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> AttachResult:
        """Move the device into ``pod.netns`` and configure it (see :mod:`.attach`); for a
        subinterface device, create its child there instead."""
        async with self._slots:
            return await self._attach(device, pod, snapshot)

    async def _attach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> AttachResult:
        child = self._child(device, snapshot, "attach")
        snap = child.identity if child is not None else self._parse(device, snapshot, "attach")
        name = child.name if child is not None else self._pod_name(device, snap)
        if not pod.netns:
            raise DeviceError(device.device, "netns", f"pod {pod} has no network namespace")
        t0 = time.perf_counter()
        try:
            pod_fd, opened = await self._host.open_pod_rtnl(pod.netns)
        except ValueError as exc:
            self._host.observe("netns", t0)
            raise DeviceError(device.device, "netns", str(exc)) from exc
        except OSError as exc:
            self._host.observe("netns", t0)
            raise DeviceError(device.device, "netns", f"{shown_path(pod.netns)}: {exc.strerror}") from exc
        try:
            self._host.observe("netns", t0)
            if isinstance(opened, OSError):
                raise DeviceError(device.device, "netns", f"{shown_path(pod.netns)}: {opened}") from opened
            async with opened as pod_rtnl:
                job = AttachJob(
                    device=device,
                    snap=snap,
                    cfg=device.config,
                    name=name,
                    pod_fd=pod_fd,
                    pod=pod_rtnl,
                    child=child,
                )
                return await self._attacher.run(job)
        finally:
            os.close(pod_fd)

    # -- detach --------------------------------------------------------------------------

    async def detach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> None:
        """Bring the device home under its original name and restore the snapshot.

        Returns only when the device is home and restored, or verifiably gone (see
        :mod:`.restore`); raises :class:`~dranet_core.errors.DeviceError` otherwise. For a
        subinterface device: delete its child (:meth:`_detach_child`).
        """
        async with self._slots:
            await self._detach(device, pod, snapshot)

    async def _detach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> None:
        child = self._child(device, snapshot, "detach")
        if child is not None:
            await self._detach_child(device, pod, child)
            return
        snap = self._parse(device, snapshot, "detach")
        name = self._pod_name(device, snap)
        iface = device.config.interface
        cfg_mac = iface.hardware_addr if iface else None
        pod_fd = -1
        if pod.netns:
            try:
                pod_fd = await self._host.open_pod(pod.netns)
            except ValueError as exc:
                log.warning("detach of %s: the pod netns path is no longer usable: %s", device.device, exc)
            except OSError as exc:
                shown = shown_path(pod.netns)
                log.warning("detach of %s: pod netns %s is gone (%s)", device.device, shown, exc.strerror)
        try:
            pod_rtnl = None
            if pod_fd >= 0:
                try:
                    pod_rtnl = await Rtnl.open(pod_fd)
                except OSError as exc:
                    shown = shown_path(pod.netns)
                    log.warning("detach of %s: %s is not a usable netns (%s)", device.device, shown, exc)
            if pod_rtnl is not None:
                async with pod_rtnl:
                    await self._restorer.bring_home(device.device, snap, pod_rtnl, name, cfg_mac)
            else:
                await self._restorer.bring_home(device.device, snap, None, name, cfg_mac)
        finally:
            if pod_fd >= 0:
                os.close(pod_fd)

    async def _detach_child(self, device: PreparedDevice, pod: PodSandbox, rec: ChildRecord) -> None:
        """Delete the claim's child; the parent is never touched.

        In the pod's netns when it opens; when it does not (the path is gone), the child is
        looked for in every live namespace: verifiably gone where none holds a link like it;
        deleted where exactly one does and its MAC is the driver's random one (no other link
        has it); an error (retried) where several do. A child whose MAC is not unique (ipvlan:
        the parent's; or a configured one) found elsewhere is left alone with a warning: it
        cannot be told from another claim's child of the same parent, and it ends with its
        namespace (the parent is not affected).
        """
        pod_fd = -1
        if pod.netns:
            try:
                pod_fd = await self._host.open_pod(pod.netns)
            except (ValueError, OSError) as exc:
                log.warning(
                    "detach of %s: pod netns %s is not usable: %s", device.device, shown_path(pod.netns), exc
                )
        try:
            await self._host.at(device.device, "return")
            if pod_fd >= 0:
                try:
                    async with await Rtnl.open(pod_fd) as pod_rtnl:
                        if not await subif.delete_child(pod_rtnl, rec.name, rec.is_ours):
                            log.info(
                                "detach of %s: subinterface %s was already gone", device.device, rec.name
                            )
                        return
                except OSError as exc:
                    raise DeviceError(device.device, "return", f"subinterface {rec.name}: {exc}") from exc
            await self._delete_child_elsewhere(device, rec)
        finally:
            if pod_fd >= 0:
                os.close(pod_fd)

    async def _delete_child_elsewhere(self, device: PreparedDevice, rec: ChildRecord) -> None:
        try:
            hits = await self._host.find_elsewhere(rec.identity, None)
        except OSError as exc:
            raise DeviceError(
                device.device, "return", f"subinterface {rec.name}: {exc}", temporary=True
            ) from exc
        try:
            where = ", ".join(path for _, path in hits[:4])
            if hits and not rec.unique_mac:
                log.warning(
                    "detach of %s: the pod netns is gone and %d namespace(s) (%s) hold a %s link with "
                    "the MAC of subinterface %s, which may be another claim's: left alone; it ends "
                    "with its namespace",
                    device.device,
                    len(hits),
                    where,
                    rec.kind,
                    rec.name,
                )
                return
            if len(hits) > 1:
                raise DeviceNotFoundError(
                    device.device,
                    "return",
                    f"subinterface {rec.name} is not in the pod and {len(hits)} namespaces hold a link "
                    f"like it ({where}); not guessing which",
                    temporary=True,
                )
            if not hits:
                log.info(
                    "detach of %s: subinterface %s ended with its pod's namespace", device.device, rec.name
                )
                return
            async with await Rtnl.open(hits[0][0]) as rtnl:
                for link in await rtnl.link_dump():
                    if rec.is_ours(link):
                        await rtnl.link_del(int(link["index"]))
            log.info("detach of %s: subinterface %s deleted in %s", device.device, rec.name, hits[0][1])
        except OSError as exc:
            raise DeviceError(
                device.device, "return", f"subinterface {rec.name}: {exc}", temporary=True
            ) from exc
        finally:
            for fd, _ in hits:
                os.close(fd)

    # -- parked devices ------------------------------------------------------------------

    async def retry_renames(self) -> int:
        """Give parked devices their original names where now free; returns how many."""
        return await self._parked.retry(self._restorer.restore)

    async def run(self) -> NoReturn:
        """:meth:`retry_renames` forever, every ``rename_retry_interval`` seconds (supervised)."""
        while True:
            await asyncio.sleep(self._parked.interval)
            try:
                await self.retry_renames()
            except OSError as exc:
                log.warning("retrying renames of parked devices: %s", exc)
