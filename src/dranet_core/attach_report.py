"""What the cluster and the metrics learn from the pod side: the driver's AttachObserver.

:class:`AttachReport` implements :class:`~dranet_core.ports.AttachObserver`:

* every mover call goes into the attach/detach latency histograms, every journal change into
  the devices-per-state gauge;
* an attach writes the claim's ``status.devices`` (``Ready=True`` and the network data read
  back from the kernel);
* a failed attach writes the failing device's status with ``Ready=False``, the reason
  (``NetworkDeviceAttachFailed``, or ``RDMADeviceAttachFailed`` when the RDMA step failed)
  and the error as message, and posts the same reason as a Warning Event on the Pod.

It never raises: a publisher that cannot queue is logged, the NRI path goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence

import attrs

from dranet_core.checkpoint import CheckpointProblem, PreparedClaim
from dranet_core.errors import DeviceError, DranetError
from dranet_core.observability import Metrics
from dranet_core.plans import ClaimPlan, PreparedDevice
from dranet_core.pods import journal_statuses
from dranet_core.status import EventRecord, StatusPublisher
from dranet_core.types import ClaimRef, Condition, DeviceStatus, PodSandbox

__all__ = ["AttachReport", "PhaseHold", "checkpoint_event", "failure_reason"]

log = logging.getLogger(__name__)

MAX_MESSAGE = 1024
"""Longest condition/event message written (the API server caps Event messages)."""


def failure_reason(error: DranetError) -> str:
    """``RDMADeviceAttachFailed`` when the RDMA step failed, else ``NetworkDeviceAttachFailed``."""
    if isinstance(error, DeviceError) and "rdma" in error.step.lower():
        return "RDMADeviceAttachFailed"
    return "NetworkDeviceAttachFailed"


class AttachReport:
    """The driver's attach observer: metrics, claim status and events (module doc)."""

    def __init__(
        self, publisher: StatusPublisher, *, driver_name: str, pool: str, metrics: Metrics | None = None
    ) -> None:
        self.publisher = publisher
        self.driver_name = driver_name
        self.pool = pool
        self.metrics = metrics

    def __repr__(self) -> str:
        return f"AttachReport(driver={self.driver_name!r}, pool={self.pool!r})"

    def mover_done(self, action: str, backend: str, ok: bool, seconds: float) -> None:
        """Observe one mover call in the attach or detach latency histogram."""
        if self.metrics is None:
            return
        hist = self.metrics.attach_latency if action == "attach" else self.metrics.detach_latency
        hist.labels(backend=backend, status="success" if ok else "failed").observe(seconds)

    def journal_changed(self, states: Mapping[str, int]) -> None:
        """Set the devices-per-state gauge."""
        if self.metrics is not None:
            self.metrics.set_device_states(states)

    async def attached(self, claim: ClaimRef, statuses: Sequence[DeviceStatus]) -> None:
        """Queue the claim's status."""
        try:
            await self.publisher.set_claim_status(claim, statuses)
        except Exception as exc:  # the status must never break the NRI path
            log.warning("cannot queue the status of claim %s: %s", claim, exc)

    async def attach_failed(
        self, pod: PodSandbox, claim: ClaimRef, device: PreparedDevice, error: DranetError
    ) -> None:
        """Queue ``Ready=False`` for ``device`` of ``claim`` and a Warning Event on ``pod``."""
        reason = failure_reason(error)
        message = str(error)[:MAX_MESSAGE]
        status = DeviceStatus(
            driver=self.driver_name,
            pool=device.pool or self.pool,
            device=device.device,
            conditions=(Condition(type="Ready", status="False", reason=reason, message=message),),
            share_id=device.share_id,
        )
        event = EventRecord(
            kind="Pod",
            namespace=pod.namespace,
            name=pod.name,
            uid=pod.uid,
            type="Warning",
            reason=reason,
            message=message,
        )
        try:
            await self.publisher.set_claim_status(claim, [status])
            await self.publisher.record_event(event)
        except Exception as exc:  # never break the NRI path
            log.warning("cannot report the failed attach of claim %s: %s", claim, exc)

    async def unprepared(self, claim: ClaimRef, plan: ClaimPlan | None) -> None:
        """The claim is being unprepared: remove the status entries this driver wrote."""
        if plan is None:
            return
        try:
            await self.publisher.clear_claim_status(claim)
        except Exception as exc:
            log.warning("cannot queue clearing the status of claim %s: %s", claim, exc)

    async def prepare_failed(self, claim: ClaimRef, error: Exception) -> None:
        """A prepare failed: a Warning ``ClaimPrepareFailed`` Event on the ResourceClaim."""
        event = EventRecord(
            kind="ResourceClaim",
            namespace=claim.namespace,
            name=claim.name,
            uid=claim.uid,
            type="Warning",
            reason="ClaimPrepareFailed",
            message=str(error)[:MAX_MESSAGE],
        )
        try:
            await self.publisher.record_event(event)
        except Exception as exc:
            log.warning("cannot queue the ClaimPrepareFailed event of %s: %s", claim, exc)

    async def reassert(self, claims: Iterable[PreparedClaim]) -> None:
        """After a restart: write again the status of every claim with attached devices,
        from the journal (the API server may have lost or never got the last write)."""
        for pc in claims:
            statuses = journal_statuses(pc, driver_name=self.driver_name, pool=self.pool)
            if statuses:
                await self.attached(pc.plan.claim, statuses)


def checkpoint_event(problem: CheckpointProblem, *, node: str) -> EventRecord:
    """The Warning Event on the Node for a checkpoint that could not be used."""
    return EventRecord(
        kind="Node",
        namespace="default",
        name=node,
        uid="",
        type="Warning",
        reason="CheckpointUnusable",
        message=str(problem)[:MAX_MESSAGE],
    )


@attrs.frozen
class PhaseHold:
    """The ``--debug-hold-after`` seam: wait ``seconds`` after the journal write of ``phase``."""

    phase: str
    seconds: float

    async def __call__(self, phase: str) -> None:
        """Hold if ``phase`` is the configured one."""
        if phase == self.phase:
            log.warning("debug: holding %.1fs after journal phase %s", self.seconds, phase)
            await asyncio.sleep(self.seconds)
