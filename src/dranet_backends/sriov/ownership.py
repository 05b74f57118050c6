"""Release safety: who holds a device now, according to the driver's journal.

The driver journals, per claim UID and device, the phase of the device (``prepared``,
``attaching``, ``attached``, ``detaching``) and the pod it is for. A release that arrives
late (a retried unprepare or a reconciliation of an older claim, after the scheduler gave
the same VF to a new claim and its pod) must not reset the VF's PF-side settings under the
new pod: :func:`other_holders` names the claims, other than the releasing one, that hold
the device now.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from dranet_core.checkpoint import PreparedClaim

__all__ = ["ClaimsView", "other_holders"]

_HOLDING = ("attaching", "attached")


class ClaimsView(Protocol):
    """Read access to the journal (the driver's ``ClaimStore``)."""

    def claims(self) -> Mapping[str, PreparedClaim]:
        """Claim UID -> prepared claim with its per-device journal."""
        ...


def other_holders(journal: ClaimsView, device: str, pod_uid: str) -> list[str]:
    """UIDs of the claims that hold ``device`` (attaching or attached) for a pod other than ``pod_uid``.

    The releasing claim is the one whose journal entry for ``device`` names ``pod_uid``;
    it is never listed.
    """
    out: list[str] = []
    for uid, claim in journal.claims().items():
        if not any(d.device == device for d in claim.plan.devices):
            continue
        state = claim.devices.get(device)
        if state is not None and state.phase in _HOLDING and state.pod_uid != pod_uid:
            out.append(uid)
    return sorted(out)
