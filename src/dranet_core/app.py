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
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, TextIO

import attrs

from dranet_core.backends import BackendContext, load_backends
from dranet_core.capabilities import Backend, HandlerTable, handler_table
from dranet_core.checkpoint import ClaimStore
from dranet_core.claim_allocator import ClaimAllocator
from dranet_core.dra.plugin import KubeletPlugin, PluginPaths
from dranet_core.dra.preparer import ClaimSource, DefaultPreparer
from dranet_core.errors import DranetError, TemporaryError
from dranet_core.filter import DeviceFilter
from dranet_core.inventory import Inventory
from dranet_core.metered import InFlight, MeteredPodEvents, MeteredPreparer, MeteredPublisher
from dranet_core.nri.plugin import NriPlugin
from dranet_core.observability import Metrics, ObservabilityServer
from dranet_core.plans import ClaimPlan
from dranet_core.pods import PodNetworking
from dranet_core.settings import HostSettings, Settings
from dranet_core.status import StatusPublisher
from dranet_core.supervisor import Clock, Health, Job, JobFailed, ShutdownSignals, Supervisor, fatal_cause
from dranet_core.types import ClaimRef, Device

__all__ = [
    "Driver",
    "JobFailed",
    "format_table",
    "kube_environment",
    "load_backends_for",
    "print_inventory",
    "resource_slices",
    "run_driver",
]

log = logging.getLogger(__name__)

RDMA_ATTRIBUTE = "dra.net/rdma"


def backend_context(settings: Settings) -> BackendContext:
    """The context every backend factory gets: node, roots, and the ``--backend-option`` values.

    Driver-wide facts (``move_ib_interfaces``, the host ``netns`` when it is not this
    process's) come first; explicit ``--backend-option`` values win over them.
    """
    opts = {"move_ib_interfaces": str(settings.inventory.move_ib_interfaces).lower()}
    if settings.host.host_netns != HostSettings().host_netns:
        opts["netns"] = str(settings.host.host_netns)  # the namespace the backends treat as the host's
    opts.update(settings.backend_options)
    return BackendContext(
        node_name=settings.kube.node_name,
        driver_name=settings.kube.driver_name,
        sysfs=settings.host.sysfs_root,
        procfs=settings.host.procfs_root,
        options=opts,
    )


def load_backends_for(settings: Settings) -> list[Backend]:
    """Load the backends ``settings`` names (all installed ones when None) via entry points."""
    return load_backends(backend_context(settings), enabled=settings.backends)


