"""Backends and their capabilities, found once at start-up.

A backend is one object with a ``name``. What it can do is told by which capability
protocols it implements; :func:`handler_table` checks them once and builds a frozen table,
so the rest of the driver never asks ``isinstance`` again (this module is the only place
that does). A backend that implements nothing is rejected (and loading refuses one that
implements a capability only partly, see :func:`dranet_core.backends.check_capabilities`).

Ownership (:mod:`dranet_core.ownership`): a backend owns the devices that carry a facet
under its name, and every per-device capability (move, validate, resolve, adjust, health)
is called only for those. The table keeps each handler with its backend's name for that.

Capabilities:

=====================  ===============================================  ===================
protocol               what for                                         used by
=====================  ===============================================  ===================
Discovery              find devices, notice changes                     inventory loop
NamespaceMover         move a device into a pod netns and back          NRI Run/StopPodSandbox
ValidatesConfig        reject a config that cannot apply to a device    kubelet prepare
ResolvesConfig         fill a config in from the node (DHCP lease)      kubelet prepare
AdjustsContainers      device nodes for containers (RDMA, vfio)         NRI CreateContainer
ReportsHealth          per-device health                                 health endpoint
RunsInBackground       a long-lived loop of its own (e.g. rename-back)  one supervised job
ReportsStepTimes       how long each attach step took                   /metrics histogram
=====================  ===============================================  ===================
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

import attrs

from dranet_core.config.model import NetworkConfig
from dranet_core.discovery import Discovery
from dranet_core.errors import BackendError
from dranet_core.mover import NamespaceMover
from dranet_core.plans import PreparedDevice
from dranet_core.types import Device, DeviceNode

__all__ = [
    "AdjustsContainers",
    "Backend",
    "HandlerTable",
    "ReportsHealth",
    "ResolvesConfig",
    "ReportsStepTimes",
    "RunsInBackground",
    "ValidatesConfig",
    "handler_table",
]

log = logging.getLogger(__name__)


@runtime_checkable
class Backend(Protocol):
    """Anything with a name; capabilities come from the protocols below."""

    @property
    def name(self) -> str:
        """The backend's name, as registered in the ``dranet.backends`` entry points."""
        ...


@runtime_checkable
class ValidatesConfig(Protocol):
    """Checks, at prepare time, that a merged config can apply to a device of this backend."""

    def validate_config(self, device: Device, config: NetworkConfig) -> None:
        """Raise :class:`~dranet_core.errors.ConfigError` if ``config`` cannot apply.

        Called only for a device this backend owns (it has this backend's facet), after the
        driver refused any backend section on a device that backend does not own.
        """
        ...


@runtime_checkable
class ResolvesConfig(Protocol):
    """Fills a device's merged config in at prepare time, after validation (e.g. a DHCP lease
    for ``interface.dhcp``); the result is what the plan stores and the mover applies."""

    async def resolve_config(self, device: Device, config: NetworkConfig) -> NetworkConfig:
        """The config to use for ``device`` (called only for a device this backend owns);
        raise a DranetError to fail the claim's prepare."""
        ...


@runtime_checkable
class AdjustsContainers(Protocol):
    """Adds device nodes to each container of a pod that holds one of its devices."""

    def device_nodes(self, device: PreparedDevice) -> Sequence[DeviceNode]:
        """Device nodes every container of the pod needs for ``device`` (may be empty);
        called only for a device this backend owns."""
        ...


@runtime_checkable
class ReportsHealth(Protocol):
    """Reports per-device health (KEP-4680)."""

    async def health(self) -> Mapping[str, bool]:
        """Device name -> healthy, for the devices this backend owns (the driver ignores
        entries for devices the backend does not own)."""
        ...


