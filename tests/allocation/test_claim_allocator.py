"""plan_claim (pure) and ClaimAllocator (idempotence, UID keys, races)."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Sequence

import pytest

from dranet_core.allocation import Allocator
from dranet_core.checkpoint import ClaimStore, decode_checkpoint
from dranet_core.claim_allocator import ClaimAllocator, plan_claim
from dranet_core.config.model import InterfaceConfig, NetworkConfig
from dranet_core.errors import ClaimError, ConfigError, ConfigIssue
from dranet_core.keyed_locks import KeyedLocks
from dranet_core.plans import ClaimPlan
from dranet_core.types import AllocationResult, Claim, ClaimRef, ConsumerRef, Device, OpaqueConfig

DRIVER = "dra.net"
POOL = "node-a"


def plans(allocator: ClaimAllocator) -> dict[str, ClaimPlan]:
    """The prepared claims' plans, by claim UID, as the checkpoint holds them."""
    return {uid: pc.plan for uid, pc in allocator.store.claims().items()}


INVENTORY = {
    name: Device(
        name=name,
        attributes={"dra.net/ifName": name},
        facets={"netdev": {"ifName": name, "idx": i}, **({"rdma": {"ib": name}} if name == "ib0" else {})},
    )
    for i, name in enumerate(["eth1", "eth2", "eth3", "ib0"], start=2)
}


def resolver(configs: Sequence[OpaqueConfig], request: str, driver: str) -> NetworkConfig:
    """A tiny stand-in: the last applying config's interface name/mtu; mtu < 68 is invalid."""
    out = NetworkConfig()
    for c in configs:
        if c.driver == driver and c.applies_to(request):
            iface = c.parameters.get("interface", {})
            if iface.get("mtu", 1500) < 68:
                raise ConfigError([ConfigIssue("interface.mtu", "must be >= 68")])
            out = NetworkConfig(interface=InterfaceConfig(name=iface.get("name"), mtu=iface.get("mtu")))
    return out


def pod(uid: str = "pod-1") -> ConsumerRef:
    return ConsumerRef(resource="pods", name=f"p-{uid}", uid=uid)


def claim(
    uid: str = "c1",
    devices: Sequence[tuple[str, str]] = (("nic", "eth1"),),
    *,
    pods: Sequence[ConsumerRef] = (),
    configs: Sequence[OpaqueConfig] = (),
    name: str | None = None,
    share: str | None = None,
) -> Claim:
    return Claim(
        ref=ClaimRef(namespace="ns", name=name or f"claim-{uid}", uid=uid),
        results=tuple(
            AllocationResult(request=r, driver=DRIVER, pool=POOL, device=d, share_id=share)
            for r, d in devices
        ),
        configs=tuple(configs),
        reserved_for=tuple(pods) or (pod(),),
    )


