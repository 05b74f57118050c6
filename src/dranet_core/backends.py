"""Finding and loading backends through the ``dranet.backends`` entry-point group.

Every backend, the built-in ones included, is registered as an entry point::

    [project.entry-points."dranet.backends"]
    netdev = "dranet_backends.netdev:create"

whose object is a factory ``create(context: BackendContext) -> Backend``. The factory is
called once at start-up; it may probe the machine and raise
:class:`~dranet_core.errors.BackendError` when the backend cannot run here (no SR-IOV, no
RDMA subsystem).

Policy (:func:`load_backends`):

* **auto mode** (``enabled=None``): every installed backend not in ``disabled`` is
  loaded; one that fails to import, whose factory raises, or that returns an unusable
  object is logged at WARNING and skipped, so a node without RDMA still runs the netdev
  backend. Order: the built-ins ``sriov``, ``netdev``, ``rdma`` in that order (attach order
  matters: a VF's PF-side settings before its netdev moves, the netdev before the RDMA
  link; detach runs in reverse), then the others by name.
* **explicit mode** (``enabled=[...]``): exactly these, in the given order; a name that is
  not installed, or any failure, raises :class:`BackendError` (the operator asked for it).

A name in both ``enabled`` and ``disabled`` is an error; a name in ``disabled`` that is not
installed is only logged. A loaded backend must have a ``name`` equal to its entry-point
name and implement at least one capability (:func:`~dranet_core.capabilities.handler_table`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Collection, Mapping
from importlib import metadata
from pathlib import Path
from typing import Final, TypeAlias

import attrs

from dranet_core.capabilities import Backend, handler_table
from dranet_core.errors import BackendError
from dranet_core.types import DRIVER_DOMAIN

__all__ = [
    "BUILTIN_ORDER",
    "ENTRY_POINT_GROUP",
    "BackendContext",
    "BackendFactory",
    "available_backends",
    "load_backend",
    "load_backends",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP: Final = "dranet.backends"
BUILTIN_ORDER: Final = ("sriov", "netdev", "rdma")
"""Auto-mode order of the built-in backends; others follow, sorted by name."""


def _frozen_options(value: Mapping[str, str]) -> Mapping[str, str]:
    return dict(value)


@attrs.frozen(kw_only=True)
class BackendContext:
    """What a backend factory is given: who and where we are, and free-form options.

    ``sysfs`` and ``procfs`` are the roots to read (tests point them at a temporary tree).
    ``options`` are ``key=value`` settings from the command line or the environment; by
    convention a backend's keys start with its name and a dot (``rdma.netns-mode``), see
    :meth:`options_for`.
    """

    node_name: str
    driver_name: str = DRIVER_DOMAIN
    sysfs: Path = Path("/sys")
    procfs: Path = Path("/proc")
    options: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_options)

    def options_for(self, backend: str) -> dict[str, str]:
        """The options addressed to ``backend``, prefix stripped: ``rdma.x=1`` -> ``{"x": "1"}``."""
        prefix = backend + "."
        return {k[len(prefix) :]: v for k, v in self.options.items() if k.startswith(prefix)}


BackendFactory: TypeAlias = Callable[[BackendContext], Backend]


def available_backends() -> dict[str, metadata.EntryPoint]:
    """Installed backends: name -> entry point, in load order (see module doc).

    Raises :class:`BackendError` if two installed distributions register the same name
    with different targets.
    """
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        other = found.get(ep.name)
        if other is not None and other.value != ep.value:
            raise BackendError(ep.name, f"registered twice: {other.value} and {ep.value}")
        found[ep.name] = ep
    builtins = [n for n in BUILTIN_ORDER if n in found]
    others = sorted(n for n in found if n not in BUILTIN_ORDER)
    return {n: found[n] for n in (*builtins, *others)}


def load_backend(entry_point: metadata.EntryPoint, context: BackendContext) -> Backend:
    """Import one backend's factory, call it and check the result.

    Raises :class:`BackendError` naming the backend and the cause (chained).
    """
    name = entry_point.name
    try:
        factory = entry_point.load()
    except Exception as exc:
        raise BackendError(name, f"cannot import {entry_point.value}: {type(exc).__name__}: {exc}") from exc
    if not callable(factory):
        raise BackendError(name, f"{entry_point.value} is not callable")
    try:
        backend = factory(context)
    except BackendError:
        raise
    except Exception as exc:
        raise BackendError(name, f"factory {entry_point.value} failed: {type(exc).__name__}: {exc}") from exc
    if inspect.isawaitable(backend):
        if inspect.iscoroutine(backend):
            backend.close()
        raise BackendError(name, f"factory {entry_point.value} must be a plain function, not async")
    if not isinstance(backend, Backend) or not isinstance(getattr(backend, "name", None), str):
        raise BackendError(name, f"factory {entry_point.value} returned {type(backend).__name__}, no backend")
    if backend.name != name:
        raise BackendError(name, f"factory {entry_point.value} returned a backend named {backend.name!r}")
    handler_table([backend])  # raises BackendError if it implements no capability
    return backend


def load_backends(
    context: BackendContext,
    *,
    enabled: Collection[str] | None = None,
    disabled: Collection[str] = (),
) -> list[Backend]:
    """Load backends from the ``dranet.backends`` entry points (policy: module doc).

    Returns them in load order (attach order). Raises :class:`BackendError` for an unknown
    or failing backend in explicit mode, and for a name both enabled and disabled.
    """
    available = available_backends()
    disabled = set(disabled)
    for name in sorted(disabled - available.keys()):
        log.warning("backend %s is disabled but not installed (installed: %s)", name, _names(available))
    if enabled is not None:
        enabled = list(dict.fromkeys(enabled))
        both = [n for n in enabled if n in disabled]
        if both:
            raise BackendError(", ".join(both), "both enabled and disabled")
        unknown = [n for n in enabled if n not in available]
        if unknown:
            raise BackendError(", ".join(unknown), f"not installed (installed: {_names(available)})")
        return [load_backend(available[n], context) for n in enabled]
    loaded: list[Backend] = []
    for name, ep in available.items():
        if name in disabled:
            log.info("backend %s disabled", name)
            continue
        try:
            loaded.append(load_backend(ep, context))
        except BackendError as exc:
            log.warning("skipping %s", exc, exc_info=exc.__cause__ is not None)
    if not loaded:
        log.warning("no backend loaded (installed: %s; disabled: %s)", _names(available), sorted(disabled))
    return loaded


def _names(available: Mapping[str, object]) -> str:
    return ", ".join(available) or "none"
