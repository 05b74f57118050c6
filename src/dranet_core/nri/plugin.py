"""The NRI plugin runtime: register with the container runtime and serve its events.

Theory of operation
-------------------
One *session* is one connection to the runtime (``/var/run/nri/nri.sock``, or the fd a
runtime-launched plugin inherits). Per session::

    connect ─► MuxTrunk (one reader task)
               ├─ conn 1: TtrpcServer  serving nri.pkg.api.v1alpha1.Plugin   (runtime → us)
               └─ conn 2: TtrpcClient  calling nri.pkg.api.v1alpha1.Runtime  (us → runtime)
    RegisterPlugin(name, index) ─► runtime calls Configure ─► Synchronize (maybe split)
    ─► events (RunPodSandbox, ...) until the connection ends

The server on conn 1 is attached *before* RegisterPlugin is sent and the reader never waits
for the RegisterPlugin reply, because the runtime sends Configure as soon as it has processed
the registration, possibly before its reply (fact sheet trap 3).

Configure is answered with the events the handler has methods for
(:func:`~dranet_core.nri.handlers.subscribed_events`), clipped to what the runtime's NRI
version accepts (:func:`~dranet_core.nri.events.valid_events`; never 0, which would mean
"everything"). Runtimes with NRI >= v0.12 call RunPodSandbox/StopPodSandbox/RemovePodSandbox
directly and older ones send StateChange; both are served. Methods for events we do not
handle are absent, so the server answers UNIMPLEMENTED (12), which is what makes a v0.12
runtime fall back to StateChange. A split Synchronize (``more = true``) is answered
``more = true`` with no updates and accumulated; the handler sees all pods once.

Handler time is bounded (see :mod:`dranet_core.nri.handlers` for the contract): each call gets
``min(request_timeout, deadline of the call) - margin``; if the handler is still running the
runtime gets DEADLINE_EXCEEDED (a normal error status, so the connection survives) and the
handler keeps running to completion as a *late* task, tracked, logged and awaited by
:meth:`NriPlugin.aclose`; later events for the same sandbox wait for it first. A late
RunPodSandbox is undone afterwards by calling the handler's stop and remove methods, because
the runtime failed that sandbox and will not tell plugins about it again.

When the connection ends (runtime restart, garbage on the socket, a protocol error) the
session is torn down and :meth:`NriPlugin.run` raises with the cause; the driver runs it as a
supervised job, so the supervisor's one backoff decides when to dial again (there is no retry
loop in here). Handler state lives in the driver and is reconciled by the Synchronize of the
next session. A plugin on an inherited fd cannot reconnect: ``run()`` returns when that
connection ends (the runtime restarts launched plugins itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs

from dranet_core.errors import ProtocolError, RpcError, SettingsError
from dranet_core.health import HealthPart
from dranet_core.nri import api
from dranet_core.nri._decode import (
    decode_container_request,
    decode_pod_request,
    decode_state_change,
    decode_synchronize,
)
from dranet_core.nri._encode import encode_create_container_response
from dranet_core.nri.bounded import BoundedCalls, LateFlag, run_then_undo_if_late
from dranet_core.nri.events import EventType, event_mask, valid_events
from dranet_core.nri.handlers import (
    ContainerInfo,
    CreateContainerHandler,
    RemovePodSandboxHandler,
    RunPodSandboxHandler,
    StopPodSandboxHandler,
    subscribed_events,
)
from dranet_core.transport.mux import MuxTrunk
from dranet_core.transport.ttrpc import (
    INVALID_ARGUMENT,
    UNAVAILABLE,
    Handler,
    TtrpcClient,
    TtrpcServer,
)
from dranet_core.transport.unix import inherited_socket_fd, open_fd, open_unix
from dranet_core.types import PodSandbox
from dranet_core.wire.mux import PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN

__all__ = ["DEFAULT_SOCKET_PATH", "NriHealth", "NriPlugin"]

log = logging.getLogger(__name__)

DEFAULT_SOCKET_PATH: Final = "/var/run/nri/nri.sock"
FAILED_PRECONDITION: Final = 9
_NAME = re.compile(r"^[a-zA-Z0-9_.+-]+$")
_INDEX = re.compile(r"^[0-9]{2}$")

M = TypeVar("M")
T = TypeVar("T")


@attrs.frozen(kw_only=True)
class NriHealth:
    """A snapshot for the health endpoint."""

    registered: bool
    """Registered, configured and synchronized: the runtime is delivering events to us."""
    connected: bool
    last_error: str | None
    connects: int
    """Connections made so far (1 + reconnections)."""
    runtime: str
    """``<runtime_name> <runtime_version>`` from the last Configure, or empty."""
    events: int
    """The event mask we subscribed with in the last Configure (0 before any)."""
    late_running: int
    late_completions: int
    late_failures: int
    late_compensations: int
    """Late RunPodSandbox calls undone by a plugin-made Stop/RemovePodSandbox (the runtime had
    already failed the sandbox and tells plugins nothing more about it)."""


@attrs.define
class _SessionFacts:
    """What the sessions so far told us (for health and logs)."""

    last_error: str | None = None
    connects: int = 0
    runtime: str = ""
    """``<runtime_name> <runtime_version>`` from the last Configure."""
    events_sent: int = 0
    """The event mask answered to the last Configure."""


def _parse(cls: type[M], payload: bytes, what: str) -> M:
    try:
        return cls.parse(payload)  # type: ignore[attr-defined, no-any-return]
    except Exception as exc:  # betterproto2 raises assorted errors on garbage
        raise RpcError(INVALID_ARGUMENT, f"malformed {what}: {exc}") from exc


def _decode(fn: Callable[[bytes], T], payload: bytes, what: str) -> T:
    try:
        return fn(payload)
    except ProtocolError as exc:
        raise RpcError(INVALID_ARGUMENT, f"malformed {what}: {exc}") from exc


class NriPlugin:
    """An NRI plugin serving ``handler``; see the module docstring.

    ``handler`` implements any of the protocols of :mod:`dranet_core.nri.handlers`
    (at least one event). Use ``socket_fd`` (e.g. from
    :func:`~dranet_core.transport.unix.inherited_socket_fd`) for a runtime-launched plugin.
    Times are seconds. Lifecycle: run ``await plugin.run()`` in a supervised task, cancel it
    to stop, then ``await plugin.aclose()`` (waits up to ``shutdown_grace`` for late handlers,
    then cancels them).
    """

    def __init__(
        self,
        handler: object,
        *,
        socket_path: str | Path = DEFAULT_SOCKET_PATH,
        socket_fd: int | None = None,
        plugin_name: str = "dra.net",
        plugin_index: str = "00",
        registration_timeout: float = 5.0,
        request_timeout_hint: float = 2.0,
        handler_margin: float = 0.25,
        shutdown_grace: float = 5.0,
        health: HealthPart | None = None,
    ) -> None:
        if not _NAME.match(plugin_name):
            raise SettingsError(f"NRI plugin name {plugin_name!r}: must match [a-zA-Z0-9_.+-]+")
        if not _INDEX.match(plugin_index):
            raise SettingsError(f"NRI plugin index {plugin_index!r}: must be two digits 00-99")
        if min(registration_timeout, request_timeout_hint) <= 0:
            raise SettingsError("NRI timeouts must be > 0")
        if not 0 <= handler_margin < request_timeout_hint:
            raise SettingsError("NRI handler margin must be >= 0 and below the request timeout")
        self._handler = handler
        # the handler's event methods, resolved once: a runtime-checkable Protocol isinstance
        # walks the protocol's members each time, which is a cost per call on the hot path
        self._run_handler = handler if isinstance(handler, RunPodSandboxHandler) else None
        self._stop_handler = handler if isinstance(handler, StopPodSandboxHandler) else None
        self._remove_handler = handler if isinstance(handler, RemovePodSandboxHandler) else None
        self._create_handler = handler if isinstance(handler, CreateContainerHandler) else None
        self._events = subscribed_events(handler)
        if not self._events:
            raise SettingsError(
                f"NRI handler {type(handler).__name__} implements no NRI event "
                "(run_pod_sandbox, stop_pod_sandbox, remove_pod_sandbox, create_container)"
            )
        self._wanted = event_mask(self._events)
        self._socket_path = str(socket_path)
        self._socket_fd = socket_fd
        self._name = plugin_name
        self._index = plugin_index
        self._registration_timeout = registration_timeout
        self._calls = BoundedCalls(
            request_timeout=request_timeout_hint, margin=handler_margin, on_failure=self._set_error
        )
        self._shutdown_grace = shutdown_grace
        self._methods = self._method_table()
        self._part = health
        if health is not None:
            health.failing("connecting to the runtime")

        self._client: TtrpcClient | None = None
        self._trunk: MuxTrunk | None = None
        self._registered = False
        self._synced: asyncio.Event | None = None
        self._sync_parts: tuple[list[PodSandbox], list[ContainerInfo]] = ([], [])
        """A split Synchronize accumulates here until its last part."""
        self._closing = False
        self._facts = _SessionFacts()

    @classmethod
    def from_environment(
        cls, handler: object, *, environ: Mapping[str, str] | None = None, **options: Any
    ) -> NriPlugin:
        """A plugin configured by the runtime's environment when it launched us, else by ``options``.

        A runtime-launched plugin gets ``NRI_PLUGIN_SOCKET`` (pre-connected fd, always 3),
        ``NRI_PLUGIN_NAME`` and ``NRI_PLUGIN_IDX``; when set they override ``socket_fd``,
        ``plugin_name`` and ``plugin_index``. Raises ValueError for a malformed fd number.
        """
        env = os.environ if environ is None else environ
        fd = inherited_socket_fd(env)
        if fd is not None:
            options["socket_fd"] = fd
        if env.get("NRI_PLUGIN_NAME"):
            options["plugin_name"] = env["NRI_PLUGIN_NAME"]
        if env.get("NRI_PLUGIN_IDX"):
            options["plugin_index"] = env["NRI_PLUGIN_IDX"]
        return cls(handler, **options)

    def __repr__(self) -> str:
        where = f"fd {self._socket_fd}" if self._socket_fd is not None else self._socket_path
        state = "registered" if self._registered else "unregistered"
        return f"<NriPlugin {self._index}-{self._name} {where} {state} events={self._wanted:#x}>"

    # --- public view -------------------------------------------------------------------

    @property
    def registered(self) -> bool:
        """True while the runtime has us configured and synchronized."""
        return self._registered

    def health(self) -> NriHealth:
        """Readiness and the last error, for /healthz."""
        return NriHealth(
            registered=self._registered,
            connected=self._trunk is not None and not self._trunk.closed,
            last_error=self._facts.last_error,
            connects=self._facts.connects,
            runtime=self._facts.runtime,
            events=self._facts.events_sent,
            late_running=self._calls.late_running,
            late_completions=self._calls.late_completions,
            late_failures=self._calls.late_failures,
            late_compensations=self._calls.late_compensations,
        )

    async def update_containers(
        self,
        updates: Sequence[api.ContainerUpdate] = (),
        evictions: Sequence[api.ContainerEviction] = (),
    ) -> list[api.ContainerUpdate]:
        """Ask the runtime to update (or evict) containers; returns the updates that failed.

        Raises RpcError UNAVAILABLE when not registered, or the runtime's error status.
        """
        client = self._client
        if client is None or not self._registered:
            raise RpcError(UNAVAILABLE, "NRI plugin is not registered with the runtime")
        req = api.UpdateContainersRequest(update=list(updates), evict=list(evictions))
        payload = await client.call(
            api.RUNTIME_SERVICE, "UpdateContainers", bytes(req), timeout_s=self._calls.request_timeout
        )
        return list(_parse(api.UpdateContainersResponse, payload, "UpdateContainersResponse").failed)

    # --- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        """One session: connect, register and serve until the connection ends.

        Raises with the cause when the connection fails or ends (the caller's supervisor
        dials again after its backoff). Returns only for an inherited fd, which cannot be
        dialled again, or after :meth:`aclose`.
        """
        if self._closing:
            return
        try:
            await self._session()
        except Exception as exc:
            self._set_error(f"{type(exc).__name__}: {exc}")
            if self._socket_fd is not None or self._closing:
                return
            raise
        self._set_error("runtime closed the NRI connection")
        if self._socket_fd is not None or self._closing:
            return
        raise ConnectionResetError("the runtime closed the NRI connection")

    async def aclose(self) -> None:
        """Stop (``run`` returns from now on), close the connection, and finish late handler work.

        Late handlers get ``shutdown_grace`` seconds to complete; then they are cancelled.
        """
        self._closing = True
        trunk = self._trunk
        if trunk is not None:
            await trunk.aclose()
        await self._calls.drain(self._shutdown_grace)

    def _set_error(self, text: str) -> None:
        self._facts.last_error = text
        log.warning("NRI: %s", text)
        if self._part is not None and not self._registered:
            self._part.failing(text)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._socket_fd is not None:
            fd, self._socket_fd = self._socket_fd, -1  # an inherited fd can be used once
            if fd < 0:
                raise ConnectionResetError("the inherited NRI socket was already used and closed")
            return await open_fd(fd)
        return await open_unix(self._socket_path)

    async def _session(self) -> bool:
        """One connection; returns whether it got as far as a completed Synchronize."""
        reader, writer = await self._open()
        self._facts.connects += 1
        trunk = MuxTrunk(reader, writer)
        server = TtrpcServer(
            {api.PLUGIN_SERVICE: self._methods},
            send=functools.partial(trunk.send_message, PLUGIN_SERVICE_CONN),
            drain=trunk.drain,
        )
        client = TtrpcClient(
            send=functools.partial(trunk.send_message, RUNTIME_SERVICE_CONN), drain=trunk.drain
        )
        trunk.attach(PLUGIN_SERVICE_CONN, server.receive, lambda _exc: server.close())
        trunk.attach(RUNTIME_SERVICE_CONN, client.receive, client.close)
        synced = self._synced = asyncio.Event()
        self._sync_parts = ([], [])
        self._trunk = trunk
        reader_task = asyncio.get_running_loop().create_task(trunk.run(), name="nri-mux-reader")
        try:
            register = api.RegisterPluginRequest(plugin_name=self._name, plugin_idx=self._index)
            await client.call(
                api.RUNTIME_SERVICE, "RegisterPlugin", bytes(register), timeout_s=self._registration_timeout
            )
            self._client = client
            log.info("NRI: registered as %s-%s", self._index, self._name)
            reader_task.add_done_callback(lambda _t: synced.set())  # a dead connection ends the wait
            try:
                async with asyncio.timeout(self._registration_timeout + 2 * self._calls.request_timeout):
                    await synced.wait()
            except TimeoutError:
                raise TimeoutError(
                    "the runtime did not Configure and Synchronize after registration"
                ) from None
            reached = self._registered
            await reader_task  # until the runtime goes away (re-raises a reader error)
            return reached
        finally:
            self._registered = False
            if self._part is not None:
                self._part.failing("the NRI connection ended; reconnecting")
            self._client = None
            self._trunk = None
            client.close()
            reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader_task
            await server.aclose()
            await trunk.aclose()

    # --- serving -----------------------------------------------------------------------

    def _method_table(self) -> dict[str, Handler]:
        table: dict[str, Handler] = {
            "Configure": self._configure,
            "Synchronize": self._synchronize,
            "Shutdown": self._shutdown,
            "StateChange": self._state_change,
        }
        if EventType.RUN_POD_SANDBOX in self._events:
            table["RunPodSandbox"] = self._run_pod_sandbox
        if EventType.STOP_POD_SANDBOX in self._events:
            table["StopPodSandbox"] = self._stop_pod_sandbox
        if EventType.REMOVE_POD_SANDBOX in self._events:
            table["RemovePodSandbox"] = self._remove_pod_sandbox
        if EventType.CREATE_CONTAINER in self._events:
            table["CreateContainer"] = self._create_container
        return table

    async def _configure(self, payload: bytes, deadline: float | None) -> bytes:
        req = _parse(api.ConfigureRequest, payload, "ConfigureRequest")
        self._facts.runtime = f"{req.runtime_name} {req.runtime_version}".strip()
        if req.request_timeout > 0:
            self._calls.request_timeout = req.request_timeout / 1000
        if req.registration_timeout > 0:
            self._registration_timeout = req.registration_timeout / 1000
        valid = valid_events(req.runtime_name, req.runtime_version, req.NRI_version)
        mask = self._wanted & valid
        if mask == 0:  # 0 would subscribe to everything
            raise RpcError(FAILED_PRECONDITION, f"no handled event is supported by {self._facts.runtime}")
        self._facts.events_sent = mask
        log.info(
            "NRI: configured by %s (NRI %s), request timeout %.3gs, events %#x",
            self._facts.runtime,
            req.NRI_version or "<0.12",
            self._calls.request_timeout,
            mask,
        )
        return bytes(api.ConfigureResponse(events=mask))

    async def _synchronize(self, payload: bytes, deadline: float | None) -> bytes:
        req_pods, req_ctrs, more = _decode(decode_synchronize, payload, "SynchronizeRequest")
        self._sync_parts[0].extend(req_pods)
        self._sync_parts[1].extend(req_ctrs)
        if more:
            return bytes(api.SynchronizeResponse(more=True))
        pods, ctrs = self._sync_parts
        self._sync_parts = ([], [])
        sync = getattr(self._handler, "synchronize", None)
        if callable(sync):
            await self._calls.run("synchronize", "Synchronize", deadline, lambda: sync(pods, ctrs))
        self._registered = True
        if self._part is not None:
            self._part.ok(f"registered with {self._facts.runtime or 'runtime'}")
        if self._synced is not None:
            self._synced.set()
        log.info("NRI: synchronized %d pods, %d containers", len(pods), len(ctrs))
        return bytes(api.SynchronizeResponse())

    async def _shutdown(self, payload: bytes, deadline: float | None) -> bytes:
        log.info("NRI: the runtime asked us to shut down; waiting for it to close the connection")
        return bytes(api.Empty())

    async def _pod_event(self, event: EventType, pod: PodSandbox, deadline: float | None) -> None:
        call: Callable[[], Awaitable[object]]
        late = None
        if event is EventType.RUN_POD_SANDBOX and (run := self._run_handler) is not None:
            late = LateFlag()
            call = functools.partial(run_then_undo_if_late, run, pod, late, self._calls)
        elif event is EventType.STOP_POD_SANDBOX and (stop := self._stop_handler) is not None:
            call = functools.partial(stop.stop_pod_sandbox, pod)
        elif event is EventType.REMOVE_POD_SANDBOX and (remove := self._remove_handler) is not None:
            call = functools.partial(remove.remove_pod_sandbox, pod)
        else:
            return
        await self._calls.run(pod.id or pod.uid, event.name, deadline, call, late)

    async def _run_pod_sandbox(self, payload: bytes, deadline: float | None) -> bytes:
        pod = _decode(decode_pod_request, payload, "RunPodSandboxRequest")
        await self._pod_event(EventType.RUN_POD_SANDBOX, pod, deadline)
        return b""

    async def _stop_pod_sandbox(self, payload: bytes, deadline: float | None) -> bytes:
        pod = _decode(decode_pod_request, payload, "StopPodSandboxRequest")
        await self._pod_event(EventType.STOP_POD_SANDBOX, pod, deadline)
        return b""

    async def _remove_pod_sandbox(self, payload: bytes, deadline: float | None) -> bytes:
        pod = _decode(decode_pod_request, payload, "RemovePodSandboxRequest")
        await self._pod_event(EventType.REMOVE_POD_SANDBOX, pod, deadline)
        return b""

    async def _create_container(self, payload: bytes, deadline: float | None) -> bytes:
        pod, ctr = _decode(decode_container_request, payload, "CreateContainerRequest")
        h = self._create_handler
        if h is None:
            return b""
        nodes = await self._calls.run(
            pod.id or pod.uid, "CreateContainer", deadline, functools.partial(h.create_container, pod, ctr)
        )
        return encode_create_container_response(nodes)

    async def _state_change(self, payload: bytes, deadline: float | None) -> bytes:
        number, pod, _ = _decode(decode_state_change, payload, "StateChangeEvent")
        try:
            event = EventType(number)
        except ValueError:
            return b""  # an event this code does not know: nothing to do
        if event in self._events and event in (
            EventType.RUN_POD_SANDBOX,
            EventType.STOP_POD_SANDBOX,
            EventType.REMOVE_POD_SANDBOX,
        ):
            await self._pod_event(event, pod, deadline)
        return b""