def plan(c: Claim, taken: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return plan_claim(c, INVENTORY, driver=DRIVER, pool=POOL, taken=taken or {}, resolve=resolver)


def test_plan_takes_only_this_driver_and_pool_and_copies_facets() -> None:
    c = Claim(
        ref=ClaimRef(namespace="ns", name="c", uid="u"),
        results=(
            AllocationResult(request="nic", driver=DRIVER, pool=POOL, device="eth1"),
            AllocationResult(request="gpu", driver="gpu.example.com", pool=POOL, device="gpu0"),
            AllocationResult(request="nic", driver=DRIVER, pool="node-b", device="eth2"),
            AllocationResult(request="nic2", driver=DRIVER, pool=POOL, device="eth3"),
        ),
        configs=(
            OpaqueConfig(
                source="FromClaim",
                requests=("nic2",),
                driver=DRIVER,
                parameters={"interface": {"name": "net9", "mtu": 9000}},
            ),
        ),
        reserved_for=(pod("p1"),),
    )
    p = plan(c)
    assert p.claim == c.ref and p.pods == ("p1",)
    assert [(d.device, d.request_names) for d in p.devices] == [("eth1", ("nic",)), ("eth3", ("nic2",))]
    assert p.devices[0].config == NetworkConfig()
    assert p.devices[1].config == NetworkConfig(interface=InterfaceConfig(name="net9", mtu=9000))
    assert p.devices[1].facets == {"netdev": {"ifName": "eth3", "idx": 4}}
    assert p.devices[0].pool == POOL


def test_plan_groups_requests_of_one_device() -> None:
    p = plan(claim(devices=[("a", "eth1"), ("b/sub", "eth1"), ("a", "eth1")]))
    assert [(d.device, d.request_names) for d in p.devices] == [("eth1", ("a", "b/sub"))]


def test_claim_without_our_results_gets_an_empty_plan() -> None:
    assert plan(claim(devices=[])).devices == ()


def test_more_than_one_pod_is_refused_for_exclusive_devices() -> None:
    with pytest.raises(ClaimError, match="reserved for 2 pods"):
        plan(claim(pods=[pod("a"), pod("b")]))
    # the same pod twice is one pod
    assert plan(claim(pods=[pod("a"), pod("a")])).pods == ("a",)
    # shared (share id) devices may serve several pods
    assert plan(claim(pods=[pod("a"), pod("b")], share="s1")).pods == ("a", "b")


def test_non_pod_consumer_is_refused() -> None:
    job = ConsumerRef(api_group="batch", resource="jobs", name="j", uid="j1")
    with pytest.raises(ClaimError, match="batch/jobs j: only pods"):
        plan(claim(pods=[job]))


def test_unknown_device_is_refused() -> None:
    with pytest.raises(ClaimError, match=r"device eth9 .* is not on this node"):
        plan(claim(devices=[("nic", "eth9")]))


def test_device_taken_by_another_claim_is_refused_but_not_by_itself() -> None:
    with pytest.raises(ClaimError, match="eth1 is already prepared for claim other"):
        plan(claim(), taken={"eth1": "other"})
    assert plan(claim(), taken={"eth1": "c1"}).devices[0].device == "eth1"


def test_config_error_carries_the_device_and_json_path() -> None:
    bad = OpaqueConfig(source="FromClaim", driver=DRIVER, parameters={"interface": {"mtu": 10}})
    with pytest.raises(ConfigError) as info:
        plan(claim(configs=[bad]))
    assert info.value.issues == (ConfigIssue("device eth1.interface.mtu", "must be >= 68"),)


def test_validators_run_only_for_owned_devices() -> None:
    asked: list[str] = []

    class Validator:
        def validate_config(self, device: Device, config: NetworkConfig) -> None:
            asked.append(device.name)
            raise ConfigError([ConfigIssue("interface.name", "not for IB")])

    c = claim(devices=[("a", "eth1")])
    plan_claim(
        c, INVENTORY, driver=DRIVER, pool=POOL, taken={}, resolve=resolver, validators=[("rdma", Validator())]
    )
    assert asked == []
    with pytest.raises(ConfigError, match=r"device ib0.interface.name: not for IB"):
        plan_claim(
            claim(devices=[("a", "ib0")]),
            INVENTORY,
            driver=DRIVER,
            pool=POOL,
            taken={},
            resolve=resolver,
            validators=[("rdma", Validator())],
        )
    assert asked == ["ib0"]


def test_plan_is_pure() -> None:
    c = claim()
    taken: dict[str, str] = {}
    assert plan(c, taken) == plan(c, taken)
    assert taken == {}


# --- ClaimAllocator ---


def make(tmp_path: pathlib.Path) -> tuple[ClaimAllocator, ClaimStore]:
    store = ClaimStore(tmp_path / "cp.json")
    return ClaimAllocator(DRIVER, POOL, store, resolve=resolver), store


async def test_allocator_implements_the_protocol_and_persists(tmp_path: pathlib.Path) -> None:
    alloc, _ = make(tmp_path)
    assert isinstance(alloc, Allocator)
    p = await alloc.prepare(claim(), INVENTORY)
    assert plans(alloc) == {"c1": p}
    assert decode_checkpoint((tmp_path / "cp.json").read_bytes())["c1"].plan == p


class CountingSource:
    """A ClaimSource serving fixed claims, counting the reads."""

    def __init__(self, *claims: Claim) -> None:
        self.claims = {c.ref.uid: c for c in claims}
        self.reads = 0

    async def get(self, ref: ClaimRef) -> Claim:
        self.reads += 1
        return self.claims[ref.uid]


async def test_repeated_prepare_is_answered_from_get_without_read_or_write(
    tmp_path: pathlib.Path,
) -> None:
    from dranet_core.dra.preparer import DefaultPreparer

    alloc, store = make(tmp_path)
    source = CountingSource(claim())
    inventory: dict[str, Device] = dict(INVENTORY)
    preparer = DefaultPreparer(source, alloc, lambda: inventory)
    first = await preparer.prepare([claim().ref])
    p1 = alloc.get("c1")
    assert p1 is not None and source.reads == 1 and store.writes == 1
    inventory.clear()  # the device is in a pod now: the inventory no longer lists it
    source.claims["c1"] = claim(pods=[pod("zzz")])
    again = await asyncio.gather(*(preparer.prepare([claim().ref]) for _ in range(5)))
    assert all(a == first for a in again)
    assert alloc.get("c1") == p1 and source.reads == 1 and store.writes == 1
    assert alloc.get("nope") is None


async def test_unprepare_returns_the_plan_once_then_none(tmp_path: pathlib.Path) -> None:
    alloc, _ = make(tmp_path)
    p = await alloc.prepare(claim(), INVENTORY)
    ref = claim().ref
    assert await alloc.unprepare(ref) == p
    assert await alloc.unprepare(ref) is None
    assert plans(alloc) == {}
    # the device is free again
    assert (await alloc.prepare(claim("c2"), INVENTORY)).devices[0].device == "eth1"


async def test_keyed_by_uid_not_by_name(tmp_path: pathlib.Path) -> None:
    alloc, _ = make(tmp_path)
    await alloc.prepare(claim("old", name="same"), INVENTORY)
    # a claim re-created under the same name has a new UID: it is a different claim
    with pytest.raises(ClaimError, match="already prepared for claim old"):
        await alloc.prepare(claim("new", name="same"), INVENTORY)
    # unpreparing the new UID does not touch the old one
    assert await alloc.unprepare(ClaimRef(namespace="ns", name="same", uid="new")) is None
    assert list(plans(alloc)) == ["old"]


async def test_two_claims_racing_for_one_device_only_one_wins(tmp_path: pathlib.Path) -> None:
    alloc, _ = make(tmp_path)
    results = await asyncio.gather(
        *(alloc.prepare(claim(f"c{i}"), INVENTORY) for i in range(8)), return_exceptions=True
    )
    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = [r for r in results if isinstance(r, ClaimError)]
    assert len(wins) == 1 and len(losses) == 7
    assert list(plans(alloc)) == [wins[0].claim.uid]


async def test_prepare_racing_unprepare_of_the_same_uid_leaks_nothing(tmp_path: pathlib.Path) -> None:
    from dranet_core.dra.preparer import DefaultPreparer

    alloc, store = make(tmp_path)
    preparer = DefaultPreparer(CountingSource(claim()), alloc, lambda: INVENTORY)
    for _ in range(20):
        await asyncio.gather(preparer.prepare([claim().ref]), preparer.unprepare([claim().ref]))
        # serialised: prepare then unprepare, so nothing remains and the device is free
        assert plans(alloc) == {} and alloc.taken() == {}
    assert decode_checkpoint((tmp_path / "cp.json").read_bytes()) == {}
    assert store.claims() == {}


async def test_state_survives_a_new_process(tmp_path: pathlib.Path) -> None:
    alloc, _ = make(tmp_path)
    p = await alloc.prepare(claim(), INVENTORY)
    alloc2, store2 = make(tmp_path)
    await store2.load()
    assert plans(alloc2) == {"c1": p}
    with pytest.raises(ClaimError, match="already prepared for claim c1"):
        await alloc2.prepare(claim("c2"), INVENTORY)
    assert await alloc2.unprepare(claim().ref) == p


async def test_keyed_locks_are_dropped_when_unused() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def work(tag: str) -> None:
        async with locks.hold("k"):
            order.append(f"{tag}-in")
            await asyncio.sleep(0.01)
            order.append(f"{tag}-out")

    await asyncio.gather(work("a"), work("b"))
    assert order == ["a-in", "a-out", "b-in", "b-out"]
    assert len(locks) == 0
