"""What the NRI plugin calls: optional handler protocols, one per event, like the Go stub.

A driver passes one handler object to :class:`~dranet_core.nri.plugin.NriPlugin`; the events
the plugin subscribes to are exactly the methods that object has (:func:`subscribed_events`).
All methods are coroutines and receive core types (:class:`~dranet_core.types.PodSandbox`,
:class:`ContainerInfo`), never protocol messages.

Contracts shared by every method:

* **Time.** The runtime waits ``request_timeout`` (2 s by default) for each call and *drops
  the plugin* when it passes. The plugin therefore answers with an error status
  (DEADLINE_EXCEEDED) at ``min(request timeout, the call's deadline) - margin`` if the handler
  is still running; the handler is **not cancelled**: it keeps running to completion in the
  background, its outcome is logged and counted (``NriHealth.late_*``), and later events for
  the same sandbox wait for it first (bounded by their own budget). A *late RunPodSandbox* is
  then **undone**: containerd tears down a sandbox whose NRI RunPodSandbox failed without
  sending StopPodSandbox/RemovePodSandbox to plugins, so once the late run has finished the
  plugin asks the handler to undo it (:class:`UndoesLateRun`; a handler without it gets its
  own ``stop_pod_sandbox`` and ``remove_pod_sandbox`` called for that sandbox), counted in
  ``NriHealth.late_compensations``. If the connection is lost mid-call instead, the
  runtime proceeds as if the event succeeded, so that work is kept, not undone. Only
  :meth:`NriPlugin.aclose` cancels handler work, after its grace period; a handler must roll
  back on cancellation.
* **Identity.** The kubelet retries a failed sandbox with a *new* sandbox (new ``pod.id``, same
  ``pod.uid``); key attach state on ``pod.id`` where a late undo could meet a retry.
* **Errors.** Raise :class:`~dranet_core.errors.RpcError` to choose the status code; any
  other exception becomes UNKNOWN with the exception text. containerd fails the pod
  (RunPodSandbox) or container (CreateContainer) on an error and only logs errors of
  StopPodSandbox / RemovePodSandbox.
* **Idempotence.** After a runtime or driver restart, :meth:`SynchronizeHandler.synchronize`
  reports every existing pod and container; events may repeat.
* **Concurrency.** The runtime calls plugins one event at a time, but handlers must not rely on
  it (a late handler may still run while the next event arrives for another pod).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs

from dranet_core.nri.events import EventType
from dranet_core.types import DeviceNode, PodSandbox

__all__ = [
    "ContainerInfo",
    "CreateContainerHandler",
    "RemovePodSandboxHandler",
    "RunPodSandboxHandler",
    "StopPodSandboxHandler",
    "SynchronizeHandler",
    "UndoesLateRun",
    "subscribed_events",
]


@attrs.frozen(kw_only=True)
class ContainerInfo:
    """A container as NRI describes it: its CRI id, name and the sandbox it belongs to."""

    id: str
    name: str
    pod_sandbox_id: str


@runtime_checkable
class RunPodSandboxHandler(Protocol):
    """Called after the pod's network namespace exists (and CNI ran), before it is Ready."""

    async def run_pod_sandbox(self, pod: PodSandbox) -> None:
        """Attach the pod's devices to ``pod.netns``; raise to fail the sandbox."""
        ...


@runtime_checkable
class StopPodSandboxHandler(Protocol):
    """Called when the pod stops; on containerd the netns still exists (not on CRI-O)."""

    async def stop_pod_sandbox(self, pod: PodSandbox) -> None:
        """Give the pod's devices back."""
        ...


@runtime_checkable
class RemovePodSandboxHandler(Protocol):
    """Called when the sandbox is removed; the netns is usually gone (``pod.netns`` None)."""

    async def remove_pod_sandbox(self, pod: PodSandbox) -> None:
        """Forget the pod."""
        ...


@runtime_checkable
class CreateContainerHandler(Protocol):
    """Called for every container before it is created; may add device nodes."""

    async def create_container(self, pod: PodSandbox, container: ContainerInfo) -> Sequence[DeviceNode]:
        """Device nodes (RDMA, vfio char devices) to add to the container; may be empty."""
        ...


@runtime_checkable
class SynchronizeHandler(Protocol):
    """Called once per (re)connection with every pod and container the runtime has."""

    async def synchronize(self, pods: Sequence[PodSandbox], containers: Sequence[ContainerInfo]) -> None:
        """Reconcile driver state with what exists (a split request arrives here once, whole)."""
        ...


@runtime_checkable
class UndoesLateRun(Protocol):
    """Decides how to undo a RunPodSandbox that finished after the runtime had failed it.

    A handler without this method gets the plugin's default: its own ``stop_pod_sandbox`` then
    ``remove_pod_sandbox`` for that sandbox.
    """

    async def undo_late_run_pod_sandbox(self, pod: PodSandbox) -> None:
        """Undo what the late RunPodSandbox of ``pod`` did (the sandbox is gone)."""
        ...


_EVENT_METHODS: tuple[tuple[EventType, str], ...] = (
    (EventType.RUN_POD_SANDBOX, "run_pod_sandbox"),
    (EventType.STOP_POD_SANDBOX, "stop_pod_sandbox"),
    (EventType.REMOVE_POD_SANDBOX, "remove_pod_sandbox"),
    (EventType.CREATE_CONTAINER, "create_container"),
)


def subscribed_events(handler: object) -> frozenset[EventType]:
    """The events ``handler`` has a method for (Synchronize is not an event: always delivered)."""
    return frozenset(e for e, name in _EVENT_METHODS if callable(getattr(handler, name, None)))
