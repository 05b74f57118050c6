"""Adapters that connect the protocol layers to the pod glue, with metrics and logs.

* :class:`MeteredPodEvents` is the handler object given to the NRI plugin: RunPodSandbox,
  StopPodSandbox, RemovePodSandbox, CreateContainer and Synchronize, each timed and counted
  with the Go driver's metric labels (``noop`` when the pod has no devices of ours), and
  tracked as in flight so shutdown can wait for them.
* :class:`MeteredPreparer` wraps the kubelet-side ClaimPreparer the same way.
* :class:`PublishedReport` turns what the API server accepted into metrics and health.
* :class:`InFlight` counts running calls and lets shutdown wait for zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from dranet_core.dra.servicer import ClaimPreparer, PrepareResult
from dranet_core.health import HealthPart
from dranet_core.nri.handlers import ContainerInfo
from dranet_core.observability import Metrics
from dranet_core.pods import PodNetworking
from dranet_core.status import EventRecord, PublishListener, ReportsPublished, StatusPublisher
from dranet_core.types import ClaimRef, Device, DeviceNode, DeviceStatus, PodSandbox

__all__ = ["InFlight", "MeteredPodEvents", "MeteredPreparer", "PublishedReport", "reporting_publisher"]

log = logging.getLogger(__name__)


class InFlight:
    """Counts calls in progress; :meth:`wait_idle` returns when there are none."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __repr__(self) -> str:
        return f"InFlight(count={self.count})"

    @contextlib.asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        """Count the block as one call in flight."""
        self.count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.count -= 1
            if self.count == 0:
                self._idle.set()

    async def wait_idle(self, grace: float) -> bool:
        """Wait up to ``grace`` seconds for no call in flight; True if idle."""
        try:
            await asyncio.wait_for(self._idle.wait(), grace)
        except TimeoutError:
            return False
        return True


class MeteredPodEvents:
    """The NRI handler object: pod events to :class:`PodNetworking`, with metrics.

    Synchronize (every connect) runs the reconciliation; ``on_synchronized`` (optional) is
    called after each one.
    """

    def __init__(
        self,
        pods: PodNetworking,
        *,
        metrics: Metrics | None = None,
        inflight: InFlight | None = None,
        on_synchronized: Callable[[], None] | None = None,
    ) -> None:
        self.pods = pods
        self.metrics = metrics
        self.inflight = inflight or InFlight()
        self._on_synchronized = on_synchronized

    def __repr__(self) -> str:
        return f"MeteredPodEvents({self.pods!r}, {self.inflight!r})"

    def _done(self, method: str, status: str, t0: float) -> None:
        if self.metrics is not None:
            self.metrics.nri_requests.labels(method=method, status=status).inc()
            self.metrics.nri_latency.labels(method=method, status=status).observe(time.perf_counter() - t0)

    async def run_pod_sandbox(self, pod: PodSandbox) -> None:
        """Move the pod's devices in; an error fails the sandbox (the kubelet retries)."""
        t0 = time.perf_counter()
        if not self.pods.has_devices(pod.uid):
            self._done("RunPodSandbox", "noop", t0)
            return
        async with self.inflight.track():
            try:
                await self.pods.attach_pod(pod)
            except BaseException:
                self._done("RunPodSandbox", "failed", t0)
                raise
        self._done("RunPodSandbox", "success", t0)

    async def stop_pod_sandbox(self, pod: PodSandbox) -> None:
        """Bring the pod's devices home while its netns still exists."""
        t0 = time.perf_counter()
        if not self.pods.has_devices(pod.uid) and not self.pods.held_by(pod.uid):
            self._done("StopPodSandbox", "noop", t0)
            return
        async with self.inflight.track():
            await self.pods.detach_pod(pod)
        self._done("StopPodSandbox", "success", t0)

    async def remove_pod_sandbox(self, pod: PodSandbox) -> None:
        """Bookkeeping only; if a StopPodSandbox was missed, bring devices home now."""
        t0 = time.perf_counter()
        if not self.pods.held_by(pod.uid):
            self._done("RemovePodSandbox", "noop", t0)
            return
        async with self.inflight.track():
            await self.pods.detach_pod(pod)
        self._done("RemovePodSandbox", "success", t0)

    async def undo_late_run_pod_sandbox(self, pod: PodSandbox) -> None:
        """The runtime failed this sandbox while its RunPodSandbox was still attaching: the
        driver brings every device the dead sandbox holds home (its netns is going away)."""
        async with self.inflight.track():
            await self.pods.detach_pod(pod)
        if self.metrics is not None:
            self.metrics.nri_requests.labels(method="RunPodSandbox", status="undone").inc()

    async def create_container(self, pod: PodSandbox, container: ContainerInfo) -> Sequence[DeviceNode]:
        """Device nodes (RDMA, vfio) for the container."""
        t0 = time.perf_counter()
        nodes = self.pods.container_devices(pod)
        self._done("CreateContainer", "success" if nodes else "noop", t0)
        return nodes

    async def synchronize(self, pods: Sequence[PodSandbox], containers: Sequence[ContainerInfo]) -> None:
        """Reconcile every journalled device with the runtime's pods (after any reconnect)."""
        async with self.inflight.track():
            await self.pods.reconcile(pods)
        if self._on_synchronized is not None:
            self._on_synchronized()


