"""The pure slice planner: names, layout, generations (no event loop, no server)."""

from __future__ import annotations

from typing import Any

import attrs
from fakeapi import validate_resource_slice
from hypothesis import given, settings
from hypothesis import strategies as st

from dranet_core.kube.slices import (
    ExistingSlice,
    SlicePlan,
    device_body,
    device_problems,
    existing_from_object,
    max_devices_per_slice,
    parse_slice_index,
    plan_slices,
    prepare_devices,
    share_bodies,
    slice_name,
    slice_object,
)
from dranet_core.types import AttributeList, Device, Version, is_dns_subdomain

NODE, DRIVER = "node-a", "dra.net"


def bodies(names: list[str], mtu: int = 1500) -> dict[str, dict[str, Any]]:
    return {n: device_body(Device(name=n, attributes={"dra.net/mtu": mtu})) for n in names}


def apply(plan: SlicePlan, state: dict[str, ExistingSlice]) -> dict[str, ExistingSlice]:
    """What the server holds after the plan (a perfect server)."""
    out = dict(state)
    for w in plan.writes:
        out[w.name] = ExistingSlice(
            name=w.name,
            index=w.index,
            uid=f"uid-{w.name}",
            resource_version="1",
            generation=plan.generation,
            slice_count=plan.slice_count,
            pool=NODE,
            devices=w.devices,
        )
    for d in plan.deletes:
        out.pop(d.name)
    return out


def plan(desired: dict[str, Any], state: dict[str, ExistingSlice], **kw: Any) -> SlicePlan:
    return plan_slices(desired, state.values(), node=NODE, driver=DRIVER, **kw)


def check_invariants(desired: dict[str, Any], state: dict[str, ExistingSlice], max_per: int) -> None:
    seen = [d["name"] for s in state.values() for d in s.devices]
    assert sorted(seen) == sorted(desired)  # every device exactly once
    assert len(state) >= 1 and all(len(s.devices) <= max_per for s in state.values())
    assert len({(s.generation, s.slice_count) for s in state.values()}) == 1
    assert next(iter(state.values())).slice_count == len(state)


def test_names_and_adoption_scheme() -> None:
    assert slice_name(NODE, DRIVER, 0) == "node-a-dra.net-0"
    assert parse_slice_index("node-a-dra.net-12", NODE, DRIVER) == 12
    for foreign in (
        "node-a-dra.net-x7k2q",
        "node-a-dra.net-24567",
        "node-a-dra.net-012",
        "node-b-dra.net-1",
        "node-a-dra.net-",
        "node-a-other.io-1",
    ):
        assert parse_slice_index(foreign, NODE, DRIVER) is None, foreign
    long_node = "n" * 63 + "." + "m" * 63 + "." + "o" * 63 + "." + "p" * 60
    name = slice_name(long_node, DRIVER, 3)
    assert len(name) <= 253 and is_dns_subdomain(name)
    assert parse_slice_index(name, long_node, DRIVER) == 3
    assert slice_name(long_node, DRIVER, 3) != slice_name(long_node, "other.io", 3)


def test_from_scratch_chunks_sorted() -> None:
    desired = bodies([f"d{i:04d}" for i in range(1000)])
    p = plan(desired, {})
    assert (p.generation, p.slice_count, len(p.writes), p.deletes) == (1, 8, 8, ())
    assert [len(w.devices) for w in p.writes] == [128] * 7 + [104]
    assert p.writes[1].devices[0]["name"] == "d0128"


def test_zero_devices_one_empty_slice() -> None:
    p = plan({}, {})
    assert [(w.name, w.devices) for w in p.writes] == [("node-a-dra.net-0", ())]
    state = apply(p, {})
    assert plan({}, state).is_noop


def test_insertion_does_not_shift_boundaries() -> None:
    names = [f"d{i:04d}" for i in range(300)]
    state = apply(plan(bodies(names), {}), {})
    p = plan(bodies([*names, "d0000a"]), state)  # sorts right after d0000
    assert [w.index for w in p.writes] == [2] and p.generation == 1
    assert "d0000a" in [d["name"] for d in p.writes[0].devices]


def test_fragmented_layout_is_repacked() -> None:
    names = [f"d{i:04d}" for i in range(1000)]
    state = apply(plan(bodies(names), {}), {})
    keep = [n for i, n in enumerate(names) if i % 128 == 0]  # one device left per slice
    p = plan(bodies(keep), state)
    assert p.generation == 2 and p.slice_count == 1
    assert [w.index for w in p.writes] == [0] and len(p.deletes) == 7
    check_invariants(bodies(keep), apply(p, state), 128)


def test_inconsistent_generations_are_bumped() -> None:
    names = [f"d{i:04d}" for i in range(200)]
    state = apply(plan(bodies(names), {}), {})
    first = state["node-a-dra.net-0"]
    state["node-a-dra.net-0"] = attrs.evolve(first, generation=7)
    p = plan(bodies(names), state)
    assert p.generation == 8 and len(p.writes) == 2


