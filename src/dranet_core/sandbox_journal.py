"""What the attach journal says about sandboxes and claim status.

A journal entry (:class:`~dranet_core.checkpoint.DeviceState`) names the sandbox its device
was moved into; these functions decide which of a pod's sandboxes that is, and what the
claim status says for the devices the journal holds ``attached``. :mod:`dranet_core.pods`
uses them and re-exports the public ones.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs

from dranet_core.checkpoint import DeviceState, PreparedClaim
from dranet_core.mover import NamespaceMover
from dranet_core.plans import PreparedDevice
from dranet_core.types import JSON, Condition, DeviceStatus, PodSandbox

__all__ = [
    "ChecksSnapshot",
    "JournalItem",
    "check_snapshots",
    "default_conditions",
    "journal_statuses",
    "journalled_sandbox",
    "newest_sandbox",
    "same_sandbox",
]


def default_conditions() -> tuple[Condition, ...]:
    """The Go driver's netdev conditions: Ready/NetworkDeviceReady then NetworkReady/NetworkReady."""
    return (
        Condition(type="Ready", status="True", reason="NetworkDeviceReady"),
        Condition(type="NetworkReady", status="True", reason="NetworkReady"),
    )


def journal_statuses(pc: PreparedClaim, *, driver_name: str, pool: str) -> list[DeviceStatus]:
    """The status of every ``attached`` device of ``pc``, from the journal (its network data,
    the default conditions): what the claim status says when no attach result is at hand."""
    out: list[DeviceStatus] = []
    for dev in pc.plan.devices:
        st = pc.devices.get(dev.device)
        if st is None or st.phase != "attached":
            continue
        out.append(
            DeviceStatus(
                driver=driver_name,
                pool=dev.pool or pool,
                device=dev.device,
                conditions=default_conditions(),
                network_data=st.network_data,
                share_id=dev.share_id,
            )
        )
    return out


def same_sandbox(st: DeviceState, pod: PodSandbox) -> bool:
    """Whether journal entry ``st`` names sandbox ``pod``: the same pod UID, and the same
    sandbox id when both sides know it, else the same netns path when both know it."""
    if st.pod_uid != pod.uid:
        return False
    if st.sandbox_id and pod.id:
        return st.sandbox_id == pod.id
    return not (st.netns and pod.netns and st.netns != pod.netns)


def newest_sandbox(sandboxes: Sequence[PodSandbox]) -> PodSandbox | None:
    """The last listed sandbox with a netns (the runtime lists a pod's retries in order)."""
    return next((p for p in reversed(sandboxes) if p.netns), None)


def journalled_sandbox(st: DeviceState, sandboxes: Sequence[PodSandbox]) -> PodSandbox | None:
    """The sandbox among ``sandboxes`` that ``st`` names. With several sandboxes for the pod,
    one whose netns path is gone is not it (its sandbox was torn down)."""
    mine = [p for p in sandboxes if same_sandbox(st, p)]
    if len(mine) == 1 and len(sandboxes) > 1 and mine[0].netns and not os.path.lexists(mine[0].netns):
        return None
    return mine[0] if mine else None


@runtime_checkable
class ChecksSnapshot(Protocol):
    """Optional for a NamespaceMover: can tell whether a stored snapshot is one it can use."""

    def check_snapshot(self, snapshot: JSON) -> None:
        """Raise ValueError saying what is wrong with ``snapshot``."""
        ...


@attrs.frozen
class JournalItem:
    """One device of one prepared claim: the unit the journal records."""

    claim: PreparedClaim
    device: PreparedDevice

    @property
    def uid(self) -> str:
        return self.claim.uid

    def fields(self, pod: PodSandbox | None = None) -> dict[str, str]:
        out = {"claim": str(self.claim.plan.claim), "device": self.device.device}
        if pod is not None:
            out["pod"] = str(pod)
        return out


def check_snapshots(pc: PreparedClaim, movers: Sequence[tuple[str, NamespaceMover]]) -> None:
    """Raise ValueError if a mover (``(backend name, mover)``) that implements
    :class:`ChecksSnapshot` cannot read the device snapshot journalled for it in ``pc``."""
    for device, st in pc.devices.items():
        if not isinstance(st.snapshot, dict):
            continue
        for name, mover in movers:
            if name in st.snapshot and isinstance(mover, ChecksSnapshot):
                try:
                    mover.check_snapshot(st.snapshot[name])
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"devices.{device}.snapshot.{name}: {exc}") from exc
