"""Composition: settings -> backends -> allocator, movers, publisher -> servers and loops.

:class:`Driver` wires the pieces for one node and runs them under one
:class:`~dranet_core.supervisor.Supervisor`. It takes its environment as parameters (the
backends, the StatusPublisher, the ClaimSource), so the reference driver (:func:`run_driver`,
talking to the API server), ``dranet demo`` (local publisher, in-process peers) and a
library user (``examples/``) compose it the same way.

Start (:meth:`Driver.run`): load the checkpoint -> serve /healthz + /metrics -> scan and
publish devices -> serve the kubelet sockets (registration is then up to the kubelet) ->
connect to the runtime over NRI, whose Synchronize reconciles every journalled device
(see :mod:`dranet_core.pods`). /healthz turns 200 once the kubelet accepted the
registration, NRI is registered and synchronized, and the first inventory was published.

Stop (first SIGTERM, or the ``stop`` event): the kubelet side refuses new prepares, lets
in-flight kubelet and NRI calls finish within ``settings.shutdown.grace_period``, removes
its sockets; then every job is cancelled and NRI is closed. Devices in running pods stay
where they are (they keep working; the next start reconciles). A second signal exits at
once. A fatal job error stops everything and :meth:`run` raises it
(:class:`~dranet_core.supervisor.JobFailed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import pathlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import attrs

from dranet_core.attach_report import AttachReport, PhaseHold, checkpoint_event
from dranet_core.backend_health import BackendHealth
from dranet_core.backends import BackendContext, context_for, load_backends
from dranet_core.capabilities import Backend, HandlerTable, handler_table
from dranet_core.checkpoint import ClaimStore, read_boot_id
from dranet_core.claim_allocator import ClaimAllocator
from dranet_core.cloud import fetch_cloud_attributes
from dranet_core.cloud.detect import detect_cloud_provider
from dranet_core.cloud.options import warn_unused_options
from dranet_core.cloud.webhook import WebhookCloud
from dranet_core.dra.health import DeviceHealthFeed, health_services
from dranet_core.dra.plugin import KubeletPlugin, PluginPaths
from dranet_core.dra.preparer import ClaimSource, DefaultPreparer
from dranet_core.errors import DranetError, TemporaryError
from dranet_core.filter import DeviceFilter
from dranet_core.health import Health
from dranet_core.inventory import Inventory
from dranet_core.metadata.document import MetadataLayout
from dranet_core.metadata.writer import MetadataWriter
from dranet_core.metered import (
    InFlight,
    MeteredPodEvents,
    MeteredPreparer,
    PublishedReport,
    reporting_publisher,
)
from dranet_core.nri.plugin import NriPlugin
from dranet_core.observability import Metrics, ObservabilityServer
from dranet_core.pinstore import PinStore
from dranet_core.plans import ClaimPlan
from dranet_core.pods import PodNetworking
from dranet_core.profiles import WebhookProfileProvider
from dranet_core.settings import Settings
from dranet_core.status import DescribesNode, RunsJobs, StatusPublisher
from dranet_core.supervisor import (
    Clock,
    Job,
    JobFailed,
    ShutdownSignals,
    Supervisor,
    always_recoverable,
    fatal_cause,
)
from dranet_core.types import ClaimRef, Device

__all__ = [
    "Driver",
    "JobFailed",
    "kube_environment",
    "load_backends_for",
    "run_driver",
    "settle_heap",
]

log = logging.getLogger(__name__)

RDMA_ATTRIBUTE = "dra.net/rdma"


def settle_heap() -> None:
    """Collect garbage once, then move every object alive now to the collector's permanent
    generation (:func:`gc.freeze`).

    What start-up built (modules, classes, the kubernetes client's models: ~75,000 objects)
    lives as long as the process; without this, each automatic full collection walks all of
    it again, a pause of tens of milliseconds on the event loop that lands on whatever
    kubelet or runtime call is in flight. Frozen objects are never collected, so this is
    called once, when the driver is ready; objects made later are collected as usual.
    """
    gc.collect()
    gc.freeze()
    log.debug("heap settled: %d object(s) moved to the permanent generation", gc.get_freeze_count())


def _pin_path(db_path: pathlib.Path | None) -> pathlib.Path | None:
    """The pinned-devices file lives next to the checkpoint (none without a checkpoint)."""
    return None if db_path is None else db_path.with_name(db_path.name + ".pinned.json")


def backend_context(settings: Settings) -> BackendContext:
    """The context every backend factory gets (:func:`~dranet_core.backends.context_for`)."""
    return context_for(settings)


def load_backends_for(settings: Settings) -> list[Backend]:
    """Load the backends ``settings`` names (all installed ones when None) via entry points."""
    return load_backends(backend_context(settings), enabled=settings.backends)


class Driver:
    """One node's dranet driver: the composition root (module doc).

    ``backends`` are loaded backends in attach order; ``publisher`` publishes slices,
    claim status and events; ``claim_source`` reads claims for NodePrepareResources.
    The constructor only builds the parts and hands each the narrow ports it needs
    (:mod:`dranet_core.ports`); :meth:`run` starts them as named supervised jobs. No part
    calls back into the driver.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        backends: Sequence[Backend],
        publisher: StatusPublisher,
        claim_source: ClaimSource,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        node_provider_id: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        self.settings = settings
        if node_provider_id is None and isinstance(publisher, DescribesNode):
            node_provider_id = publisher.node_provider_id
        self.node_provider_id = node_provider_id
        """Reads the Node's ``spec.providerID`` for cloud auto-detection (None: no Node to read;
        by default the publisher's, when it can)."""
        self.table: HandlerTable = handler_table(backends)
        self.metrics = metrics or Metrics()
        for timer in self.table.step_timers:
            timer.set_step_observer(self.metrics.observe_attach_step)
        self.health = Health(clock)
        self.clock = clock
        self.claim_source = claim_source
        name = settings.kube.driver_name
        pool = settings.kube.node_name
        report = PublishedReport(
            self.health.part("published"), metrics=self.metrics, rdma_attribute=RDMA_ATTRIBUTE
        )
        self.publisher = reporting_publisher(publisher, report)
        self.store = ClaimStore(settings.checkpoint.db_path, boot_id=read_boot_id(settings.host.procfs_root))
        prof = settings.profile
        self.profiles = (
            WebhookProfileProvider(prof.webhook_url) if prof.provider.lower() == "webhook" else None
        )
        cloud = settings.cloud
        self.cloud_webhook = (
            WebhookCloud(cloud.webhook_url) if cloud.hint.strip().lower() == "webhook" else None
        )
        self.allocator = ClaimAllocator(
            name,
            pool,
            self.store,
            validators=self.table.validators,
            resolvers=self.table.resolvers,
            profiles=self.profiles,
            baselines=self.cloud_webhook,
        )
        inv = settings.inventory
        self.inventory = Inventory(
            self.table.discoverers,
            self.publisher,
            filter=DeviceFilter.compile(inv.filter),
            min_interval=inv.min_poll_interval,
            burst=inv.poll_burst,
            resync=inv.max_poll_interval,
            pin_store=PinStore(_pin_path(settings.checkpoint.db_path)),
            list_attributes=inv.list_attributes,
        )
        self.attach_report = AttachReport(self.publisher, driver_name=name, pool=pool, metrics=self.metrics)
        md = settings.metadata
        self.metadata = MetadataWriter(
            MetadataLayout.for_plugin_dir(name, settings.kubelet.plugin_dir(name), md.cdi_dir, md.versions),
            enabled=md.enabled,
            inventory=lambda: self.inventory.current().devices,
            fetch=claim_source.get,
        )
        hold = settings.debug.hold_phase
        self.pods = PodNetworking(
            store=self.store,
            movers=self.table.movers,
            driver_name=name,
            pool=pool,
            device_nodes=[(n, a.device_nodes) for n, a in self.table.adjusters],
            observer=self.attach_report,
            pins=self.inventory,
            events=self.publisher,
            hold=PhaseHold(hold, settings.debug.hold_seconds) if hold else None,
            device_observer=self.metadata,
        )
        for backend in backends:  # read access to the journal (sriov: release safety)
            bind = getattr(backend, "bind_journal", None)
            if callable(bind):
                bind(self.store)
        self.inflight = InFlight()
        self.nri_handlers = MeteredPodEvents(self.pods, metrics=self.metrics, inflight=self.inflight)
        pods = self.pods
        preparer = DefaultPreparer(
            claim_source,
            self.allocator,
            lambda: self.inventory.current().devices,
            on_unprepare=[
                lambda ref, _plan: pods.release_claim(ref),
                self.metadata.forget,
                self.attach_report.unprepared,
                self._release_profiles,
            ],
            on_prepare_error=[self.attach_report.prepare_failed],
            on_prepared=self.metadata.prepared,
        )
        self.device_health = DeviceHealthFeed()
        health_servicers, health_names = health_services(self.device_health, pool)
        self.kubelet = KubeletPlugin(
            name,
            MeteredPreparer(preparer, metrics=self.metrics, inflight=self.inflight),
            paths=PluginPaths.for_driver(name, settings.kubelet.root_dir),
            health=self.health.part("kubelet"),
            dra_services=health_servicers,
            advertised=health_names,
        )
        self.nri = NriPlugin(
            self.nri_handlers,
            socket_path=settings.nri.socket_path,
            plugin_name=name,
            plugin_index=settings.nri.plugin_index,
            shutdown_grace=settings.shutdown.grace_period,
            health=self.health.part("nri"),
        )
        self.backend_health: BackendHealth | None = None
        if self.table.health:
            self.backend_health = BackendHealth(
                self.table.health,
                self.health.part("device health"),
                on_devices=self.device_health.update,
                devices=lambda: self.inventory.current().devices,
            )
        self.server: ObservabilityServer | None = None
        if settings.observability.bind_address:
            self.server = ObservabilityServer(
                settings.observability.bind_address, health=self.health, metrics=self.metrics
            )
        self._stopping = False
        self.started_at: float | None = None
        self.ready_at: float | None = None
        self.settle_heap_when_ready = False
        """Call :func:`settle_heap` once the driver is ready (:func:`run_driver` sets it: the
        collector's state is the process's, so a library user or a test decides for itself)."""

    def __repr__(self) -> str:
        return f"Driver(node={self.settings.kube.node_name!r}, {self.health!r})"

    # --- jobs ---

    async def _release_profiles(self, ref: ClaimRef, plan: ClaimPlan | None) -> None:
        """Unprepare: give back what the profile provider handed out for the claim's devices."""
        if self.profiles is None or plan is None:
            return
        devices = self.inventory.current().devices
        for d in plan.devices:
            if d.config.profile:
                await self.profiles.release(devices.get(d.device) or Device(name=d.device), ref.uid, d.config)

    async def _inventory_scan(self) -> None:
        view = await self.inventory.refresh()
        self.health.ok("inventory", f"{len(view.devices)} devices found, {len(view.published)} to publish")

    async def _kubelet_job(self) -> None:
        await self.kubelet.run()  # returns after shutdown() (or raises)
        if not self._stopping:
            raise TemporaryError("the kubelet plugin servers stopped unexpectedly")

    async def _log_ready(self) -> None:
        await self.health.wait_ready()
        self.ready_at = time.monotonic()
        if self.started_at is not None:
            log.info("driver ready in %.2fs", self.ready_at - self.started_at)
        if self.settle_heap_when_ready:
            settle_heap()

    def _jobs(self) -> list[Job]:
        """Every long-lived loop of the driver, each a named job reporting into its own part.

        Loops of code the driver does not own (backends, the publisher's writers, the NRI
        session) are restarted after any error; the driver's own parts stop it on a fatal one.
        """
        pub = self.publisher
        loops: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            *(pub.jobs() if isinstance(pub, RunsJobs) else [("status publisher", pub.run)]),
            *self.inventory.jobs(),
            *((f"{name} background", b.run) for name, b in self.table.background),
        ]
        jobs = [Job(name=n, run=run, part=n, recoverable=always_recoverable) for n, run in loops]
        if self.server is not None:
            jobs.append(Job(name="observability server", run=self.server.serve, part="observability server"))
        own = functools.partial(Job, manages_health=True, recoverable=always_recoverable)
        jobs.append(own(name="inventory", run=self._inventory_scan, finishable=True, part="inventory"))
        if self.backend_health is not None:
            jobs.append(own(name="device health", run=self.backend_health.run, part="device health"))
        jobs.append(own(name="nri", run=self.nri.run, part="nri"))
        jobs.append(
            Job(name="kubelet", run=self._kubelet_job, finishable=True, manages_health=True, part="kubelet")
        )
        jobs.append(Job(name="ready log", run=self._log_ready, finishable=True))
        from dranet_core.kube.claimcache import ClaimCache

        if isinstance(self.claim_source, ClaimCache):  # not a health part: a miss costs one GET
            jobs.append(Job(name="claim cache", run=self.claim_source.run, recoverable=always_recoverable))
        jobs.append(Job(name="checkpoint retry", run=self.store.run, recoverable=always_recoverable))
        return jobs

    # --- lifecycle ---

    async def run(
        self, *, stop: asyncio.Event | None = None, started: Callable[[], None] | None = None
    ) -> None:
        """Run until ``stop`` is set (or forever), then shut down gracefully (module doc)."""
        self.started_at = time.monotonic()
        stop = stop or asyncio.Event()
        if self.profiles is not None:
            await self.profiles.check()  # the Go driver refuses to start without a profile provider
        if self.cloud_webhook is not None:
            if await self.cloud_webhook.check():
                self.inventory.enrich = self.cloud_webhook.enrich
        else:
            cloud = self.settings.cloud
            hint = cloud.hint
            if not hint.strip():
                hint = await detect_cloud_provider(self.node_provider_id, self.settings.host.sysfs_root)
            warn_unused_options(cloud.options, hint)
            found = await fetch_cloud_attributes(
                hint, cloud.metadata_url, seconds=cloud.timeout, sysfs=self.settings.host.sysfs_root
            )
            if found:
                self.inventory.enrich = found.enrich
                self.allocator.baselines = found
        problem = await self.store.load()
        if problem is not None:
            await self.publisher.record_event(checkpoint_event(problem, node=self.settings.kube.node_name))
        await self.metadata.recover(self.store.claims())
        self.attach_report.journal_changed(self.pods.states())
        self.inventory.hold_only(self.pods.held_devices())
        await self.attach_report.reassert(self.store.claims().values())
        async with Supervisor(health=self.health, clock=self.clock) as sup:
            for job in self._jobs():
                sup.start(job)
            if started is not None:
                started()
            await stop.wait()
            await self.shutdown(sup)

    async def shutdown(self, sup: Supervisor) -> None:
        """The ordered shutdown: drain kubelet + NRI calls, remove sockets, cancel the jobs."""
        grace = self.settings.shutdown.grace_period
        self._stopping = True
        t0 = time.monotonic()
        log.info("shutting down: refusing new prepares, %.1fs for in-flight calls", grace)
        await self.kubelet.shutdown(grace)  # drains DRA calls, removes the sockets
        left = max(0.0, grace - (time.monotonic() - t0))
        if not await self.inflight.wait_idle(left):
            log.warning("shutdown: %d call(s) still in flight after the grace period", self.inflight.count)
        await sup.stop("nri")
        await self.nri.aclose()
        await sup.stop()
        if self.profiles is not None:
            await self.profiles.close()
        if self.cloud_webhook is not None:
            await self.cloud_webhook.close()
        log.info("driver stopped in %.2fs; devices in running pods stay attached", time.monotonic() - t0)


