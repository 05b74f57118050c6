"""The StatusPublisher interface: tell the cluster what exists and what happened.

The API-server implementation lives in :mod:`dranet_core.kube`; a local one that writes the
same objects as YAML/JSON (for ``dranet demo`` and ``dranet inventory``) lives beside it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

import attrs

from dranet_core.types import ClaimRef, Device, DeviceStatus

__all__ = [
    "DescribesNode",
    "EventRecord",
    "PublishListener",
    "ReportsPublished",
    "RunsJobs",
    "StatusPublisher",
]


@attrs.frozen(kw_only=True)
class EventRecord:
    """A Kubernetes Event to emit. ``kind`` is ``Pod`` or ``ResourceClaim``."""

    kind: str
    namespace: str
    name: str
    uid: str
    type: str  # "Normal" | "Warning"
    reason: str  # e.g. ClaimPrepareFailed, NetworkDeviceAttachFailed, RDMADeviceAttachFailed
    message: str


@runtime_checkable
class StatusPublisher(Protocol):
    """Publishes the node's devices and the claims' device status.

    Contract:

    * Every method returns quickly: work is queued and done by the publisher's own
      supervised task (:meth:`run`), with retry and backoff; the API server being slow or
      down never blocks the kubelet or NRI paths.
    * :meth:`publish_devices` takes the complete device list of the node; publishing the
      same list twice writes nothing the second time.
    * :meth:`set_claim_status` replaces this driver's entries of the claim's
      ``status.devices``; :meth:`clear_claim_status` removes them. The latest call for a
      claim wins.
    * :meth:`record_event` may drop events under rate limiting.
    """

    async def publish_devices(self, devices: Sequence[Device]) -> None:
        """Make ``devices`` the published device set of this node."""
        ...

    async def set_claim_status(self, claim: ClaimRef, devices: Sequence[DeviceStatus]) -> None:
        """Make ``devices`` this driver's entries in the claim's ``status.devices``."""
        ...

    async def clear_claim_status(self, claim: ClaimRef) -> None:
        """Remove this driver's entries from the claim's ``status.devices``."""
        ...

    async def record_event(self, event: EventRecord) -> None:
        """Emit a Kubernetes Event (rate-limited)."""
        ...

    async def run(self) -> None:
        """Do the queued work until cancelled (run under the driver's supervisor)."""
        ...


class PublishListener(Protocol):
    """Told what the API server accepted: "published" means accepted, never "handed over"."""

    def published(self, devices: Sequence[Device]) -> None:
        """The API server now holds exactly ``devices`` in this node's ResourceSlices."""
        ...

    def api_state(self, error: str | None) -> None:
        """The last API call failed with ``error`` (retrying), or succeeded (None)."""
        ...


@runtime_checkable
class ReportsPublished(Protocol):
    """A StatusPublisher that tells a listener when the cluster accepted the devices.

    A publisher without this capability is taken at its word: the driver counts devices as
    published when :meth:`StatusPublisher.publish_devices` returns.
    """

    def add_listener(self, listener: PublishListener) -> None:
        """Call ``listener`` from now on (from the publisher's own job)."""
        ...


@runtime_checkable
class DescribesNode(Protocol):
    """A StatusPublisher that can read this node's Node object: the driver asks it for the
    ``spec.providerID`` once at start to detect the cloud when ``--cloud-provider-hint`` is
    empty (:mod:`dranet_core.cloud.detect`)."""

    async def node_provider_id(self) -> str:
        """The Node's ``spec.providerID`` ('' when unset); a DranetError when it cannot be read."""
        ...


@runtime_checkable
class RunsJobs(Protocol):
    """A StatusPublisher whose work is several independent loops: the driver runs each as its
    own named supervised job (so a failing one shows in /healthz by name) instead of
    :meth:`StatusPublisher.run`."""

    def jobs(self) -> Sequence[tuple[str, Callable[[], Awaitable[None]]]]:
        """``(name, loop)`` pairs; each loop runs until cancelled."""
        ...
