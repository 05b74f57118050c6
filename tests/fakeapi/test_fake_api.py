"""The fake API server must be honest: these are the semantics other tests rely on."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from fakeapi import FakeApiServer, validate_claim_status, validate_resource_slice

SSA = "application/apply-patch+yaml"


def slice_body(
    name: str | None = "s1", *, devices: list[dict[str, Any]] | None = None, node: str = "node-a"
) -> dict[str, Any]:
    meta = {"name": name} if name else {"generateName": f"{node}-dra.net-"}
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": meta,
        "spec": {
            "driver": "dra.net",
            "nodeName": node,
            "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
            "devices": devices if devices is not None else [{"name": "eth1"}],
        },
    }


def claim(
    name: str = "c1", ns: str = "default", devices: tuple[str, ...] = ("eth1", "eth2")
) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"devices": {"requests": []}},
        "status": {
            "allocation": {
                "devices": {
                    "results": [
                        {"request": "r", "driver": "dra.net", "pool": "node-a", "device": d} for d in devices
                    ]
                    + [{"request": "g", "driver": "gpu.example.com", "pool": "node-a", "device": "gpu0"}]
                }
            }
        },
    }


def dev_status(device: str, driver: str = "dra.net", ready: str = "True") -> dict[str, Any]:
    return {
        "driver": driver,
        "pool": "node-a",
        "device": device,
        "conditions": [
            {
                "type": "Ready",
                "status": ready,
                "reason": "NetworkDeviceReady",
                "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
    }


def apply_body(*entries: dict[str, Any], name: str = "c1") -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": "default"},
        "status": {"devices": list(entries)},
    }


async def test_create_get_list_with_field_selector(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    api = client.ResourceV1Api(fake_api_client)
    created = await api.create_resource_slice(slice_body("s1"))
    await api.create_resource_slice(slice_body("s2", node="node-b"))
    assert created.metadata.uid and created.metadata.resource_version == "1"
    assert (await api.read_resource_slice("s1")).spec.node_name == "node-a"
    mine = await api.list_resource_slice(field_selector="spec.nodeName=node-a,spec.driver=dra.net")
    assert [s.metadata.name for s in mine.items] == ["s1"]
    assert int(mine.metadata.resource_version) == 2
    with pytest.raises(ApiException) as exc:
        await api.create_resource_slice(slice_body("s1"))
    assert exc.value.status == 409 and "AlreadyExists" in exc.value.body


async def test_generate_name(fake_api: FakeApiServer, fake_api_client: ApiClient) -> None:
    api = client.ResourceV1Api(fake_api_client)
    s = await api.create_resource_slice(slice_body(None))
    assert (
        s.metadata.name.startswith("node-a-dra.net-") and len(s.metadata.name) == len("node-a-dra.net-") + 5
    )


async def test_replace_with_stale_resource_version_conflicts(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    api = client.ResourceV1Api(fake_api_client)
    s = await api.create_resource_slice(slice_body("s1"))
    body = fake_api_client.sanitize_for_serialization(s)
    body["spec"]["devices"] = [{"name": "eth9"}]
    updated = await api.replace_resource_slice("s1", body)
    assert updated.metadata.generation == 2 and updated.spec.devices[0].name == "eth9"
    body["spec"]["devices"] = [{"name": "eth7"}]  # still carries the old resourceVersion
    with pytest.raises(ApiException) as exc:
        await api.replace_resource_slice("s1", body)
    assert exc.value.status == 409 and '"reason":"Conflict"' in exc.value.body.replace(" ", "")
    assert fake_api.get_object("resourceslices", "s1")["spec"]["devices"] == [{"name": "eth9"}]


async def test_immutable_fields_and_schema_rejected_with_422(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    api = client.ResourceV1Api(fake_api_client)
    too_many = slice_body("big", devices=[{"name": f"d{i}"} for i in range(129)])
    with pytest.raises(ApiException) as exc:
        await api.create_resource_slice(too_many)
    assert exc.value.status == 422 and "spec.devices" in exc.value.body
    await api.create_resource_slice(slice_body("s1"))
    moved = slice_body("s1", node="node-b")
    with pytest.raises(ApiException) as exc:
        await api.replace_resource_slice("s1", moved)
    assert exc.value.status == 422 and "immutable" in exc.value.body
    assert fake_api.count_writes("resourceslices") == 3


def test_slice_validator_rules() -> None:
    attrs = {f"dra.net/a{i}": {"int": i} for i in range(33)}
    bad = slice_body(
        devices=[
            {"name": "Eth_1"},
            {"name": "ok", "attributes": {"dra.net/x": {"string": "x" * 65}, "bad name!": {"bool": True}}},
            {"name": "many", "attributes": attrs},
            {"name": "two", "attributes": {"dra.net/y": {"int": 1, "string": "a"}}},
            {"name": "ver", "attributes": {"dra.net/v": {"version": "1.2"}}},
        ]
    )
    bad["spec"]["allNodes"] = True
    fields = [c.field for c in validate_resource_slice(bad)]
    assert "spec.devices[0].name" in fields
    assert "spec.devices[1].attributes[dra.net/x].string" in fields
    assert "spec.devices[1].attributes[bad name!]" in fields
    assert "spec.devices[2]" in fields
    assert "spec.devices[3].attributes[dra.net/y]" in fields
    assert "spec.devices[4].attributes[dra.net/v].version" in fields
    assert "spec" in fields  # nodeName and allNodes both set
    assert validate_resource_slice(slice_body()) == []


def test_claim_status_validator_rules() -> None:
    c = claim()
    entry = dev_status("eth1")
    entry["networkData"] = {
        "interfaceName": "net1",
        "ips": [f"10.0.0.{i}/24" for i in range(17)] + ["10.1.1.1"],
    }
    entry["conditions"][0].pop("lastTransitionTime")
    c["status"]["devices"] = [entry, dev_status("eth3")]
    fields = [x.field for x in validate_claim_status(c)]
    assert "status.devices[0].networkData.ips" in fields
    assert "status.devices[0].networkData.ips[17]" in fields
    assert "status.devices[0].conditions[0].lastTransitionTime" in fields
    assert "status.devices[1]" in fields  # eth3 is not allocated
    c["status"]["devices"] = [dev_status("eth1")]
    assert validate_claim_status(c) == []


async def test_ssa_status_ownership_per_manager(fake_api: FakeApiServer, fake_api_client: ApiClient) -> None:
    fake_api.put_object(claim())
    api = client.ResourceV1Api(fake_api_client)

    async def apply(manager: str, body: dict[str, Any], force: bool = True) -> Any:
        return await api.patch_namespaced_resource_claim_status(
            "c1", "default", body, field_manager=manager, force=force, _content_type=SSA
        )

    await apply("dra.net", apply_body(dev_status("eth1"), dev_status("eth2")))
    await apply("gpu.example.com", apply_body(dev_status("gpu0", driver="gpu.example.com")))
    # dra.net re-applies with only eth2: its eth1 entry goes, the other manager's stays
    res = await apply("dra.net", apply_body(dev_status("eth2", ready="False")))
    got = {(d.driver, d.device): d.conditions[0].status for d in res.status.devices}
    assert got == {("dra.net", "eth2"): "False", ("gpu.example.com", "gpu0"): "True"}
    managers = {m.manager: m.subresource for m in res.metadata.managed_fields}
    assert managers == {"dra.net": "status", "gpu.example.com": "status"}
    # an empty apply clears only dra.net's entries
    res = await apply("dra.net", apply_body())
    assert [(d.driver, d.device) for d in res.status.devices] == [("gpu.example.com", "gpu0")]
    # allocation (not owned by anyone) is untouched
    assert len(res.status.allocation.devices.results) == 3


async def test_ssa_conflict_without_force(fake_api: FakeApiServer, fake_api_client: ApiClient) -> None:
    fake_api.put_object(claim())
    api = client.ResourceV1Api(fake_api_client)
    await api.patch_namespaced_resource_claim_status(
        "c1", "default", apply_body(dev_status("eth1")), field_manager="a", force=True, _content_type=SSA
    )
    with pytest.raises(ApiException) as exc:
        await api.patch_namespaced_resource_claim_status(
            "c1",
            "default",
            apply_body(dev_status("eth1", ready="False")),
            field_manager="b",
            _content_type=SSA,
        )
    assert exc.value.status == 409 and "conflict" in exc.value.body.lower()
    res = await api.patch_namespaced_resource_claim_status(
        "c1",
        "default",
        apply_body(dev_status("eth1", ready="False")),
        field_manager="b",
        force=True,
        _content_type=SSA,
    )
    assert res.status.devices[0].conditions[0].status == "False"


async def test_ssa_status_invalid_is_422_and_unchanged(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    fake_api.put_object(claim())
    api = client.ResourceV1Api(fake_api_client)
    bad = dev_status("eth1")
    bad["networkData"] = {"ips": ["10.0.0.1"]}
    with pytest.raises(ApiException) as exc:
        await api.patch_namespaced_resource_claim_status(
            "c1", "default", apply_body(bad), field_manager="dra.net", force=True, _content_type=SSA
        )
    assert exc.value.status == 422 and "CIDR" in exc.value.body
    assert "devices" not in fake_api.get_object("resourceclaims", "c1", "default")["status"]
    req = fake_api.requests_for("resourceclaims", method="PATCH")[-1]
    assert req.content_type == SSA and req.subresource == "status" and req.query["fieldManager"] == "dra.net"


async def test_delete_preconditions_collection_and_gc(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    api = client.ResourceV1Api(fake_api_client)
    node = fake_api.put_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}})
    body = slice_body("s1")
    body["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "name": "node-a",
            "uid": node["metadata"]["uid"],
            "controller": True,
        }
    ]
    s = await api.create_resource_slice(body)
    with pytest.raises(ApiException) as exc:
        await api.delete_resource_slice(
            "s1", body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="other"))
        )
    assert exc.value.status == 409
    await api.create_resource_slice(slice_body("s2"))
    await api.create_resource_slice(slice_body("s3", node="node-b"))
    await api.delete_collection_resource_slice(field_selector="spec.nodeName=node-b")
    assert sorted(n for (_, _, n) in fake_api.objects) == ["node-a", "s1", "s2"]
    fake_api.delete_object("nodes", "node-a")
    assert fake_api.get_object("resourceslices", "s1") is None  # owned by the node
    assert fake_api.get_object("resourceslices", "s2") is not None
    assert s.metadata.uid


async def test_watch_streams_from_resource_version(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    api = client.ResourceV1Api(fake_api_client)
    await api.create_resource_slice(slice_body("s1"))
    listed = await api.list_resource_slice()
    seen: list[tuple[str, str]] = []

    async def consume() -> None:
        w = watch.Watch()
        async with w.stream(
            api.list_resource_slice,
            resource_version=listed.metadata.resource_version,
            field_selector="spec.nodeName=node-a",
            timeout_seconds=5,
        ) as stream:
            async for ev in stream:
                seen.append((ev["type"], ev["object"].metadata.name))
                if len(seen) == 2:
                    w.stop()
                    break

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    await api.create_resource_slice(slice_body("s-other", node="node-b"))
    await api.create_resource_slice(slice_body("s2"))
    fake_api.delete_object("resourceslices", "s1")
    await asyncio.wait_for(task, 5)
    assert seen == [("ADDED", "s2"), ("DELETED", "s1")]


async def test_watch_expired_resource_version_is_410(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    api = client.ResourceV1Api(fake_api_client)
    await api.create_resource_slice(slice_body("s1"))
    await api.create_resource_slice(slice_body("s2"))
    fake_api.compact()
    w = watch.Watch()
    with pytest.raises(ApiException) as exc:
        async with w.stream(api.list_resource_slice, resource_version="1", timeout_seconds=2) as stream:
            async for _ in stream:
                pass
    assert exc.value.status == 410


async def test_faults_and_going_down(fake_api: FakeApiServer, fake_api_client: ApiClient) -> None:
    api = client.ResourceV1Api(fake_api_client)
    fake_api.fail_next("POST", "/apis/resource.k8s.io/v1/resourceslices", status=503, count=2)
    for _ in range(2):
        with pytest.raises(ApiException) as exc:
            await api.create_resource_slice(slice_body("s1"))
        assert exc.value.status == 503
    await api.create_resource_slice(slice_body("s1"))
    port = fake_api.port
    await fake_api.go_down()
    with pytest.raises(aiohttp.ClientError):
        await api.read_resource_slice("s1")
    await fake_api.come_back()
    assert fake_api.port == port
    assert (await api.read_resource_slice("s1")).metadata.name == "s1"
    # aiohttp retries an idempotent request once when a reused connection drops: close twice
    fake_api.fail_next("GET", "/apis", close=True, count=2)
    with pytest.raises(aiohttp.ClientError):
        await api.read_resource_slice("s1")


async def test_version_toggles_and_discovery(fake_api: FakeApiServer, fake_api_client: ApiClient) -> None:
    fake_api.serve_versions("resource.k8s.io", "v1beta1")
    with pytest.raises(ApiException) as exc:
        await client.ResourceV1Api(fake_api_client).list_resource_slice()
    assert exc.value.status == 404
    group = await client.ApisApi(fake_api_client).get_api_versions()
    res = next(g for g in group.groups if g.name == "resource.k8s.io")
    assert [v.version for v in res.versions] == ["v1beta1"]
    lst = await client.ResourceV1beta1Api(fake_api_client).list_resource_slice()
    assert lst.items == []


async def test_merge_patch_and_hang_released_by_go_down(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    fake_api.put_object(claim())
    api = client.ResourceV1Api(fake_api_client)
    res = await api.patch_namespaced_resource_claim(
        "c1", "default", {"metadata": {"labels": {"a": "b"}}}, _content_type="application/merge-patch+json"
    )
    assert res.metadata.labels == {"a": "b"}
    fake_api.fail_next("GET", "/apis/resource.k8s.io", hang=30)
    task = asyncio.create_task(api.read_namespaced_resource_claim("c1", "default"))
    await asyncio.sleep(0.05)
    assert not task.done()
    await fake_api.go_down()
    with pytest.raises(aiohttp.ClientError):
        await asyncio.wait_for(task, 5)


async def test_uid_in_body_guards_against_a_recreated_object(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    fake_api.put_object(claim())
    api = client.ResourceV1Api(fake_api_client)
    body = apply_body(dev_status("eth1"))
    body["metadata"]["uid"] = "uid-of-an-older-claim"
    with pytest.raises(ApiException) as exc:
        await api.patch_namespaced_resource_claim_status(
            "c1", "default", body, field_manager="dra.net", force=True, _content_type=SSA
        )
    assert exc.value.status == 422 and "metadata.uid" in exc.value.body
    s = await client.ResourceV1Api(fake_api_client).create_resource_slice(slice_body("s1"))
    replaced = fake_api_client.sanitize_for_serialization(s)
    replaced["metadata"]["uid"] = "other"
    with pytest.raises(ApiException) as exc:
        await api.replace_resource_slice("s1", replaced)
    assert exc.value.status == 409 and "Precondition failed" in exc.value.body


async def test_objects_handed_out_and_logged_are_copies(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    """Nothing a test or a client holds shares structure with the store or the watch log."""
    api = client.ResourceV1Api(fake_api_client)
    await api.create_resource_slice(slice_body("s0", node="node-b"))  # a watch from "0" lists instead
    body = slice_body("s1", devices=[{"name": "eth1", "attributes": {"dra.net/mtu": {"int": 1500}}}])
    created = await api.create_resource_slice(body)
    body["spec"]["devices"][0]["attributes"]["dra.net/mtu"]["int"] = 1  # the sender's dict
    (listed,) = [s for s in fake_api.list_objects("resourceslices") if s["metadata"]["name"] == "s1"]
    listed["spec"]["devices"].clear()
    got = fake_api.get_object("resourceslices", "s1")
    assert got is not None
    got["spec"]["devices"][0]["attributes"]["dra.net/mtu"]["int"] = 2
    stored = fake_api.get_object("resourceslices", "s1")
    assert stored is not None
    assert stored["spec"]["devices"] == [{"name": "eth1", "attributes": {"dra.net/mtu": {"int": 1500}}}]
    served = (await api.read_resource_slice("s1")).to_dict()
    assert served["spec"]["devices"][0]["attributes"]["dra.net/mtu"]["int"] == 1500
    replaced = slice_body("s1", devices=[{"name": "eth2"}])
    replaced["metadata"]["resourceVersion"] = created.metadata.resource_version
    await api.replace_resource_slice("s1", replaced)
    events: list[tuple[str, list[str]]] = []
    w = watch.Watch(return_type="object")
    before = str(int(created.metadata.resource_version) - 1)
    async with w.stream(
        api.list_resource_slice,
        resource_version=before,
        field_selector="spec.nodeName=node-a",
        timeout_seconds=1,
    ) as stream:
        async for ev in stream:
            events.append((ev["type"], [d["name"] for d in ev["raw_object"]["spec"]["devices"]]))
            if len(events) == 2:
                break
    assert events == [("ADDED", ["eth1"]), ("MODIFIED", ["eth2"])]
