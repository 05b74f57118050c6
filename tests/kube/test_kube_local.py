"""LocalStatusPublisher: the same objects, written as YAML/JSON to a stream or a directory."""

from __future__ import annotations

import io
import json
from pathlib import Path

import attrs
import pytest
import yaml
from fakeapi import validate_resource_slice
from kube_testing import devices

from dranet_core.kube.local import LocalStatusPublisher
from dranet_core.status import EventRecord, StatusPublisher
from dranet_core.types import AttributeList, ClaimRef, Condition, DeviceStatus, NetworkData

CLAIM = ClaimRef(namespace="ns1", name="c1", uid="uid-1")
STATUS = DeviceStatus(
    driver="dra.net",
    pool="node-a",
    device="eth0000",
    conditions=(Condition(type="Ready", status="True", reason="NetworkDeviceReady"),),
    network_data=NetworkData(interface_name="net1", ips=("10.0.0.1/24",)),
)


async def test_yaml_stream_slices_validate_and_unchanged_writes_nothing() -> None:
    out = io.StringIO()
    pub = LocalStatusPublisher(out, node_name="node-a")
    assert isinstance(pub, StatusPublisher)
    await pub.publish_devices(devices(200))
    docs = list(yaml.safe_load_all(out.getvalue()))
    assert [d["metadata"]["name"] for d in docs] == ["node-a-dra.net-0", "node-a-dra.net-1"]
    for d in docs:
        assert validate_resource_slice(d) == []
        assert d["spec"]["pool"] == {"name": "node-a", "generation": 1, "resourceSliceCount": 2}
        assert "ownerReferences" not in d["metadata"]
    before = out.getvalue()
    await pub.publish_devices(devices(200))
    assert out.getvalue() == before
    changed = devices(200)
    changed[150] = attrs.evolve(changed[150], attributes={"dra.net/mtu": 9000})
    await pub.publish_devices(changed)
    new_docs = list(yaml.safe_load_all(out.getvalue()[len(before) :]))
    assert [d["metadata"]["name"] for d in new_docs] == ["node-a-dra.net-1"]


async def test_slices_with_list_attributes_hold_64_devices() -> None:
    out = io.StringIO()
    pub = LocalStatusPublisher(out, node_name="node-a")
    numa = "resource.kubernetes.io/numaNode"
    await pub.publish_devices(
        [attrs.evolve(d, attributes={**d.attributes, numa: AttributeList((0, 1))}) for d in devices(100)]
    )
    docs = list(yaml.safe_load_all(out.getvalue()))
    assert [len(d["spec"]["devices"]) for d in docs] == [64, 36]
    assert all(validate_resource_slice(d) == [] for d in docs)
    assert docs[0]["spec"]["devices"][0]["attributes"][numa] == {"ints": [0, 1]}


async def test_json_stream_has_status_and_events() -> None:
    out = io.StringIO()
    pub = LocalStatusPublisher(out, fmt="json", node_name="node-a")
    await pub.set_claim_status(CLAIM, [STATUS])
    await pub.clear_claim_status(CLAIM)
    await pub.record_event(
        EventRecord(
            kind="Pod",
            namespace="ns1",
            name="p",
            uid="pu",
            type="Warning",
            reason="NetworkDeviceAttachFailed",
            message="boom",
        )
    )
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [x["kind"] for x in lines] == ["ResourceClaim", "ResourceClaim", "Event"]
    assert lines[0]["status"]["devices"][0]["networkData"] == {
        "interfaceName": "net1",
        "ips": ["10.0.0.1/24"],
    }
    assert lines[1]["status"] == {"devices": []}
    assert lines[2]["reason"] == "NetworkDeviceAttachFailed" and lines[2]["involvedObject"]["uid"] == "pu"


async def test_directory_output(tmp_path: Path) -> None:
    pub = LocalStatusPublisher(tmp_path, node_name="node-a")
    await pub.publish_devices(devices(130))
    assert sorted(p.name for p in (tmp_path / "resourceslices").iterdir()) == [
        "node-a-dra.net-0.yaml",
        "node-a-dra.net-1.yaml",
    ]
    await pub.publish_devices(devices(3))  # slice 1 empties: its file is removed
    assert sorted(p.name for p in (tmp_path / "resourceslices").iterdir()) == ["node-a-dra.net-0.yaml"]
    doc = yaml.safe_load((tmp_path / "resourceslices" / "node-a-dra.net-0.yaml").read_text())
    assert [d["name"] for d in doc["spec"]["devices"]] == ["eth0000", "eth0001", "eth0002"]
    await pub.set_claim_status(CLAIM, [STATUS])
    status = yaml.safe_load((tmp_path / "resourceclaims" / "ns1" / "c1.status.yaml").read_text())
    assert status["metadata"] == {"name": "c1", "namespace": "ns1", "uid": "uid-1"}
    assert not [p for p in (tmp_path / "resourceclaims" / "ns1").iterdir() if p.suffix == ".tmp"]


def test_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="fmt"):
        LocalStatusPublisher(io.StringIO(), fmt="xml", node_name="n")  # type: ignore[arg-type]
