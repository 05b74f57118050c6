"""KubeStatusPublisher + ResourceSlices against the fake API server: exact requests."""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

import attrs
import pytest
from fakeapi import FakeApiServer, validate_resource_slice
from kube_testing import (
    DRIVER,
    FAST,
    NODE,
    SLICES,
    add_node,
    devices,
    eventually,
    idle,
    make_publisher,
    running,
    slice_devices,
    slices,
)
from kubernetes_asyncio.client import ApiClient

from dranet_core.kube.publisher import PublisherSettings
from dranet_core.types import AttributeList, Device


@pytest.mark.parametrize("n", [0, 1, 128, 129, 1000])
async def test_publish_from_scratch(fake_api: FakeApiServer, fake_api_client: ApiClient, n: int) -> None:
    node = add_node(fake_api)
    pub = make_publisher(fake_api_client)
    devs = devices(n)
    async with running(pub):
        await pub.publish_devices(devs)
        await idle(pub)
    expected = max(1, math.ceil(n / 128))
    posts = fake_api.writes("resourceslices", method="POST")  # sent concurrently: in any order
    posts.sort(key=lambda p: int(p.body["metadata"]["name"].rpartition("-")[2]))
    assert len(posts) == expected and fake_api.count_writes("resourceslices") == expected
    assert [p.path for p in posts] == [SLICES] * expected
    names = [p.body["metadata"]["name"] for p in posts]
    assert names == [f"{NODE}-{DRIVER}-{i}" for i in range(expected)]
    all_names = sorted(d.name for d in devs)
    for i, p in enumerate(posts):
        body = p.body
        assert validate_resource_slice(body) == []
        assert body["apiVersion"] == "resource.k8s.io/v1" and body["kind"] == "ResourceSlice"
        assert body["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "name": NODE,
                "uid": node["metadata"]["uid"],
                "controller": True,
            }
        ]
        spec = body["spec"]
        assert spec["driver"] == DRIVER and spec["nodeName"] == NODE
        assert spec["pool"] == {"name": NODE, "generation": 1, "resourceSliceCount": expected}
        assert [d["name"] for d in spec["devices"]] == all_names[i * 128 : (i + 1) * 128]
    if n:
        first = posts[0].body["spec"]["devices"][0]
        assert first == {
            "name": "eth0000",
            "attributes": {
                "dra.net/ifName": {"string": "eth0"},
                "dra.net/mtu": {"int": 1500},
                "dra.net/virtual": {"bool": False},
            },
        }
    assert pub.health.published_devices == n and pub.health.published_slices == expected
    assert pub.health.slices_in_sync and pub.health.last_published_time is not None


