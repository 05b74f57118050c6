"""The Allocator interface: turn an allocated claim into a plan for this node.

The default implementation, :class:`dranet_core.claim_allocator.ClaimAllocator`, is pure planning
(:func:`dranet_core.claim_allocator.plan_claim`) plus the checkpoint; a platform team may replace it
(e.g. to allow shared devices). It lives in its own module because this interface module may
not import its layer siblings (checkpoint, capabilities).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from dranet_core.plans import ClaimPlan
from dranet_core.types import Claim, ClaimRef, Device

__all__ = ["Allocator"]


@runtime_checkable
class Allocator(Protocol):
    """Decides which local devices a claim gets and with which merged configuration.

    Contract:

    * :meth:`prepare` is called by the kubelet servicer for every claim in a
      NodePrepareResources request. It is idempotent: a repeated prepare of the same claim
      UID returns the same plan and changes nothing. It raises
      :class:`~dranet_core.errors.ClaimError` (or ConfigError) for this claim only; other
      claims of the same request are unaffected.
    * It refuses a device already prepared for another claim, and what the Go driver
      refuses (reservedFor with more than one pod for an exclusive device; non-pod
      consumers).
    * :meth:`unprepare` works from the claim reference alone (the claim may be gone from
      the API server) and succeeds for a claim it does not know.
    * Everything is keyed by claim UID, never by namespace/name.
    * Calls for different claims may run concurrently; calls for the same UID are
      serialised by the caller (:class:`~dranet_core.dra.preparer.DefaultPreparer` holds one
      lock per UID), who answers a repeated prepare from :meth:`get` without calling
      :meth:`prepare`. State survives restarts (checkpoint), and the
      next call may run in a different process than the one before.
    """

    async def prepare(self, claim: Claim, inventory: Mapping[str, Device]) -> ClaimPlan:
        """Plan ``claim`` against ``inventory`` (device name -> device) and record it."""
        ...

    async def unprepare(self, claim: ClaimRef) -> ClaimPlan | None:
        """Forget ``claim``; return the plan it had, or None if it was not prepared."""
        ...

    def get(self, uid: str) -> ClaimPlan | None:
        """The plan of prepared claim ``uid``, or None (cheap: called on every prepare)."""
        ...
