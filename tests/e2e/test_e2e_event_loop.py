"""``dranet run`` runs on uvloop unless ``--event-loop=asyncio``; a pod gets its device on both.

The rest of this suite drives the driver on its default loop; this file proves which loop
that is (the start-up line names the running loop's class) and that the standard loop,
the operator's fallback, serves a pod end to end too.
"""

from __future__ import annotations

import pytest
from e2e.faultlib import assert_sound
from e2e.harness import Cluster

pytestmark = [pytest.mark.netns, pytest.mark.socket, pytest.mark.slow]

CONFIG = {"interface": {"name": "net1", "addresses": ["192.168.47.2/24"]}}


def _a_pod_gets_its_device(c: Cluster) -> None:
    dev = c.node.veth(addrs=["10.87.0.2/24"])
    claim = c.claim([dev], config=CONFIG)
    pod = c.new_pod([claim])
    assert c.prepare(claim).error == "", c.log()
    assert c.run_sandbox(pod).code == 0, c.log()
    link = pod.link("net1")
    assert link is not None, c.log()
    assert c.stop_sandbox(pod).code == 0, c.log()
    c.remove_sandbox(pod)
    assert c.unprepare(claim).error == "", c.log()
    c.forget_pod(pod)
    c.assert_home(dev)
    c.assert_forgotten(claim)


@pytest.mark.parametrize(
    ("flags", "loop"),
    [((), "event loop uvloop.Loop"), (("--event-loop=asyncio",), "event loop asyncio.unix_events.")],
    ids=["default-uvloop", "asyncio"],
)
def test_the_event_loop_the_driver_runs_on(fresh_cluster: Cluster, flags: tuple[str, ...], loop: str) -> None:
    c = fresh_cluster
    c.start(*flags)
    assert loop in c.driver.log_all(), c.log()
    _a_pod_gets_its_device(c)
    assert_sound(c)


def test_an_unknown_event_loop_is_one_line_and_exit_2(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    c.driver.spawn("--event-loop=trio")
    code = c.loop.run(c.driver.wait_exit())
    text = c.driver.log_all()
    assert code == 2, text
    assert "--event-loop" in text and "trio" in text and "Traceback" not in text, text
