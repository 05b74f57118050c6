"""MetadataWriter on real files in a temporary directory: prepare, attach, detach, unprepare,
start-up recovery, the switch, and failures."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import pytest
from schemas import validate_cdi_spec, validate_metadata

from dranet_core.checkpoint import DeviceState, PreparedClaim
from dranet_core.errors import ClaimError
from dranet_core.metadata import reader
from dranet_core.metadata.document import MetadataLayout
from dranet_core.metadata.writer import MetadataWriter
from dranet_core.plans import ClaimPlan, PreparedDevice
from dranet_core.types import Claim, ClaimRef, Device, NetworkData

UID = "0b7d6f1e-8f8e-4a43-9d44-0c2c9d3e1a10"
REF = ClaimRef(namespace="default", name="c1", uid=UID)
DEV_A = PreparedDevice(pool="node-a", device="eth1", request_names=("nic",))
DEV_B = PreparedDevice(pool="node-a", device="eth2", request_names=("nic",))
DEV_R = PreparedDevice(pool="node-a", device="pci-0000-3b-00-1", request_names=("rdma/ib",))
PLAN = ClaimPlan(claim=REF, pods=("pod-1",), devices=(DEV_A, DEV_B, DEV_R))
ND = NetworkData(interface_name="net1", ips=("192.168.77.2/24",), hardware_address="02:00:00:00:00:01")
INVENTORY = {
    "eth1": Device(name="eth1", attributes={"dra.net/ifName": "eth1", "dra.net/mtu": 1500}),
    "eth2": Device(name="eth2", attributes={"dra.net/ifName": "eth2"}),
    "pci-0000-3b-00-1": Device(
        name="pci-0000-3b-00-1",
        attributes={"dra.net/pciAddress": "0000:3b:00.1", "resource.kubernetes.io/pciBusID": "0000:3b:00.1"},
    ),
}


class Fetcher:
    def __init__(self, claim: Claim) -> None:
        self.claim = claim
        self.calls = 0

    async def __call__(self, ref: ClaimRef) -> Claim:
        self.calls += 1
        return self.claim


def _layout(tmp_path: Path, versions: tuple[str, ...] = ("v1beta1", "v1alpha1")) -> MetadataLayout:
    return MetadataLayout.for_plugin_dir(
        "dra.net", tmp_path / "plugins" / "dra.net", tmp_path / "cdi", versions
    )


def _writer(
    tmp_path: Path, *, enabled: bool = True, claim: Claim | None = None
) -> tuple[MetadataWriter, Fetcher]:
    fetch = Fetcher(claim or Claim(ref=REF))
    w = MetadataWriter(_layout(tmp_path), enabled=enabled, inventory=lambda: INVENTORY, fetch=fetch)
    return w, fetch


def _stream(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _chattr(flag: str, path: Path) -> None:
    subprocess.run(["chattr", flag, str(path)], check=True)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_prepare_writes_file_and_spec_and_returns_ids_on_first_device(tmp_path: Path) -> None:
    w, _ = _writer(tmp_path)
    ids = await w.prepared(PLAN, Claim(ref=REF))
    lay = w.layout
    assert ids == {
        "eth1": (f"dra.net/metadata={UID}_nic",),
        "pci-0000-3b-00-1": (f"dra.net/metadata={UID}_rdma",),
    }
    nic = _stream(lay.metadata_file(REF, "nic"))
    assert [o["apiVersion"].rsplit("/", 1)[1] for o in nic] == ["v1beta1", "v1alpha1"]
    for o in nic:
        validate_metadata(o)
    assert nic[0]["metadata"] == {"name": "c1", "namespace": "default", "uid": UID, "generation": 1}
    assert "podClaimName" not in nic[0]
    (req,) = nic[0]["requests"]
    assert req["name"] == "nic"
    assert [(d["driver"], d["pool"], d["name"]) for d in req["devices"]] == [
        ("dra.net", "node-a", "eth1"),
        ("dra.net", "node-a", "eth2"),
    ]
    assert req["devices"][0]["attributes"] == {
        "dra.net/ifName": {"string": "eth1"},
        "dra.net/mtu": {"int": 1500},
    }
    assert all("networkData" not in d for d in req["devices"])
    rdma = _stream(lay.metadata_file(REF, "rdma"))[0]
    assert rdma["requests"][0]["name"] == "rdma/ib"  # full name inside, base name in the path
    assert rdma["requests"][0]["devices"][0]["attributes"]["resource.kubernetes.io/pciBusID"] == {
        "string": "0000:3b:00.1"
    }
    for request in ("nic", "rdma"):
        spec = json.loads(lay.cdi_spec_file(UID, request).read_text())
        validate_cdi_spec(spec)
        mount = spec["devices"][0]["containerEdits"]["mounts"][0]
        assert mount["hostPath"] == str(lay.metadata_file(REF, request))
        assert mount["containerPath"] == reader.container_path("c1", request)
    # modes: files 0644, directories 0755, whatever the umask
    f = lay.metadata_file(REF, "nic")
    assert f.stat().st_mode & 0o777 == 0o644
    assert f.parent.stat().st_mode & 0o777 == 0o755
    assert lay.cdi_spec_file(UID, "nic").stat().st_mode & 0o777 == 0o644
    assert not [f for f in _files(tmp_path) if f.endswith(".tmp")]


async def test_template_claim_mounts_at_the_pod_claim_name(tmp_path: Path) -> None:
    w, _ = _writer(tmp_path)
    await w.prepared(PLAN, Claim(ref=REF, pod_claim_name="my-net"))
    doc = _stream(w.layout.metadata_file(REF, "nic"))[0]
    assert doc["podClaimName"] == "my-net"
    spec = json.loads(w.layout.cdi_spec_file(UID, "nic").read_text())
    assert spec["devices"][0]["containerEdits"]["mounts"][0]["containerPath"] == (
        "/var/run/kubernetes.io/dra-device-attributes/resourceclaimtemplates/my-net/nic/dra.net-metadata.json"
    )


async def test_switch_off_writes_nothing_and_returns_no_ids(tmp_path: Path) -> None:
    w, _ = _writer(tmp_path, enabled=False)
    assert await w.prepared(PLAN, Claim(ref=REF)) == {}
    await w.attached(PLAN, DEV_A, ND)
    await w.recover({UID: PreparedClaim(plan=PLAN)})
    assert not tmp_path.joinpath("plugins").exists()
    assert not tmp_path.joinpath("cdi").exists()


async def test_attach_rewrites_with_next_generation_and_network_data(tmp_path: Path) -> None:
    w, _ = _writer(tmp_path)
    await w.prepared(PLAN, Claim(ref=REF))
    path = w.layout.metadata_file(REF, "nic")
    await w.attached(PLAN, DEV_A, ND)
    objs = _stream(path)
    for o in objs:
        validate_metadata(o)
        assert o["metadata"]["generation"] == 2
        assert o["requests"][0]["devices"][0]["networkData"] == {
            "interfaceName": "net1",
            "ips": ["192.168.77.2/24"],
            "hardwareAddress": "02:00:00:00:00:01",
        }
        assert "networkData" not in o["requests"][0]["devices"][1]
    # the same data again (a retried RunPodSandbox): no rewrite, no new generation
    await w.attached(PLAN, DEV_A, ND)
    assert _stream(path)[0]["metadata"]["generation"] == 2
    # the other request's file is untouched
    assert _stream(w.layout.metadata_file(REF, "rdma"))[0]["metadata"]["generation"] == 1
    await w.released(PLAN, DEV_A)
    after = _stream(path)[0]
    assert after["metadata"]["generation"] == 3
    assert all("networkData" not in d for d in after["requests"][0]["devices"])


async def test_repeated_prepare_keeps_the_file_and_its_generation(tmp_path: Path) -> None:
    w, fetch = _writer(tmp_path)
    first = await w.prepared(PLAN, Claim(ref=REF))
    await w.attached(PLAN, DEV_A, ND)
    w.layout.cdi_spec_file(UID, "nic").unlink()  # lost between the two writes
    again = await w.prepared(PLAN, None)
    assert again == first
    assert fetch.calls == 0
    assert _stream(w.layout.metadata_file(REF, "nic"))[0]["metadata"]["generation"] == 2
    assert w.layout.cdi_spec_file(UID, "nic").exists()


async def test_repeated_prepare_rebuilds_a_missing_file_from_the_claim(tmp_path: Path) -> None:
    w, fetch = _writer(tmp_path, claim=Claim(ref=REF, pod_claim_name="my-net"))
    ids = await w.prepared(PLAN, None)  # the checkpoint had the plan, the files never got written
    assert fetch.calls == 1  # once for both requests
    assert ids["eth1"] == (f"dra.net/metadata={UID}_nic",)
    assert _stream(w.layout.metadata_file(REF, "nic"))[0]["podClaimName"] == "my-net"


async def test_write_failure_prepares_without_metadata(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    w, _ = _writer(tmp_path)
    (tmp_path / "cdi").write_text("not a directory")
    with caplog.at_level(logging.WARNING):
        ids = await w.prepared(PLAN, Claim(ref=REF))
    assert ids == {}
    assert "device metadata for request nic not written" in caplog.text
    assert "prepared without it" in caplog.text


async def test_forget_removes_files_and_specs_of_that_claim_only(tmp_path: Path) -> None:
    w, _ = _writer(tmp_path)
    other = ClaimRef(namespace="default", name="c2", uid="9d0e3c6a-1111-4c8e-9a52-7c1d2e3f4a5b")
    other_plan = ClaimPlan(claim=other, pods=(), devices=(DEV_A,))
    await w.prepared(PLAN, Claim(ref=REF))
    await w.prepared(other_plan, Claim(ref=other))
    await w.forget(REF, PLAN)
    assert _files(tmp_path) == [
        "cdi/dra.net_metadata_9d0e3c6a-1111-4c8e-9a52-7c1d2e3f4a5b_nic.json",
        "plugins/dra.net/dra-device-metadata/default_c2/nic/metadata.json",
    ]
    await w.forget(REF, PLAN)  # idempotent
    await w.forget(other, None)  # from the reference alone
    assert _files(tmp_path) == []


async def test_forget_leaves_a_recreated_claim_of_the_same_name(tmp_path: Path) -> None:
    w, _ = _writer(tmp_path)
    new = ClaimRef(namespace="default", name="c1", uid="77777777-1111-4c8e-9a52-7c1d2e3f4a5b")
    await w.prepared(ClaimPlan(claim=new, pods=(), devices=(DEV_A,)), Claim(ref=new))
    # the new claim is writing its first file of another request (only a temporary file yet)
    writing = w.layout.metadata_file(new, "other").parent
    writing.mkdir()
    (writing / ".metadata.json.x.tmp").write_text("{")
    await w.forget(REF, PLAN)  # the old UID's unprepare comes late
    assert _stream(w.layout.metadata_file(new, "nic"))[0]["metadata"]["uid"] == new.uid
    assert w.layout.cdi_spec_file(new.uid, "nic").exists()
    assert (writing / ".metadata.json.x.tmp").exists()
    # a leftover of the old claim's own request without a readable file goes
    (w.layout.metadata_file(REF, "rdma").parent).mkdir()
    await w.forget(REF, PLAN)
    assert not w.layout.metadata_file(REF, "rdma").parent.exists()


@pytest.mark.skipif(os.geteuid() == 0 and not Path("/usr/bin/chattr").exists(), reason="needs chattr as root")
async def test_forget_failure_is_the_claims_error(tmp_path: Path) -> None:
    w, _ = _writer(tmp_path)
    await w.prepared(PLAN, Claim(ref=REF))
    cdi = tmp_path / "cdi"
    if os.geteuid() == 0:
        _chattr("+i", cdi)
    else:
        cdi.chmod(0o555)
    try:
        with pytest.raises(ClaimError, match=r"claim default/c1\(.*\): removing device metadata .*cdi"):
            await w.forget(REF, PLAN)
    finally:
        if os.geteuid() == 0:
            _chattr("-i", cdi)
        else:
            cdi.chmod(0o755)
    assert w.layout.cdi_spec_file(UID, "nic").exists()
    await w.forget(REF, PLAN)  # the kubelet's retry
    assert _files(tmp_path) == []


async def test_recover_removes_stale_files_and_syncs_network_data(tmp_path: Path) -> None:
    w, _ = _writer(tmp_path)
    stale = ClaimRef(namespace="other", name="gone", uid="55555555-1111-4c8e-9a52-7c1d2e3f4a5b")
    await w.prepared(ClaimPlan(claim=stale, pods=(), devices=(DEV_A,)), Claim(ref=stale))
    await w.prepared(PLAN, Claim(ref=REF))
    lay = w.layout
    # leftovers of a crash in the middle of writes, and a request the plan no longer has
    (lay.metadata_file(REF, "nic").parent / ".metadata.json.x1.tmp").write_text("{")
    nic_spec = lay.cdi_spec_file(UID, "nic").read_text()
    (lay.cdi_dir / f".{lay.cdi_prefix}{UID}_nic.json.x2.tmp").write_text(nic_spec)
    lay.metadata_file(REF, "old").parent.mkdir()
    lay.metadata_file(REF, "old").write_bytes(lay.metadata_file(REF, "nic").read_bytes())
    lay.cdi_spec_file(UID, "old").write_text(nic_spec.replace("/nic/", "/old/"))
    (lay.cdi_dir / "vendor.com-gpu.json").write_text("{}")  # not ours
    # another driver instance (another kubelet root, e.g. a demo) sharing the CDI directory
    other = lay.cdi_dir / f"{lay.cdi_prefix}44444444-1111-4c8e-9a52-7c1d2e3f4a5b_nic.json"
    other.write_text(nic_spec.replace(str(lay.data_dir), "/elsewhere/plugins/dra.net/dra-device-metadata"))
    # journal: eth1 attached (the crash came before the file was rewritten)
    pc = PreparedClaim(
        plan=PLAN,
        devices={"eth1": DeviceState(phase="attached", pod_uid="pod-1", netns="/x", network_data=ND)},
    )
    fresh, _ = _writer(tmp_path)
    removed = await fresh.recover({UID: pc})
    assert removed == 6
    assert _files(tmp_path) == sorted(
        [
            f"cdi/dra.net_metadata_{UID}_nic.json",
            f"cdi/dra.net_metadata_{UID}_rdma.json",
            "cdi/vendor.com-gpu.json",
            f"cdi/{other.name}",
            "plugins/dra.net/dra-device-metadata/default_c1/nic/metadata.json",
            "plugins/dra.net/dra-device-metadata/default_c1/rdma/metadata.json",
        ]
    )
    doc = _stream(lay.metadata_file(REF, "nic"))[0]
    assert doc["metadata"]["generation"] == 2
    assert doc["requests"][0]["devices"][0]["networkData"]["interfaceName"] == "net1"
    # nothing changes on a second start
    assert await fresh.recover({UID: pc}) == 0
    assert _stream(lay.metadata_file(REF, "nic"))[0]["metadata"]["generation"] == 2
    # an empty checkpoint: everything of ours goes
    assert await fresh.recover({}) > 0
    assert _files(tmp_path) == sorted([f"cdi/{other.name}", "cdi/vendor.com-gpu.json"])


async def test_versions_setting_controls_the_stream(tmp_path: Path) -> None:
    w = MetadataWriter(_layout(tmp_path, ("v1alpha1",)), enabled=True, inventory=lambda: INVENTORY)
    await w.prepared(PLAN, Claim(ref=REF))
    objs = _stream(w.layout.metadata_file(REF, "nic"))
    assert [o["apiVersion"] for o in objs] == ["metadata.resource.k8s.io/v1alpha1"]
    await w.attached(PLAN, DEV_B, ND)
    assert [o["apiVersion"] for o in _stream(w.layout.metadata_file(REF, "nic"))] == [
        "metadata.resource.k8s.io/v1alpha1"
    ]


def test_repr_shows_state(tmp_path: Path) -> None:
    w, _ = _writer(tmp_path, enabled=False)
    assert repr(w).startswith("MetadataWriter(off, data='")


async def test_many_claims_and_devices_at_once(tmp_path: Path) -> None:
    import asyncio

    w, _ = _writer(tmp_path)
    plans = [
        ClaimPlan(
            claim=ClaimRef(namespace="ns", name=f"c{i}", uid=f"uid-{i}"), pods=(), devices=(DEV_A, DEV_B)
        )
        for i in range(40)
    ]
    results = await asyncio.gather(*(w.prepared(p, Claim(ref=p.claim)) for p in plans))
    assert all(
        r == {"eth1": (f"dra.net/metadata={p.claim.uid}_nic",)} for r, p in zip(results, plans, strict=True)
    )
    # both devices of each request attached at once: neither update is lost
    nd_b = NetworkData(interface_name="net2", ips=("10.0.0.2/24",))
    await asyncio.gather(
        *(w.attached(p, DEV_A, ND) for p in plans),
        *(w.attached(p, DEV_B, nd_b) for p in plans),
    )
    for p in plans:
        doc = _stream(w.layout.metadata_file(p.claim, "nic"))[0]
        assert doc["metadata"]["generation"] == 3
        names = [d["networkData"]["interfaceName"] for d in doc["requests"][0]["devices"]]
        assert names == ["net1", "net2"]
    await asyncio.gather(*(w.forget(p.claim, p) for p in plans))
    assert _files(tmp_path) == []
