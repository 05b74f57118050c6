"""Handler calls bounded by the runtime's request timeout, and the late work they leave.

Each call gets the budget of :func:`~dranet_core.nri.budget.handler_budget`. When it runs
out, the runtime is answered DEADLINE_EXCEEDED (a normal error status: the connection
survives) and the handler keeps running to completion as a *late* task: tracked, logged,
counted, and awaited by :meth:`BoundedCalls.drain` at shutdown. Later calls for the same key
(sandbox) wait for it first, within their own budget. If the connection goes away mid-call,
the runtime proceeds as if the event succeeded, so that work is kept as late work too, but
not flagged for undo.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from dranet_core.errors import RpcError
from dranet_core.nri.budget import handler_budget, overrun_message
from dranet_core.nri.handlers import (
    RemovePodSandboxHandler,
    RunPodSandboxHandler,
    StopPodSandboxHandler,
    UndoesLateRun,
)
from dranet_core.transport.deadlines import Deadlines
from dranet_core.transport.ttrpc import DEADLINE_EXCEEDED
from dranet_core.types import PodSandbox

__all__ = ["BoundedCalls", "LateFlag", "run_then_undo_if_late"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class LateFlag:
    """Set when a handler call outlived its budget and the runtime got an error instead."""

    __slots__ = ("set",)

    def __init__(self) -> None:
        self.set = False


class BoundedCalls:
    """Runs handler calls within their budget; keeps the late ones (module doc).

    ``request_timeout`` is updated from the runtime's Configure; ``on_failure`` is told when
    a late call fails.
    """

    def __init__(self, *, request_timeout: float, margin: float, on_failure: Callable[[str], None]) -> None:
        self.request_timeout = request_timeout
        self.margin = margin
        self.on_failure = on_failure
        self._late: dict[asyncio.Task[Any], tuple[str, str]] = {}
        self._by_key: dict[str, asyncio.Task[Any]] = {}
        self._deadlines = Deadlines()
        self.late_completions = 0
        self.late_failures = 0
        self.late_compensations = 0
        """Late RunPodSandbox calls undone afterwards (counted by the undo itself)."""

    def __repr__(self) -> str:
        return f"BoundedCalls(timeout={self.request_timeout}, late={len(self._late)})"

    @property
    def late_running(self) -> int:
        """Late calls still running."""
        return len(self._late)

    async def run(
        self,
        key: str,
        what: str,
        deadline: float | None,
        call: Callable[[], Awaitable[T]],
        late: LateFlag | None = None,
    ) -> T:
        """``call()`` within its budget; raises RpcError DEADLINE_EXCEEDED when it runs out
        (the call goes on as late work, and ``late`` is set)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        budget = handler_budget(
            self.request_timeout, self.margin, None if deadline is None else deadline - now
        )
        until = now + budget.seconds
        earlier = self._by_key.get(key)
        if earlier is not None and not earlier.done():
            log.info("NRI: %s for %s waits for the still-running %s", what, key, self._late[earlier][1])
            await asyncio.wait({earlier}, timeout=max(until - loop.time(), 0.0))

        # wait for the task or the budget, whichever comes first, without cancelling the task:
        # one future, woken by the task's last step or by a shared-timer deadline (asyncio.wait
        # builds sets, a loop timer and done-callbacks, each one more turn of the loop)
        waiter: asyncio.Future[None] = loop.create_future()
        task: asyncio.Task[T] = loop.create_task(_start(call, waiter), name=f"nri-{what}-{key}")
        timer = self._deadlines.add(until, functools.partial(_wake, waiter), loop)
        try:
            await waiter
        except asyncio.CancelledError:
            # The connection went away (or we are closing). The runtime treats a lost plugin as
            # success for this event, so the work is still wanted: no undo.
            if not task.done():
                self._adopt(key, what, task, None)
            raise
        finally:
            self._deadlines.cancel(timer)
        if not task.done():
            self._adopt(key, what, task, late)  # the runtime gets an error: undo a late run
            raise RpcError(DEADLINE_EXCEEDED, overrun_message(what, key, budget))
        return task.result()  # the handler's own exception becomes the ttrpc error status

    async def drain(self, grace: float) -> None:
        """Give late calls ``grace`` seconds to finish, then cancel what is left."""
        late = list(self._late)
        if not late:
            return
        _, pending = await asyncio.wait(late, timeout=grace)
        for t in pending:
            log.warning("NRI: cancelling late handler %s after the shutdown grace", t.get_name())
            t.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def _adopt(self, key: str, what: str, task: asyncio.Task[Any], late: LateFlag | None) -> None:
        if late is not None:
            late.set = True
        log.warning("NRI: %s for %s is late; it keeps running in the background", what, key)
        self._late[task] = (key, what)
        self._by_key[key] = task
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        key, what = self._late.pop(task, ("?", "?"))
        if self._by_key.get(key) is task:
            del self._by_key[key]
        if task.cancelled():
            self.late_failures += 1
            log.error("NRI: late %s for %s was cancelled", what, key)
        elif (exc := task.exception()) is not None:
            self.late_failures += 1
            self.on_failure(f"late {what} for {key} failed: {exc}")
        else:
            self.late_completions += 1
            log.info("NRI: late %s for %s completed", what, key)


async def _start(call: Callable[[], Awaitable[T]], waiter: asyncio.Future[None]) -> T:
    """``call()``, waking ``waiter`` as it ends (its result is set by then: the task's last step
    runs on before the waiting task is resumed)."""
    try:
        return await call()
    finally:
        _wake(waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def run_then_undo_if_late(
    h: RunPodSandboxHandler, pod: PodSandbox, late: LateFlag, calls: BoundedCalls
) -> None:
    """RunPodSandbox; if it finished after the runtime was told it failed, have it undone.

    containerd tears a sandbox whose NRI RunPodSandbox failed down without telling NRI
    plugins (no StopPodSandbox / RemovePodSandbox follows). Undoing is the handler's decision
    (:class:`~dranet_core.nri.handlers.UndoesLateRun`); a handler without one gets its own
    stop and remove methods called, in that order.
    """
    await h.run_pod_sandbox(pod)
    if not late.set:
        return
    log.warning("NRI: RunPodSandbox for %s finished after the runtime failed it; undoing it", pod)
    if isinstance(h, UndoesLateRun):
        await h.undo_late_run_pod_sandbox(pod)
    else:
        if isinstance(h, StopPodSandboxHandler):
            await h.stop_pod_sandbox(pod)
        if isinstance(h, RemovePodSandboxHandler):
            await h.remove_pod_sandbox(pod)
        if not isinstance(h, StopPodSandboxHandler | RemovePodSandboxHandler):
            log.error("NRI: handler has no stop/remove method; %s stays attached to a dead sandbox", pod)
            return
    calls.late_compensations += 1
