"""``dranet demo`` as a user runs it: the whole story, then nothing left behind (also on Ctrl-C)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def _netns() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {n["name"] for n in json.loads(out or "[]") if n["name"].startswith("dnt-demo-")}


def _tmp_dirs() -> set[str]:
    return {p.name for p in Path("/tmp").glob("dranet-demo-*")}


def _host_links() -> list[tuple[str, str]]:
    out = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=True).stdout
    return sorted((x["ifname"], x.get("address", "")) for x in json.loads(out))


@pytest.fixture
def root() -> None:
    if os.geteuid() != 0:
        pytest.skip("probe euid==0 failed: the demo creates network namespaces")


@pytest.mark.usefixtures("root")
def test_demo_runs_to_the_end_and_cleans_up() -> None:
    netns_before, tmp_before, links_before = _netns(), _tmp_dirs(), _host_links()
    proc = subprocess.run(
        [sys.executable, "-m", "dranet_core", "demo"], capture_output=True, text=True, timeout=120
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    # devices published, prepared, moved into the pod with the configured name, address, MTU
    assert "dn-mv0" in out
    assert "prepared: demo-node/dn-mv0\n" in out
    assert "journal: 1 attached\n" in out
    assert "[(" not in out and "{'" not in out  # no Python reprs
    pod_part = out.split("$ ip -n <pod> addr show net1", 1)[1].split("==>", 1)[0]
    assert ": net1@" in pod_part
    assert "mtu 1400" in pod_part
    assert "inet 192.168.77.2/24" in pod_part
    assert "192.168.88.0/24 via 192.168.77.1 dev net1" in out
    # the claim status written through the local publisher
    status_part = out.split("claim status (status.devices)", 1)[1].split("==>", 1)[0]
    assert "interfaceName: net1" in status_part
    assert "- 192.168.77.2/24" in status_part
    assert "reason: NetworkDeviceReady" in status_part
    # home again with its original name, address and MTU
    home_part = out.split("$ ip -n <node> addr show dn-mv0", 1)[1].split("==>", 1)[0]
    assert ": dn-mv0@dn-up0:" in home_part
    assert "mtu 1500" in home_part
    assert "inet 10.99.0.10/24" in home_part
    assert "back home as it was: yes" in out
    assert "prepared claims left: 0" in out
    assert "kubelet sockets left: none" in out
    assert "Step timings:" in out
    timings = out.split("Step timings:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    steps = [float(line.split()[0]) for line in timings[:-1]]
    total = float(timings[-1].split()[0])
    assert timings[-1].endswith("ms  total")
    assert abs(sum(steps) - total) <= 0.1 * len(steps)  # the printed steps add up (rounding only)
    assert "demo finished" in out
    # nothing left behind, the host untouched
    assert _netns() == netns_before, out
    assert _tmp_dirs() == tmp_before
    assert _host_links() == links_before


@pytest.mark.usefixtures("root")
def test_demo_quiet_prints_only_the_summary() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dranet_core", "demo", "--quiet"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    timings, result = proc.stdout.split("\n\n")
    assert timings.startswith("\nStep timings:\n") and timings.endswith("ms  total")
    assert result == "demo finished: the device went into the pod configured and came back as it was.\n"


@pytest.mark.usefixtures("root")
def test_demo_interrupted_cleans_up() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dranet_core", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 60
    for line in proc.stdout:  # interrupt as soon as the namespaces exist and the driver starts
        seen.append(line)
        if "start the driver" in line:
            proc.send_signal(signal.SIGINT)
            break
        assert time.monotonic() < deadline
    rest, _ = proc.communicate(timeout=60)
    out = "".join(seen) + rest
    assert proc.returncode == 130, out
    assert "interrupted: cleaning up" in out
    assert "cleaned up: namespaces" in out
    # this run's namespaces are gone (other runs on the machine may come and go meanwhile)
    ours = set(re.findall(r"dnt-demo-[0-9a-f]+-(?:node|pod)", out))
    assert ours and not ours & _netns()
    (state,) = set(re.findall(r"/tmp/dranet-demo-[^ ,\n]+", out))
    assert not Path(state).exists()
