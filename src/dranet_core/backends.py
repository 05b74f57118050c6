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
from typing import Any, Final, Generic, TypeAlias, TypeVar

import attrs

from dranet_core.capabilities import (
    AdjustsContainers,
    Backend,
    ReportsHealth,
    ReportsStepTimes,
    ResolvesConfig,
    RunsInBackground,
    ValidatesConfig,
)
from dranet_core.discovery import Discovery
from dranet_core.errors import BackendError, SettingsError
from dranet_core.mover import NamespaceMover
from dranet_core.settings import HostSettings, Settings
from dranet_core.types import DRIVER_DOMAIN

__all__ = [
    "BUILTIN_ORDER",
    "CAPABILITY_PROTOCOLS",
    "ENTRY_POINT_GROUP",
    "BackendContext",
    "BackendFactory",
    "BackendOption",
    "BackendOptionError",
    "backend_options",
    "check_backend_options",
    "declared_options",
    "parse_bool",
    "parse_choice",
    "parse_path",
    "parse_path_list",
    "parse_seconds",
    "available_backends",
    "check_capabilities",
    "context_for",
    "load_backend",
    "load_backends",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP: Final = "dranet.backends"
BUILTIN_ORDER: Final = ("sriov", "netdev", "rdma")
"""Auto-mode order of the built-in backends; others follow, sorted by name."""


T = TypeVar("T")


def _frozen_options(value: Mapping[str, str]) -> Mapping[str, str]:
    return dict(value)


def _optional_path(value: str | Path | None) -> Path | None:
    return None if value in (None, "") else Path(value)


@attrs.frozen
class BackendOption(Generic[T]):
    """One ``--backend-option <backend>.<key>=<value>`` a backend understands.

    ``parse`` turns the text into the value; it raises :class:`ValueError` whose message is
    the rule (``must be a number of seconds > 0``). Declare a backend's options with
    :func:`backend_options` on its factory and read them with :meth:`BackendContext.option`:
    the driver then rejects, before anything starts, a key the backend did not declare and a
    value its parser refuses, naming the option.
    """

    backend: str
    key: str
    parse: Callable[[str], T]
    default: T
    help: str = ""

    @property
    def name(self) -> str:
        """``<backend>.<key>``: how the option is written on the command line."""
        return f"{self.backend}.{self.key}"

    def read(self, text: str) -> T:
        """Parse ``text``; raises :class:`BackendOptionError` naming the option and the rule."""
        try:
            return self.parse(text)
        except ValueError as exc:
            raise BackendOptionError(self.backend, f"{self.name}={text}: {exc}") from None


class BackendOptionError(BackendError, SettingsError):
    """A ``--backend-option`` that names no declared option, or whose value is invalid."""

    def __str__(self) -> str:
        return f"--backend-option {self.reason}"


@attrs.frozen(kw_only=True)
class BackendContext:
    """What a backend factory is given: who and where we are, and its options.

    ``sysfs`` and ``procfs`` are the roots to read (tests point them at a temporary tree);
    ``host_netns`` is the network namespace devices live in and come home to (None: this
    process's own); ``move_ib_interfaces`` is ``--move-ib-interfaces``; ``state_dir`` is a
    directory for state that must survive a restart (the checkpoint's; None: keep it in
    memory). ``options`` are the
    raw ``--backend-option`` values, keyed ``<backend>.<key>``; a backend reads its own
    through :meth:`option` with the :class:`BackendOption` it declared.
    """

    node_name: str
    driver_name: str = DRIVER_DOMAIN
    sysfs: Path = Path("/sys")
    procfs: Path = Path("/proc")
    host_netns: Path | None = attrs.field(default=None, converter=_optional_path)
    move_ib_interfaces: bool = True
    state_dir: Path | None = attrs.field(default=None, converter=_optional_path)
    options: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_options)

    def option(self, option: BackendOption[T]) -> T:
        """The value of ``option``: parsed from ``options`` when given, else its default.

        Raises :class:`BackendOptionError` (a :class:`BackendError`) for a value its parser
        rejects.
        """
        text = self.options.get(option.name)
        return option.default if text is None else option.read(text)

    def options_for(self, backend: str) -> dict[str, str]:
        """The raw options addressed to ``backend``, prefix stripped: ``rdma.x=1`` -> ``{"x": "1"}``."""
        prefix = backend + "."
        return {k[len(prefix) :]: v for k, v in self.options.items() if k.startswith(prefix)}


# --- option parsers: each raises ValueError whose message is the rule ---------------------


