"""The NUMA nodes local to a device: its own node, then the nodes equally close to it.

The list form of ``resource.kubernetes.io/numaNode`` (Kubernetes ``DRAListTypeAttributes``)
is the device's own node followed by the nodes on the same socket at the smallest distance
from it in the firmware's distance table (ACPI SLIT, ``<sysfs>/devices/system/node/nodeN/distance``:
one number per node, the node's own first-class distance 10 included). That is how the
Kubernetes ``deviceattribute`` helper the Go driver uses builds it, so a ``matchAttribute``
over ``numaNode`` pairs the same devices across drivers:

* the own node comes first, the others follow in increasing order;
* a node on another socket (``cpulist`` of the node, then ``physical_package_id`` of its
  first CPU) is left out; a node whose socket cannot be read (a CPU-less memory node) is kept;
* no distance table, an unreadable or malformed one, or no other node at the smallest
  distance: the list is the own node alone.

The topology does not change while the machine runs, so answers are cached per sysfs root.
"""

from __future__ import annotations

import functools
from pathlib import Path

from dranet_backends.sysfs_read import read, read_int

__all__ = ["local_numa_nodes"]


def _first_cpu(cpulist: str) -> int | None:
    """The first CPU of a kernel CPU list (``0-3,8-11`` -> 0); None if there is none."""
    head = cpulist.split(",", 1)[0].split("-", 1)[0].strip()
    return int(head) if head.isdigit() else None


def _socket(sysfs: Path, node: int) -> int | None:
    cpus = read(sysfs / "devices" / "system" / "node" / f"node{node}" / "cpulist")
    cpu = _first_cpu(cpus) if cpus else None
    if cpu is None:
        return None
    return read_int(sysfs / "devices" / "system" / "cpu" / f"cpu{cpu}" / "topology" / "physical_package_id")


def _distances(sysfs: Path, node: int) -> list[int] | None:
    text = read(sysfs / "devices" / "system" / "node" / f"node{node}" / "distance")
    try:
        row = [int(f) for f in (text or "").split()]
    except ValueError:
        return None
    return row if node < len(row) else None


@functools.lru_cache(maxsize=1024)
def local_numa_nodes(sysfs: Path, node: int) -> tuple[int, ...]:
    """``node`` followed by the same-socket nodes at the smallest distance from it (module doc)."""
    row = _distances(sysfs, node)
    others = [d for i, d in enumerate(row or ()) if i != node]
    if not others:
        return (node,)
    nearest = min(others)
    socket = _socket(sysfs, node)
    peers = []
    assert row is not None
    for i, d in enumerate(row):
        if i == node or d != nearest:
            continue
        theirs = _socket(sysfs, i) if socket is not None else None
        if theirs is not None and theirs != socket:
            continue
        peers.append(i)
    return (node, *peers)