class Driver:
    """One node's dranet driver, composed from settings and its environment.

    ``backends`` are loaded backends in attach order; ``publisher`` publishes slices,
    claim status and events; ``claim_source`` reads claims for NodePrepareResources.
    ``stop`` (optional) is an event that starts the graceful shutdown like SIGTERM does.
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
    ) -> None:
        self.settings = settings
        self.table: HandlerTable = handler_table(backends)
        self.metrics = metrics or Metrics()
        self.health = Health(clock)
        self.clock = clock
        self.publisher = MeteredPublisher(publisher, metrics=self.metrics, rdma_attribute=RDMA_ATTRIBUTE)
        self.store = ClaimStore(settings.checkpoint.db_path)
        name = settings.kube.driver_name
        pool = settings.kube.node_name
        self.allocator = ClaimAllocator(
            name, pool, self.store, validators=self.table.validators, resolvers=self.table.resolvers
        )
        inv = settings.inventory
        self.inventory = Inventory(
            self.table.discoverers,
            self.publisher,
            filter=DeviceFilter.compile(inv.filter),
            min_interval=inv.min_poll_interval,
            burst=inv.poll_burst,
            resync=inv.max_poll_interval,
        )
        self.inflight = InFlight()
        self.pods = PodNetworking(
            store=self.store,
            movers=self.table.movers,
            publisher=self.publisher,
            driver_name=name,
            pool=pool,
            device_nodes=[a.device_nodes for a in self.table.adjusters],
            on_change=self._journal_changed,
            observe=self._observe,
            rescan=self.inventory.request_rescan,
            hold=self._hold if settings.debug.hold_phase else None,
        )
        self._stopping = False
        self.nri_handlers = MeteredPodEvents(self.pods, metrics=self.metrics, inflight=self.inflight)
        preparer = DefaultPreparer(
            claim_source,
            self.allocator,
            lambda: self.inventory.current().devices,
            on_unprepare=[self._before_unprepare],
        )
        self.kubelet = KubeletPlugin(
            name,
            MeteredPreparer(preparer, metrics=self.metrics, inflight=self.inflight),
            paths=PluginPaths.for_driver(name, settings.kubelet.root_dir),
        )
        self.nri = NriPlugin(
            self.nri_handlers,
            socket_path=settings.nri.socket_path,
            plugin_name=name,
            plugin_index=settings.nri.plugin_index,
            shutdown_grace=settings.shutdown.grace_period,
        )
        self.server: ObservabilityServer | None = None
        if settings.observability.bind_address:
            self.server = ObservabilityServer(
                settings.observability.bind_address, health=self.health, metrics=self.metrics
            )
        self._api_publisher: Any = publisher if hasattr(type(publisher), "health") else None
        self._pinned: set[str] = set()
        self.started_at: float | None = None
        self.ready_at: float | None = None

    def __repr__(self) -> str:
        return f"Driver(node={self.settings.kube.node_name!r}, {self.health!r})"

    # --- callbacks ---

    def _journal_changed(self) -> None:
        self.metrics.set_device_states(self.pods.states())
        held = self.pods.held_devices()
        for name in held - self._pinned:
            self.inventory.pin(name)
        for name in self._pinned - held:
            self.inventory.unpin(name)
        self._pinned = held

    def _observe(self, action: str, backend: str, ok: bool, seconds: float) -> None:
        hist = self.metrics.attach_latency if action == "attach" else self.metrics.detach_latency
        hist.labels(backend=backend, status="success" if ok else "failed").observe(seconds)

    async def _hold(self, phase: str) -> None:
        if phase == self.settings.debug.hold_phase:
            log.warning(
                "debug: holding %.1fs after journal phase %s", self.settings.debug.hold_seconds, phase
            )
            await asyncio.sleep(self.settings.debug.hold_seconds)

    async def _before_unprepare(self, ref: ClaimRef, plan: ClaimPlan | None) -> None:
        if plan is not None:
            await self.pods.release_claim(ref)

    # --- jobs ---

    async def _inventory_job(self) -> None:
        await self.inventory.refresh()
        self.health.ok("inventory", f"{len(self.inventory.current().published)} devices published")
        await self.inventory.run()

    async def _kubelet_job(self) -> None:
        await self.kubelet.run()  # returns after shutdown() (or raises)
        if not self._stopping:
            raise TemporaryError("the kubelet plugin servers stopped unexpectedly")

    async def _health_job(self) -> None:
        """Mirror the kubelet and NRI registration states into Health (every 100 ms)."""
        while True:
            reg = self.kubelet.health
            if reg.registered:
                self.health.ok("kubelet", "registered")
            else:
                self.health.failing("kubelet", reg.last_error or "waiting for the kubelet to register us")
            nri = self.nri.health()
            # registered = configured and the Synchronize handler (our reconciliation) finished
            if nri.registered:
                self.health.ok("nri", f"registered with {nri.runtime or 'runtime'}")
            else:
                self.health.failing("nri", nri.last_error or "connecting to the runtime")
            if self._api_publisher is not None:
                self._mirror_api_health(self._api_publisher.health)
            if self.ready_at is None and self.health.ready and self.started_at is not None:
                self.ready_at = time.monotonic()
                log.info("driver ready in %.2fs", self.ready_at - self.started_at)
            await asyncio.sleep(0.1)

    def _mirror_api_health(self, h: Any) -> None:
        """The API publisher's state as the ``apiserver`` part (duck-typed PublisherHealth)."""
        failing = h.last_error is not None and (h.last_success_time or 0) <= (h.last_error_time or 0)
        if failing:
            self.health.failing("apiserver", f"{h.last_error} (retrying)")
        elif h.slices_in_sync:
            self.health.ok("apiserver", f"{h.published_devices} devices in {h.published_slices} slice(s)")
        else:
            self.health.failing("apiserver", "publishing ResourceSlices")

    # --- lifecycle ---

    async def run(
        self, *, stop: asyncio.Event | None = None, started: Callable[[], None] | None = None
    ) -> None:
        """Run until ``stop`` is set (or forever), then shut down gracefully (module doc)."""
        self.started_at = time.monotonic()
        stop = stop or asyncio.Event()
        await self.store.load()
        self._journal_changed()
        for part in ("kubelet", "nri", "inventory"):
            self.health.register(part)
        if self._api_publisher is not None:
            self.health.register("apiserver")
        async with Supervisor(health=self.health, clock=self.clock) as sup:
            if self.server is not None:
                sup.start(
                    Job(name="observability server", run=self.server.serve, part="observability server")
                )
            sup.start(Job(name="status publisher", run=self.publisher.run, part="status publisher"))
            sup.start(Job(name="inventory loop", run=self._inventory_job, part="inventory loop"))
            sup.start(
                Job(name="kubelet plugin", run=self._kubelet_job, finishable=True, part="kubelet plugin")
            )
            sup.start(Job(name="nri plugin", run=self.nri.run, part="nri plugin"))
            sup.start(Job(name="health", run=self._health_job))
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
        await sup.stop("nri plugin")
        await self.nri.aclose()
        await sup.stop()
        log.info("driver stopped in %.2fs; devices in running pods stay attached", time.monotonic() - t0)


