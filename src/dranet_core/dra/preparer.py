"""The default ClaimPreparer: claim source + Allocator + inventory, one claim at a time.

For each claim of a NodePrepareResources call (claims run concurrently; calls for the same
UID are serialised by the one per-UID lock of the prepare path, held here):

1. if the Allocator already has a plan for the UID (``Allocator.get``, the one idempotence
   check), that plan is the answer (no API call, so a repeat works even when the API server
   is down);
2. otherwise the claim is fetched through the :class:`ClaimSource` (which checks the UID
   and that the claim is allocated) and given to ``Allocator.prepare`` with the current
   inventory; a source that also has a synchronous ``peek`` (a :class:`PeekableClaimSource`,
   such as the watch-backed claim cache) is asked that first, and a claim it vouches for is
   used without a read slot or a deadline timer;
3. the ``on_prepared`` hook (if any) sees the plan and the fetched claim (None in case 1)
   and returns the CDI device IDs of the answer (the device metadata writer).

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
from dranet_core.errors import ClaimError, ClaimReadError, DranetError
from dranet_core.keyed_locks import KeyedLocks
from dranet_core.plans import ClaimPlan
from dranet_core.types import Claim, ClaimRef, Device

__all__ = [
    "ClaimSource",
    "DefaultPreparer",
    "PeekableClaimSource",
    "PrepareErrorHook",
    "PreparedHook",
    "UnprepareHook",
]

log = logging.getLogger(__name__)

UnprepareHook = Callable[[ClaimRef, ClaimPlan | None], Awaitable[None]]
"""Called before a claim is forgotten, with its plan (None if it was not prepared)."""

PrepareErrorHook = Callable[[ClaimRef, Exception], Awaitable[None]]
"""Called when preparing a claim failed (must not raise; errors are logged)."""

PreparedHook = Callable[[ClaimPlan, Claim | None], Awaitable[Mapping[str, tuple[str, ...]]]]
"""Called after a claim is prepared, with the claim read for it (None when the plan already
existed); returns CDI device IDs by device name for the reply (the device metadata writer)."""


def _message(ref: ClaimRef, exc: Exception) -> str:
    """The error text for the kubelet: always names the claim."""
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, ClaimError) else f"claim {ref}: {text}"


@runtime_checkable
class PeekableClaimSource(Protocol):
    """A claim source that can answer some lookups at once (``kube.claimcache.ClaimCache``)."""

    def peek(self, ref: ClaimRef) -> Claim | None:
        """The claim ``ref`` names if it is at hand and checked as :meth:`ClaimSource.get`
        checks it (UID, allocation), else None (then ``get`` is asked)."""
        ...


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
        max_reads: int = 64,
        read_timeout: float = 10.0,
        on_prepared: PreparedHook | None = None,
    ) -> None:
        if max_reads < 1 or read_timeout <= 0:
            raise ValueError(f"max_reads must be >= 1 and read_timeout > 0, got {max_reads}, {read_timeout}")
        self.source = source
        self._peek = source.peek if isinstance(source, PeekableClaimSource) else None
        self.allocator = allocator
        self.inventory = inventory
        self.on_unprepare = list(on_unprepare)
        self.on_prepare_error = list(on_prepare_error)
        self.on_prepared = on_prepared
        self._locks = KeyedLocks()
        self._reads = asyncio.Semaphore(max_reads)
        self.read_timeout = read_timeout

    async def prepare(self, claims: Sequence[ClaimRef]) -> Mapping[str, PrepareResult]:
        """Prepare each claim; per-claim results, never an exception for one bad claim.

        Claims not prepared yet are read from the source at most ``max_reads`` at a time
        (shared by all calls), and every read of one call ends by one deadline,
        ``read_timeout`` after the call started: a claim not read by then (the API server
        hangs, or too many claims queued behind it) gets its own error,
        ``reading claim ns/name: the API server did not answer within <read_timeout>s``.
        """
        deadline = asyncio.get_running_loop().time() + self.read_timeout
        if len(claims) == 1:
            return {claims[0].uid: await self._prepare_one(claims[0], deadline)}
        results = await asyncio.gather(*(self._prepare_one(r, deadline) for r in claims))
        return {r.uid: res for r, res in zip(claims, results, strict=True)}

    async def unprepare(self, claims: Sequence[ClaimRef]) -> Mapping[str, str | None]:
        """Unprepare each claim; per-claim error strings (None = done)."""
        if len(claims) == 1:
            return {claims[0].uid: await self._unprepare_one(claims[0])}
        results = await asyncio.gather(*(self._unprepare_one(r) for r in claims))
        return {r.uid: res for r, res in zip(claims, results, strict=True)}

    async def _read(self, ref: ClaimRef, deadline: float) -> Claim:
        try:
            async with asyncio.timeout_at(deadline), self._reads:
                return await self.source.get(ref)
        except TimeoutError:
            reason = f"the API server did not answer within {self.read_timeout:g}s"
            raise ClaimReadError(ref.namespace, ref.name, reason) from None

    async def _prepare_one(self, ref: ClaimRef, deadline: float) -> PrepareResult:
        async with self._locks.hold(ref.uid):
            try:
                claim: Claim | None = None
                plan = self.allocator.get(ref.uid)
                if plan is None:
                    if self._peek is not None:
                        claim = self._peek(ref)
                    if claim is None:
                        claim = await self._read(ref, deadline)
                    plan = await self.allocator.prepare(claim, self.inventory())
                if self.on_prepared is None:
                    return PrepareOutcome(plan=plan)
                return PrepareOutcome(plan=plan, cdi_device_ids=await self.on_prepared(plan, claim))
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
                plan = self.allocator.get(ref.uid)
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