async def test_no_write_when_nothing_changed_over_ten_rescans(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    add_node(fake_api)
    pub = make_publisher(fake_api_client)
    async with running(pub):
        await pub.publish_devices(devices(300))
        await idle(pub)
        before = fake_api.count_writes()
        for _ in range(10):
            await pub.publish_devices(devices(300))  # equal values, new objects
            await idle(pub)
    assert before == 3
    assert fake_api.count_writes() == before


@pytest.mark.parametrize(
    ("change", "slice_index"),
    [("modify", 1), ("add", 7), ("remove", 0)],
)
async def test_one_device_change_writes_exactly_one_slice(
    fake_api: FakeApiServer, fake_api_client: ApiClient, change: str, slice_index: int
) -> None:
    add_node(fake_api)
    pub = make_publisher(fake_api_client)
    devs = devices(1000)
    async with running(pub):
        await pub.publish_devices(devs)
        await idle(pub)
        fake_api.clear_requests()
        if change == "modify":
            devs[200] = attrs.evolve(devs[200], attributes={**devs[200].attributes, "dra.net/mtu": 9000})
        elif change == "add":
            # sorts into the middle: a naive sorted-chunk layout would shift every later slice
            devs.append(Device(name="eth0500a", attributes={"dra.net/ifName": "new"}))
        else:
            del devs[5]
        await pub.publish_devices(devs)
        await idle(pub)
    writes = fake_api.writes("resourceslices")
    assert [(w.method, w.name) for w in writes] == [("PUT", f"{NODE}-{DRIVER}-{slice_index}")]
    pool = writes[0].body["spec"]["pool"]
    assert pool == {"name": NODE, "generation": 1, "resourceSliceCount": 8}
    published = {d for names in slice_devices(fake_api).values() for d in names}
    assert published == {d.name for d in devs}


async def test_new_slice_bumps_generation_everywhere(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    add_node(fake_api)
    pub = make_publisher(fake_api_client)
    async with running(pub):
        await pub.publish_devices(devices(128))
        await idle(pub)
        await pub.publish_devices(devices(129))
        await idle(pub)
    got = slices(fake_api)
    assert sorted(s["metadata"]["name"] for s in got) == [f"{NODE}-{DRIVER}-0", f"{NODE}-{DRIVER}-1"]
    assert {(s["spec"]["pool"]["generation"], s["spec"]["pool"]["resourceSliceCount"]) for s in got} == {
        (2, 2)
    }
    # then back to 128: the emptied slice is deleted (with preconditions), generation 3
    async with running(pub):
        await pub.publish_devices(devices(128))
        await idle(pub)
    deletes = fake_api.writes("resourceslices", method="DELETE")
    assert [d.name for d in deletes] == [f"{NODE}-{DRIVER}-1"]
    assert set(deletes[0].body["preconditions"]) == {"uid", "resourceVersion"}
    assert [s["spec"]["pool"] for s in slices(fake_api)] == [
        {"name": NODE, "generation": 3, "resourceSliceCount": 1}
    ]


async def test_recreates_slice_deleted_behind_its_back(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    add_node(fake_api)
    pub = make_publisher(fake_api_client)
    async with running(pub):
        await pub.publish_devices(devices(300))
        await idle(pub)
        fake_api.clear_requests()
        victim = f"{NODE}-{DRIVER}-1"
        gone = fake_api.delete_object("resourceslices", victim)
        assert gone is not None
        await eventually(lambda: fake_api.get_object("resourceslices", victim) is not None)
        await idle(pub)
        again = fake_api.get_object("resourceslices", victim)
        assert again is not None
        assert [d["name"] for d in again["spec"]["devices"]] == [d["name"] for d in gone["spec"]["devices"]]
        assert again["spec"]["pool"] == gone["spec"]["pool"]  # same generation: only the missing one
        assert [(w.method, w.name) for w in fake_api.writes("resourceslices")] == [("POST", None)]
        # the kubelet wipes all of the driver's slices for the node
        fake_api.clear_requests()
        for s in slices(fake_api):
            fake_api.delete_object("resourceslices", s["metadata"]["name"])
        await eventually(lambda: len(slices(fake_api)) == 3)
        await idle(pub)
    assert sum(len(v) for v in slice_devices(fake_api).values()) == 300
    assert fake_api.count_writes("resourceslices") == 3


async def test_conflict_is_reread_and_retried(fake_api: FakeApiServer, fake_api_client: ApiClient) -> None:
    add_node(fake_api)
    pub = make_publisher(fake_api_client)
    devs = devices(10)
    async with running(pub):
        await pub.publish_devices(devs)
        await idle(pub)
        fake_api.clear_requests()
        fake_api.fail_next("PUT", f"{SLICES}/", status=409, message="the object has been modified")
        devs[0] = attrs.evolve(devs[0], attributes={"dra.net/ifName": "renamed"})
        await pub.publish_devices(devs)
        await idle(pub)
    seq = [(r.method, r.status) for r in fake_api.requests_for("resourceslices") if not r.is_watch]
    assert seq[0] == ("PUT", 409)
    assert ("GET", 200) in seq[1:] and seq[-1] == ("PUT", 200)
    assert slices(fake_api)[0]["spec"]["devices"][0]["attributes"]["dra.net/ifName"] == {"string": "renamed"}


async def test_someone_else_modifies_our_slice(fake_api: FakeApiServer, fake_api_client: ApiClient) -> None:
    add_node(fake_api)
    pub = make_publisher(fake_api_client)
    async with running(pub):
        await pub.publish_devices(devices(3))
        await idle(pub)
        tampered = slices(fake_api)[0]
        tampered["spec"]["devices"] = []
        fake_api.put_object(tampered)
        await eventually(lambda: len(slices(fake_api)[0]["spec"]["devices"]) == 3)
        await idle(pub)


async def test_server_errors_back_off_and_retry(fake_api: FakeApiServer, fake_api_client: ApiClient) -> None:
    add_node(fake_api)
    delays: list[float] = []

    async def sleep(d: float) -> None:
        delays.append(d)

    pub = make_publisher(fake_api_client, sleep=sleep)
    fake_api.fail_next("POST", SLICES, status=500, count=3)
    async with running(pub):
        await pub.publish_devices(devices(5))
        await idle(pub)
    statuses = [r.status for r in fake_api.writes("resourceslices")]
    assert statuses == [500, 500, 500, 201]
    assert len(delays) >= 3 and delays[0] < delays[1] < delays[2]
    assert pub.health.last_error is not None and "500" in pub.health.last_error


async def test_unreachable_at_start_then_publishes(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    add_node(fake_api)
    await fake_api.go_down()
    pub = make_publisher(fake_api_client)
    async with running(pub):
        # returns although nothing can be written: the kubelet/NRI paths are never blocked
        await pub.publish_devices(devices(3))
        await eventually(lambda: pub.health.last_error is not None)
        assert not pub.is_idle and "unreachable" in (pub.health.last_error or "")
        await fake_api.come_back()
        await idle(pub)
    assert len(slices(fake_api)) == 1 and pub.health.node_uid is not None


async def test_restart_adopts_and_deletes_strangers(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    node = add_node(fake_api)
    first = make_publisher(fake_api_client)
    async with running(first):
        await first.publish_devices(devices(300))
        await idle(first)
    # a Go-driver slice (generateName) for this node and another node's slice
    stranger = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": f"{NODE}-{DRIVER}-x7k2q"},
        "spec": {
            "driver": DRIVER,
            "nodeName": NODE,
            "pool": {"name": NODE, "generation": 1, "resourceSliceCount": 1},
            "devices": [],
        },
    }
    fake_api.put_object(stranger)
    other = dict(stranger, metadata={"name": "node-b-dra.net-0"})
    other["spec"] = dict(
        stranger["spec"], nodeName="node-b", pool={"name": "node-b", "generation": 1, "resourceSliceCount": 1}
    )
    fake_api.put_object(other)
    fake_api.clear_requests()
    second = make_publisher(fake_api_client, node_uid=node["metadata"]["uid"])
    async with running(second):
        await second.publish_devices(devices(300))
        await idle(second)
    writes = [(w.method, w.name) for w in fake_api.writes("resourceslices")]
    # adoption: our three slices are kept as they are; only the stranger goes
    assert writes == [("DELETE", f"{NODE}-{DRIVER}-x7k2q")]
    assert fake_api.get_object("resourceslices", "node-b-dra.net-0") is not None
    assert sorted(s["metadata"]["name"] for s in slices(fake_api)) == [
        f"{NODE}-{DRIVER}-{i}" for i in range(3)
    ]


async def test_restart_adopts_without_writes(fake_api: FakeApiServer, fake_api_client: ApiClient) -> None:
    add_node(fake_api)
    first = make_publisher(fake_api_client)
    async with running(first):
        await first.publish_devices(devices(1000))
        await idle(first)
    fake_api.clear_requests()
    second = make_publisher(fake_api_client)
    async with running(second):
        await second.publish_devices(devices(1000))
        await idle(second)
    assert fake_api.count_writes() == 0
    assert second.health.published_slices == 8


@pytest.mark.parametrize("version", ["v1beta2", "v1beta1"])
async def test_falls_back_to_beta_versions(
    fake_api: FakeApiServer, fake_api_client: ApiClient, version: str
) -> None:
    add_node(fake_api)
    fake_api.serve_versions("resource.k8s.io", version)
    pub = make_publisher(fake_api_client)
    async with running(pub):
        await pub.publish_devices(devices(2))
        await idle(pub)
        assert pub.health.api_version == version
        await pub.publish_devices(devices(2))
        await idle(pub)
    (post,) = fake_api.writes("resourceslices")
    assert post.path == f"/apis/resource.k8s.io/{version}/resourceslices"
    assert post.body["apiVersion"] == f"resource.k8s.io/{version}"
    dev = post.body["spec"]["devices"][0]
    if version == "v1beta1":
        assert dev == {
            "name": "eth0000",
            "basic": {
                "attributes": {
                    "dra.net/ifName": {"string": "eth0"},
                    "dra.net/mtu": {"int": 1500},
                    "dra.net/virtual": {"bool": False},
                }
            },
        }
        assert validate_resource_slice(post.body, "v1beta1") == []
    else:
        assert "basic" not in dev and dev["name"] == "eth0000"


async def test_device_breaking_a_limit_is_left_out(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    add_node(fake_api)
    pub = make_publisher(fake_api_client)
    good = devices(3)
    bad_quantity = Device(name="weird0", capacity={"dra.net/bandwidth": "fast"})
    with attrs.validators.disabled():
        too_many = Device(name="many0", attributes={f"dra.net/a{i}": i for i in range(40)})
        bad_name = Device(name="Not_A_Label")
    dup = Device(name="eth0001", attributes={"dra.net/ifName": "dup"})
    async with running(pub):
        await pub.publish_devices([*good, bad_quantity, too_many, bad_name, dup])
        await idle(pub)
    assert slice_devices(fake_api) == {f"{NODE}-{DRIVER}-0": ["eth0000", "eth0001", "eth0002"]}
    skipped = {s.name: s.reason for s in pub.health.skipped_devices}
    assert set(skipped) == {"weird0", "many0", "Not_A_Label", "eth0001"}
    assert "quantity" in skipped["weird0"] and "exceed 32" in skipped["many0"]
    assert "DNS label" in skipped["Not_A_Label"] and "duplicate" in skipped["eth0001"]


def test_driver_and_node_names_are_validated(fake_api_client: Any) -> None:
    from dranet_core.kube.publisher import KubeStatusPublisher

    with pytest.raises(ValueError, match="driver name"):
        KubeStatusPublisher(fake_api_client, driver_name="Dra.Net", node_name=NODE)
    with pytest.raises(ValueError, match="node name"):
        KubeStatusPublisher(fake_api_client, driver_name=DRIVER, node_name="bad_node")
    with pytest.raises(ValueError, match="max_devices_per_slice"):
        PublisherSettings(max_devices_per_slice=129)
    with pytest.raises(ValueError, match="backoff_max"):
        PublisherSettings(backoff_initial=5, backoff_max=1)
    with pytest.raises(ValueError, match="request_timeout"):
        PublisherSettings(request_timeout=0)
    with pytest.raises(ValueError, match="watch_timeout"):
        PublisherSettings(watch_timeout=0)


async def test_watch_resumes_and_survives_expired_history(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    add_node(fake_api)
    pub = make_publisher(fake_api_client, settings=attrs.evolve(FAST, watch_timeout=1))
    async with running(pub):
        await pub.publish_devices(devices(3))
        await idle(pub)
        await eventually(lambda: any(r.is_watch for r in fake_api.requests))
        watches = [r for r in fake_api.requests_for("resourceslices") if r.is_watch]
        assert len(watches) == 1 and watches[0].query["resourceVersion"]
        # the stream times out and resumes from the last resourceVersion; meanwhile history is lost
        fake_api.put_object(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "other"}}
        )  # rv moves on
        fake_api.compact()

        def lists() -> int:
            return sum(1 for r in fake_api.requests_for("resourceslices", method="GET") if not r.is_watch)

        assert lists() == 1
        # the resumed watch gets 410 Expired: a fresh list, then a watch from its resourceVersion
        await eventually(lambda: lists() == 2, limit=8)
        await eventually(lambda: fake_api.requests[-1].is_watch)
        assert fake_api.requests[-1].query["resourceVersion"] == str(fake_api.resource_version)
        victim = f"{NODE}-{DRIVER}-0"
        fake_api.delete_object("resourceslices", victim)
        await eventually(lambda: fake_api.get_object("resourceslices", victim) is not None)


async def test_recreated_node_gets_slices_owned_by_the_new_node(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    add_node(fake_api)
    pub = make_publisher(fake_api_client)
    async with running(pub):
        await pub.publish_devices(devices(200))
        await idle(pub)
        fake_api.delete_object("nodes", NODE)  # garbage collection takes the slices with it
        assert slices(fake_api) == []
        new_uid = add_node(fake_api)["metadata"]["uid"]

        def owned_by_new_node() -> bool:
            got = slices(fake_api)
            return len(got) == 2 and all(s["metadata"]["ownerReferences"][0]["uid"] == new_uid for s in got)

        await eventually(owned_by_new_node)
        await idle(pub)
    assert pub.health.node_uid == new_uid


async def test_a_bug_in_one_iteration_does_not_kill_the_publisher(
    fake_api: FakeApiServer,
    fake_api_client: ApiClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import dranet_core.kube.slicesync as publisher_module

    real = publisher_module.plan_slices
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("planner bug")
        return real(*args, **kwargs)

    monkeypatch.setattr(publisher_module, "plan_slices", flaky)
    add_node(fake_api)
    pub = make_publisher(fake_api_client)
    async with running(pub):
        await pub.publish_devices(devices(2))
        await idle(pub)
    assert len(slices(fake_api)) == 1 and calls["n"] >= 2
    # the supervisor restarted the slice loop after the bug, and said why
    assert any(
        "publisher slices" in r.getMessage() and "planner bug" in r.getMessage() for r in caplog.records
    )


async def test_device_rejected_by_the_server_is_left_out(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    add_node(fake_api)
    pub = make_publisher(fake_api_client)
    msg = 'ResourceSlice "x" is invalid: spec.devices[1].attributes[dra.net/ifName]: Invalid value'
    fake_api.fail_next("POST", SLICES, status=422, message=msg)
    devs = devices(3)
    async with running(pub):
        await pub.publish_devices(devs)
        await idle(pub)
        assert slice_devices(fake_api) == {f"{NODE}-{DRIVER}-0": ["eth0000", "eth0002"]}
        (skipped,) = pub.health.skipped_devices
        assert skipped.name == "eth0001" and "rejected by the API server" in skipped.reason
        # once the device changes it gets another chance
        devs[1] = attrs.evolve(devs[1], attributes={"dra.net/ifName": "fixed"})
        await pub.publish_devices(devs)
        await idle(pub)
    assert slice_devices(fake_api) == {f"{NODE}-{DRIVER}-0": ["eth0000", "eth0001", "eth0002"]}
    assert pub.health.skipped_devices == ()


async def test_a_set_published_during_a_write_is_written_next(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    add_node(fake_api)
    pub = make_publisher(fake_api_client)
    first, second = devices(10), devices(20)
    write = pub.slices._write_slices
    calls = 0

    async def write_then_publish(plan: Any) -> bool:
        nonlocal calls
        calls += 1
        ok = await write(plan)
        if calls == 1:  # a newer set arrives while the first one is being written
            await pub.publish_devices(second)
        return ok

    pub.slices._write_slices = write_then_publish  # type: ignore[method-assign]
    async with running(pub):
        await pub.publish_devices(first)
        await idle(pub)
    assert sum(len(names) for names in slice_devices(fake_api).values()) == 20


NUMA = "resource.kubernetes.io/numaNode"


def _with_numa(devs: list[Device], nodes: tuple[int, ...] = (1, 0)) -> list[Device]:
    return [attrs.evolve(d, attributes={**d.attributes, NUMA: AttributeList(nodes)}) for d in devs]


async def test_list_attributes_are_published_as_lists_64_devices_a_slice(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    add_node(fake_api)
    pub = make_publisher(fake_api_client)
    async with running(pub):
        await pub.publish_devices(_with_numa(devices(100)))
        await idle(pub)
    by_slice = slice_devices(fake_api)
    assert [len(v) for v in by_slice.values()] == [64, 36]  # the API's limit with list attributes
    for s in slices(fake_api):
        assert validate_resource_slice(s) == []
        assert {d["attributes"][NUMA]["ints"][0] for d in s["spec"]["devices"]} == {1}
    assert s["spec"]["devices"][0]["attributes"][NUMA] == {"ints": [1, 0]}


async def test_a_server_without_list_attributes_gets_the_scalar_form_and_one_error(
    fake_api: FakeApiServer, fake_api_client: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A cluster without the DRAListTypeAttributes gate drops list values and refuses the
    attribute: the driver then publishes every device with the first item, leaves none out,
    and says so once, naming the flag."""
    add_node(fake_api)
    fake_api.list_attributes = False
    pub = make_publisher(fake_api_client)
    async with running(pub):
        await pub.publish_devices(_with_numa(devices(3)))
        await idle(pub)
        await pub.publish_devices(_with_numa(devices(4)))  # later sets too, without another error
        await idle(pub)
    (s,) = slices(fake_api)
    assert [d["attributes"][NUMA] for d in s["spec"]["devices"]] == [{"int": 1}] * 4
    assert pub.health.skipped_devices == ()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, errors
    assert "resource.kubernetes.io/numaNode" in errors[0]
    assert "--feature-gates=DRAListTypeAttributes=true" in errors[0]


async def test_an_adopted_slice_keeps_our_device_bodies_not_the_servers_copies(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    add_node(fake_api)
    first = make_publisher(fake_api_client)
    async with running(first):
        await first.publish_devices(devices(300))
        await idle(first)
    second = make_publisher(fake_api_client)
    async with running(second):
        await second.publish_devices(devices(300))
        await idle(second)
        sync = second.slices
        assert sync._existing is not None
        held = [d for s in sync._existing.values() for d in s.devices]
        assert len(held) == 300
        ours = {name: body for name, (_, body, _) in sync._bodies.items()}
        assert all(d is ours[str(d["name"])] for d in held), "a listed copy is kept beside our body"


async def test_a_first_publish_lists_the_slices_once(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    """The watch starts while the first list is on its way: it waits for that list instead
    of asking for another one."""
    add_node(fake_api)
    pub = make_publisher(fake_api_client)
    real_list = pub.slices._list_slices

    async def slow_list() -> Any:
        await asyncio.sleep(0.2)  # a large node's list takes a while: the watch starts meanwhile
        return await real_list()

    pub.slices._list_slices = slow_list  # type: ignore[method-assign]
    async with running(pub):
        await pub.ctx.ensure_api_version()  # as in the driver: probed before the first publish
        await pub.publish_devices(devices(300))
        await idle(pub)
        lists = [
            r
            for r in fake_api.requests_for("resourceslices", method="GET")
            if not r.is_watch and not r.name and r.status == 200
        ]
        assert len(lists) == 1, [r.query for r in lists]
        assert any(r.is_watch for r in fake_api.requests_for("resourceslices", method="GET"))


async def test_the_slices_of_a_plan_are_written_concurrently(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    """A first publication of 300 devices has its 3 POSTs in flight at once (not one round
    trip per slice)."""
    add_node(fake_api)
    pub = make_publisher(fake_api_client)
    in_flight = most = 0
    all_sent = asyncio.Event()
    real_api = pub.ctx.resource_api

    def resource_api() -> Any:
        api = real_api()
        create = api.create_resource_slice

        async def held_create(*args: Any, **kwargs: Any) -> Any:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            if in_flight == 3:
                all_sent.set()
            with contextlib.suppress(TimeoutError):  # one at a time would wait here in vain
                await asyncio.wait_for(all_sent.wait(), 2.0)
            try:
                return await create(*args, **kwargs)
            finally:
                in_flight -= 1

        api.create_resource_slice = held_create
        return api

    pub.ctx.resource_api = resource_api  # type: ignore[method-assign]
    async with running(pub):
        await pub.publish_devices(devices(300))
        await idle(pub)
    assert most == 3
    assert sum(len(v) for v in slice_devices(fake_api).values()) == 300
    assert fake_api.count_writes("resourceslices") == 3 and pub.health.slice_writes == 3


async def test_a_conflict_among_concurrent_writes_keeps_the_others_and_relists(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    add_node(fake_api)
    pub = make_publisher(fake_api_client)
    fake_api.fail_next("POST", SLICES, status=409, message="already exists")
    async with running(pub):
        await pub.publish_devices(devices(300))
        await idle(pub)
    assert sorted(slice_devices(fake_api)) == [f"{NODE}-{DRIVER}-{i}" for i in range(3)]
    assert sum(len(v) for v in slice_devices(fake_api).values()) == 300
    posts = [r.status for r in fake_api.writes("resourceslices", method="POST")]
    assert sorted(posts) == [201, 201, 201, 409]  # the two written are adopted, not re-sent
    assert pub.health.skipped_devices == ()


async def test_list_attributes_refused_by_two_slices_at_once_leave_no_device_out(
    fake_api: FakeApiServer, fake_api_client: ApiClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Both slices of a plan are refused for the same list attribute: the driver switches to
    the scalar form once and leaves no device out for the second refusal."""
    add_node(fake_api)
    fake_api.list_attributes = False
    pub = make_publisher(fake_api_client)
    async with running(pub):
        await pub.publish_devices(_with_numa(devices(100)))  # 64 + 36: two slices with lists
        await idle(pub)
    (s,) = slices(fake_api)
    assert [d["attributes"][NUMA] for d in s["spec"]["devices"]] == [{"int": 1}] * 100
    assert pub.health.skipped_devices == ()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1, errors
