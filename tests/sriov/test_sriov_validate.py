"""Prepare-time checks: no netdev settings for vfio/uio devices, VF MTU <= PF MTU (PF MTU from sysfs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sriov_fakes import FakeSysfs, sriov_node, userspace_only

from dranet_backends.pci import PciIds
from dranet_backends.sriov import SriovBackend
from dranet_backends.sriov.facet import SriovFacet
from dranet_backends.sriov.sysfs import kernel_vfs
from dranet_core.claim_allocator import plan_claim
from dranet_core.config.model import (
    EthtoolConfig,
    InterfaceConfig,
    NeighborConfig,
    NetworkConfig,
    RouteConfig,
    RuleConfig,
)
from dranet_core.errors import ConfigError, ConfigIssue
from dranet_core.types import AllocationResult, Claim, ClaimRef, Device, OpaqueConfig

D = "dra.net/"


@pytest.fixture
def fs(tmp_path: Path) -> FakeSysfs:
    f = FakeSysfs(tmp_path / "sys")
    sriov_node(f)  # PF eth1 (MTU 1500), VF0 vfio-pci, VF1 kernel-bound (eth2)
    return f


@pytest.fixture
def b(fs: FakeSysfs) -> SriovBackend:
    return SriovBackend(sysfs=fs.root, pci_ids=PciIds(paths=()))


async def vfio_device(b: SriovBackend) -> Device:
    (dev,) = userspace_only(await b.scan())
    return dev


def kernel_vf(b: SriovBackend, address: str = "0000:00:03.2") -> Device:
    """A kernel-bound VF as the driver's inventory holds it: the netdev backend's attributes and
    facet merged with the sriov backend's facet (only then is the sriov validator asked)."""
    (fn,) = [f for f in kernel_vfs(b.sysfs) if f.address == address]
    return Device(
        name="pci-0000-00-03-2",
        attributes={D + "pciAddress": address, D + "isSriovVf": True, D + "ifName": "eth2", D + "mtu": 1500},
        facets={"netdev": {"ifname": "eth2", "ifindex": 9}, "sriov": SriovFacet.of(fn).to_json()},
    )


def mtu(value: int) -> NetworkConfig:
    return NetworkConfig(interface=InterfaceConfig(mtu=value))


async def test_vfio_device_rejects_every_netdev_setting_with_its_path(b: SriovBackend) -> None:
    dev = await vfio_device(b)
    config = NetworkConfig(
        interface=InterfaceConfig(name="net1", mtu=9000, addresses=("192.0.2.1/24",)),
        routes=(RouteConfig(destination="0.0.0.0/0", gateway="192.0.2.254"),),
        rules=(RuleConfig(priority=100, table=10),),
        neighbors=(NeighborConfig(destination="192.0.2.9", hardware_addr="02:00:00:00:00:09"),),
        ethtool=EthtoolConfig(features={"tso": False}),
    )
    with pytest.raises(ConfigError) as err:
        b.validate_config(dev, config)
    paths = [i.path for i in err.value.issues]
    assert paths == [
        "interface.name",
        "interface.addresses",
        "interface.mtu",
        "routes",
        "rules",
        "neighbors",
        "ethtool.features",
    ]
    assert all("bound to vfio-pci and has no network interface" in i.rule for i in err.value.issues)
    assert "pci-0000-00-03-1" in str(err.value)


async def test_vfio_device_accepts_a_profile_and_empty_settings(b: SriovBackend) -> None:
    dev = await vfio_device(b)
    b.validate_config(dev, NetworkConfig())
    b.validate_config(dev, NetworkConfig(profile="dpdk", routes=(), ethtool=EthtoolConfig(features={})))


def test_kernel_vf_mtu_above_the_pf_mtu_is_rejected_naming_both(b: SriovBackend) -> None:
    with pytest.raises(ConfigError) as err:
        b.validate_config(kernel_vf(b), mtu(9000))
    assert err.value.issues == (
        ConfigIssue("interface.mtu", "must be <= 1500, the MTU of the VF's physical function eth1, got 9000"),
    )


def test_kernel_vf_mtu_up_to_the_pf_mtu_is_fine(b: SriovBackend, fs: FakeSysfs) -> None:
    b.validate_config(kernel_vf(b), mtu(1500))
    b.validate_config(kernel_vf(b), mtu(1280))
    b.validate_config(kernel_vf(b), NetworkConfig(interface=InterfaceConfig(name="net1")))
    (fs.dev("0000:00:03.0") / "net" / "eth1" / "mtu").write_text("9000\n")  # read live, at prepare time
    b.validate_config(kernel_vf(b), mtu(9000))


def test_vf_mtu_is_not_checked_when_the_pf_has_no_netdev_here(b: SriovBackend, fs: FakeSysfs) -> None:
    fs.add("0000:00:0c.0", driver="ice", group=50, totalvfs=8, numvfs=1)
    fs.add("0000:00:0c.1", driver="iavf", group=51, pf="0000:00:0c.0", vf_index=0, netdev="eth7")
    b.validate_config(kernel_vf(b, "0000:00:0c.1"), mtu(9000))


async def test_a_broken_facet_is_a_config_error_not_a_crash(b: SriovBackend) -> None:
    dev = Device(name="pci-0000-00-03-1", facets={"sriov": {"pci_address": "0000:00:03.1"}})
    with pytest.raises(ConfigError, match="sriov facet: missing or bad key 'driver'"):
        b.validate_config(dev, NetworkConfig())


async def test_plan_claim_runs_the_check_with_the_real_config_resolver(b: SriovBackend) -> None:
    inventory = {d.name: d for d in [await vfio_device(b), kernel_vf(b)]}
    ref = ClaimRef(namespace="default", name="c", uid="u1")

    def claim(device: str, params: dict[str, object]) -> Claim:
        return Claim(
            ref=ref,
            results=(AllocationResult(request="nic", driver="dra.net", pool="node", device=device),),
            configs=(OpaqueConfig(source="FromClaim", driver="dra.net", parameters=params),),
        )

    def plan(c: Claim) -> object:
        return plan_claim(c, inventory, driver="dra.net", pool="node", taken={}, validators=[("sriov", b)])

    with pytest.raises(ConfigError) as err:
        plan(claim("pci-0000-00-03-2", {"interface": {"mtu": 9000}}))
    assert [i.path for i in err.value.issues] == ["device pci-0000-00-03-2.interface.mtu"]
    assert "1500" in str(err.value) and "9000" in str(err.value)
    with pytest.raises(ConfigError) as err:
        plan(claim("pci-0000-00-03-1", {"interface": {"addresses": ["192.0.2.1/24"]}}))
    assert [i.path for i in err.value.issues] == ["device pci-0000-00-03-1.interface.addresses"]
    ok = plan_claim(
        claim("pci-0000-00-03-1", {"profile": "dpdk"}),
        inventory,
        driver="dra.net",
        pool="node",
        taken={},
        validators=[("sriov", b)],
    )
    assert [d.device for d in ok.devices] == ["pci-0000-00-03-1"]
    assert ok.devices[0].facets["sriov"]["iommu_group"] == 12


def test_pf_mtu_comes_from_the_first_pf_netdev(b: SriovBackend, fs: FakeSysfs) -> None:
    fs.add_netdev("0000:00:03.0", "aaa0", 1280)  # sorts before eth1
    with pytest.raises(
        ConfigError, match="must be <= 1280, the MTU of the VF's physical function aaa0, got 1500"
    ):
        b.validate_config(kernel_vf(b), mtu(1500))
