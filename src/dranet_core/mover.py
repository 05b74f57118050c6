"""The NamespaceMover interface: put a device into a pod's netns, and give it back.

A backend whose devices move (netdev: the link; rdma: the RDMA link in exclusive mode)
implements :class:`NamespaceMover`. For a device with several facets the driver runs the
movers in backend order on attach and in reverse order on detach.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

from dranet_core.plans import PreparedDevice
from dranet_core.types import JSON, Condition, NetworkData, PodSandbox

__all__ = ["AttachResult", "NamespaceMover"]


@attrs.frozen(kw_only=True)
class AttachResult:
    """What an attach did, read back from the kernel, for the claim status."""

    network_data: NetworkData | None = None
    conditions: tuple[Condition, ...] = ()


@runtime_checkable
class NamespaceMover(Protocol):
    """Moves a device between the host and pod network namespaces.

    Contract:

    * :meth:`snapshot` records, before anything moves, everything needed to give the device
      back exactly as it was (name, addresses, routes, MTU, ...). The driver stores the
      result in the checkpoint *before* calling :meth:`attach`, and passes the same snapshot
      to :meth:`attach` and :meth:`detach`, possibly in another process after a restart.
    * :meth:`attach` is transactional: on failure it undoes what it did, gives the device
      back with the snapshot restored, and raises :class:`~dranet_core.errors.DeviceError`
      naming the device, the step and the kernel's reason. It is idempotent and resumable:
      called again after a crash half-way it finishes the job.
    * :meth:`detach` brings the device home under its original name and restores the
      snapshot. It is idempotent: for a device already home it only restores. If the pod
      netns is gone, it finds the device again (a physical device came back as ``devN``)
      or records that a virtual one died with the netns. It raises only when the device
      cannot be brought to a consistent state.
    * Calls for different devices may run concurrently; the driver never runs two calls
      for the same device at once.
    """

    async def snapshot(self, device: PreparedDevice) -> JSON:
        """Capture the host state of ``device`` (JSON-able), before it moves."""
        ...

    async def attach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> AttachResult:
        """Move ``device`` into ``pod.netns`` and configure it per ``device.config``."""
        ...

    async def detach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> None:
        """Move ``device`` back to the host netns and restore ``snapshot``."""
        ...