@runtime_checkable
class RunsInBackground(Protocol):
    """Has a long-lived loop of its own that the driver runs as one named, supervised job.

    Contract: :meth:`run` runs until cancelled; it does not retry internally around its whole
    body (the supervisor restarts it with backoff when it raises, and reports the cause once
    under the job ``<backend name> background``). It must not create tasks of its own.
    """

    async def run(self) -> None:
        """Run until cancelled; raise to be restarted after a backoff."""
        ...


@runtime_checkable
class ReportsStepTimes(Protocol):
    """Reports the duration of each step of its attaches (step names are the backend's own,
    e.g. the netdev mover's step table), for the driver's per-step histogram."""

    def set_step_observer(self, observer: Callable[[str, float], None] | None) -> None:
        """From now on call ``observer(step, seconds)`` after each step."""
        ...


@attrs.frozen(kw_only=True)
class HandlerTable:
    """Which backend does what, in backend order (attach order; detach is reversed)."""

    backends: tuple[Backend, ...]
    discoverers: tuple[Discovery, ...]
    movers: tuple[tuple[str, NamespaceMover], ...]
    """(backend name, handler) here and below: a handler is used only for devices its
    backend owns (:mod:`dranet_core.ownership`)."""
    validators: tuple[tuple[str, ValidatesConfig], ...]
    resolvers: tuple[tuple[str, ResolvesConfig], ...] = ()
    adjusters: tuple[tuple[str, AdjustsContainers], ...]
    health: tuple[tuple[str, ReportsHealth], ...]
    background: tuple[tuple[str, RunsInBackground], ...] = ()
    """(backend name, backend) for each backend with a loop of its own, in backend order."""
    step_timers: tuple[ReportsStepTimes, ...] = ()
    """Backends that report per-step attach times."""

    capabilities: Mapping[str, tuple[str, ...]]
    """Backend name -> capability names, for logs and ``dranet inventory``."""


def handler_table(backends: Sequence[Backend]) -> HandlerTable:
    """Check each backend's capabilities once and build the table.

    Raises :class:`BackendError` for a backend that implements no capability or whose name
    is used twice.
    """
    seen: set[str] = set()
    disc: list[Discovery] = []
    movers: list[tuple[str, NamespaceMover]] = []
    vals: list[tuple[str, ValidatesConfig]] = []
    resolvers: list[tuple[str, ResolvesConfig]] = []
    adjs: list[tuple[str, AdjustsContainers]] = []
    health: list[tuple[str, ReportsHealth]] = []
    background: list[tuple[str, RunsInBackground]] = []
    timers: list[ReportsStepTimes] = []
    caps: dict[str, tuple[str, ...]] = {}
    for b in backends:
        if b.name in seen:
            raise BackendError(b.name, "two backends have this name")
        seen.add(b.name)
        found = []
        if isinstance(b, Discovery):
            disc.append(b)
            found.append("discover")
        if isinstance(b, NamespaceMover):
            movers.append((b.name, b))
            found.append("move")
        if isinstance(b, ValidatesConfig):
            vals.append((b.name, b))
            found.append("validate")
        if isinstance(b, ResolvesConfig):
            resolvers.append((b.name, b))
            found.append("resolve")
        if isinstance(b, AdjustsContainers):
            adjs.append((b.name, b))
            found.append("adjust")
        if isinstance(b, ReportsHealth):
            health.append((b.name, b))
            found.append("health")
        if isinstance(b, RunsInBackground):
            background.append((b.name, b))
            found.append("background")
        if isinstance(b, ReportsStepTimes):
            timers.append(b)
        if not found:
            raise BackendError(
                b.name, "implements no capability (discover, move, validate, adjust, health, background)"
            )
        caps[b.name] = tuple(found)
        log.info("backend %s handles: %s", b.name, ", ".join(found))
    return HandlerTable(
        backends=tuple(backends),
        discoverers=tuple(disc),
        movers=tuple(movers),
        validators=tuple(vals),
        resolvers=tuple(resolvers),
        adjusters=tuple(adjs),
        health=tuple(health),
        background=tuple(background),
        step_timers=tuple(timers),
        capabilities=caps,
    )