@contextlib.asynccontextmanager
async def kube_environment(settings: Settings) -> AsyncIterator[tuple[StatusPublisher, ClaimSource]]:
    """The API-server side of the driver: the StatusPublisher (which also reads this Node's
    ``spec.providerID`` for cloud auto-detection) and the ClaimSource."""
    from dranet_core.kube.apiversion import ResourceApiVersion
    from dranet_core.kube.claimcache import ClaimCache
    from dranet_core.kube.claims import ApiClaimSource
    from dranet_core.kube.client import load_api_client
    from dranet_core.kube.publisher import KubeStatusPublisher

    api = await load_api_client(settings.kube.kubeconfig)
    try:
        versions = ResourceApiVersion(api)  # one probe for the publisher and the claim source
        publisher = KubeStatusPublisher(
            api,
            driver_name=settings.kube.driver_name,
            node_name=settings.kube.node_name,
            api_versions=versions,
        )
        source = ClaimCache(
            ApiClaimSource(
                api,
                driver_name=settings.kube.driver_name,
                pool=settings.kube.node_name,
                api_versions=versions,
            )
        )
        yield publisher, source
    finally:
        await api.close()


async def run_driver(settings: Settings, *, signals: bool = True) -> int:
    """The reference driver against the API server: returns the process exit status."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("dranet")
    except PackageNotFoundError:  # a source tree without metadata
        ver = "unknown"
    loop = type(asyncio.get_running_loop())
    log.info(
        "dranet %s starting on node %s (driver %s; event loop %s.%s)",
        ver,
        settings.kube.node_name,
        settings.kube.driver_name,
        loop.__module__,
        loop.__qualname__,
    )
    log.info("settings: %s", attrs.asdict(settings))
    try:
        backends = load_backends_for(settings)
        async with kube_environment(settings) as (publisher, source):
            driver = Driver(settings, backends=backends, publisher=publisher, claim_source=source)
            driver.settle_heap_when_ready = True
            with ShutdownSignals() if signals else contextlib.nullcontext() as sig:
                stop = sig.requested if isinstance(sig, ShutdownSignals) else asyncio.Event()
                await driver.run(stop=stop)
    except DranetError as exc:
        log.error("dranet cannot run: %s", exc)
        return 1
    except BaseExceptionGroup as group:
        cause = fatal_cause(group)
        if cause is None:
            raise
        log.error("dranet stopped: %s", cause)
        return 1
    return 0
