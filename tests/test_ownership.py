"""The one ownership rule: every per-device capability is called only for devices whose facets
name its backend, by the core; a backend section on a device its backend does not own is refused
by the core."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from dranet_core.backend_health import BackendHealth
from dranet_core.capabilities import handler_table
from dranet_core.checkpoint import ClaimStore
from dranet_core.claim_allocator import plan_claim, resolve_plan
from dranet_core.config.model import NetworkConfig, RdmaConfig, SriovConfig
from dranet_core.errors import ConfigError, ConfigIssue, DeviceError
from dranet_core.health import Health
from dranet_core.mover import AttachResult
from dranet_core.ownership import owned, owns, section_issues
from dranet_core.plans import ClaimPlan, PreparedDevice
from dranet_core.pods import PodNetworking
from dranet_core.types import (
    JSON,
    AllocationResult,
    Claim,
    ClaimRef,
    ConsumerRef,
    Device,
    DeviceNode,
    OpaqueConfig,
    PodSandbox,
)

# eth1: only netdev's; vf0: netdev's and sriov's; mlx0: rdma's only
INVENTORY = {
    "eth1": Device(name="eth1", facets={"netdev": {}}),
    "vf0": Device(name="vf0", facets={"netdev": {}, "sriov": {}}),
    "mlx0": Device(name="mlx0", facets={"rdma": {}}),
}
POD = PodSandbox(uid="pod-1", name="p1", namespace="default", netns="/run/netns/x")


class Spy:
    """A backend with every per-device capability, recording the devices it was asked about."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.asked: list[tuple[str, str]] = []

    async def snapshot(self, device: PreparedDevice) -> JSON:
        self.asked.append(("snapshot", device.device))
        return None

    async def attach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> AttachResult:
        self.asked.append(("attach", device.device))
        return AttachResult()

    async def detach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> None:
        self.asked.append(("detach", device.device))

    def validate_config(self, device: Device, config: NetworkConfig) -> None:
        self.asked.append(("validate", device.name))

    async def resolve_config(self, device: Device, config: NetworkConfig) -> NetworkConfig:
        self.asked.append(("resolve", device.name))
        return config

    def device_nodes(self, device: PreparedDevice) -> Sequence[DeviceNode]:
        self.asked.append(("adjust", device.device))
        return [DeviceNode(path=f"/dev/{self.name}-{device.device}", type="c", major=1, minor=1)]

    async def health(self) -> Mapping[str, bool]:
        self.asked.append(("health", "*"))
        return dict.fromkeys(INVENTORY, False)  # claims to speak for every device


def spies() -> tuple[Spy, Spy, Spy]:
    return Spy("netdev"), Spy("sriov"), Spy("rdma")


def claim(*devices: str, params: Mapping[str, object] | None = None) -> Claim:
    configs = (OpaqueConfig(source="FromClaim", driver="dra.net", parameters=dict(params)),) if params else ()
    return Claim(
        ref=ClaimRef(namespace="default", name="c", uid="c1"),
        results=tuple(
            AllocationResult(request="r", driver="dra.net", pool="node", device=d) for d in devices
        ),
        configs=configs,
        reserved_for=(ConsumerRef(resource="pods", name="p1", uid="pod-1"),),
    )


def plan(c: Claim, backends: Sequence[Spy]) -> ClaimPlan:
    table = handler_table(backends)
    return plan_claim(c, INVENTORY, driver="dra.net", pool="node", taken={}, validators=table.validators)


def test_the_rule_is_the_facet_key() -> None:
    assert owns("sriov", INVENTORY["vf0"])
    assert not owns("sriov", INVENTORY["eth1"])
    assert owned([("netdev", 1), ("sriov", 2), ("rdma", 3)], INVENTORY["vf0"]) == [
        ("netdev", 1),
        ("sriov", 2),
    ]


def test_the_table_keeps_each_handler_with_its_backend_name() -> None:
    n, s, r = spies()
    table = handler_table([n, s, r])
    for pairs in (table.movers, table.validators, table.resolvers, table.adjusters, table.health):
        assert [name for name, _ in pairs] == ["netdev", "sriov", "rdma"]


def test_validators_are_asked_only_for_their_own_devices() -> None:
    n, s, r = spies()
    plan(claim("eth1", "vf0", "mlx0"), [n, s, r])
    assert n.asked == [("validate", "eth1"), ("validate", "vf0")]
    assert s.asked == [("validate", "vf0")]
    assert r.asked == [("validate", "mlx0")]


