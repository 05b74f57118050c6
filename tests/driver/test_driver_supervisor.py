"""Supervision: named guarded jobs, retry forever with backoff, fatal stops all, signals."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from dranet_core.errors import ConfigError, RemoteProtocolError, SettingsError, TemporaryError
from dranet_core.supervisor import (
    Backoff,
    Health,
    Job,
    JobFailed,
    ShutdownSignals,
    Supervisor,
    fatal_cause,
    guard,
    is_recoverable,
)


class FakeClock:
    """Virtual time: sleep advances now() at once (and yields to the loop)."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("exc", "recoverable"),
    [
        (ConnectionResetError("reset"), True),
        (OSError("no such file"), True),
        (TimeoutError(), True),
        (RemoteProtocolError("garbled"), True),
        (TemporaryError("api down"), True),
        (ConfigError("bad"), False),
        (SettingsError("--x: bad"), False),
        (ValueError("bug"), False),
        (AttributeError("bug"), False),
    ],
)
def test_default_policy(exc: BaseException, recoverable: bool) -> None:
    assert is_recoverable(exc) is recoverable


async def test_recoverable_failures_retry_forever_and_show_in_health() -> None:
    clock = FakeClock()
    health = Health(clock)
    calls = 0
    seen_failing: list[str] = []

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            seen_failing.append(health.snapshot()["nri"].detail)
        if calls < 12:  # well past any "retry five times" limit
            raise ConnectionResetError("connection lost")

    job = Job(
        name="nri",
        run=flaky,
        finishable=True,
        part="nri",
        manages_health=True,
        backoff=Backoff(base=1, cap=8),
    )
    health.register("nri")
    await guard(job, health=health, clock=clock)
    assert calls == 12
    assert len(seen_failing) == 11
    assert not health.ready
    assert all("ConnectionResetError: connection lost; retry" in d for d in seen_failing)
    # exponential, capped at 8 s, jittered in [0.5, 1]
    assert clock.sleeps[0] <= 1.0
    assert all(0.5 * min(8, 2**i) <= s <= min(8, 2**i) for i, s in enumerate(clock.sleeps))
    assert max(clock.sleeps) <= 8


async def test_service_that_returns_is_restarted() -> None:
    clock = FakeClock()
    runs = 0
    done = asyncio.Event()

    async def service() -> None:
        nonlocal runs
        runs += 1
        if runs == 3:
            done.set()
            await asyncio.Event().wait()

    async with Supervisor(clock=clock) as sup:
        sup.start(Job(name="svc", run=service))
        await asyncio.wait_for(done.wait(), 5)
        assert sup.running() == ["svc"]
        await sup.stop()
    assert runs == 3


async def test_fatal_error_stops_every_job_with_its_cause() -> None:
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    async def broken() -> None:
        await asyncio.sleep(0)
        raise ConfigError("checkpoint says nonsense")

    with pytest.raises(BaseExceptionGroup) as info:
        async with Supervisor() as sup:
            sup.start(Job(name="forever", run=forever))
            sup.start(Job(name="broken", run=broken))
    cause = fatal_cause(info.value)
    assert isinstance(cause, JobFailed)
    assert cause.job == "broken"
    assert "checkpoint says nonsense" in str(cause)
    assert cancelled.is_set()


async def test_task_names_and_repr() -> None:
    started = asyncio.Event()

    async def svc() -> None:
        started.set()
        await asyncio.Event().wait()

    async with Supervisor() as sup:
        task = sup.start(Job(name="inventory loop", run=svc))
        await started.wait()
        assert task.get_name() == "inventory loop"
        assert repr(sup) == "Supervisor(running=['inventory loop'])"
        with pytest.raises(RuntimeError, match="already running"):
            sup.start(Job(name="inventory loop", run=svc))
        await sup.stop("inventory loop")
        assert sup.running() == []


def test_health_states() -> None:
    h = Health(FakeClock())
    assert not h.ready  # nothing registered: not ready
    h.register("kubelet")
    h.register("nri")
    assert not h.ready
    h.ok("kubelet", "registered")
    assert not h.ready
    h.ok("nri", "registered")
    assert h.ready
    h.failing("nri", "connection lost")
    assert not h.ready
    assert h.snapshot()["nri"].detail == "connection lost"
    assert repr(h) == "Health(ready=False, parts={'kubelet': True, 'nri': False})"


async def test_wait_ready() -> None:
    h = Health(FakeClock())
    h.register("a")
    waiter = asyncio.ensure_future(h.wait_ready())
    await asyncio.sleep(0)
    assert not waiter.done()
    h.ok("a")
    await asyncio.wait_for(waiter, 1)


async def test_two_signals() -> None:
    exits: list[int] = []
    with ShutdownSignals(exit_now=exits.append) as sigs:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(sigs.requested.wait(), 2)
        assert sigs.signal == signal.SIGTERM
        assert exits == []
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):
            if exits:
                break
            await asyncio.sleep(0.01)
    assert exits == [signal.SIGTERM]
