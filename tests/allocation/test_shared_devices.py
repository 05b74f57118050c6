"""Shared devices (allowMultipleAllocations): claims with share IDs and their subinterface config."""

from __future__ import annotations

import pathlib

import pytest

from dranet_core.checkpoint import ClaimStore
from dranet_core.claim_allocator import ClaimAllocator, plan_claim
from dranet_core.config.model import SubinterfaceConfig
from dranet_core.errors import ClaimError, ConfigError
from dranet_core.types import AllocationResult, Claim, ClaimRef, ConsumerRef, Device, OpaqueConfig

DRIVER = "dra.net"
POOL = "node-a"
INVENTORY = {
    "eth1": Device(name="eth1", facets={"netdev": {"ifName": "eth1"}}, allow_multiple_allocations=True),
    "eth2": Device(name="eth2", facets={"netdev": {"ifName": "eth2"}}),
}
MACVLAN = {"subinterface": {"type": "macvlan"}}


def claim(uid: str, share: str | None, params: object = MACVLAN, device: str = "eth1") -> Claim:
    return Claim(
        ref=ClaimRef(namespace="ns", name=f"claim-{uid}", uid=uid),
        results=(AllocationResult(request="nic", driver=DRIVER, pool=POOL, device=device, share_id=share),),
        configs=(OpaqueConfig(source="FromClaim", driver=DRIVER, parameters=params),) if params else (),
        reserved_for=(ConsumerRef(resource="pods", name=f"p-{uid}", uid=f"pod-{uid}"),),
    )


def plan(c: Claim, taken: dict[str, str] | None = None, shared: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return plan_claim(c, INVENTORY, driver=DRIVER, pool=POOL, taken=taken or {}, shared=shared or {})


def test_shared_result_keeps_its_share_id_and_config() -> None:
    p = plan(claim("a", "s-1"))
    (dev,) = p.devices
    assert dev.share_id == "s-1"
    assert dev.config.subinterface == SubinterfaceConfig(type="macvlan", mode="bridge")


def test_shared_result_without_subinterface_is_refused_naming_device_and_field() -> None:
    with pytest.raises(ConfigError, match=r"device eth1\.subinterface: is required for a shared device"):
        plan(claim("a", "s-1", params={"interface": {"name": "net1"}}))
    with pytest.raises(ConfigError, match=r"device eth1\.subinterface: is required"):
        plan(claim("a", "s-1", params=None))


def test_subinterface_on_an_exclusive_device_is_refused_naming_it() -> None:
    with pytest.raises(
        ConfigError, match=r"device eth2\.subinterface: needs a device published as shareable"
    ):
        plan(claim("a", None, device="eth2"))


def test_two_shared_claims_may_hold_one_device_but_not_with_an_exclusive_one() -> None:
    assert plan(claim("b", "s-2"), shared={"eth1": "a"}).devices[0].device == "eth1"
    with pytest.raises(ClaimError, match="eth1 is shared with claim a; it cannot be prepared exclusively"):
        plan(claim("b", None, params=None), shared={"eth1": "a"})
    with pytest.raises(ClaimError, match="eth1 is already prepared for claim a"):
        plan(claim("b", "s-2"), taken={"eth1": "a"})


async def test_allocator_prepares_two_claims_on_one_shared_device(tmp_path: pathlib.Path) -> None:
    store = ClaimStore(tmp_path / "cp.json")
    alloc = ClaimAllocator(DRIVER, POOL, store)
    pa = await alloc.prepare(claim("a", "s-1"), INVENTORY)
    pb = await alloc.prepare(claim("b", "s-2"), INVENTORY)
    assert [d.share_id for d in (*pa.devices, *pb.devices)] == ["s-1", "s-2"]
    assert alloc.shared() == {"eth1": "b"} or alloc.shared() == {"eth1": "a"}
    assert alloc.taken() == {}
    with pytest.raises(ClaimError, match="shared with claim"):
        await alloc.prepare(claim("c", None, params=None), INVENTORY)
    await alloc.unprepare(pa.claim)
    await alloc.unprepare(pb.claim)
    assert (await alloc.prepare(claim("c", None, params=None), INVENTORY)).devices[0].share_id is None
    assert alloc.taken() == {"eth1": "c"}
