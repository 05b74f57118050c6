"""deploy/rbac.yaml grants what the publisher uses, and nothing it doesn't."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import yaml
from fakeapi import FakeApiServer, RecordedRequest
from kube_testing import DRIVER, NODE, add_node, devices, eventually, idle, make_publisher, running, slices
from kubernetes_asyncio.client import ApiClient

from dranet_core.status import EventRecord
from dranet_core.types import ClaimRef, Condition, DeviceStatus

RBAC = Path(__file__).resolve().parents[2] / "deploy" / "rbac.yaml"


def verb(r: RecordedRequest) -> str:
    if r.method == "GET":
        return "watch" if r.is_watch else ("get" if r.name else "list")
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[r.method]


def granted() -> set[tuple[str, str, str]]:
    docs = list(yaml.safe_load_all(RBAC.read_text()))
    (role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    out = set()
    for rule in role["rules"]:
        for g in rule["apiGroups"]:
            for res in rule["resources"]:
                for v in rule["verbs"]:
                    out.add((g, res, v))
    return out


async def test_publisher_requests_are_all_granted(
    fake_api: FakeApiServer, fake_api_client: ApiClient
) -> None:
    add_node(fake_api)
    obj = fake_api.put_object(
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceClaim",
            "metadata": {"name": "c1", "namespace": "default"},
            "spec": {},
            "status": {
                "allocation": {
                    "devices": {
                        "results": [{"request": "r", "driver": DRIVER, "pool": NODE, "device": "eth0000"}]
                    }
                }
            },
        }
    )
    ref = ClaimRef(namespace="default", name="c1", uid=obj["metadata"]["uid"])
    pub = make_publisher(fake_api_client)
    async with running(pub):
        await pub.publish_devices(devices(200))
        await idle(pub)
        stale = dict(slices(fake_api)[0], metadata={"name": f"{NODE}-{DRIVER}-x7k2q"})
        fake_api.put_object(stale)  # a stranger to delete
        await eventually(lambda: fake_api.get_object("resourceslices", f"{NODE}-{DRIVER}-x7k2q") is None)
        changed = devices(200)
        changed[0] = attrs.evolve(changed[0], attributes={"dra.net/mtu": 1})
        await pub.publish_devices(changed)
        await pub.set_claim_status(
            ref,
            [
                DeviceStatus(
                    driver=DRIVER,
                    pool=NODE,
                    device="eth0000",
                    conditions=(Condition(type="Ready", status="True", reason="NetworkDeviceReady"),),
                )
            ],
        )
        await pub.record_event(
            EventRecord(
                kind="Pod",
                namespace="default",
                name="p",
                uid="u",
                type="Warning",
                reason="NetworkDeviceAttachFailed",
                message="m",
            )
        )
        await idle(pub)
    used: set[tuple[str, str, str]] = set()
    for r in fake_api.requests:
        if r.resource is None:
            continue  # discovery: open to all authenticated clients
        res = f"{r.resource}/{r.subresource}" if r.subresource else r.resource
        used.add((r.group or "", res, verb(r)))
    rules = granted()
    assert used <= rules, used - rules
    # what is granted but not exercised here: the claim source's GET (kube/claims.py) and the
    # synthetic authorization verb that accompanies the status patch on k8s >= 1.36
    assert rules - used == {
        ("resource.k8s.io", "resourceclaims", "get"),
        ("resource.k8s.io", "resourceclaims/driver", "associated-node:patch"),
    }


def test_associated_node_rule_is_scoped_to_the_driver() -> None:
    docs: list[dict[str, Any]] = list(yaml.safe_load_all(RBAC.read_text()))
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    rule = next(r for r in role["rules"] if r["resources"] == ["resourceclaims/driver"])
    assert rule["resourceNames"] == [DRIVER]
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    sa = next(d for d in docs if d["kind"] == "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": sa["metadata"]["namespace"]}
    ]
