"""The one backoff of the driver: exponential with jitter, capped.

:class:`Backoff` is the policy (attempt n waits ``U(0.5, 1) * min(cap, base * 2**n)``);
:class:`Retry` counts consecutive failures of one loop or one queued item against it. The
supervisor restarts failed jobs with it; the API publisher spaces its retries with it.
"""

from __future__ import annotations

import random

import attrs

__all__ = ["Backoff", "Retry"]


@attrs.frozen(kw_only=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits U(0.5, 1) * min(cap, base * 2**n)."""

    base: float = 0.5
    """Seconds before the first retry."""
    cap: float = 30.0
    """Longest wait between attempts, in seconds."""
    reset_after: float = 60.0
    """A run that lasted this many seconds counts as healthy: the next failure starts over."""

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        r: float = (rng or random).uniform(0.5, 1.0)
        step: float = self.base * 2.0 ** min(attempt, 30)
        return r * min(self.cap, step)


@attrs.define
class Retry:
    """Consecutive failures of one thing, and the wait before its next try."""

    policy: Backoff
    failures: int = 0

    def next(self) -> float:
        """The wait before the next try; counts one more failure."""
        delay = self.policy.delay(self.failures)
        self.failures += 1
        return delay

    def reset(self) -> None:
        """It worked: the next failure starts over."""
        self.failures = 0