class MeteredPreparer:
    """A ClaimPreparer that records the Go driver's DRA metrics and tracks in-flight calls."""

    def __init__(self, inner: ClaimPreparer, *, metrics: Metrics | None, inflight: InFlight) -> None:
        self.inner = inner
        self.metrics = metrics
        self.inflight = inflight
        # the labelled children, each looked up once, on first use (a labels() call per
        # kubelet call costs more than the increment; a series still appears when first used)
        self._counts: dict[tuple[str, bool], Any] = {}
        self._latency: dict[str, Any] = {}

    def _done(self, method: str, failed: bool, t0: float) -> None:
        if self.metrics is None:
            return
        count = self._counts.get((method, failed))
        if count is None:
            status = "failed" if failed else "success"
            count = self._counts[(method, failed)] = self.metrics.dra_requests.labels(
                method=method, status=status
            )
        latency = self._latency.get(method)
        if latency is None:
            latency = self._latency[method] = self.metrics.dra_latency.labels(method=method)
        count.inc()
        latency.observe(time.perf_counter() - t0)

    async def prepare(self, claims: Sequence[ClaimRef]) -> Mapping[str, PrepareResult]:
        """Prepare, counted ``failed`` if any claim has an error."""
        t0 = time.perf_counter()
        async with self.inflight.track():
            out = await self.inner.prepare(claims)
        self._done("PrepareResourceClaims", any(isinstance(r, str) for r in out.values()), t0)
        return out

    async def unprepare(self, claims: Sequence[ClaimRef]) -> Mapping[str, str | None]:
        """Unprepare, counted ``failed`` if any claim has an error."""
        t0 = time.perf_counter()
        async with self.inflight.track():
            out = await self.inner.unprepare(claims)
        self._done("UnprepareResourceClaims", any(r is not None for r in out.values()), t0)
        return out


class PublishedReport:
    """The PublishListener of the driver: what the API server accepted, as metrics and health.

    Pushes the ``published`` part: failing with the cause while API calls fail, failing
    ("publishing ResourceSlices") until the first device set is accepted, then ok with the
    number of devices the cluster holds; and sets ``dranet_driver_published_devices_total``
    and ``dranet_driver_last_published_time_seconds`` only on acceptance.
    """

    def __init__(self, part: HealthPart, *, metrics: Metrics | None, rdma_attribute: str) -> None:
        self.part = part
        self.metrics = metrics
        self.rdma_attribute = rdma_attribute
        self.accepted: int | None = None
        self.error: str | None = None

    def __repr__(self) -> str:
        return f"PublishedReport(accepted={self.accepted}, error={self.error!r})"

    def published(self, devices: Sequence[Device]) -> None:
        """The API server accepted ``devices``."""
        self.accepted = len(devices)
        self.error = None
        if self.metrics is not None:
            rdma = sum(1 for d in devices if d.attributes.get(self.rdma_attribute) is True)
            self.metrics.record_published(total=len(devices), rdma=rdma)
        self._push()

    def api_state(self, error: str | None) -> None:
        """The last API call failed with ``error``, or succeeded."""
        self.error = error
        self._push()

    def _push(self) -> None:
        if self.error is not None:
            self.part.failing(f"{self.error} (retrying)")
        elif self.accepted is None:
            self.part.failing("publishing ResourceSlices")
        else:
            self.part.ok(f"{self.accepted} devices published")


class ReportAtHandOver:
    """A StatusPublisher wrapper for publishers that cannot tell what the cluster accepted:
    it reports the device set as published once ``publish_devices`` returned."""

    def __init__(self, inner: StatusPublisher, listener: PublishListener) -> None:
        self.inner = inner
        self.listener = listener

    def __repr__(self) -> str:
        return f"ReportAtHandOver({self.inner!r})"

    async def publish_devices(self, devices: Sequence[Device]) -> None:
        """Publish, then report the devices as published."""
        await self.inner.publish_devices(devices)
        self.listener.published(devices)

    async def set_claim_status(self, claim: ClaimRef, devices: Sequence[DeviceStatus]) -> None:
        """Delegate."""
        await self.inner.set_claim_status(claim, devices)

    async def clear_claim_status(self, claim: ClaimRef) -> None:
        """Delegate."""
        await self.inner.clear_claim_status(claim)

    async def record_event(self, event: EventRecord) -> None:
        """Delegate."""
        await self.inner.record_event(event)

    async def run(self) -> None:
        """Delegate."""
        await self.inner.run()


def reporting_publisher(publisher: StatusPublisher, listener: PublishListener) -> StatusPublisher:
    """``publisher`` with ``listener`` told what was published: by the publisher itself when
    it reports acceptance (:class:`ReportsPublished`), else at hand-over."""
    if isinstance(publisher, ReportsPublished):
        publisher.add_listener(listener)
        return publisher
    return ReportAtHandOver(publisher, listener)
