"""Device nodes a container needs for a userspace-bound device: ``/dev/vfio/*`` and ``/dev/uioN``.

* vfio-pci: the container (``/dev/vfio/vfio``) and the device's IOMMU group
  (``/dev/vfio/<group>``; ``/dev/vfio/noiommu-<group>`` when the kernel runs vfio in
  no-IOMMU mode and the numbered node does not exist).
* uio_pci_generic / igb_uio: ``/dev/uioN`` for each ``uioN`` of the function.

Major and minor numbers are read with ``stat`` under a ``/dev`` root that is a parameter
(tests make real character nodes under a temporary directory); the container path is always
the canonical ``/dev/...`` path. Every node gets ``file_mode`` 0o666, as device plugins for
vfio do. A node that is missing, or is not a character device, is an error naming the path:
a container without its device cannot work, so CreateContainer should fail loudly.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from dranet_core.errors import DeviceError
from dranet_core.types import DeviceNode

from .facet import SriovFacet

__all__ = ["FILE_MODE", "StatFn", "device_nodes_for", "node_paths"]

FILE_MODE = 0o666
"""Permissions of the nodes created in the container."""

StatFn = Callable[[str], os.stat_result]
"""``os.stat``-like seam: path -> stat result (raises OSError when missing)."""


def node_paths(facet: SriovFacet) -> list[tuple[str, ...]]:
    """The nodes ``facet``'s device needs: for each, the canonical ``/dev`` paths to try, in order."""
    if facet.is_vfio:
        if facet.iommu_group is None:
            return [("/dev/vfio/vfio",)]
        g = facet.iommu_group
        return [("/dev/vfio/vfio",), (f"/dev/vfio/{g}", f"/dev/vfio/noiommu-{g}")]
    return [(f"/dev/{name}",) for name in facet.uio]


def _under(dev_root: Path, path: str) -> Path:
    return dev_root / path.removeprefix("/dev/")


def device_nodes_for(
    device: str, facet: SriovFacet, dev_root: Path, stat_fn: StatFn = os.stat
) -> list[DeviceNode]:
    """The :class:`DeviceNode` list for ``device`` (see the module docstring).

    Raises :class:`DeviceError` (step ``device nodes``) naming the device and the path when
    a vfio device has no IOMMU group, a uio device has no uio node, or a node is missing or
    not a character device.
    """
    if facet.is_vfio and facet.iommu_group is None:
        raise DeviceError(
            device, "device nodes", f"{facet.pci_address} is bound to vfio-pci but has no IOMMU group"
        )
    wanted = node_paths(facet)
    if not wanted:
        raise DeviceError(device, "device nodes", f"{facet.pci_address} ({facet.driver}) has no uio node")
    out: list[DeviceNode] = []
    for candidates in wanted:
        path, st = _first_present(device, candidates, dev_root, stat_fn)
        out.append(
            DeviceNode(
                path=path,
                type="c",
                major=os.major(st.st_rdev),
                minor=os.minor(st.st_rdev),
                file_mode=FILE_MODE,
            )
        )
    return out


def _first_present(
    device: str, candidates: tuple[str, ...], dev_root: Path, stat_fn: StatFn
) -> tuple[str, os.stat_result]:
    first_error: DeviceError | None = None
    for path in candidates:
        host = _under(dev_root, path)
        try:
            st = stat_fn(str(host))
        except OSError as exc:
            first_error = first_error or DeviceError(device, "device nodes", f"{host}: {exc.strerror or exc}")
            continue
        if not stat.S_ISCHR(st.st_mode):
            first_error = first_error or DeviceError(
                device, "device nodes", f"{host} is not a character device"
            )
            continue
        return path, st
    assert first_error is not None
    raise first_error
