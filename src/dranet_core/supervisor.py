"""Supervision: every long-lived piece of the driver is a named job under one TaskGroup.

How it works:

* A :class:`Job` names a coroutine factory and says what its end means. A *service* (the
  kubelet servers, the NRI connection, the inventory loop, the status publisher) should run
  until cancelled: if it returns or raises a recoverable error, :func:`guard` waits
  (exponential backoff with jitter, capped) and starts it again — forever, never "five times
  then exit" — and marks its part of :class:`Health` unhealthy with the reason meanwhile. A
  *finishable* job (a one-shot start-up step) may return. A fatal error (a permanent one:
  bad settings, an unreadable checkpoint, a bug) is re-raised as :class:`JobFailed` and the
  TaskGroup cancels every other job, so the driver stops with that cause.
* :class:`Supervisor` owns the TaskGroup. Jobs are added before or while it runs; it is the
  only place in the driver that creates tasks.
* :class:`ShutdownSignals` turns the first SIGTERM/SIGINT into an event (the owner then runs
  its ordered shutdown) and makes the second one exit the process at once.
* Time comes from an injected :class:`Clock`, so tests run backoff and grace periods in
  milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import Final

import attrs

from dranet_core.backoff import Backoff
from dranet_core.clock import Clock, MonotonicClock
from dranet_core.errors import DranetError, JobFailed, ProtocolError, RpcError
from dranet_core.health import Health, PartState

__all__ = [
    "Backoff",
    "Clock",
    "Health",
    "Job",
    "JobFailed",
    "MonotonicClock",
    "PartState",
    "ShutdownSignals",
    "Supervisor",
    "always_recoverable",
    "guard",
    "is_recoverable",
]

log = logging.getLogger(__name__)


_FOREIGN_IO_MODULES: Final = ("aiohttp", "kubernetes_asyncio", "grpclib", "h2", "pyroute2")


def is_recoverable(exc: BaseException) -> bool:
    """The default policy: may retrying later succeed?

    Recoverable: connection and I/O errors (``OSError``, ``TimeoutError``), protocol errors
    from a peer, RPC errors, errors marked temporary, and errors raised by the network
    libraries we use (aiohttp, kubernetes-asyncio, grpclib, pyroute2). Everything else —
    permanent errors, settings and checkpoint errors, programming errors — is fatal.
    """
    if isinstance(exc, DranetError):
        return exc.temporary or isinstance(exc, ProtocolError | RpcError)
    if isinstance(exc, OSError | TimeoutError | EOFError | asyncio.IncompleteReadError):
        return True
    mod = type(exc).__module__.split(".")[0]
    return mod in _FOREIGN_IO_MODULES


def always_recoverable(exc: BaseException) -> bool:
    """The policy for code the driver does not own (a backend's watch or loop): any error
    is retried after a backoff, none stops the driver."""
    return True


@attrs.frozen(kw_only=True)
class Job:
    """A named long-lived coroutine and what its end means.

    ``part`` is the Health part the job reports into (None: it does not report). A job that
    manages its own part (e.g. only ok after registration) sets ``manages_health=True`` and
    the guard only marks it failing between attempts.
    """

    name: str
    run: Callable[[], Awaitable[None]]
    finishable: bool = False
    part: str | None = None
    manages_health: bool = False
    backoff: Backoff = attrs.field(factory=Backoff)
    recoverable: Callable[[BaseException], bool] = is_recoverable


async def guard(job: Job, *, health: Health | None = None, clock: Clock | None = None) -> None:
    """Run ``job`` until it finishes (if finishable) or is cancelled; retry recoverable failures.

    Raises :class:`JobFailed` for a fatal error (and for a finishable job, never otherwise).
    """
    clock = clock or MonotonicClock()
    attempt = 0
    while True:
        started = clock.now()
        if health is not None and job.part is not None and not job.manages_health:
            health.ok(job.part, "running")
        try:
            await job.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not job.recoverable(exc):
                log.error("job %s failed: %s", job.name, exc, extra={"job": job.name})
                raise JobFailed(job.name, exc) from exc
            reason = f"{type(exc).__name__}: {exc}"
        else:
            if job.finishable:
                return
            reason = "finished unexpectedly"
        if clock.now() - started >= job.backoff.reset_after:
            attempt = 0
        delay = job.backoff.delay(attempt)
        attempt += 1
        if health is not None and job.part is not None:
            health.failing(job.part, f"{reason}; retry {attempt} in {delay:.1f}s")
        log.warning(
            "job %s: %s; retrying in %.1fs (attempt %d)",
            job.name,
            reason,
            delay,
            attempt,
            extra={"job": job.name},
        )
        await clock.sleep(delay)


class Supervisor:
    """Owns the one TaskGroup; runs :class:`Job` s under :func:`guard`.

    Use as ``async with Supervisor(health=h) as sup: sup.start(job); ...``. Leaving the block
    waits for finishable jobs and (after :meth:`stop`) cancels services. A fatal job error
    cancels everything and leaves the block with an ``ExceptionGroup`` holding
    :class:`JobFailed`; :func:`fatal_cause` extracts it.
    """

    def __init__(self, *, health: Health | None = None, clock: Clock | None = None) -> None:
        self.health = health
        self.clock = clock or MonotonicClock()
        self._group: asyncio.TaskGroup | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def __repr__(self) -> str:
        running = sorted(n for n, t in self._tasks.items() if not t.done())
        return f"Supervisor(running={running})"

    async def __aenter__(self) -> Supervisor:
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        return self

    async def __aexit__(self, et: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        assert self._group is not None
        try:
            await self._group.__aexit__(et, exc, tb)  # type: ignore[arg-type]
        finally:
            self._group = None

    def start(self, job: Job) -> asyncio.Task[None]:
        """Start ``job`` under guard as a task named after it."""
        if self._group is None:
            raise RuntimeError("supervisor is not running")
        if job.name in self._tasks and not self._tasks[job.name].done():
            raise RuntimeError(f"job {job.name} is already running")
        if self.health is not None and job.part is not None:
            self.health.register(job.part)
        task = self._group.create_task(guard(job, health=self.health, clock=self.clock), name=job.name)
        self._tasks[job.name] = task
        return task

    async def stop(self, *names: str) -> None:
        """Cancel the named jobs (all when none named) and wait for them to end."""
        targets = [t for n, t in self._tasks.items() if (not names or n in names) and not t.done()]
        for t in targets:
            t.cancel()
        for t in targets:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def running(self) -> list[str]:
        """Names of the jobs still running."""
        return sorted(n for n, t in self._tasks.items() if not t.done())


def fatal_cause(group: BaseExceptionGroup[BaseException]) -> JobFailed | None:
    """The first :class:`JobFailed` in an exception group from :class:`Supervisor`, if any."""
    match, _ = group.split(JobFailed)
    if match is None:
        return None
    for exc in _leaves(match):
        if isinstance(exc, JobFailed):
            return exc
    return None


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


class ShutdownSignals:
    """Two-stage signal handling: the first SIGTERM/SIGINT sets :attr:`requested`; the second
    restores the default action and re-raises the signal, so the process exits at once.

    Use as a context manager around the driver's life; it removes its handlers on exit.
    """

    SIGNALS: Final = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, *, exit_now: Callable[[int], None] | None = None) -> None:
        self.requested = asyncio.Event()
        self.signal: int | None = None
        self._exit_now = exit_now or self._die
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> ShutdownSignals:
        self._loop = asyncio.get_running_loop()
        for sig in self.SIGNALS:
            self._loop.add_signal_handler(sig, self._on_signal, sig)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        for sig in self.SIGNALS:
            self._loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        if self.requested.is_set():
            log.warning("second signal %s: exiting now", signal.Signals(sig).name)
            self._exit_now(sig)
            return
        log.info("signal %s: shutting down (send it again to exit at once)", signal.Signals(sig).name)
        self.signal = sig
        self.requested.set()

    @staticmethod
    def _die(sig: int) -> None:
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
