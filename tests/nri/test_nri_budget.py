"""The NRI handler time budget: positive however small the runtime's timeout, and worded right."""

from __future__ import annotations

import pytest

from dranet_core.nri.budget import handler_budget, overrun_message


def test_default_budget_is_the_request_timeout_less_the_margin() -> None:
    b = handler_budget(2.0, 0.25)
    assert (b.seconds, b.margin) == (1.75, 0.25)


def test_the_calls_own_deadline_shortens_it() -> None:
    assert handler_budget(2.0, 0.25, deadline_left=1.0).seconds == 0.75


@pytest.mark.parametrize("timeout", [0.001, 0.01, 0.2, 0.25])
def test_a_tiny_runtime_timeout_still_gives_a_positive_budget(timeout: float) -> None:
    b = handler_budget(timeout, 0.25)
    assert 0 < b.seconds < timeout
    assert b.margin == timeout / 4


def test_a_deadline_already_past_gives_zero_not_a_negative_budget() -> None:
    assert handler_budget(2.0, 0.25, deadline_left=-3.0).seconds == 0.0


def test_the_message_names_the_budget_and_where_it_came_from() -> None:
    msg = overrun_message("RunPodSandbox", "default/p", handler_budget(0.001, 0.25))
    assert msg == (
        "RunPodSandbox for default/p did not finish within its 0.00075s budget (the runtime's "
        "request timeout 0.001s less a 0.00025s margin); it continues in the background"
    )
    assert "-" not in msg.split("budget")[0]
