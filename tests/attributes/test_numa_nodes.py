"""The list form of ``resource.kubernetes.io/numaNode``: a device's NUMA node, then the nodes on
its socket at the smallest firmware distance, read from a fake sysfs tree with the kernel's layout
(``devices/system/node/nodeN/{distance,cpulist}``, ``devices/system/cpu/cpuN/topology/physical_package_id``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dranet_backends.numa import local_numa_nodes
from dranet_backends.pci import PciFunction, pci_attributes, pci_function
from dranet_core.types import AttributeList


def topology(root: Path, distances: Sequence[str], sockets: Sequence[int | None]) -> Path:
    """Node ``i`` gets distance row ``distances[i]`` and CPU ``i`` on socket ``sockets[i]``
    (None: a CPU-less node)."""
    for i, row in enumerate(distances):
        node = root / "devices" / "system" / "node" / f"node{i}"
        node.mkdir(parents=True)
        (node / "distance").write_text(row + "\n")
        socket = sockets[i]
        (node / "cpulist").write_text(f"{i}\n" if socket is not None else "\n")
        if socket is not None:
            topo = root / "devices" / "system" / "cpu" / f"cpu{i}" / "topology"
            topo.mkdir(parents=True)
            (topo / "physical_package_id").write_text(f"{socket}\n")
    return root


def test_own_node_first_then_same_socket_nodes_at_the_smallest_distance(tmp_path: Path) -> None:
    # node1's nearest others are node0 (same socket) and node2 (other socket): node2 is left out
    root = topology(tmp_path, ["10 11 11 20", "11 10 11 20", "11 11 10 11", "20 20 11 10"], [0, 0, 1, 1])
    assert local_numa_nodes(root, 1) == (1, 0)
    assert local_numa_nodes(root, 3) == (3, 2)


def test_nodes_whose_socket_is_unknown_are_kept(tmp_path: Path) -> None:
    # node2 has no CPUs (a memory-only node): its socket is unknown, so it is kept
    root = topology(tmp_path, ["10 12 12", "12 10 20", "12 20 10"], [0, 1, None])
    assert local_numa_nodes(root, 0) == (0, 2)


def test_without_a_distance_table_the_list_is_the_own_node(tmp_path: Path) -> None:
    assert local_numa_nodes(tmp_path, 0) == (0,)
    root = topology(tmp_path / "one", ["10"], [0])
    assert local_numa_nodes(root, 0) == (0,)  # a single node: nobody else
    bad = topology(tmp_path / "bad", ["10 x", "x 10"], [0, 0])
    assert local_numa_nodes(bad, 1) == (1,)  # malformed row
    short = topology(tmp_path / "short", ["10", "10"], [0, 0])
    assert local_numa_nodes(short, 1) == (1,)  # the row does not reach the node itself


def test_a_pci_function_carries_the_list_and_publishes_it_as_the_standard_attribute(tmp_path: Path) -> None:
    root = topology(tmp_path, ["10 11 20", "11 10 20", "20 20 10"], [0, 0, 1])
    dev = root / "bus" / "pci" / "devices" / "0000:3b:00.0"
    dev.mkdir(parents=True)
    (dev / "numa_node").write_text("1\n")
    (dev / "class").write_text("0x020000\n")
    fn = pci_function(root, "0000:3b:00.0")
    assert (fn.numa_node, fn.numa_nodes) == (1, (1, 0))
    attrs = pci_attributes(fn, None)
    assert attrs["resource.kubernetes.io/numaNode"] == AttributeList((1, 0))
    assert attrs["dra.net/numaNode"] == 1  # the driver's own attribute stays a scalar, as in Go


def test_a_function_without_a_node_has_neither_attribute() -> None:
    attrs = pci_attributes(PciFunction(address="0000:3b:00.0"), None)
    assert "resource.kubernetes.io/numaNode" not in attrs and "dra.net/numaNode" not in attrs
