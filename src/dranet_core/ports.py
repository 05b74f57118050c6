"""The narrow ports the pod side is handed: device pins, an attach observer, an event sink.

:class:`~dranet_core.pods.PodNetworking` never calls back into the driver that built it; it
talks to these three protocols, each implemented by the part that owns the concern:

* :class:`DevicePins` — implemented by :class:`~dranet_core.inventory.Inventory`: keep a
  device published while it is away from the host (in a pod's netns, where discovery cannot
  see it), and rescan once devices came home.
* :class:`AttachObserver` — implemented by :class:`~dranet_core.attach_report.AttachReport`:
  mover latency and journal-state metrics, and the claim status of an attach (``Ready=True``
  with the network data read back, or ``Ready=False`` with the reason and the error).
* :class:`EventSink` — any :class:`~dranet_core.status.StatusPublisher`: Kubernetes Events.
* :class:`DeviceObserver` — implemented by :class:`~dranet_core.metadata.writer.MetadataWriter`:
  each device's arrival in its pod and its return home, from the journal, on every path
  (RunPodSandbox, rollback, reconciliation, StopPodSandbox, unprepare).

Every method returns quickly; the async ones only queue work (the publisher writes it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from typing import Protocol

from dranet_core.errors import DranetError
from dranet_core.plans import ClaimPlan, PreparedDevice
from dranet_core.status import EventRecord
from dranet_core.types import ClaimRef, DeviceStatus, NetworkData, PodSandbox

__all__ = ["AttachObserver", "DeviceObserver", "DevicePins", "EventSink"]


class DevicePins(Protocol):
    """Keeps devices that are away from the host in the published inventory."""

    def hold_only(self, names: Set[str]) -> None:
        """``names`` are exactly the devices not at home now; pin them and release the rest."""
        ...

    def request_rescan(self) -> None:
        """Devices came home: look again soon."""
        ...


class AttachObserver(Protocol):
    """Learns what the pod side did: for metrics and for the claims' status."""

    def mover_done(self, action: str, backend: str, ok: bool, seconds: float) -> None:
        """One mover call (``attach`` or ``detach``) of ``backend`` ended after ``seconds``."""
        ...

    def journal_changed(self, states: Mapping[str, int]) -> None:
        """The journal changed; ``states`` counts devices per phase."""
        ...

    async def attached(self, claim: ClaimRef, statuses: Sequence[DeviceStatus]) -> None:
        """The claim's devices of one pod are attached; ``statuses`` is their status."""
        ...

    async def attach_failed(
        self, pod: PodSandbox, claim: ClaimRef, device: PreparedDevice, error: DranetError
    ) -> None:
        """Attaching ``device`` of ``claim`` into ``pod`` failed (already rolled back)."""
        ...


class EventSink(Protocol):
    """Where Kubernetes Events go (rate limited, may drop)."""

    async def record_event(self, event: EventRecord) -> None:
        """Queue ``event``."""
        ...


class DeviceObserver(Protocol):
    """Learns when a device's journal entry says it is in its pod, or home again.

    Awaited inside the NRI call that moved the device (so before RunPodSandbox answers and
    before any container starts); must not raise.
    """

    async def attached(
        self, plan: ClaimPlan, device: PreparedDevice, network_data: NetworkData | None
    ) -> None:
        """``device`` of ``plan`` is attached, with the network data read back from the kernel."""
        ...

    async def released(self, plan: ClaimPlan, device: PreparedDevice) -> None:
        """``device`` of ``plan`` is back home (journal ``prepared``)."""
        ...
