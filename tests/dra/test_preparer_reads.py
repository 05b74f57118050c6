"""DefaultPreparer: claim reads are bounded (concurrency and one deadline per call), and each
claim that could not be read gets its own clear error."""

from __future__ import annotations

import asyncio
import pathlib

from conftest import DRIVER, NODE, inventory, plans, resource_claim

from dranet_core.checkpoint import ClaimStore
from dranet_core.claim_allocator import ClaimAllocator
from dranet_core.dra.preparer import DefaultPreparer
from dranet_core.kube.claims import claim_from_json
from dranet_core.types import Claim, ClaimRef


class HungSource:
    """A claim source whose API server never answers; records the peak of reads in flight."""

    def __init__(self) -> None:
        self.inflight = 0
        self.peak = 0
        self.started = 0

    async def get(self, ref: ClaimRef) -> Claim:
        self.started += 1
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        try:
            await asyncio.Event().wait()
        finally:
            self.inflight -= 1
        raise AssertionError("unreachable")


async def test_20000_claims_against_a_hung_api_server_each_get_a_clear_error(tmp_path: pathlib.Path) -> None:
    source = HungSource()
    allocator = ClaimAllocator("dra.net", "node-a", ClaimStore(tmp_path / "cp.json"))
    preparer = DefaultPreparer(source, allocator, dict, max_reads=32, read_timeout=0.5)
    refs = [ClaimRef(namespace="ns", name=f"c{i}", uid=f"u{i}") for i in range(20_000)]
    results = await preparer.prepare(refs)
    assert len(results) == 20_000
    for ref in (refs[0], refs[12_345], refs[-1]):
        assert results[ref.uid] == f"reading claim ns/{ref.name}: the API server did not answer within 0.5s"
    assert all(isinstance(r, str) and r.startswith("reading claim ns/c") for r in results.values())
    assert source.peak <= 32 and source.inflight == 0
    assert plans(allocator) == {}


class CachedAndHung(HungSource):
    """A claim cache holding some claims; a lookup it cannot answer hangs (API server down)."""

    def __init__(self, held: dict[str, Claim]) -> None:
        super().__init__()
        self.held = held

    def peek(self, ref: ClaimRef) -> Claim | None:
        return self.held.get(ref.uid)


async def test_claims_the_cache_holds_are_prepared_while_every_read_slot_hangs(
    tmp_path: pathlib.Path,
) -> None:
    cached = [ClaimRef(namespace="ns", name=f"hit{i}", uid=f"h{i}") for i in range(3)]
    held = {
        r.uid: claim_from_json(
            r, resource_claim(r.name, r.uid, (("nic", f"eth{i}"),), namespace="ns"), driver=DRIVER
        )
        for i, r in enumerate(cached)
    }
    source = CachedAndHung(held)
    allocator = ClaimAllocator(DRIVER, NODE, ClaimStore(tmp_path / "cp.json"))
    preparer = DefaultPreparer(
        source, allocator, lambda: inventory("eth0", "eth1", "eth2"), max_reads=1, read_timeout=5
    )
    misses = [ClaimRef(namespace="ns", name=f"miss{i}", uid=f"m{i}") for i in range(2)]
    slow = asyncio.create_task(preparer.prepare(misses))  # takes the one read slot and hangs
    while source.inflight == 0:  # noqa: ASYNC110 - the hung read has started
        await asyncio.sleep(0)
    try:
        results = await asyncio.wait_for(preparer.prepare(cached), 2)  # well before read_timeout
    finally:
        slow.cancel()
        await asyncio.gather(slow, return_exceptions=True)
    assert {uid: type(r).__name__ for uid, r in results.items()} == dict.fromkeys(held, "PrepareOutcome")
    assert set(plans(allocator)) == set(held)
    assert source.started == 1  # the cached claims never asked for a read