def parse_seconds(text: str) -> float:
    """A number of seconds > 0 (``"2.5"``)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number of seconds > 0") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a number of seconds > 0")
    return value


def parse_bool(text: str) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``)."""
    v = text.strip().lower()
    if v in ("1", "t", "true", "yes", "on"):
        return True
    if v in ("0", "f", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def parse_path(text: str) -> Path:
    """An absolute path."""
    if not text.startswith("/"):
        raise ValueError("must be an absolute path")
    return Path(text)


def parse_path_list(text: str) -> tuple[Path, ...]:
    """``:``-separated absolute paths."""
    return tuple(parse_path(p) for p in text.split(":") if p)


def parse_choice(*choices: str) -> Callable[[str], str]:
    """A parser accepting exactly one of ``choices`` (case-insensitive), returned lowercase."""

    def parse(text: str) -> str:
        v = text.strip().lower()
        if v not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return v

    return parse


_OPTIONS_ATTRIBUTE: Final = "dranet_backend_options"
F = TypeVar("F", bound=Callable[..., Any])


def backend_options(*options: BackendOption[Any]) -> Callable[[F], F]:
    """Declare the options a backend factory reads (decorator).

    The driver validates every ``--backend-option`` addressed to the backend against this
    list before anything starts; a factory without the decorator takes no option.
    """

    def mark(factory: F) -> F:
        setattr(factory, _OPTIONS_ATTRIBUTE, tuple(options))
        return factory

    return mark


def declared_options(factory: object) -> tuple[BackendOption[Any], ...]:
    """The options ``factory`` declared with :func:`backend_options` (empty if none)."""
    found = getattr(factory, _OPTIONS_ATTRIBUTE, ())
    return tuple(o for o in found if isinstance(o, BackendOption))


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
    check_capabilities(backend)
    return backend


CAPABILITY_PROTOCOLS: Final[tuple[type, ...]] = (
    Discovery,
    NamespaceMover,
    ValidatesConfig,
    ResolvesConfig,
    AdjustsContainers,
    ReportsHealth,
    RunsInBackground,
    ReportsStepTimes,
)
"""The capability protocols a backend may implement, each completely or not at all."""


def _protocol_methods(protocol: type) -> list[str]:
    return sorted(n for n, v in vars(protocol).items() if not n.startswith("_") and callable(v))


def check_capabilities(backend: object) -> None:
    """Raise :class:`BackendError` if ``backend`` implements no capability, or part of one.

    A backend with ``scan`` but no ``watch`` would otherwise silently not be a Discovery;
    the message names the protocol and the missing methods.
    """
    name = str(getattr(backend, "name", type(backend).__name__))
    for protocol in CAPABILITY_PROTOCOLS:
        methods = _protocol_methods(protocol)
        have = [m for m in methods if callable(getattr(backend, m, None))]
        if have and len(have) < len(methods):
            missing = ", ".join(m for m in methods if m not in have)
            raise BackendError(
                name, f"implements part of {protocol.__name__}: has {', '.join(have)}, lacks {missing}"
            )
    if not any(isinstance(backend, p) for p in CAPABILITY_PROTOCOLS):
        raise BackendError(
            name, "implements no capability (discover, move, validate, adjust, health, background)"
        )


def check_backend_options(options: Mapping[str, str], *, enabled: Collection[str] | None = None) -> None:
    """Check every ``--backend-option`` against the options its backend declared.

    Each key must be ``<backend>.<key>`` for a backend that is installed (and in
    ``enabled`` when that is given) and that declared ``<key>`` with
    :func:`backend_options`, and the value must parse. Imports the factories named, calls
    none. Raises :class:`BackendOptionError` naming the option and the rule.
    """
    if not options:
        return
    available = available_backends()
    wanted = list(available) if enabled is None else list(enabled)
    for key, value in options.items():
        backend, dot, sub = key.partition(".")
        if not dot or not backend or not sub:
            raise BackendOptionError(key, f"{key}={value}: expected <backend>.<key>=<value>")
        if backend not in available:
            raise BackendOptionError(
                backend,
                f"{key}={value}: no backend {backend} is installed (installed: {_names(available)})",
            )
        if backend not in wanted:
            raise BackendOptionError(
                backend, f"{key}={value}: backend {backend} is not loaded (--backends={','.join(wanted)})"
            )
        ep = available[backend]
        try:
            factory = ep.load()
        except Exception as exc:
            raise BackendError(backend, f"cannot import {ep.value}: {type(exc).__name__}: {exc}") from exc
        declared = {o.key: o for o in declared_options(factory)}
        option = declared.get(sub)
        if option is None:
            known = ", ".join(sorted(declared)) or "none"
            raise BackendOptionError(
                backend, f"{key}={value}: unknown option (options of {backend}: {known})"
            )
        option.read(value)


def context_for(settings: Settings) -> BackendContext:
    """The :class:`BackendContext` the reference driver gives every backend for ``settings``."""
    default_netns = HostSettings().host_netns
    return BackendContext(
        node_name=settings.kube.node_name,
        driver_name=settings.kube.driver_name,
        sysfs=settings.host.sysfs_root,
        procfs=settings.host.procfs_root,
        host_netns=None if settings.host.host_netns == default_netns else settings.host.host_netns,
        move_ib_interfaces=settings.inventory.move_ib_interfaces,
        state_dir=settings.checkpoint.db_path.parent if settings.checkpoint.db_path else None,
        options=settings.backend_options,
    )


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
            log.warning("skipping %s", exc)
            log.debug("backend %s failed to load", name, exc_info=exc.__cause__ is not None)
    if not loaded:
        log.warning("no backend loaded (installed: %s; disabled: %s)", _names(available), sorted(disabled))
    return loaded


def _names(available: Mapping[str, object]) -> str:
    return ", ".join(available) or "none"
