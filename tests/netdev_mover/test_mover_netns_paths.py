"""Pod netns paths from outside are opened without blocking and must be a pod's network
namespace: every other kind of path is refused with the path and the rule, nothing moves."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from mover_lab import Lab, host_state

from dranet_backends.netdev.mover import NetdevMover
from dranet_core.errors import DeviceError

pytestmark = pytest.mark.netns


async def _refused(lab: Lab, mover: NetdevMover, netns: str) -> str:
    lab.veth("hv0", "hv0p")
    dev = lab.device("hv0")
    before = host_state(lab.node, "hv0")
    snap = await mover.snapshot(dev)
    with pytest.raises(DeviceError) as info:
        await mover.attach(dev, lab.pod_sandbox(netns=netns), snap)
    assert info.value.step == "netns"
    assert host_state(lab.node, "hv0") == before
    return info.value.reason


async def test_a_fifo_is_refused_without_blocking_the_loop(
    lab: Lab, mover: NetdevMover, tmp_path: Path
) -> None:
    fifo = tmp_path / "netns-fifo"
    os.mkfifo(fifo)
    done = threading.Event()
    unblocked: list[bool] = []

    def unblock() -> None:
        # breaks the deadlock of a mover that opens the FIFO for reading on the loop, so
        # the test fails instead of hanging; a correct mover never lets this run
        if not done.wait(30):
            unblocked.append(True)
            with open(fifo, "wb"):
                pass

    guard = threading.Thread(target=unblock, daemon=True)
    guard.start()
    try:
        reason = await _refused(lab, mover, str(fifo))
    finally:
        done.set()
        guard.join()
    assert unblocked == []
    assert str(fifo) in reason and "FIFO" in reason


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        ("file", "not a network namespace"),
        ("dir", "is a directory"),
        ("mnt", "is a mount namespace"),
        ("relative", "must be absolute"),
        ("long", "shorter than 4096 bytes"),
        ("node", "node's own network namespace"),
        ("self", "driver's own network namespace"),
        ("missing", "No such file"),
    ],
)
async def test_a_path_that_is_not_a_pod_netns_is_refused(
    lab: Lab, mover: NetdevMover, tmp_path: Path, kind: str, rule: str
) -> None:
    regular = tmp_path / "netns"
    regular.write_text("not a namespace")
    path = {
        "file": str(regular),
        "dir": str(tmp_path),
        "mnt": "/proc/self/ns/mnt",
        "relative": "run/netns/x",
        "long": "/" + "a" * 8192,
        "node": f"/run/netns/{lab.node}",
        "self": "/proc/self/ns/net",
        "missing": f"/run/netns/{lab.prefix}-missing",
    }[kind]
    reason = await _refused(lab, mover, path)
    assert rule in reason
    if kind == "long":
        assert len(reason) < 300 and "8193 characters" in reason
    else:
        assert path in reason
