"""KubeStatusPublisher: claim device status (server-side apply) and events, against the fake."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from fakeapi import FakeApiServer
from kube_testing import DRIVER, NODE, eventually, idle, make_publisher, running
from kubernetes_asyncio.client import ApiClient

from dranet_core.status import EventRecord
from dranet_core.types import ClaimRef, Condition, DeviceStatus, NetworkData

CLAIM_PATH = "/apis/resource.k8s.io/v1/namespaces/default/resourceclaims/c1/status"
T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def put_claim(fake: FakeApiServer, name: str = "c1", devices: tuple[str, ...] = ("eth1", "eth2")) -> ClaimRef:
    results = [{"request": "nic", "driver": DRIVER, "pool": NODE, "device": d} for d in devices]
    results.append({"request": "gpu", "driver": "gpu.example.com", "pool": NODE, "device": "gpu0"})
    obj = fake.put_object(
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceClaim",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"devices": {"requests": []}},
            "status": {"allocation": {"devices": {"results": results}}},
        }
    )
    return ClaimRef(namespace="default", name=name, uid=obj["metadata"]["uid"])


def ready(device: str, *, ips: tuple[str, ...] = ("192.0.2.5/24", "2001:db8::5/64")) -> DeviceStatus:
    return DeviceStatus(
        driver=DRIVER,
        pool=NODE,
        device=device,
        conditions=(
            Condition(type="Ready", status="True", reason="NetworkDeviceReady"),
            Condition(type="NetworkReady", status="True", reason="NetworkReady"),
        ),
        network_data=NetworkData(
            interface_name=f"net-{device}", hardware_address="02:00:00:00:00:01", ips=ips
        ),
    )


def failed(device: str) -> DeviceStatus:
    return DeviceStatus(
        driver=DRIVER,
        pool=NODE,
        device=device,
        conditions=(
            Condition(
                type="Ready",
                status="False",
                reason="NetworkDeviceAttachFailed",
                message="move eth1 into pod netns: EBUSY",
            ),
        ),
    )


def status_entries(fake: FakeApiServer, name: str = "c1") -> list[dict[str, Any]]:
    obj = fake.get_object("resourceclaims", name, "default")
    assert obj is not None
    entries: list[dict[str, Any]] = obj["status"].get("devices") or []
    return entries


async def test_success_apply_body(fake_api: FakeApiServer, fake_api_client: ApiClient) -> None:
    ref = put_claim(fake_api)
    pub = make_publisher(fake_api_client, now=lambda: T0)
    async with running(pub):
        await pub.set_claim_status(ref, [ready("eth1"), ready("eth2", ips=("10.0.0.7",))])
        await idle(pub)
    (req,) = fake_api.requests_for("resourceclaims", method="PATCH")
    assert req.path == CLAIM_PATH and req.status == 200
    assert req.content_type == "application/apply-patch+yaml"
    assert req.query["fieldManager"] == DRIVER and req.query["force"] in ("True", "true")
    stamp = "2026-11-28T12:00:00+00:00"
    assert req.body == {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": "c1", "namespace": "default", "uid": ref.uid},
        "status": {
            "devices": [
                {
                    "driver": DRIVER,
                    "pool": NODE,
                    "device": "eth1",
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "NetworkDeviceReady",
                            "message": "",
                            "lastTransitionTime": stamp,
                        },
                        {
                            "type": "NetworkReady",
                            "status": "True",
                            "reason": "NetworkReady",
                            "message": "",
                            "lastTransitionTime": stamp,
                        },
                    ],
                    "networkData": {
                        "interfaceName": "net-eth1",
                        "hardwareAddress": "02:00:00:00:00:01",
                        "ips": ["192.0.2.5/24", "2001:db8::5/64"],
                    },
                },
                {
                    "driver": DRIVER,
                    "pool": NODE,
                    "device": "eth2",
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "NetworkDeviceReady",
                            "message": "",
                            "lastTransitionTime": stamp,
                        },
                        {
                            "type": "NetworkReady",
                            "status": "True",
                            "reason": "NetworkReady",
                            "message": "",
                            "lastTransitionTime": stamp,
                        },
                    ],
                    "networkData": {
                        "interfaceName": "net-eth2",
                        "hardwareAddress": "02:00:00:00:00:01",
                        "ips": ["10.0.0.7/32"],
                    },
                },
            ]
        },
    }
    assert [e["device"] for e in status_entries(fake_api)] == ["eth1", "eth2"]
    assert pub.health.claim_status_writes == 1


async def test_failure_is_published_then_cleared(fake_api: FakeApiServer, fake_api_client: ApiClient) -> None:
    ref = put_claim(fake_api)
    # another driver's entry must survive our clear
    other = fake_api.get_object("resourceclaims", "c1", "default")
    assert other is not None
    pub = make_publisher(fake_api_client)
    async with running(pub):
        await pub.set_claim_status(ref, [failed("eth1")])
        await idle(pub)
        (entry,) = status_entries(fake_api)
        cond = entry["conditions"][0]
        assert (cond["type"], cond["status"], cond["reason"]) == (
            "Ready",
            "False",
            "NetworkDeviceAttachFailed",
        )
        assert cond["message"] == "move eth1 into pod netns: EBUSY"
        assert "networkData" not in entry
        # a second driver applies its own entry with its own field manager
        api_body = {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceClaim",
            "metadata": {"name": "c1", "namespace": "default"},
            "status": {"devices": [{"driver": "gpu.example.com", "pool": NODE, "device": "gpu0"}]},
        }
        from kubernetes_asyncio.client import ResourceV1Api

        await ResourceV1Api(fake_api_client).patch_namespaced_resource_claim_status(
            "c1",
            "default",
            api_body,
            field_manager="gpu.example.com",
            force=True,
            _content_type="application/apply-patch+yaml",
        )
        await pub.clear_claim_status(ref)
        await idle(pub)
    clear = fake_api.requests_for("resourceclaims", method="PATCH")[-1]
    assert clear.body["status"] == {"devices": []} and clear.query["fieldManager"] == DRIVER
    assert [(e["driver"], e["device"]) for e in status_entries(fake_api)] == [("gpu.example.com", "gpu0")]


async def test_latest_call_wins_and_retries_with_backoff(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    ref = put_claim(fake_api)
    pub = make_publisher(fake_api_client)
    await pub.set_claim_status(ref, [failed("eth1")])
    await pub.set_claim_status(ref, [ready("eth1")])  # supersedes before anything was sent
    fake_api.fail_next("PATCH", CLAIM_PATH, status=503, count=2)
    async with running(pub):
        await idle(pub)
    patches = fake_api.requests_for("resourceclaims", method="PATCH")
    assert [p.status for p in patches] == [503, 503, 200]
    assert all(p.body["status"]["devices"][0]["conditions"][0]["status"] == "True" for p in patches)
    assert status_entries(fake_api)[0]["conditions"][0]["status"] == "True"


async def test_a_conflict_on_the_status_is_retried(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    ref = put_claim(fake_api)
    pub = make_publisher(fake_api_client)
    fake_api.fail_next("PATCH", CLAIM_PATH, status=409, count=3)
    async with running(pub):
        await pub.set_claim_status(ref, [ready("eth1")])
        await idle(pub)
    patches = fake_api.requests_for("resourceclaims", method="PATCH")
    assert [p.status for p in patches] == [409, 409, 409, 200]
    assert status_entries(fake_api)[0]["conditions"][0]["status"] == "True"


async def test_gone_or_replaced_claim_is_dropped(fake_api: FakeApiServer, fake_api_client: ApiClient) -> None:
    ref = put_claim(fake_api)
    pub = make_publisher(fake_api_client)
    async with running(pub):
        await pub.set_claim_status(ClaimRef(namespace="default", name="missing", uid="u-x"), [ready("eth1")])
        # same name, different uid: the claim was deleted and re-created -> 422 (uid is immutable)
        await pub.set_claim_status(ClaimRef(namespace="default", name="c1", uid="old-uid"), [ready("eth1")])
        await idle(pub)
        assert pub.health.pending_claim_statuses == 0
        codes = sorted(r.status for r in fake_api.requests_for("resourceclaims", method="PATCH"))
        assert codes == [404, 422]
        assert status_entries(fake_api) == []
        await pub.set_claim_status(ref, [ready("eth1")])
        await idle(pub)
    assert len(status_entries(fake_api)) == 1


async def test_status_reasserted_after_restart(fake_api: FakeApiServer, fake_api_client: ApiClient) -> None:
    ref = put_claim(fake_api)
    first = make_publisher(fake_api_client)
    async with running(first):
        await first.set_claim_status(ref, [ready("eth1")])
        await idle(first)
    # someone (or a lost write) wiped the status while the driver was down
    claim = fake_api.get_object("resourceclaims", "c1", "default")
    assert claim is not None
    claim["status"].pop("devices")
    fake_api.put_object(claim)
    second = make_publisher(fake_api_client)
    await second.set_claim_status(ref, [ready("eth1")])  # what the driver re-asserts at start-up
    async with running(second):
        await idle(second)
    assert [e["device"] for e in status_entries(fake_api)] == ["eth1"]


async def test_status_limits_enforced_before_sending(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    ref = put_claim(fake_api)
    pub = make_publisher(fake_api_client)
    many = (*tuple(f"10.0.{i}.1/24" for i in range(20)), "not-an-ip")
    async with running(pub):
        await pub.set_claim_status(ref, [ready("eth1", ips=many)])
        await idle(pub)
    (entry,) = status_entries(fake_api)
    assert entry["networkData"]["ips"] == [f"10.0.{i}.1/24" for i in range(16)]


async def test_status_while_api_down_is_applied_later(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    ref = put_claim(fake_api)
    await fake_api.go_down()
    pub = make_publisher(fake_api_client)
    async with running(pub):
        await pub.set_claim_status(ref, [ready("eth1")])
        await eventually(lambda: pub.health.last_error is not None)
        assert pub.health.pending_claim_statuses == 1
        await fake_api.come_back()
        await idle(pub)
    assert len(status_entries(fake_api)) == 1


def event(
    reason: str = "NetworkDeviceAttachFailed", message: str = "eth1: EBUSY", uid: str = "pod-uid"
) -> EventRecord:
    return EventRecord(
        kind="Pod", namespace="default", name="pod-a", uid=uid, type="Warning", reason=reason, message=message
    )


async def test_event_body(fake_api: FakeApiServer, fake_api_client: ApiClient) -> None:
    pub = make_publisher(fake_api_client, now=lambda: T0)
    claim_ev = EventRecord(
        kind="ResourceClaim",
        namespace="default",
        name="c1",
        uid="claim-uid",
        type="Warning",
        reason="ClaimPrepareFailed",
        message="x" * 2000,
    )
    async with running(pub):
        await pub.record_event(event())
        await pub.record_event(claim_ev)
        await idle(pub)
    posts = fake_api.writes("events", method="POST")
    assert [p.path for p in posts] == ["/api/v1/namespaces/default/events"] * 2
    body = posts[0].body
    assert body["metadata"]["name"].startswith("pod-a.") and body["metadata"]["namespace"] == "default"
    assert body["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "pod-a",
        "namespace": "default",
        "uid": "pod-uid",
    }
    assert (body["type"], body["reason"], body["message"]) == (
        "Warning",
        "NetworkDeviceAttachFailed",
        "eth1: EBUSY",
    )
    assert body["source"] == {"component": DRIVER, "host": NODE}
    assert body["reportingComponent"] == DRIVER and body["reportingInstance"] == NODE
    assert (
        body["firstTimestamp"] == body["lastTimestamp"] == "2026-11-28T12:00:00+00:00" and body["count"] == 1
    )
    claim_body = posts[1].body
    assert claim_body["involvedObject"]["apiVersion"] == "resource.k8s.io/v1"
    assert (
        claim_body["involvedObject"]["kind"] == "ResourceClaim"
        and claim_body["reason"] == "ClaimPrepareFailed"
    )
    assert len(claim_body["message"]) == 1024 and claim_body["message"].endswith("...")


async def test_events_are_rate_limited(fake_api: FakeApiServer, fake_api_client: ApiClient) -> None:
    pub = make_publisher(fake_api_client)
    async with running(pub):
        for _ in range(10):
            await pub.record_event(event())  # identical: de-duplicated
        for i in range(10):
            await pub.record_event(event(message=f"attempt {i}", uid="pod-2"))  # burst of 5 per object
        await idle(pub)
    posts = fake_api.writes("events", method="POST")
    assert len(posts) == 1 + 5
    assert [p.body["message"] for p in posts[1:]] == [f"attempt {i}" for i in range(5)]
    assert pub.health.dropped_events == 9 + 5


async def test_event_retried_on_server_error(fake_api: FakeApiServer, fake_api_client: ApiClient) -> None:
    pub = make_publisher(fake_api_client)
    fake_api.fail_next("POST", "/api/v1/namespaces/default/events", status=500, count=2)
    async with running(pub):
        await pub.record_event(event())
        await idle(pub)
    assert [p.status for p in fake_api.writes("events")] == [500, 500, 201]


async def test_run_is_cancellable_with_work_pending(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    await fake_api.go_down()
    pub = make_publisher(fake_api_client)
    task = asyncio.create_task(pub.run())
    await pub.record_event(event())
    await pub.set_claim_status(ClaimRef(namespace="default", name="c1", uid="u"), [ready("eth1")])
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not pub.is_idle and "KubeStatusPublisher(" in repr(pub)
