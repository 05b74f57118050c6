"""The Discovery interface: which devices does this node have, and when did that change?

A backend that discovers devices implements :class:`Discovery`. The core's inventory loop
(:mod:`dranet_core.inventory`) runs every backend's :meth:`Discovery.watch`, coalesces and
rate-limits the notifications, calls :meth:`Discovery.scan` on every backend, merges devices
of the same name across backends (one device, several facets), filters them and hands the
result to the StatusPublisher only when something changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import attrs

from dranet_core.types import Device

__all__ = ["Discovery", "ExcludedDevice", "ReportsExclusions"]


@runtime_checkable
class Discovery(Protocol):
    """Finds the devices of one kind on this node.

    Contract:

    * :meth:`scan` returns the complete current list of this backend's devices. It may use
      state cached from events (it should: a scan after one link change must not re-dump
      the whole kernel state). It is called from one task at a time; it must not block the
      event loop for long (offload heavy decoding or yield between items).
    * Devices attached to pods stay in the list with their last known attributes, so the
      scheduler and cluster autoscaler keep seeing them; a backend that loses sight of a
      device it knows is attached keeps reporting it.
    * Device names are stable across restarts and across moves into pods (PCI devices by
      address, others by normalised interface name, see :mod:`dranet_core.names`).
    * A device that breaks an API limit is logged and left out; it never fails the scan.
    * :meth:`watch` runs until cancelled and calls ``notify()`` whenever the device set may
      have changed. Spurious calls are fine (the loop diffs), missed ones are not fatal (the
      loop also resyncs periodically). It raises only for unrecoverable errors; the
      supervisor restarts it with backoff.
    * Both may run in a different process than the call before (after a driver restart).
    """

    async def scan(self) -> Sequence[Device]:
        """Return every device of this backend on this node, now."""
        ...

    async def watch(self, notify: Callable[[], None]) -> None:
        """Call ``notify()`` whenever the device set may have changed; run until cancelled."""
        ...


@attrs.frozen
class ExcludedDevice:
    """A device a backend saw and chose not to offer, and why (``uplink``, ``loopback``, ...).

    ``name`` is the device name it would have had, or the interface name when it has none.
    """

    name: str
    reason: str


@runtime_checkable
class ReportsExclusions(Protocol):
    """Optional for a :class:`Discovery`: the devices its last :meth:`~Discovery.scan` left out.

    ``dranet inventory`` shows them, so an operator can tell "not found" from "left out on
    purpose". Never called on the driver's hot path.
    """

    def excluded(self) -> Sequence[ExcludedDevice]:
        """The devices the last scan left out, each with the reason."""
        ...
