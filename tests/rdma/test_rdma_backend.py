"""The rdma backend as the driver sees it: create(), capabilities, config validation, device nodes."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from rdma_helpers import FakeRdmaKernel, add_pci, add_rdma

from dranet_backends.rdma import RdmaBackend, RdmaMover, create, detect_netns_mode
from dranet_backends.rdma.backend import scan_sysfs
from dranet_backends.rdma.chardev import device_node, device_nodes
from dranet_core.backends import BackendContext, available_backends, load_backend
from dranet_core.capabilities import handler_table
from dranet_core.claim_allocator import plan_claim
from dranet_core.config.model import InterfaceConfig, NetworkConfig
from dranet_core.errors import BackendError, ConfigError
from dranet_core.plans import PreparedDevice
from dranet_core.types import AllocationResult, Claim, ClaimRef, Device, DeviceNode, OpaqueConfig, PodSandbox


def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("probe euid==0 failed: creating char device nodes (mknod) needs root")


def _mknod(path: Path, major: int, minor: int, kind: int = stat.S_IFCHR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, kind | 0o600, os.makedev(major, minor))


def test_create_loads_everywhere_and_has_every_capability(tmp_path: Path) -> None:
    backend = create(BackendContext(node_name="n", sysfs=tmp_path))
    assert backend.name == "rdma"
    table = handler_table([backend])
    assert table.capabilities["rdma"] == ("discover", "move", "validate", "adjust", "health")
    # this kernel has no RDMA netlink: the probe falls back to shared, as the Go driver
    assert backend.mode in ("shared", "exclusive")


def test_entry_point_loads_the_backend(tmp_path: Path) -> None:
    ep = available_backends()["rdma"]
    backend = load_backend(
        ep, BackendContext(node_name="n", sysfs=tmp_path, options={"rdma.netns_mode": "shared"})
    )
    assert isinstance(backend, RdmaBackend)
    assert backend.mode == "shared"


def test_create_reads_options(tmp_path: Path) -> None:
    ctx = BackendContext(
        node_name="n",
        sysfs=tmp_path / "sys",
        procfs=tmp_path / "proc",
        host_netns=Path("/run/netns/host"),
        options={
            "rdma.netns_mode": "exclusive",
            "rdma.dev_root": str(tmp_path / "dev"),
            "rdma.poll_interval": "2.5",
        },
    )
    b = create(ctx)
    assert (b.sysfs, b.dev_root, b.mode, b.poll_interval) == (
        tmp_path / "sys",
        tmp_path / "dev",
        "exclusive",
        2.5,
    )
    assert b.mover.host_netns == "/run/netns/host"
    assert b.procfs == tmp_path / "proc"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rdma.netns_mode": "private"}, "netns_mode"),
        ({"rdma.poll_interval": "soon"}, "poll_interval"),
        ({"rdma.poll_interval": "0"}, "poll_interval"),
    ],
)
def test_create_rejects_bad_options(options: dict[str, str], message: str) -> None:
    with pytest.raises(BackendError, match=message):
        create(BackendContext(node_name="n", options=options))


def test_mode_probe_failure_means_shared(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    with caplog.at_level(logging.INFO):
        assert detect_netns_mode(str(tmp_path / "no-such-netns")) == "shared"
    assert "assuming shared" in caplog.text


def _device(*facets: str) -> Device:
    data = {"netdev": {"ifname": "eth1", "ifindex": 7}, "rdma": {"dev": "mlx5_0", "char_devices": []}}
    return Device(name="pci-0000-08-00-0", facets={f: data[f] for f in facets})


def test_validation_rejects_netdev_settings_only_for_ib_only_devices() -> None:
    backend = RdmaBackend()
    cfg = NetworkConfig(interface=InterfaceConfig(name="net1", mtu=9000))
    backend.validate_config(_device("netdev", "rdma"), cfg)  # has a netdev: fine
    with pytest.raises(ConfigError) as info:
        backend.validate_config(_device("rdma"), cfg)
    assert sorted(i.path for i in info.value.issues) == ["interface.mtu", "interface.name"]
    backend.validate_config(_device("rdma"), NetworkConfig())  # nothing netdev-ish: fine


def test_an_rdma_section_is_refused_for_a_device_without_rdma() -> None:
    backend = RdmaBackend()
    table = handler_table([backend])
    params = {"rdma": {"uid": 1000}}

    def plan(dev: Device) -> None:
        claim = Claim(
            ref=ClaimRef(namespace="default", name="c", uid="u"),
            results=(AllocationResult(request="r", driver="dra.net", pool="n", device=dev.name),),
            configs=(OpaqueConfig(source="FromClaim", driver="dra.net", parameters=params),),
        )
        plan_claim(claim, {dev.name: dev}, driver="dra.net", pool="n", taken={}, validators=table.validators)

    plan(_device("netdev", "rdma"))
    with pytest.raises(ConfigError) as info:  # refused by the driver's ownership check
        plan(_device("netdev"))
    assert [str(i) for i in info.value.issues] == [
        "device pci-0000-08-00-0.rdma: not allowed: device pci-0000-08-00-0 is not a rdma device "
        "(it has no rdma facet; a 'rdma' section applies only to devices the rdma backend discovered)"
    ]


def _prepared(chars: list[str]) -> PreparedDevice:
    return PreparedDevice(
        pool="n",
        device="pci-0000-08-00-0",
        request_names=("r",),
        facets={"rdma": {"dev": "mlx5_0", "char_devices": chars}},
    )


def test_device_nodes_stat_real_char_devices(tmp_path: Path) -> None:
    _needs_root()
    dev = tmp_path / "dev"
    _mknod(dev / "infiniband" / "uverbs0", 231, 192)
    _mknod(dev / "infiniband" / "umad0", 231, 0)
    _mknod(dev / "infiniband" / "rdma_cm", 10, 58)
    backend = RdmaBackend(dev_root=dev)
    nodes = backend.device_nodes(_prepared(["/dev/infiniband/uverbs0", "/dev/infiniband/umad0"]))
    assert nodes == [
        DeviceNode(path="/dev/infiniband/uverbs0", type="c", major=231, minor=192, file_mode=0o666),
        DeviceNode(path="/dev/infiniband/umad0", type="c", major=231, minor=0, file_mode=0o666),
        DeviceNode(path="/dev/infiniband/rdma_cm", type="c", major=10, minor=58, file_mode=0o666),
    ]
    # a device without an rdma facet gets nothing (the driver asks every adjuster)
    assert backend.device_nodes(PreparedDevice(pool="n", device="eth1", request_names=("r",))) == []


def test_device_nodes_skip_what_cannot_be_stat_ed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _needs_root()
    dev = tmp_path / "dev"
    _mknod(dev / "infiniband" / "uverbs0", 231, 192)
    _mknod(dev / "sda", 8, 0, stat.S_IFBLK)
    (dev / "infiniband" / "plain").write_text("not a device")
    paths = [
        "/dev/infiniband/uverbs0",
        "/dev/infiniband/uverbs0",  # duplicate
        "/dev/infiniband/missing",
        "/dev/infiniband/plain",
        "/dev/../etc/passwd",
        "relative/path",
        "/dev/sda",
    ]
    with caplog.at_level(logging.WARNING):
        nodes = device_nodes(paths, dev)
    assert [(n.path, n.type, n.major, n.minor) for n in nodes] == [
        ("/dev/infiniband/uverbs0", "c", 231, 192),
        ("/dev/sda", "b", 8, 0),
    ]
    for word in ("missing", "not a device file", "not a path under /dev"):
        assert word in caplog.text
    # rdma_cm absent on this fake host: logged and skipped, the rest still returned
    assert RdmaBackend(dev_root=dev).device_nodes(_prepared(["/dev/infiniband/uverbs0"])) == [nodes[0]]


def test_device_node_of_a_missing_dev_root_is_none(tmp_path: Path) -> None:
    assert device_node("/dev/infiniband/uverbs0", tmp_path / "nowhere") is None


async def test_backend_delegates_moves_to_its_mover(tmp_path: Path) -> None:
    backend = RdmaBackend(mode="shared")
    dev = _prepared([])
    snap = await backend.snapshot(dev)
    assert snap["mode"] == "shared"
    result = await backend.attach(dev, _pod(), snap)
    assert [(c.type, c.reason) for c in result.conditions] == [("Ready", "RDMAOnlyDeviceReady")]
    await backend.detach(dev, _pod(), snap)
    assert "shared" in repr(backend)


def _pod() -> PodSandbox:
    return PodSandbox(uid="u", name="p", namespace="ns", netns="/proc/self/ns/net")


async def test_scan_of_a_real_looking_tree_counts_scans(tmp_path: Path) -> None:
    add_rdma(tmp_path, "mlx5_0", pci=add_pci(tmp_path, "0000:08:00.0", netdevs=["eth1"]))
    backend = RdmaBackend(sysfs=tmp_path)
    assert [d.name for d in await backend.scan()] == ["pci-0000-08-00-0"]
    assert backend.scans == 1


@pytest.mark.parametrize("scanned_first", [True, False])
async def test_exclusive_moved_devices_stay_listed_until_detached(
    tmp_path: Path, scanned_first: bool
) -> None:
    """Exclusive mode: the infiniband class is netns-aware, the moved device leaves host sysfs."""
    sysfs = tmp_path / "sys"
    add_rdma(sysfs, "mlx5_0", pci=add_pci(sysfs, "0000:08:00.0"))
    host, podns = tmp_path / "host-ns", tmp_path / "pod-ns"
    host.write_text("")
    podns.write_text("")
    kernel = FakeRdmaKernel(host=str(host))
    kernel.add(1, "mlx5_0")
    try:
        backend = RdmaBackend(
            sysfs=sysfs, mover=RdmaMover(mode="exclusive", host_netns=str(host), opener=kernel.open)
        )
        before = list(await backend.scan()) if scanned_first else []
        (dev,) = before or scan_sysfs(sysfs)
        prepared = PreparedDevice(pool="n", device=dev.name, request_names=("r",), facets=dict(dev.facets))
        pod = PodSandbox(uid="u", name="p", namespace="ns", netns=str(podns))
        snap = await backend.snapshot(prepared)
        await backend.attach(prepared, pod, snap)
        (sysfs / "class" / "infiniband" / "mlx5_0").unlink()  # gone from the host's sysfs
        (held,) = await backend.scan()
        assert held.name == dev.name
        assert held.attributes["dra.net/rdmaDevice"] == "mlx5_0"
        assert held.facets["rdma"]["dev"] == "mlx5_0"
        if scanned_first:
            assert held == dev  # the last known attributes, unchanged
        await backend.detach(prepared, pod, snap)
        assert list(await backend.scan()) == []  # no longer held (and not back in the fake sysfs)
    finally:
        kernel.close()
