"""The netdev backend: plain network devices: discovery over rtnetlink and sysfs, and the namespace mover.

``create(context)`` is the ``dranet.backends`` entry point. It reads the context's
``sysfs``, ``host_netns`` (the namespace to treat as the host's; default the process's own)
and ``move_ib_interfaces`` (false leaves IPoIB netdevs out), and three options:
``netdev.pci_ids`` (``:``-separated pci.ids paths; default the distribution's),
``netdev.full_resync`` (seconds between full re-dumps while events are followed; default 60) and
``netdev.rename_retry_interval`` (seconds between retries to give a device parked under a
temporary name its name back; default 5) and ``netdev.subinterface_parents`` (``,``-separated
interface names or shell patterns: the devices published as shareable, whose claims get a
macvlan/ipvlan child each; default none). The mover keeps its list of parked devices in
the context's ``state_dir`` (the checkpoint's directory) so it survives a restart.
"""

from __future__ import annotations

from pathlib import Path

from dranet_backends.pci import DEFAULT_PATHS, PciIds
from dranet_core.backends import (
    BackendContext,
    BackendOption,
    backend_options,
    parse_path_list,
    parse_seconds,
)

from .backend import NetdevBackend, parse_ifname_patterns
from .facet import FACET, NetdevFacet

_NO_PATHS: tuple[Path, ...] = ()

__all__ = [
    "FACET",
    "FULL_RESYNC",
    "PCI_IDS",
    "RENAME_RETRY_INTERVAL",
    "SUBINTERFACE_PARENTS",
    "NetdevBackend",
    "NetdevFacet",
    "create",
]

PCI_IDS = BackendOption(
    "netdev",
    "pci_ids",
    parse_path_list,
    _NO_PATHS,
    "':'-separated pci.ids files",
)
FULL_RESYNC = BackendOption(
    "netdev", "full_resync", parse_seconds, 60.0, "seconds between full re-dumps of the kernel state"
)
RENAME_RETRY_INTERVAL = BackendOption(
    "netdev",
    "rename_retry_interval",
    parse_seconds,
    5.0,
    "seconds between retries to give a parked device its name back",
)

_NO_PATTERNS: tuple[str, ...] = ()
SUBINTERFACE_PARENTS = BackendOption(
    "netdev",
    "subinterface_parents",
    parse_ifname_patterns,
    _NO_PATTERNS,
    "','-separated interface names or shell patterns (eth1,ens*) published as shareable parents",
)


def _pci_ids(context: BackendContext) -> PciIds:
    paths: tuple[Path, ...] = context.option(PCI_IDS)
    return PciIds(paths or DEFAULT_PATHS)


@backend_options(PCI_IDS, FULL_RESYNC, RENAME_RETRY_INTERVAL, SUBINTERFACE_PARENTS)
def create(context: BackendContext) -> NetdevBackend:
    """Entry point of the ``dranet.backends`` group: the netdev backend for ``context``."""
    return NetdevBackend(
        sysfs=context.sysfs,
        netns=str(context.host_netns) if context.host_netns else None,
        pci_ids=_pci_ids(context),
        full_resync=context.option(FULL_RESYNC),
        move_ib_interfaces=context.move_ib_interfaces,
        state_dir=context.state_dir,
        rename_retry_interval=context.option(RENAME_RETRY_INTERVAL),
        subinterface_parents=context.option(SUBINTERFACE_PARENTS),
    )