@contextlib.asynccontextmanager
async def kube_environment(settings: Settings) -> AsyncIterator[tuple[StatusPublisher, ClaimSource]]:
    """The API-server side of the driver: the StatusPublisher and the ClaimSource."""
    from dranet_core.kube.claims import ApiClaimSource
    from dranet_core.kube.client import load_api_client
    from dranet_core.kube.publisher import KubeStatusPublisher

    api = await load_api_client(settings.kube.kubeconfig)
    try:
        publisher = KubeStatusPublisher(
            api, driver_name=settings.kube.driver_name, node_name=settings.kube.node_name
        )
        source = ApiClaimSource(api, driver_name=settings.kube.driver_name, pool=settings.kube.node_name)
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
    log.info(
        "dranet %s starting on node %s (driver %s)", ver, settings.kube.node_name, settings.kube.driver_name
    )
    log.info("settings: %s", attrs.asdict(settings))
    try:
        backends = load_backends_for(settings)
        async with kube_environment(settings) as (publisher, source):
            driver = Driver(settings, backends=backends, publisher=publisher, claim_source=source)
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


# --- dranet inventory -------------------------------------------------------------------


class _Collect:
    """A StatusPublisher that only remembers the last device list (read-only inventory)."""

    def __init__(self) -> None:
        self.devices: tuple[Device, ...] = ()

    async def publish_devices(self, devices: Sequence[Device]) -> None:
        self.devices = tuple(devices)

    async def set_claim_status(self, claim: ClaimRef, devices: Sequence[Any]) -> None:
        return None

    async def clear_claim_status(self, claim: ClaimRef) -> None:
        return None

    async def record_event(self, event: Any) -> None:
        return None

    async def run(self) -> None:
        await asyncio.Event().wait()


def _attr_text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def format_table(devices: Sequence[Device]) -> str:
    """Devices as a fixed-width table: name, ifName, type, pci, mac, rdma, published attrs."""
    cols = ("NAME", "IFNAME", "TYPE", "PCI", "MAC", "RDMA", "ATTRS")
    rows = [
        (
            d.name,
            _attr_text(d.attributes.get("dra.net/ifName", "")),
            _attr_text(d.attributes.get("dra.net/type", "")),
            _attr_text(d.attributes.get("dra.net/pciAddress", "")),
            _attr_text(d.attributes.get("dra.net/mac", "")),
            _attr_text(d.attributes.get(RDMA_ATTRIBUTE, "")),
            str(len(d.attributes)),
        )
        for d in devices
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(v.ljust(widths[i]) for i, v in enumerate(row)).rstrip() for row in (cols, *rows)]
    return "\n".join(lines) + "\n"


def resource_slices(settings: Settings, devices: Sequence[Device]) -> list[dict[str, Any]]:
    """The ResourceSlice objects the driver would publish for ``devices`` (resource.k8s.io/v1)."""
    from dranet_core.kube.slices import plan_slices, prepare_devices, slice_object

    driver, node = settings.kube.driver_name, settings.kube.node_name
    desired, skipped = prepare_devices(devices)
    for sk in skipped:
        log.warning("device left out of the slice: %s", sk)
    plan = plan_slices(desired, [], node=node, driver=driver)
    return [
        slice_object(
            name=w.name,
            driver=driver,
            node=node,
            generation=plan.generation,
            slice_count=plan.slice_count,
            devices=w.devices,
        )
        for w in plan.writes
    ]


async def print_inventory(settings: Settings, *, output: str = "table", out: TextIO | None = None) -> int:
    """``dranet inventory``: scan with the installed backends and print; changes nothing."""
    stream = out or sys.stdout
    try:
        table = handler_table(load_backends_for(settings))
        inv = Inventory(table.discoverers, _Collect(), filter=DeviceFilter.compile(settings.inventory.filter))
        view = await inv.refresh(publish=False)
    except DranetError as exc:
        print(f"dranet inventory: {exc}", file=sys.stderr)
        return 1
    devices = [view.published[k] for k in sorted(view.published)]
    if output == "table":
        stream.write(format_table(devices))
        hidden = len(view.devices) - len(view.published)
        if hidden:
            stream.write(f"({hidden} more device(s) hidden by --filter)\n")
        return 0
    slices = resource_slices(settings, devices)
    if output == "json":
        doc: Mapping[str, Any] = {"apiVersion": "v1", "kind": "List", "items": slices}
        stream.write(json.dumps(doc, indent=2) + "\n")
    else:
        import yaml

        stream.write(yaml.safe_dump_all(slices, sort_keys=False))
    return 0
