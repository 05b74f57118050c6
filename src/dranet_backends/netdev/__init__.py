"""The netdev backend: plain network devices: discovery over rtnetlink and sysfs, and the namespace mover.

``create(context)`` is the ``dranet.backends`` entry point. The context is a
``dranet_core.backends.BackendContext`` (or any object with ``sysfs`` and ``options``);
options understood by discovery: ``netns`` (path of the network namespace to treat as the
host's; default the process's own), ``pci_ids`` (``:``-separated pci.ids paths) and
``full_resync`` (seconds between full re-dumps while events are followed; default 60) and
``move_ib_interfaces`` (``false`` leaves IPoIB netdevs out; default ``true``).
"""

from __future__ import annotations

from typing import Any

from .backend import NetdevBackend
from .facet import FACET, NetdevFacet

__all__ = ["FACET", "NetdevBackend", "NetdevFacet", "create"]


def create(context: Any) -> NetdevBackend:
    """Entry point of the ``dranet.backends`` group: the netdev backend for ``context``."""
    return NetdevBackend.from_context(context)
