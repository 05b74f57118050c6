"""Upgrade in place: the Go driver's bbolt checkpoint, written byte by byte from the page
format (tests/bbolt_writer.py), is read and its attachments adopted into our journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bbolt_writer import PAGE, Bucket, Writer, go_checkpoint, go_record

from dranet_backends.netdev.facet import NetdevFacet
from dranet_backends.netdev.snapshot import SNAPSHOT_VERSION, HostSnapshot
from dranet_core.bbolt import BboltError, is_bbolt, read_bbolt
from dranet_core.checkpoint import ClaimStore, PreparedClaim
from dranet_core.claim_allocator import ClaimAllocator
from dranet_core.go_upgrade import NETDEV_SNAPSHOT_VERSION, adopt_go_checkpoint, adopted_uid
from dranet_core.types import ClaimRef

POD_A, POD_B = "8c1e0b1a-0000-4000-8000-00000000000a", "8c1e0b1a-0000-4000-8000-00000000000b"


def _file(**kw: object) -> bytes:
    veth = go_record(
        "team",
        "c1",
        "gveth0",
        "net1",
        mac={"string": "02:00:00:00:00:01"},
        mtu={"int": 1400},
        virtual={"bool": True},
        type={"string": "veth"},
    )
    nic = go_record(
        "team", "c2", "ens8", "eth1", pciAddress={"string": "0000:8a:00.0"}, virtual={"bool": False}
    )
    pods = {
        POD_A: {"gveth0": veth},
        POD_B: {"pci-0000-8a-00-0": nic, "gveth1": go_record("team", "c2", "gveth1", "eth2")},
    }
    return go_checkpoint(pods, **kw)


def test_reader_returns_nested_buckets_inline_and_on_pages() -> None:
    raw = _file()
    assert is_bbolt(raw) and not is_bbolt(b'{"version": 1}')
    tree = read_bbolt(raw)
    pods = tree[b"pod_configs"]
    assert isinstance(pods, dict) and set(pods) == {POD_A.encode(), POD_B.encode()}
    devs = pods[POD_B.encode()]
    assert isinstance(devs, dict)
    inner = devs[b"device_configs"]
    assert isinstance(inner, dict) and set(inner) == {b"pci-0000-8a-00-0", b"gveth1"}
    assert json.loads(inner[b"gveth1"])["claim"] == {"Namespace": "team", "Name": "c2"}  # type: ignore[arg-type]


def test_reader_follows_branch_pages_and_overflow_pages() -> None:
    big = {
        f"pod-{i:03d}": {"d": go_record("ns", f"c{i}", f"h{i}", "net1", alias={"string": "x" * 60})}
        for i in range(40)
    }
    huge = Writer().file(Bucket({b"k": b"v" * (2 * PAGE + 100)}, inline=False))  # a value over 3 pages
    raw = go_checkpoint(big, branch_split=7)
    pods = read_bbolt(raw)[b"pod_configs"]
    assert isinstance(pods, dict) and len(pods) == 40
    assert read_bbolt(huge) == {b"k": b"v" * (2 * PAGE + 100)}


def test_reader_uses_the_valid_meta_and_rejects_broken_files() -> None:
    assert read_bbolt(_file(corrupt_meta=1)) == read_bbolt(_file())  # meta 1 bad: meta 0
    raw = _file()
    with pytest.raises(BboltError, match=r"outside the file|past the end"):
        read_bbolt(raw[: 3 * PAGE])
    with pytest.raises(BboltError, match="meta page 0"):
        read_bbolt(_file(corrupt_meta=0))
    with pytest.raises(BboltError, match="not a bbolt file"):
        read_bbolt(b"\0" * 64)


def _adopt(raw: bytes) -> dict[str, PreparedClaim]:
    return {uid: PreparedClaim.from_json(rec) for uid, rec in adopt_go_checkpoint(raw).items()}


def test_adopted_claims_are_attached_to_their_pods_with_a_netdev_snapshot() -> None:
    claims = _adopt(_file())
    assert set(claims) == {adopted_uid("team", "c1"), adopted_uid("team", "c2")}
    c1 = claims[adopted_uid("team", "c1")]
    assert c1.plan.claim == ClaimRef(namespace="team", name="c1", uid="go-dranet:team/c1")
    assert c1.plan.pods == (POD_A,)
    (dev,) = c1.plan.devices
    assert dev.device == "gveth0"
    assert dev.config.interface is not None and dev.config.interface.name == "net1"
    st = c1.devices["gveth0"]
    assert (st.phase, st.pod_uid) == ("attached", POD_A)
    # what the netdev backend will read back
    assert NETDEV_SNAPSHOT_VERSION == SNAPSHOT_VERSION
    assert isinstance(st.snapshot, dict)
    snap = HostSnapshot.from_json(st.snapshot["netdev"])
    assert (snap.ifname, snap.mac, snap.mtu, snap.virtual) == ("gveth0", "02:00:00:00:00:01", 1400, True)
    assert snap.kind == "veth"
    facet = NetdevFacet.from_json(dev.facets["netdev"])  # type: ignore[arg-type]
    assert facet.ifname == "gveth0"
    c2 = claims[adopted_uid("team", "c2")]
    assert {d.device for d in c2.plan.devices} == {"pci-0000-8a-00-0", "gveth1"}
    pci = next(d for d in c2.plan.devices if d.device == "pci-0000-8a-00-0")
    assert pci.facets["netdev"]["pci_address"] == "0000:8a:00.0"  # type: ignore[index]
    nic_snap = HostSnapshot.from_json(c2.devices["pci-0000-8a-00-0"].snapshot["netdev"])  # type: ignore[index]
    assert (nic_snap.ifname, nic_snap.kind, nic_snap.pci_address) == ("ens8", None, "0000:8a:00.0")


def test_a_bad_record_is_skipped_and_the_rest_adopted() -> None:
    raw = go_checkpoint({POD_A: {"x": {"claim": {}}, "gveth0": go_record("ns", "c1", "gveth0", "net1")}})
    assert list(_adopt(raw)) == [adopted_uid("ns", "c1")]


async def test_store_load_adopts_the_go_file_keeps_a_copy_and_our_write_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "dranet.db"
    raw = _file()
    path.write_bytes(raw)
    store = ClaimStore(path)
    assert await store.load() is None
    assert set(store.claims()) == {adopted_uid("team", "c1"), adopted_uid("team", "c2")}
    assert (tmp_path / "dranet.db.go-bbolt").read_bytes() == raw
    # kubelet unprepares by namespace/name with the real UID (the Go record had none)
    alloc = ClaimAllocator("dra.net", "node", store)
    plan = await alloc.unprepare(ClaimRef(namespace="team", name="c1", uid="4b1d..real-uid"))
    assert plan is not None and plan.claim.name == "c1"
    assert set(store.claims()) == {adopted_uid("team", "c2")}
    doc = json.loads(path.read_bytes())  # our format now, with the remaining adopted claim
    assert doc["version"] == 1 and list(doc["claims"]) == [adopted_uid("team", "c2")]
    again = ClaimStore(path)
    assert await again.load() is None and set(again.claims()) == {adopted_uid("team", "c2")}
