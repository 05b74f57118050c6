"""ClaimStore: JSON round trips, atomic persistence, corrupt files set aside, group commit."""

from __future__ import annotations

import asyncio
import json
import os
import pathlib

import pytest

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
        (
            b'{"version": 1, "claims": {"u": {"plan": {"claim": {"namespace": "n", "name": "c"}}}}}',
            "claims.u.plan.claim.uid: missing",
        ),
        (
            b'{"version": 1, "claims": {"u": {"plan": {"claim": {"namespace": "n", "name": "c", "uid": "u"}},'
            b' "devices": {"d": {"phase": "flying"}}}}}',
            "unknown phase",
        ),
        (
            b'{"version": 1, "claims": {"u": {"plan": {"claim": '
            b'{"namespace": "n", "name": "c", "uid": "v"}}}}}',
            "plan is for claim uid v",
        ),
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
