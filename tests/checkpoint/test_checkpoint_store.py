"""ClaimStore: JSON round trips, atomic persistence, corrupt files set aside, group commit."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from dranet_core import checkpoint as checkpoint_module
from dranet_core.checkpoint import (
    CHECKPOINT_VERSION,
    CheckpointProblem,
    ClaimStore,
    DeviceState,
    PreparedClaim,
    config_from_json,
    config_to_json,
    decode_checkpoint,
    encode_checkpoint,
    read_boot_id,
)
from dranet_core.config.model import (
    EthtoolConfig,
    InterfaceConfig,
    NeighborConfig,
    NetworkConfig,
    RouteConfig,
    RuleConfig,
    VRFConfig,
)
from dranet_core.errors import CheckpointError
from dranet_core.files import filesystem_type
from dranet_core.plans import ClaimPlan, PreparedDevice
from dranet_core.types import ClaimRef, NetworkData

FULL_CONFIG = NetworkConfig(
    profile="fast",
    interface=InterfaceConfig(
        name="net1",
        addresses=("192.0.2.5/24", "2001:db8::5/64"),
        dhcp=False,
        mtu=9000,
        hardware_addr="02:00:00:00:00:01",
        gso_max_size=65536,
        gro_max_size=65536,
        gso_ipv4_max_size=65536,
        gro_ipv4_max_size=65536,
        disable_ebpf_programs=True,
        forwarding=False,
        arp_ignore=1,
        arp_announce=2,
        vrf=VRFConfig(name="blue", table=100),
    ),
    routes=(
        RouteConfig(destination="0.0.0.0/0", gateway="192.0.2.1", source="192.0.2.5", scope=0, table=100),
    ),
    rules=(RuleConfig(priority=10, source="192.0.2.0/24", destination="198.51.100.0/24", table=100),),
    neighbors=(NeighborConfig(destination="192.0.2.1", hardware_addr="02:00:00:00:00:02"),),
    ethtool=EthtoolConfig(features={"tx-checksumming": False}, private_flags={"flag-a": True}),
)


def _plan(
    uid: str = "uid-1", devices: tuple[str, ...] = ("eth1",), config: NetworkConfig | None = None
) -> ClaimPlan:
    return ClaimPlan(
        claim=ClaimRef(namespace="ns", name=f"claim-{uid}", uid=uid),
        pods=("pod-1",),
        devices=tuple(
            PreparedDevice(
                pool="node-a",
                device=d,
                request_names=("nic",),
                config=config or NetworkConfig(),
                facets={"netdev": {"ifName": d, "ifIndex": 7}},
            )
            for d in devices
        ),
    )


def test_network_config_round_trip_keeps_every_field_and_unset_stays_unset() -> None:
    data = config_to_json(FULL_CONFIG)
    assert data["interface"]["hardwareAddr"] == "02:00:00:00:00:01"
    assert data["interface"]["gsoIPv4MaxSize"] == 65536
    assert data["ethtool"]["privateFlags"] == {"flag-a": True}
    back = config_from_json(json.loads(json.dumps(data)))
    assert back == FULL_CONFIG
    # explicit zero / False survive, None is omitted
    sparse = NetworkConfig(interface=InterfaceConfig(dhcp=False, mtu=0))
    assert config_to_json(sparse) == {"interface": {"dhcp": False, "mtu": 0}}
    assert config_from_json(config_to_json(sparse)) == sparse
    assert config_from_json(None) == NetworkConfig()


def test_config_from_json_names_the_bad_field() -> None:
    with pytest.raises(CheckpointError, match=r"config\.interface\.mtu: must be an integer"):
        config_from_json({"interface": {"mtu": "9000"}})
    with pytest.raises(CheckpointError, match=r"config\.bogus: unknown field"):
        config_from_json({"bogus": 1})


def test_prepared_claim_round_trip() -> None:
    pc = PreparedClaim(
        plan=_plan(config=FULL_CONFIG),
        devices={
            "eth1": DeviceState(
                phase="attached",
                pod_uid="pod-1",
                netns="/var/run/netns/cni-1",
                snapshot={"name": "eth1", "mtu": 1500, "addrs": ["10.0.0.2/24"]},
                network_data=NetworkData(
                    interface_name="net1", hardware_address="02:00:00:00:00:01", ips=("192.0.2.5/24",)
                ),
            )
        },
    )
    raw = encode_checkpoint({pc.uid: pc})
    assert json.loads(raw)["version"] == CHECKPOINT_VERSION
    assert decode_checkpoint(raw) == {pc.uid: pc}


def test_hand_written_file_is_read() -> None:
    raw = b"""{"version": 1, "claims": {"u-7": {
        "plan": {"claim": {"namespace": "default", "name": "c7", "uid": "u-7"}, "pods": ["p-9"],
                 "devices": [{"pool": "n1", "device": "eth3", "requestNames": ["nic", "nic/a"],
                              "config": {"interface": {"name": "net0", "mtu": 1400}},
                              "facets": {"netdev": {"mac": "aa"}}, "shareID": "s1"}]},
        "devices": {"eth3": {"phase": "attaching", "podUID": "p-9", "netns": "/proc/1/ns/net",
                             "snapshot": {"x": 1}}}}}}"""
    claims = decode_checkpoint(raw)
    pc = claims["u-7"]
    assert pc.plan.claim == ClaimRef(namespace="default", name="c7", uid="u-7")
    assert pc.plan.pods == ("p-9",)
    dev = pc.plan.devices[0]
    assert (dev.pool, dev.device, dev.request_names, dev.share_id) == ("n1", "eth3", ("nic", "nic/a"), "s1")
    assert dev.config == NetworkConfig(interface=InterfaceConfig(name="net0", mtu=1400))
    assert dev.facets == {"netdev": {"mac": "aa"}}
    assert pc.devices["eth3"] == DeviceState(
        phase="attaching", pod_uid="p-9", netns="/proc/1/ns/net", snapshot={"x": 1}
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[]", "top level"),
        (b'{"version": 99, "claims": {}}', "unknown checkpoint version 99"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"version": 1, "claims": []}', "claims: expected an object"),
        (b"\xff\xfe", "not JSON"),
    ],
)
async def test_corrupt_file_is_set_aside_and_reported(
    tmp_path: pathlib.Path, raw: bytes, reason: str
) -> None:
    path = tmp_path / "checkpoint.json"
    path.write_bytes(raw)
    seen: list[CheckpointProblem] = []
    store = ClaimStore(path, on_problem=seen.append)
    problem = await store.load()
    assert problem is not None and seen == [problem] and store.problem == problem
    assert reason in problem.reason
    assert not path.exists()
    assert problem.moved_to is not None
    aside = pathlib.Path(problem.moved_to)
    assert aside.name.startswith("checkpoint.json.corrupt-")
    assert await asyncio.to_thread(aside.read_bytes) == raw  # kept for people to look at
    assert store.claims() == {}
    # the store works normally afterwards and writes a fresh file
    await store.put_plan(_plan())
    assert decode_checkpoint(path.read_bytes())["uid-1"].plan == _plan()


async def test_callback_failure_does_not_stop_load(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cp.json"
    path.write_bytes(b"garbage")

    def boom(_: CheckpointProblem) -> None:
        raise RuntimeError("event sink down")

    store = ClaimStore(path, on_problem=boom)
    assert await store.load() is not None
    assert "problem callback failed" in caplog.text


async def test_missing_file_is_empty_store(tmp_path: pathlib.Path) -> None:
    store = ClaimStore(tmp_path / "sub" / "cp.json")
    assert await store.load() is None
    assert store.claims() == {}


async def test_persisted_atomically_with_mode_0600_and_reloaded(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state" / "cp.json"
    store = ClaimStore(path)
    await store.load()
    await store.put_plan(_plan("a", ("eth1", "eth2")))
    await store.set_device_state("a", "eth1", DeviceState(phase="attached", pod_uid="pod-1", netns="/x"))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o750"
    assert sorted(os.listdir(path.parent)) == ["cp.json"]  # no temp files left

    again = ClaimStore(path)
    assert await again.load() is None
    assert again.get("a") == store.get("a")
    assert again.device_state("a", "eth1") == DeviceState(phase="attached", pod_uid="pod-1", netns="/x")
    assert again.device_state("a", "eth2") == DeviceState()
    assert again.device_state("a", "nope") is None and again.device_state("zz", "eth1") is None

    assert (await again.remove("a")) is not None
    assert await again.remove("a") is None
    assert decode_checkpoint(path.read_bytes()) == {}


async def test_put_plan_keeps_states_of_devices_still_planned(tmp_path: pathlib.Path) -> None:
    store = ClaimStore(tmp_path / "cp.json")
    await store.put_plan(_plan("a", ("eth1", "eth2")))
    await store.set_device_state("a", "eth1", DeviceState(phase="attaching", pod_uid="p"))
    pc = await store.put_plan(_plan("a", ("eth1", "eth3")))
    assert pc.devices == {"eth1": DeviceState(phase="attaching", pod_uid="p"), "eth3": DeviceState()}


async def test_set_device_state_refuses_unknown_claim_or_device() -> None:
    store = ClaimStore(None)
    with pytest.raises(CheckpointError, match="claim nope is not prepared"):
        await store.set_device_state("nope", "eth1", DeviceState())
    await store.put_plan(_plan("a"))
    with pytest.raises(CheckpointError, match="device eth9 is not part of claim a"):
        await store.set_device_state("a", "eth9", DeviceState())


async def test_memory_only_store_writes_nothing(tmp_path: pathlib.Path) -> None:
    store = ClaimStore(None)
    assert await store.load() is None
    await store.put_plan(_plan("a"))
    assert list(store.claims()) == ["a"]
    assert os.listdir(tmp_path) == []


async def test_failed_write_raises_and_rolls_back_memory(tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = ClaimStore(blocker / "cp.json")  # parent is a regular file: every write fails
    with pytest.raises(CheckpointError, match="write failed"):
        await store.put_plan(_plan("a"))
    assert store.get("a") is None


async def test_concurrent_mutations_all_reach_the_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "cp.json"
    store = ClaimStore(path)
    await asyncio.gather(*(store.put_plan(_plan(f"u{i}", (f"eth{i}",))) for i in range(60)))
    on_disk = decode_checkpoint(path.read_bytes())
    assert sorted(on_disk) == sorted(f"u{i}" for i in range(60))
    await asyncio.gather(*(store.remove(f"u{i}") for i in range(0, 60, 2)))
    assert sorted(decode_checkpoint(path.read_bytes())) == sorted(f"u{i}" for i in range(1, 60, 2))


async def test_cancelled_mutation_never_overlaps_writes(tmp_path: pathlib.Path) -> None:
    import threading
    import time

    store = ClaimStore(tmp_path / "cp.json")
    real_write = store._write
    active = 0
    peak = 0
    guard = threading.Lock()

    def slow_write(data: bytes) -> None:
        nonlocal active, peak
        with guard:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        real_write(data)
        with guard:
            active -= 1

    store._write = slow_write  # type: ignore[method-assign]
    first = asyncio.ensure_future(store.put_plan(_plan("a")))
    await asyncio.sleep(0.01)  # the first write is now running in its thread
    first.cancel()
    await store.put_plan(_plan("b", ("eth2",)))
    with pytest.raises(asyncio.CancelledError):
        await first
    assert peak == 1
    assert sorted(decode_checkpoint((tmp_path / "cp.json").read_bytes())) == ["a", "b"]


_GOOD = _plan("good")


def _file_with(bad: dict[str, object]) -> bytes:
    """A checkpoint holding the sound claim ``good`` and the ``bad`` claim records."""
    doc = json.loads(encode_checkpoint({"good": PreparedClaim(plan=_GOOD)}))
    doc["claims"].update(bad)
    return json.dumps(doc).encode()


def _record(uid: str, **device: object) -> dict[str, object]:
    rec = PreparedClaim(plan=_plan(uid)).to_json()
    rec["devices"] = {"eth1": {"phase": "detaching", "podUID": "p", **device}}
    return rec


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"u": {"plan": {"claim": {"namespace": "n", "name": "c"}}}}, "claims.u.plan.claim.uid: missing"),
        (
            {
                "u": {
                    "plan": {"claim": {"namespace": "n", "name": "c", "uid": "u"}},
                    "devices": {"d": {"phase": "x"}},
                }
            },
            "unknown phase",
        ),
        ({"u": {"plan": {"claim": {"namespace": "n", "name": "c", "uid": "v"}}}}, "plan is for claim uid v"),
        ({"u": _record("u", snapshot="a string")}, "claims.u.devices.eth1.snapshot: expected an object"),
        ({"u": "not an object"}, "claims.u: expected an object"),
    ],
)
async def test_bad_claim_record_is_set_aside_and_the_rest_kept(
    tmp_path: pathlib.Path, bad: dict[str, object], reason: str
) -> None:
    path = tmp_path / "cp.json"
    raw = _file_with(bad)
    path.write_bytes(raw)
    seen: list[CheckpointProblem] = []
    store = ClaimStore(path, on_problem=seen.append)
    problem = await store.load()
    assert problem is not None and seen == [problem]
    assert problem.claims == ("u",) and reason in problem.reason
    assert "1 unusable claim record(s) set aside" in str(problem)
    assert list(store.claims()) == ["good"] and store.get("good") == PreparedClaim(plan=_GOOD)
    # the whole original is kept for people to look at, the file no longer holds the bad record
    assert problem.moved_to is not None
    assert await asyncio.to_thread(pathlib.Path(problem.moved_to).read_bytes) == raw
    assert sorted(decode_checkpoint(path.read_bytes())) == ["good"]
    again = ClaimStore(path)
    assert await again.load() is None and list(again.claims()) == ["good"]


async def test_claim_check_sets_aside_a_snapshot_a_backend_cannot_read(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "cp.json"
    path.write_bytes(_file_with({"u": _record("u", snapshot={"netdev": {"ifname": "eth1"}})}))

    def check(pc: PreparedClaim) -> None:
        for st in pc.devices.values():
            if isinstance(st.snapshot, dict) and "ifindex" not in st.snapshot.get("netdev", {"ifindex": 1}):
                raise ValueError("netdev snapshot: missing 'ifindex'")

    store = ClaimStore(path, check=check)
    problem = await store.load()
    assert problem is not None and problem.claims == ("u",)
    assert "claims.u: netdev snapshot: missing 'ifindex'" in problem.reason
    assert list(store.claims()) == ["good"]


async def test_deeply_nested_claim_record_is_set_aside(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "cp.json"
    nested: object = []
    for _ in range(900):  # parses as JSON, but is deeper than any record we read
        nested = [nested]
    rec = PreparedClaim(plan=_plan("u")).to_json()
    rec["plan"]["devices"][0]["config"] = {"routes": nested}
    path.write_bytes(_file_with({"u": rec}))
    store = ClaimStore(path)
    problem = await store.load()
    assert problem is not None and problem.claims == ("u",)
    assert list(store.claims()) == ["good"]


async def test_symlinked_checkpoint_is_refused_and_its_target_untouched(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "precious"
    target.write_bytes(encode_checkpoint({"x": PreparedClaim(plan=_plan("x"))}))
    path = tmp_path / "dranet.db"
    path.symlink_to(target)
    store = ClaimStore(path)
    problem = await store.load()
    assert problem is not None and "symbolic link" in problem.reason
    assert store.claims() == {}
    await store.put_plan(_plan("a"))
    assert not path.is_symlink() and sorted(decode_checkpoint(path.read_bytes())) == ["a"]
    assert sorted(decode_checkpoint(target.read_bytes())) == ["x"]


async def test_temp_file_is_never_written_through_a_planted_symlink(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "victim"
    target.write_bytes(b"keep me")
    path = tmp_path / "dranet.db"
    for name in (f".dranet.db.tmp-{os.getpid()}", f".dranet.db.tmp-{os.getpid()}-0"):
        (tmp_path / name).symlink_to(target)
    store = ClaimStore(path)
    await store.put_plan(_plan("a"))
    await store.put_plan(_plan("b", ("eth2",)))
    assert target.read_bytes() == b"keep me"
    assert not path.is_symlink() and sorted(decode_checkpoint(path.read_bytes())) == ["a", "b"]


async def test_missing_parents_are_created_0750_whatever_the_umask(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "a" / "b" / "dranet.db"
    old = os.umask(0)
    try:
        await ClaimStore(path).put_plan(_plan("a"))
    finally:
        os.umask(old)
    for d in (tmp_path / "a", tmp_path / "a" / "b"):
        assert oct(d.stat().st_mode & 0o777) == "0o750"


async def test_a_removed_directory_is_created_again_by_the_next_write(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state" / "dranet.db"
    store = ClaimStore(path)
    await store.put_plan(_plan("a"))
    shutil.rmtree(path.parent)
    await store.put_plan(_plan("b", ("eth2",)))
    assert oct(path.parent.stat().st_mode & 0o777) == "0o750"
    assert sorted(decode_checkpoint(path.read_bytes())) == ["a", "b"]
    assert sorted(os.listdir(path.parent)) == ["dranet.db"]


async def test_concurrent_mutations_share_writes(tmp_path: pathlib.Path) -> None:
    store = ClaimStore(tmp_path / "cp.json")
    await asyncio.gather(*(store.put_plan(_plan(f"u{i}", (f"eth{i}",))) for i in range(50)))
    # one write for the first mutation, one for everything that queued behind it
    assert store.writes <= 2
    assert sorted(decode_checkpoint((tmp_path / "cp.json").read_bytes())) == sorted(
        f"u{i}" for i in range(50)
    )


async def test_failed_write_can_keep_the_state_and_a_later_write_catches_up(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "cp.json"
    store = ClaimStore(path)
    await store.put_plan(_plan("a"))
    await store.set_device_state("a", "eth1", DeviceState(phase="attaching", pod_uid="p"))
    real = store._write

    def broken(data: bytes) -> None:
        raise OSError(30, "Read-only file system")

    store._write = broken  # type: ignore[method-assign]
    with pytest.raises(CheckpointError, match="Read-only file system"):
        await store.set_device_state("a", "eth1", DeviceState(), keep_on_failure=True)
    assert store.device_state("a", "eth1") == DeviceState() and store.dirty
    assert await store.flush() is False
    store._write = real  # type: ignore[method-assign]
    assert await store.flush() is True and not store.dirty
    assert decode_checkpoint(path.read_bytes())["a"].devices["eth1"] == DeviceState()


async def test_run_retries_a_failed_write_until_it_lands(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "cp.json"
    store = ClaimStore(path)
    await store.put_plan(_plan("a"))
    real = store._write
    fails = [2]

    def flaky(data: bytes) -> None:
        if fails[0] > 0:
            fails[0] -= 1
            raise OSError(30, "Read-only file system")
        real(data)

    store._write = flaky  # type: ignore[method-assign]
    with pytest.raises(CheckpointError):
        await store.set_device_state(
            "a", "eth1", DeviceState(phase="detaching", pod_uid="p"), keep_on_failure=True
        )
    runner = asyncio.create_task(store.run(interval=0.01))
    try:
        while store.dirty:  # noqa: ASYNC110 - the store has no event for this
            await asyncio.sleep(0.01)
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    assert fails == [0]
    assert decode_checkpoint(path.read_bytes())["a"].devices["eth1"].phase == "detaching"


async def test_setting_a_bad_record_aside_on_a_read_only_disk_still_loads_the_rest(
    tmp_path: pathlib.Path,
) -> None:
    path = tmp_path / "cp.json"
    raw = _file_with({"u": {"plan": {"claim": {"namespace": "n", "name": "c"}}}})
    path.write_bytes(raw)
    store = ClaimStore(path)

    def read_only(data: bytes) -> None:
        raise OSError(30, "Read-only file system")

    store._write = read_only  # type: ignore[method-assign]
    problem = await store.load()  # never raises
    assert problem is not None and problem.claims == ("u",)
    assert list(store.claims()) == ["good"] and store.dirty
    assert path.read_bytes() == raw  # unchanged until a write succeeds


# --- durability: boot id stamp, incremental encoding ---

_ATTACHED = DeviceState(phase="attached", pod_uid="p", sandbox_id="sb", netns="/run/netns/x", snapshot={})


async def _attached_file(path: pathlib.Path, boot_id: str | None) -> None:
    store = ClaimStore(path, boot_id=boot_id)
    await store.put_plan(_plan("a", ("eth1", "eth2")))
    await store.set_device_state("a", "eth1", _ATTACHED)
    await store.set_device_state("a", "eth2", DeviceState(phase="detaching", pod_uid="p"))
    await store.put_plan(_plan("b", ("eth3",)))


async def test_a_file_from_another_boot_keeps_its_claims_and_voids_its_attachments(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cp.json"
    await _attached_file(path, "boot-1")
    assert json.loads(path.read_bytes())["bootID"] == "boot-1"
    store = ClaimStore(path, boot_id="boot-2")
    assert await store.load() is None
    assert sorted(store.claims()) == ["a", "b"]
    assert store.device_state("a", "eth1") == DeviceState()
    assert store.device_state("a", "eth2") == DeviceState()
    assert "written before a reboot" in caplog.text and "2 attachment(s) void" in caplog.text
    doc = json.loads(path.read_bytes())  # rewritten at once, stamped with this boot
    assert doc["bootID"] == "boot-2"
    assert doc["claims"]["a"]["devices"] == {"eth1": {"phase": "prepared"}, "eth2": {"phase": "prepared"}}


@pytest.mark.parametrize(("written", "now"), [("boot-1", "boot-1"), (None, "boot-1"), ("boot-1", None)])
async def test_a_file_of_this_boot_or_unstamped_keeps_its_attachments(
    tmp_path: pathlib.Path, written: str | None, now: str | None
) -> None:
    path = tmp_path / "cp.json"
    await _attached_file(path, written)
    before = path.read_bytes()
    store = ClaimStore(path, boot_id=now)
    assert await store.load() is None
    assert store.device_state("a", "eth1") == _ATTACHED
    assert path.read_bytes() == before  # nothing to rewrite


async def test_a_boot_id_that_is_not_a_string_makes_the_file_unusable(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "cp.json"
    path.write_text(json.dumps({"version": CHECKPOINT_VERSION, "bootID": 7, "claims": {}}))
    problem = await ClaimStore(path, boot_id="b").load()
    assert problem is not None and "bootID: expected a string" in problem.reason
    assert not path.exists() and problem.moved_to is not None


def test_the_boot_id_is_read_from_the_procfs_root(tmp_path: pathlib.Path) -> None:
    (tmp_path / "sys" / "kernel" / "random").mkdir(parents=True)
    (tmp_path / "sys" / "kernel" / "random" / "boot_id").write_text("5f2b8c1e-0000-4000-8000-000000000001\n")
    assert read_boot_id(tmp_path) == "5f2b8c1e-0000-4000-8000-000000000001"


@pytest.mark.parametrize("content", [None, ""])
def test_an_unreadable_boot_id_is_none(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture, content: str | None
) -> None:
    if content is not None:
        (tmp_path / "sys" / "kernel" / "random").mkdir(parents=True)
        (tmp_path / "sys" / "kernel" / "random" / "boot_id").write_text(content)
    assert read_boot_id(tmp_path) is None
    assert "the checkpoint is not stamped" in caplog.text


async def test_a_write_encodes_only_the_claims_that_changed(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cp.json"
    store = ClaimStore(path, boot_id="boot-1")
    for i in range(5):
        await store.put_plan(_plan(f"u{i}", ("eth1",)))
    encoded: list[str] = []
    real = checkpoint_module.encode_claim

    def counting(pc: PreparedClaim) -> bytes:
        encoded.append(pc.uid)
        return real(pc)

    monkeypatch.setattr(checkpoint_module, "encode_claim", counting)
    await store.set_device_state("u3", "eth1", _ATTACHED)
    await store.remove("u1")
    assert encoded == ["u3"]
    # the bytes are those of encoding the whole store from scratch
    assert path.read_bytes() == encode_checkpoint(store.claims(), boot_id="boot-1")
    doc = json.loads(path.read_bytes())
    reference = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    assert path.read_bytes() == reference
    assert sorted(decode_checkpoint(path.read_bytes())) == ["u0", "u2", "u3", "u4"]


# --- where the write runs: on the loop on a tmpfs, on a thread elsewhere ---

_SHM = pathlib.Path("/dev/shm")


@pytest.fixture
def shm_dir() -> Iterator[pathlib.Path]:
    if filesystem_type(_SHM) != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm")
    d = pathlib.Path(tempfile.mkdtemp(prefix="dnt-ckpt-", dir=_SHM))
    yield d
    shutil.rmtree(d, ignore_errors=True)


async def test_on_a_tmpfs_writes_stay_on_the_loop_and_concurrent_ones_are_shared(
    shm_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ClaimStore(shm_dir / "dranet.db")
    await store.put_plan(_plan("first"))  # the first write finds out the file system
    assert store.inline is True
    loop = asyncio.get_running_loop()

    def no_thread(*args: object) -> None:
        raise AssertionError("a tmpfs write left the event loop")

    monkeypatch.setattr(loop, "run_in_executor", no_thread)
    before = store.writes
    await asyncio.gather(*(store.put_plan(_plan(f"u{i}", (f"eth{i}",))) for i in range(50)))
    assert store.writes - before <= 2
    assert len(decode_checkpoint((shm_dir / "dranet.db").read_bytes())) == 51


async def test_on_a_tmpfs_a_failed_write_undoes_the_mutation(shm_dir: pathlib.Path) -> None:
    path = shm_dir / "dranet.db"
    store = ClaimStore(path)
    await store.put_plan(_plan("a"))
    assert store.inline is True

    def broken(data: bytes) -> None:
        raise OSError(28, "No space left on device")

    store._write = broken  # type: ignore[method-assign]
    with pytest.raises(CheckpointError, match="No space left on device"):
        await store.set_device_state("a", "eth1", _ATTACHED)
    assert store.device_state("a", "eth1") == DeviceState()
    assert decode_checkpoint(path.read_bytes())["a"].devices["eth1"] == DeviceState()


async def test_elsewhere_writes_run_on_a_thread(tmp_path: pathlib.Path) -> None:
    if filesystem_type(tmp_path) == "tmpfs":
        pytest.skip("the temporary directory is a tmpfs here")
    store = ClaimStore(tmp_path / "cp.json")
    await store.put_plan(_plan("a"))
    assert store.inline is False


def test_the_file_system_type_is_that_of_the_longest_mount_point(tmp_path: pathlib.Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/vda / ext4 rw 0 0\n"
        "tmpfs /run tmpfs rw 0 0\n"
        "tmpfs /run/with\\040space tmpfs rw 0 0\n"
        "/dev/vdb /run/dranet xfs rw 0 0\n"
    )
    assert filesystem_type("/run/x/dranet.db", str(mounts)) == "tmpfs"
    assert filesystem_type("/run/dranet/dranet.db", str(mounts)) == "xfs"
    assert filesystem_type("/run/with space/a", str(mounts)) == "tmpfs"
    assert filesystem_type("/runaway/a", str(mounts)) == "ext4"
    assert filesystem_type("/x", str(tmp_path / "missing")) is None


# --- a write after a burst of new claims encodes them a slice at a time ---


async def test_a_write_of_many_new_claims_lets_the_loop_run_between_slices(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ClaimStore(tmp_path / "cp.json")
    events: list[str] = []
    real = checkpoint_module.encode_claim

    def tracing(pc: PreparedClaim) -> bytes:
        events.append("encode")
        return real(pc)

    monkeypatch.setattr(checkpoint_module, "encode_claim", tracing)
    stop = asyncio.Event()

    async def other_work() -> None:  # stands for the kubelet, NRI and API callbacks
        while not stop.is_set():
            events.append("turn")
            await asyncio.sleep(0)

    ticker = asyncio.create_task(other_work())
    await asyncio.gather(*(store.put_plan(_plan(f"u{i}", ("eth1",))) for i in range(200)))
    stop.set()
    await ticker
    runs, run = [], 0
    for e in events:
        run = run + 1 if e == "encode" else 0
        runs.append(run)
    assert events.count("encode") == 200  # each claim encoded once
    assert max(runs) <= 32  # ENCODE_SLICE: never more in one turn of the loop
    assert len(decode_checkpoint((tmp_path / "cp.json").read_bytes())) == 200


async def test_a_mutation_made_while_a_write_encodes_gets_a_write_of_its_own(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cp.json"
    store = ClaimStore(path)
    await store.put_plan(_plan("first"))
    real = checkpoint_module.encode_claim
    late: list[asyncio.Task[PreparedClaim]] = []
    written: list[list[str]] = []
    real_write = store._write

    def tracing(pc: PreparedClaim) -> bytes:
        if pc.uid == "u40" and not late:  # part-way through the big write's encode
            late.append(asyncio.ensure_future(store.put_plan(_plan("late"))))
        return real(pc)

    def recording(data: bytes) -> None:
        written.append(sorted(decode_checkpoint(data)))
        real_write(data)

    monkeypatch.setattr(checkpoint_module, "encode_claim", tracing)
    store._write = recording  # type: ignore[method-assign]
    await asyncio.gather(*(store.put_plan(_plan(f"u{i}", ("eth1",))) for i in range(100)))
    await late[0]
    big = next(w for w in written if "u99" in w)
    assert "late" not in big  # not in the write whose encode was under way
    assert "late" in written[-1]
    assert "late" in decode_checkpoint(path.read_bytes())