def test_foreign_slice_with_higher_generation_forces_bump() -> None:
    state = apply(plan(bodies(["a"]), {}), {})
    stranger = ExistingSlice(
        name="node-a-dra.net-x7k2q",
        index=None,
        uid="u",
        resource_version="9",
        generation=5,
        slice_count=1,
        pool=NODE,
    )
    state[stranger.name] = stranger
    p = plan(bodies(["a"]), state)
    assert p.generation == 6 and [d.name for d in p.deletes] == [stranger.name] and len(p.writes) == 1


def test_missing_slice_recreated_with_remembered_devices() -> None:
    names = [f"d{i:04d}" for i in range(300)]
    state = apply(plan(bodies(names), {}), {})
    memory = {d["name"]: s.index for s in state.values() for d in s.devices if s.index is not None}
    del state["node-a-dra.net-1"]
    p = plan(bodies(names), state, preferred=memory)
    assert [(w.index, w.existing) for w in p.writes] == [(1, None)] and p.generation == 1
    assert [d["name"] for d in p.writes[0].devices] == names[128:256]


def test_existing_from_v1beta1_object_unnests_basic() -> None:
    devs = [device_body(Device(name="eth1", attributes={"dra.net/mtu": 9000}))]
    obj = slice_object(
        name="node-a-dra.net-0",
        driver=DRIVER,
        node=NODE,
        generation=3,
        slice_count=1,
        devices=devs,
        api_version="v1beta1",
        owner_uid="node-uid",
    )
    assert obj["spec"]["devices"] == [
        {"name": "eth1", "basic": {"attributes": {"dra.net/mtu": {"int": 9000}}}}
    ]
    assert validate_resource_slice(obj, "v1beta1") == []
    obj["metadata"].update(uid="u1", resourceVersion="42")
    got = existing_from_object(obj, node=NODE, driver=DRIVER)
    assert (got.index, got.generation, got.slice_count, got.uid, got.resource_version) == (
        0,
        3,
        1,
        "u1",
        "42",
    )
    assert got.devices == tuple(devs)


