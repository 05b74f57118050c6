"""What the Allocator decides and the NamespaceMover executes: plans for claims and devices.

A :class:`ClaimPlan` is a pure function of a claim and the node's inventory (see
:mod:`dranet_core.allocation`). It is persisted in the checkpoint, so every field is a value
that survives a JSON round trip (see :mod:`dranet_core.checkpoint`).
"""

from __future__ import annotations

import attrs

from dranet_core.config.model import NetworkConfig
from dranet_core.types import JSON, ClaimRef

__all__ = ["ClaimPlan", "PreparedDevice"]


@attrs.frozen(kw_only=True)
class PreparedDevice:
    """One device of a prepared claim, with everything needed to attach it later.

    ``facets`` are the backends' private data about the device as discovered at prepare time
    (e.g. the host interface name and ifindex, the permanent MAC, the RDMA link); the mover
    uses them to find the device again. ``config`` is the merged claim configuration that
    applies to this device's requests (empty when there is none).
    """

    pool: str
    device: str
    request_names: tuple[str, ...]
    config: NetworkConfig = attrs.field(factory=NetworkConfig)
    facets: dict[str, JSON] = attrs.field(factory=dict)
    share_id: str | None = None


@attrs.frozen(kw_only=True)
class ClaimPlan:
    """A prepared claim: which local devices, configured how, reserved for which pods.

    ``pods`` are pod UIDs from ``reservedFor``. ``devices`` are only this driver's devices on
    this node, in allocation order.
    """

    claim: ClaimRef
    pods: tuple[str, ...]
    devices: tuple[PreparedDevice, ...]
