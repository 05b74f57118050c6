"""How long an NRI handler may run before the runtime must get an answer.

The runtime drops a plugin that does not answer within its request timeout (2 s by default).
The plugin therefore answers DEADLINE_EXCEEDED a safety *margin* before that and lets the
handler finish in the background. :func:`handler_budget` is that policy, in one place:

* the budget is ``min(request timeout, time left until the call's own deadline) - margin``;
* the margin is never more than a quarter of the request timeout, so a runtime configured
  with a tiny timeout (say 1 ms) still gives a handler a positive, if small, budget, and the
  answer is still sent before the runtime gives up;
* the budget is never negative.

:func:`overrun_message` words the DEADLINE_EXCEEDED answer with the numbers that made it.
"""

from __future__ import annotations

import attrs

__all__ = ["Budget", "handler_budget", "overrun_message"]


@attrs.frozen
class Budget:
    """A handler's budget and where it came from."""

    seconds: float
    request_timeout: float
    margin: float


def handler_budget(request_timeout: float, margin: float, deadline_left: float | None = None) -> Budget:
    """The time a handler gets (module doc). ``deadline_left``: seconds until the call's deadline."""
    margin = max(0.0, min(margin, request_timeout / 4))
    limit = request_timeout if deadline_left is None else min(request_timeout, deadline_left)
    return Budget(seconds=max(0.0, limit - margin), request_timeout=request_timeout, margin=margin)


def overrun_message(what: str, key: str, budget: Budget) -> str:
    """The DEADLINE_EXCEEDED message for a handler still running at the end of ``budget``."""
    return (
        f"{what} for {key} did not finish within its {budget.seconds:.3g}s budget (the runtime's "
        f"request timeout {budget.request_timeout:.3g}s less a {budget.margin:.3g}s margin); "
        "it continues in the background"
    )