ops = st.lists(
    st.tuples(st.sampled_from(["add", "remove", "modify"]), st.integers(0, 10_000), st.integers(1, 40)),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(start=st.integers(0, 600), changes=ops, max_per=st.sampled_from([4, 16, 128]))
def test_plans_keep_invariants_and_single_changes_cost_one_write(
    start: int, changes: list[tuple[str, int, int]], max_per: int
) -> None:
    mtus = {f"d{i:05d}": 1500 for i in range(start)}
    initial = {n: device_body(Device(name=n, attributes={"dra.net/mtu": m})) for n, m in mtus.items()}
    state = apply(plan(initial, {}, max_per_slice=max_per), {})
    for kind, seed, amount in changes:
        names = sorted(mtus)
        if kind == "add":
            for k in range(amount):
                mtus[f"d{seed:05d}x{k}"] = 1500
        elif kind == "remove" and names:
            for k in range(min(amount, len(names))):
                mtus.pop(names[(seed + k * 7) % len(names)], None)
        elif kind == "modify" and names:
            mtus[names[seed % len(names)]] += 1
        desired = {n: device_body(Device(name=n, attributes={"dra.net/mtu": m})) for n, m in mtus.items()}
        p = plan(desired, state, max_per_slice=max_per)
        if kind == "modify" and names:
            assert len(p.writes) == 1 and not p.deletes
        state = apply(p, state)
        check_invariants(desired, state, max_per)
        assert plan(desired, state, max_per_slice=max_per).is_noop


def test_prepare_reuses_bodies_of_unchanged_devices_and_tells_true_from_one() -> None:
    from dranet_core.kube.slices import BodyCache, prepare_devices

    cache: BodyCache = {}
    first, _ = prepare_devices([Device(name="eth1", attributes={"dra.net/x": 1})], cache=cache)
    again, _ = prepare_devices([Device(name="eth1", attributes={"dra.net/x": 1})], cache=cache)
    assert again["eth1"] is first["eth1"]  # an equal device (new object) keeps its body
    changed, _ = prepare_devices([Device(name="eth1", attributes={"dra.net/x": True})], cache=cache)
    assert changed["eth1"] == {"name": "eth1", "attributes": {"dra.net/x": {"bool": True}}}
    assert first["eth1"] == {"name": "eth1", "attributes": {"dra.net/x": {"int": 1}}}
    assert list(cache) == ["eth1"]


def test_device_bodies_share_equal_attribute_values() -> None:
    a = device_body(Device(name="a", attributes={"dra.net/mtu": 1500, "dra.net/ifName": "a"}))
    b = device_body(Device(name="b", attributes={"dra.net/mtu": 1500, "dra.net/ifName": "b"}))
    assert a["attributes"]["dra.net/mtu"] is b["attributes"]["dra.net/mtu"]  # type: ignore[index]
    assert a["attributes"]["dra.net/ifName"] == {"string": "a"}  # type: ignore[index]


def test_shareable_device_is_published_with_allow_multiple_allocations_in_every_version() -> None:
    shared = Device(name="eth1", attributes={"dra.net/mtu": 1500}, allow_multiple_allocations=True)
    body = device_body(shared)
    assert body["allowMultipleAllocations"] is True
    assert "allowMultipleAllocations" not in device_body(Device(name="eth2"))
    for version in ("v1", "v1beta2"):
        obj = slice_object(
            name="s",
            driver=DRIVER,
            node=NODE,
            generation=1,
            slice_count=1,
            devices=[body],
            api_version=version,
        )
        assert obj["spec"]["devices"][0]["allowMultipleAllocations"] is True
    beta1 = slice_object(
        name="s", driver=DRIVER, node=NODE, generation=1, slice_count=1, devices=[body], api_version="v1beta1"
    )
    assert beta1["spec"]["devices"][0]["basic"]["allowMultipleAllocations"] is True
    assert validate_resource_slice(beta1, "v1beta1") == []
    # a merged device (several backends) stays shareable when one of them says so
    assert Device(name="eth1").merged(shared).allow_multiple_allocations
    assert shared.merged(Device(name="eth1")).allow_multiple_allocations


def test_list_attributes_in_both_forms_and_the_limits_that_come_with_them() -> None:
    numa = "resource.kubernetes.io/numaNode"
    d = Device(name="a", attributes={numa: AttributeList((1, 0)), "dra.net/mtu": 1500})
    assert device_body(d)["attributes"][numa] == {"ints": [1, 0]}
    assert device_body(d, lists=False)["attributes"] == {numa: {"int": 1}, "dra.net/mtu": {"int": 1500}}
    bodies, skipped = prepare_devices([d], lists=False)
    assert skipped == [] and bodies["a"]["attributes"][numa] == {"int": 1}
    assert max_devices_per_slice([device_body(d)]) == 64
    assert max_devices_per_slice([device_body(d, lists=False)]) == 128
    assert max_devices_per_slice([device_body(d)], 10) == 10
    # a device built around the type checks (evolve skips no validator, so build the mapping by hand)
    crowded = Device(name="b", attributes={"dra.net/a": AttributeList(range(40))})
    object.__setattr__(crowded, "attributes", {**crowded.attributes, "dra.net/b": AttributeList(range(9))})
    assert "49 attribute values exceed 48" in device_problems(crowded)
    # what the API server would say to a slice of 65 such devices
    many = [device_body(Device(name=f"d{i}", attributes={numa: AttributeList((0,))})) for i in range(65)]
    obj = slice_object(
        name="n-dra.net-0", driver="dra.net", node="n", generation=1, slice_count=1, devices=many
    )
    assert [c.field for c in validate_resource_slice(obj)] == ["spec.devices"]


def test_share_bodies_keeps_the_servers_copy_only_where_it_differs() -> None:
    ours = {"a": {"name": "a", "attributes": {"x": {"int": 1}}}, "b": {"name": "b"}}
    listed = ExistingSlice(
        name="s",
        index=0,
        uid="u",
        resource_version="1",
        generation=1,
        slice_count=1,
        pool="node",
        devices=(
            {"name": "a", "attributes": {"x": {"int": 1}}},
            {"name": "b", "attributes": {"x": {"int": 2}}},
            {"name": "c"},
        ),
    )
    shared = share_bodies({"s": listed}, ours)["s"]
    assert shared.devices == listed.devices
    assert shared.devices[0] is ours["a"]
    assert shared.devices[1] is listed.devices[1] and shared.devices[2] is listed.devices[2]


def test_device_problems_of_values_built_around_the_type_checks() -> None:
    """Every value kind is checked, the common ones (bool, int, short str) as well as the rest."""
    d = Device(name="c", attributes={"dra.net/ok": "x" * 64, "dra.net/n": 1, "dra.net/b": True})
    assert device_problems(d) == []
    long_version, long_item = Version("1.0.0"), AttributeList(("a", "b"))
    object.__setattr__(long_version, "value", "1.0.0-" + "a" * 59)
    object.__setattr__(long_item, "items", ("a", "b" * 65))
    bad = {
        **d.attributes,
        "dra.net/long": "x" * 65,
        "dra.net/longVersion": long_version,
        "dra.net/longItem": long_item,
        "dra.net/float": 1.5,
        "Not/valid/name": 1,
    }
    object.__setattr__(d, "attributes", bad)
    problems = device_problems(d)
    assert "attribute dra.net/long: longer than 64 characters" in problems
    assert "attribute dra.net/longVersion: longer than 64 characters" in problems
    assert "attribute dra.net/longItem: longer than 64 characters" in problems
    assert "attribute dra.net/float: unsupported type float" in problems
    assert any("Not/valid/name" in p for p in problems)
    assert len(problems) == 5
