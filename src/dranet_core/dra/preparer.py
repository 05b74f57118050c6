"""The default ClaimPreparer: claim source + Allocator + inventory, one claim at a time.

For each claim of a NodePrepareResources call (claims run concurrently, calls for the same
UID are serialised):

1. if the Allocator already has a plan for the UID, that plan is the answer (idempotent; no
   API call, so a repeat works even when the API server is down);
2. otherwise the claim is fetched through the :class:`ClaimSource` (which checks the UID
   and that the claim is allocated) and given to ``Allocator.prepare`` with the current
   inventory.

Unprepare works from the reference alone: the ``on_unprepare`` hooks run first (the driver
detaches devices still attached and clears claim status there), then the Allocator forgets
the claim. A hook that raises leaves the claim prepared and reports the error, so the
kubelet retries. ``on_prepare_error`` hooks see each failure (e.g. to emit an Event).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from dranet_core.allocation import Allocator
from dranet_core.dra.servicer import PrepareOutcome, PrepareResult
from dranet_core.errors import ClaimError, DranetError
from dranet_core.keyed_locks import KeyedLocks
from dranet_core.plans import ClaimPlan
from dranet_core.types import Claim, ClaimRef, Device

__all__ = ["ClaimSource", "DefaultPreparer", "PrepareErrorHook", "UnprepareHook"]

log = logging.getLogger(__name__)

UnprepareHook = Callable[[ClaimRef, ClaimPlan | None], Awaitable[None]]
"""Called before a claim is forgotten, with its plan (None if it was not prepared)."""

PrepareErrorHook = Callable[[ClaimRef, Exception], Awaitable[None]]
"""Called when preparing a claim failed (must not raise; errors are logged)."""


def _message(ref: ClaimRef, exc: Exception) -> str:
    """The error text for the kubelet: always names the claim."""
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, ClaimError) else f"claim {ref}: {text}"


@runtime_checkable
class ClaimSource(Protocol):
    """Fetches the allocated claim behind a reference (implemented by ``kube.claims``).

    Raises :class:`~dranet_core.errors.ClaimError` when the claim is missing, was replaced
    (UID differs) or is not allocated; other DranetErrors for transport problems.
    """

    async def get(self, ref: ClaimRef) -> Claim:
        """The claim ``ref`` names, with this driver's allocation results and configs."""
        ...


class DefaultPreparer:
    """ClaimPreparer composed of a claim source, an Allocator and an inventory callable."""

    def __init__(
        self,
        source: ClaimSource,
        allocator: Allocator,
        inventory: Callable[[], Mapping[str, Device]],
        *,
        on_unprepare: Sequence[UnprepareHook] = (),
        on_prepare_error: Sequence[PrepareErrorHook] = (),
    ) -> None:
        self.source = source
        self.allocator = allocator
        self.inventory = inventory
        self.on_unprepare = list(on_unprepare)
        self.on_prepare_error = list(on_prepare_error)
        self._locks = KeyedLocks()

    async def prepare(self, claims: Sequence[ClaimRef]) -> Mapping[str, PrepareResult]:
        """Prepare each claim; per-claim results, never an exception for one bad claim."""
        if len(claims) == 1:
            return {claims[0].uid: await self._prepare_one(claims[0])}
        results = await asyncio.gather(*(self._prepare_one(r) for r in claims))
        return {r.uid: res for r, res in zip(claims, results, strict=True)}

    async def unprepare(self, claims: Sequence[ClaimRef]) -> Mapping[str, str | None]:
        """Unprepare each claim; per-claim error strings (None = done)."""
        if len(claims) == 1:
            return {claims[0].uid: await self._unprepare_one(claims[0])}
        results = await asyncio.gather(*(self._unprepare_one(r) for r in claims))
        return {r.uid: res for r, res in zip(claims, results, strict=True)}

    async def _prepare_one(self, ref: ClaimRef) -> PrepareResult:
        async with self._locks.hold(ref.uid):
            try:
                plan = self.allocator.prepared().get(ref.uid)
                if plan is None:
                    claim = await self.source.get(ref)
                    plan = await self.allocator.prepare(claim, self.inventory())
                return PrepareOutcome(plan=plan)
            except Exception as exc:
                if not isinstance(exc, DranetError):
                    log.exception("claim %s: unexpected error while preparing", ref)
                else:
                    log.warning("claim %s: prepare failed: %s", ref, exc)
                for hook in self.on_prepare_error:
                    try:
                        await hook(ref, exc)
                    except Exception:
                        log.exception("claim %s: prepare-error hook failed", ref)
                return _message(ref, exc)

    async def _unprepare_one(self, ref: ClaimRef) -> str | None:
        async with self._locks.hold(ref.uid):
            try:
                plan = self.allocator.prepared().get(ref.uid)
                for hook in self.on_unprepare:
                    await hook(ref, plan)
                await self.allocator.unprepare(ref)
                return None
            except Exception as exc:
                if not isinstance(exc, DranetError):
                    log.exception("claim %s: unexpected error while unpreparing", ref)
                else:
                    log.warning("claim %s: unprepare failed: %s", ref, exc)
                return _message(ref, exc)