async def test_resolvers_are_asked_only_for_their_own_devices() -> None:
    n, s, r = spies()
    table = handler_table([n, s, r])
    p = plan(claim("eth1", "mlx0"), [n, s, r])
    for b in (n, s, r):
        b.asked.clear()
    await resolve_plan(p, INVENTORY, table.resolvers)
    assert n.asked == [("resolve", "eth1")]
    assert s.asked == []
    assert r.asked == [("resolve", "mlx0")]


@pytest.mark.parametrize(
    ("section", "config", "device"),
    [
        ("sriov", {"sriov": {"vlan": 5}}, "eth1"),
        ("rdma", {"rdma": {"fileMode": 438}}, "vf0"),
    ],
)
def test_a_backend_section_on_a_device_its_backend_does_not_own_is_refused_by_the_core(
    section: str, config: Mapping[str, object], device: str
) -> None:
    n, s, r = spies()
    with pytest.raises(ConfigError) as err:
        plan(claim(device, params=config), [n, s, r])
    (issue,) = err.value.issues
    assert issue.path == f"device {device}.{section}"
    assert f"device {device} is not a {section} device" in issue.rule
    assert f"a '{section}' section applies only to devices the {section} backend discovered" in issue.rule
    assert n.asked == s.asked == r.asked == []  # refused before any backend is asked


def test_a_backend_section_on_its_own_device_passes_the_core_check() -> None:
    assert section_issues("vf0", INVENTORY["vf0"].facets, NetworkConfig(sriov=SriovConfig(vlan=5))) == []
    assert section_issues("mlx0", INVENTORY["mlx0"].facets, NetworkConfig(rdma=RdmaConfig())) == []
    assert section_issues("eth1", INVENTORY["eth1"].facets, NetworkConfig(rdma=RdmaConfig())) == [
        ConfigIssue(
            "rdma",
            "not allowed: device eth1 is not a rdma device (it has no rdma facet; "
            "a 'rdma' section applies only to devices the rdma backend discovered)",
        )
    ]


async def _pods(tmp_path: Path, backends: Sequence[Spy], p: ClaimPlan) -> PodNetworking:
    store = ClaimStore(tmp_path / "ckpt.json")
    await store.load()
    await store.put_plan(p)
    table = handler_table(backends)
    return PodNetworking(
        store=store,
        movers=table.movers,
        driver_name="dra.net",
        pool="node",
        device_nodes=[(name, a.device_nodes) for name, a in table.adjusters],
    )


async def test_movers_and_adjusters_are_asked_only_for_their_own_devices(tmp_path: Path) -> None:
    n, s, r = spies()
    pods = await _pods(tmp_path, [n, s, r], plan(claim("vf0", "mlx0"), [n, s, r]))
    for b in (n, s, r):
        b.asked.clear()
    nodes = pods.container_devices(POD)
    assert [d.path for d in nodes] == ["/dev/netdev-vf0", "/dev/sriov-vf0", "/dev/rdma-mlx0"]
    await pods.attach_pod(POD)
    await pods.detach_pod(POD)
    assert n.asked == [("adjust", "vf0"), ("snapshot", "vf0"), ("attach", "vf0"), ("detach", "vf0")]
    assert s.asked == [("adjust", "vf0"), ("snapshot", "vf0"), ("attach", "vf0"), ("detach", "vf0")]
    assert r.asked == [("adjust", "mlx0"), ("snapshot", "mlx0"), ("attach", "mlx0"), ("detach", "mlx0")]


async def test_a_device_no_loaded_backend_owns_cannot_be_attached(tmp_path: Path) -> None:
    n, s, _ = spies()
    pods = await _pods(tmp_path, [n, s], plan(claim("mlx0"), [n, s]))
    with pytest.raises(DeviceError, match=r"mlx0: attach: no backend can move it \(facets: \['rdma'\]\)"):
        await pods.attach_pod(POD)
    assert n.asked == s.asked == []


async def test_health_counts_only_for_devices_the_backend_owns() -> None:
    n, s, r = spies()
    table = handler_table([n, s, r])
    health = Health()
    seen: list[Mapping[str, bool]] = []
    bh = BackendHealth(
        table.health, health.part("device health"), devices=lambda: INVENTORY, on_devices=seen.append
    )
    await bh.check()
    # every spy says every device is unhealthy; only the owners' word counts
    assert dict(bh.devices) == {"eth1": False, "vf0": False, "mlx0": False}
    s_only = BackendHealth(table.health[1:2], health.part("sriov"), devices=lambda: INVENTORY)
    await s_only.check()
    assert dict(s_only.devices) == {"vf0": False}
    r_only = BackendHealth(table.health[2:], health.part("rdma"), devices=lambda: INVENTORY)
    await r_only.check()
    assert dict(r_only.devices) == {"mlx0": False}
