"""List-typed attributes on the real ``dranet run``: ``resource.kubernetes.io/numaNode`` as the
Go driver publishes it with ``--feature-gates=DRAListTypeAttributes=true`` (the device's NUMA
node, then the same-socket nodes at the smallest distance), the scalar without the gate, the
filter seeing the published form, and a cluster without list support getting the scalar form.

The devices are userspace-bound SR-IOV VFs in a fake sysfs tree with the kernel's layout
(``--sysfs-root``), on a 4-node, 2-socket machine.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from e2e.harness import Cluster, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sriov"))
from sriov_fakes import FakeSysfs

NUMA = "resource.kubernetes.io/numaNode"
GATE = "--feature-gates=DRAListTypeAttributes=true"
NEAR = "0000:00:03.1"  # NUMA node 0: local nodes 0, 1
FAR = "0000:00:03.3"  # NUMA node 2: local nodes 2, 3
# keep only devices whose local NUMA nodes include node 1 (or that have no NUMA node)
LIST_FILTER = f'!("{NUMA}" in attributes) || 1 in attributes["{NUMA}"].IntValues'


def _machine(cluster: Cluster) -> FakeSysfs:
    fs = FakeSysfs(cluster.tmp / "sys")
    fs.add("0000:00:03.0", driver="ixgbe", device="0x10fb", group=10, totalvfs=8, numvfs=2)
    fs.add(NEAR, device="0x10ed", group=12, pf="0000:00:03.0", vf_index=0, numa=0)
    fs.add(FAR, device="0x10ed", group=14, pf="0000:00:03.0", vf_index=1, numa=2)
    rows = ["10 11 20 20", "11 10 20 20", "20 20 10 11", "20 20 11 10"]
    for i, row in enumerate(rows):
        node = fs.root / "devices" / "system" / "node" / f"node{i}"
        node.mkdir(parents=True)
        (node / "distance").write_text(row + "\n")
        (node / "cpulist").write_text(f"{2 * i}-{2 * i + 1}\n")
        topo = fs.root / "devices" / "system" / "cpu" / f"cpu{2 * i}" / "topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text(f"{i // 2}\n")
    return fs


def _published(cluster: Cluster) -> dict[str, dict[str, Any]]:
    """Published devices by PCI address."""
    out = {}
    for s in cluster.loop.call(cluster.api.list_objects, "resourceslices"):
        for d in s.get("spec", {}).get("devices", []):
            address = d.get("attributes", {}).get("dra.net/pciAddress", {}).get("string")
            if address:
                out[address] = d
    return out


def _flags(fs: FakeSysfs, *extra: str) -> tuple[str, ...]:
    return ("--backends=sriov", f"--sysfs-root={fs.root}", *extra)


def test_numa_node_list_with_the_gate_and_scalar_without(fresh_cluster: Cluster) -> None:
    cluster = fresh_cluster
    fs = _machine(cluster)
    cluster.start(*_flags(fs, GATE, f"--filter={LIST_FILTER}"))
    got = wait_for("the near VF published", lambda: _published(cluster).get(NEAR), log=cluster.log)
    assert got["attributes"][NUMA] == {"ints": [0, 1]}, got
    assert got["attributes"]["dra.net/numaNode"] == {"int": 0}  # the driver's own stays a scalar
    # the filter saw the list: the far VF (nodes 2, 3) is not published
    assert set(_published(cluster)) == {NEAR}, cluster.log()

    cluster.restart(*_flags(fs))  # no gate: the Go driver's scalar, every VF
    wait_for(
        "the scalar form",
        lambda: _published(cluster).get(FAR, {}).get("attributes", {}).get(NUMA) == {"int": 2},
        log=cluster.log,
    )
    assert _published(cluster)[NEAR]["attributes"][NUMA] == {"int": 0}


def test_a_cluster_without_list_attributes_gets_the_scalar_and_one_error(fresh_cluster: Cluster) -> None:
    cluster = fresh_cluster
    cluster.api.list_attributes = False  # the API server drops list values, then refuses them
    fs = _machine(cluster)
    cluster.start(*_flags(fs, GATE))
    wait_for("both VFs published", lambda: len(_published(cluster)) == 2 or None, log=cluster.log)
    published = _published(cluster)
    assert published[NEAR]["attributes"][NUMA] == {"int": 0}
    assert published[FAR]["attributes"][NUMA] == {"int": 2}
    lines = [line for line in cluster.log().splitlines() if "refuses list-typed attribute" in line]
    assert len(lines) == 1, cluster.log()
    assert NUMA in lines[0] and "--feature-gates=DRAListTypeAttributes=true" in lines[0]
    assert "Traceback" not in cluster.log()
