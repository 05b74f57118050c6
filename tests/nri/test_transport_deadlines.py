"""Deadlines: many one-shot callbacks on one loop timer (the ttrpc server's and the NRI
handler budgets' deadlines)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from dranet_core.transport.deadlines import TOLERANCE, Deadlines


class CountingLoopTimers:
    """Counts the loop timers armed through ``call_at`` (what Deadlines saves)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.armed = 0
        loop = asyncio.get_running_loop()
        real = loop.call_at

        def call_at(when: float, callback: Callable[..., object], *args: Any, **kw: Any) -> Any:
            self.armed += 1
            return real(when, callback, *args, **kw)

        monkeypatch.setattr(loop, "call_at", call_at)


async def _reached(event: asyncio.Event) -> None:
    async with asyncio.timeout(5):
        await event.wait()


async def test_callbacks_run_in_deadline_order_not_before_their_time() -> None:
    loop = asyncio.get_running_loop()
    d = Deadlines()
    ran: list[tuple[str, float, float]] = []
    done = asyncio.Event()
    now = loop.time()
    for name, delay in (("late", 0.06), ("early", 0.02), ("middle", 0.04)):
        when = now + delay

        def cb(name: str = name, when: float = when) -> None:
            ran.append((name, when, loop.time()))
            if len(ran) == 3:
                done.set()

        d.add(when, cb, loop)
    await _reached(done)
    assert [name for name, _, _ in ran] == ["early", "middle", "late"]
    assert all(at >= when - TOLERANCE for _, when, at in ran)
    assert len(d) == 0


async def test_one_loop_timer_for_later_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    timers = CountingLoopTimers(monkeypatch)
    loop = asyncio.get_running_loop()
    d = Deadlines()
    now = loop.time()
    keys = [d.add(now + 10 + i, lambda: None, loop) for i in range(100)]
    assert timers.armed == 1  # the later deadlines ride on the armed timer
    for k in keys:
        d.cancel(k)
    assert len(d) == 0
    d.add(now + 5, lambda: None, loop)  # earlier than the armed one: re-armed
    assert timers.armed == 2
    d.close()


async def test_cancelled_callbacks_never_run_and_the_rest_still_do() -> None:
    loop = asyncio.get_running_loop()
    d = Deadlines()
    ran: list[str] = []
    done = asyncio.Event()
    now = loop.time()
    first = d.add(now + 0.01, lambda: ran.append("cancelled"), loop)
    d.add(now + 0.03, lambda: (ran.append("kept"), done.set()), loop)
    d.cancel(first)
    d.cancel(first)  # twice is harmless
    await _reached(done)
    assert ran == ["kept"]


async def test_a_deadline_added_earlier_than_the_armed_one_runs_first() -> None:
    loop = asyncio.get_running_loop()
    d = Deadlines()
    ran: list[str] = []
    done = asyncio.Event()
    now = loop.time()
    d.add(now + 10, lambda: ran.append("far"), loop)
    d.add(now + 0.01, lambda: (ran.append("near"), done.set()), loop)
    await _reached(done)
    assert ran == ["near"] and len(d) == 1
    d.close()
    assert len(d) == 0


async def test_a_raising_callback_goes_to_the_loop_handler_and_others_run() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
    try:
        d = Deadlines()
        done = asyncio.Event()
        now = loop.time()

        def boom() -> None:
            raise RuntimeError("boom")

        d.add(now, boom, loop)
        d.add(now, done.set, loop)
        await _reached(done)
        await asyncio.sleep(0)
        assert [type(e.get("exception")) for e in errors] == [RuntimeError]
    finally:
        loop.set_exception_handler(None)


async def test_a_deadline_in_the_past_runs_at_once() -> None:
    loop = asyncio.get_running_loop()
    d = Deadlines()
    done = asyncio.Event()
    d.add(loop.time() - 1, done.set, loop)
    await _reached(done)


def test_a_new_loop_drops_what_the_old_one_held() -> None:
    d = Deadlines()
    ran: list[str] = []

    async def first() -> None:
        loop = asyncio.get_running_loop()
        d.add(loop.time() + 60, lambda: ran.append("old loop"), loop)

    async def second() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        d.add(loop.time(), done.set, loop)
        await _reached(done)
        assert len(d) == 0

    asyncio.run(first())
    asyncio.run(second())
    assert ran == []
