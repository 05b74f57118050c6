"""``dranet inventory`` shows list-typed attributes in the form the driver would publish them:
a list (and ``ints`` in the ResourceSlice) with ``--feature-gates=DRAListTypeAttributes=true``,
the first item without."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sriov"))
from sriov_fakes import FakeSysfs

NUMA = "resource.kubernetes.io/numaNode"


def _inventory(sysfs: Path, *flags: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "dranet_core", "inventory", "-o", "json", "--hostname-override=n1"]
    argv += ["--backends=sriov", f"--sysfs-root={sysfs}", *flags]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    doc: dict[str, Any] = json.loads(out)
    return doc


@pytest.mark.parametrize(
    ("flags", "shown", "body"),
    [((), 1, {"int": 1}), (("--feature-gates=DRAListTypeAttributes=true",), [1, 0], {"ints": [1, 0]})],
)
def test_numa_node_as_it_would_be_published(
    tmp_path: Path, flags: tuple[str, ...], shown: Any, body: Any
) -> None:
    fs = FakeSysfs(tmp_path / "sys")
    fs.add("0000:00:03.0", driver="ixgbe", device="0x10fb", group=10, totalvfs=8, numvfs=1)
    fs.add("0000:00:03.1", device="0x10ed", group=12, pf="0000:00:03.0", vf_index=0, numa=1)
    for i, row in enumerate(["10 11", "11 10"]):
        node = fs.root / "devices" / "system" / "node" / f"node{i}"
        node.mkdir(parents=True)
        (node / "distance").write_text(row + "\n")
    doc = _inventory(fs.root, *flags)
    (dev,) = doc["devices"]
    assert dev["attributes"][NUMA] == shown
    (slice_,) = doc["resourceSlices"]
    assert slice_["spec"]["devices"][0]["attributes"][NUMA] == body
