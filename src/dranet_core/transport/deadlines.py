"""Many one-shot deadlines on one event-loop timer.

A request path that sets a deadline on every call and nearly always cancels it (the call
answers in well under a millisecond, the deadline is seconds away) pays for a loop timer it
never uses: on uvloop, arming and cancelling one is a libuv timer start and stop, a few
microseconds each time. :class:`Deadlines` keeps a single loop timer armed at the earliest
pending deadline; :meth:`Deadlines.add` and :meth:`Deadlines.cancel` are dict operations, and
the loop timer is re-armed only when a deadline earlier than the armed one is added, or when
it fires.

Contract: a callback runs from the event loop (scheduled with ``call_soon``, so one that
raises goes to the loop's exception handler and does not stop the others), at or after its
time as the loop's timers see it (loop timers may fire up to a millisecond early, so this is
allowed the same :data:`TOLERANCE`); a callback cancelled before then never runs. An
instance serves the loop that last added to it: adding from another loop drops what was
pending on the previous one.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Final

__all__ = ["TOLERANCE", "Deadlines"]

TOLERANCE: Final = 1e-3
"""A deadline this close to the loop's time when the timer fires counts as reached (uvloop
keeps time and timers in whole milliseconds)."""


class Deadlines:
    """One-shot callbacks at loop times, sharing one loop timer (module doc)."""

    __slots__ = ("_armed", "_loop", "_next", "_pending", "_timer")

    def __init__(self) -> None:
        self._pending: dict[int, tuple[float, Callable[[], object]]] = {}
        self._next = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._armed = math.inf

    def __repr__(self) -> str:
        return f"<Deadlines pending={len(self._pending)} armed_at={self._armed}>"

    def __len__(self) -> int:
        """Deadlines added and neither reached nor cancelled."""
        return len(self._pending)

    def add(self, when: float, callback: Callable[[], object], loop: asyncio.AbstractEventLoop) -> int:
        """Call ``callback()`` once ``loop``'s time reaches ``when``; return a key for
        :meth:`cancel`. ``loop`` is the running loop (the caller has it: looking it up costs
        a system call); call from its thread."""
        if loop is not self._loop:  # first use, or a new loop: what the old one held can't run
            self.close()
            self._loop = loop
        key = self._next
        self._next = key + 1
        self._pending[key] = (when, callback)
        if when < self._armed:
            self._arm(when)
        return key

    def cancel(self, key: int) -> None:
        """Forget the deadline ``key`` (nothing happens if it was reached or cancelled)."""
        self._pending.pop(key, None)

    def close(self) -> None:
        """Cancel every pending deadline and the loop timer."""
        self._pending.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed = math.inf

    def _arm(self, when: float) -> None:
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
        self._armed = when
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        loop = self._loop
        assert loop is not None
        self._timer = None
        self._armed = math.inf
        reached = loop.time() + TOLERANCE
        pending = self._pending
        due = [key for key, (when, _) in pending.items() if when <= reached]
        for key in due:
            loop.call_soon(pending.pop(key)[1])
        if pending:
            self._arm(min(when for when, _ in pending.values()))
