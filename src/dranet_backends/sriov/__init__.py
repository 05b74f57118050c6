"""The sriov backend: userspace-bound NICs (vfio-pci, uio) with their SR-IOV and IOMMU facts,
and a VF's settings made through its PF (the claim's ``sriov`` section).

``create(context)`` is the ``dranet.backends`` entry point. The context is a
``dranet_core.backends.BackendContext`` (or any object with ``sysfs`` and ``options``);
options: ``sriov.dev_root`` (the ``/dev`` to stat device nodes under; default ``/dev``),
``sriov.poll_interval`` (seconds between resync checks; kernel uevents trigger checks at
once; default 30), ``sriov.full_resync`` (seconds after which a scan re-reads everything;
default 300), the host ``netns`` (``sriov.netns`` wins) and the shared ``pci_ids``.
On a machine without SR-IOV or userspace-bound NICs it loads fine and discovers nothing.
See ``docs/sriov.md``.
"""

from __future__ import annotations

from typing import Any

from .backend import DEFAULT_FULL_RESYNC, DEFAULT_POLL_INTERVAL, SriovBackend
from .facet import FACET, SriovFacet

__all__ = ["DEFAULT_FULL_RESYNC", "DEFAULT_POLL_INTERVAL", "FACET", "SriovBackend", "SriovFacet", "create"]


def create(context: Any) -> SriovBackend:
    """Entry point of the ``dranet.backends`` group: the sriov backend for ``context``."""
    return SriovBackend.from_context(context)
