"""The sriov backend: userspace-bound NICs (vfio-pci, uio) with their SR-IOV and IOMMU facts,
and a VF's settings made through its PF (the claim's ``sriov`` section).

``create(context)`` is the ``dranet.backends`` entry point. It reads the context's
``sysfs``, ``procfs`` and ``host_netns`` (where the PFs are and the uevents are read;
default: the driver's own) and the options ``sriov.dev_root`` (the ``/dev`` to stat device
nodes under; default ``/dev``), ``sriov.poll_interval`` (seconds between resync checks;
kernel uevents trigger checks at once; default 30), ``sriov.full_resync`` (seconds after
which a scan re-reads everything; default 300) and ``sriov.pci_ids`` (``:``-separated
pci.ids paths). On a machine without SR-IOV or userspace-bound NICs it loads fine and
discovers nothing. See ``docs/sriov.md``.
"""

from __future__ import annotations

from pathlib import Path

from dranet_backends.pci import DEFAULT_PATHS, PciIds
from dranet_backends.uevent import UeventSource
from dranet_core.backends import (
    BackendContext,
    BackendOption,
    backend_options,
    parse_path,
    parse_path_list,
    parse_seconds,
)

from .backend import DEFAULT_FULL_RESYNC, DEFAULT_POLL_INTERVAL, SriovBackend
from .facet import FACET, SriovFacet
from .pfside import NetlinkRoute, PfClient

_NO_PATHS: tuple[Path, ...] = ()

__all__ = [
    "DEFAULT_FULL_RESYNC",
    "DEFAULT_POLL_INTERVAL",
    "DEV_ROOT",
    "FACET",
    "FULL_RESYNC",
    "PCI_IDS",
    "POLL_INTERVAL",
    "SriovBackend",
    "SriovFacet",
    "create",
]

DEV_ROOT = BackendOption("sriov", "dev_root", parse_path, Path("/dev"), "the /dev device nodes are under")
POLL_INTERVAL = BackendOption(
    "sriov", "poll_interval", parse_seconds, DEFAULT_POLL_INTERVAL, "seconds between sysfs polls"
)
FULL_RESYNC = BackendOption(
    "sriov",
    "full_resync",
    parse_seconds,
    DEFAULT_FULL_RESYNC,
    "seconds before a scan re-reads all",
)
PCI_IDS = BackendOption(
    "sriov",
    "pci_ids",
    parse_path_list,
    _NO_PATHS,
    "':'-separated pci.ids files",
)


def _pci_ids(context: BackendContext) -> PciIds:
    paths: tuple[Path, ...] = context.option(PCI_IDS)
    return PciIds(paths or DEFAULT_PATHS)


@backend_options(DEV_ROOT, POLL_INTERVAL, FULL_RESYNC, PCI_IDS)
def create(context: BackendContext) -> SriovBackend:
    """Entry point of the ``dranet.backends`` group: the sriov backend for ``context``."""
    netns = str(context.host_netns) if context.host_netns else None
    return SriovBackend(
        sysfs=context.sysfs,
        procfs=context.procfs,
        dev_root=context.option(DEV_ROOT),
        pci_ids=_pci_ids(context),
        poll_interval=context.option(POLL_INTERVAL),
        full_resync=context.option(FULL_RESYNC),
        pf_client=PfClient(NetlinkRoute(netns)),
        uevents=UeventSource.opener(netns),
    )
