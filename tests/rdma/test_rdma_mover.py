"""The RDMA link mover against a fake RDMA netlink kernel (namespaces stood in for by files)."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
from rdma_helpers import FakeRdmaKernel, ns_key

from dranet_backends.rdma import RdmaMover
from dranet_core.errors import DeviceError
from dranet_core.mover import AttachResult
from dranet_core.plans import PreparedDevice
from dranet_core.types import PodSandbox


@attrs.frozen
class Env:
    kernel: FakeRdmaKernel
    host: str
    pod: PodSandbox
    mover: RdmaMover


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    host = tmp_path / "host-ns"
    pod = tmp_path / "pod-ns"
    host.write_text("")
    pod.write_text("")
    kernel = FakeRdmaKernel(host=str(host))
    kernel.add(3, "mlx5_0")
    kernel.add(4, "mlx5_1")
    mover = RdmaMover(mode="exclusive", host_netns=str(host), opener=kernel.open, timeout=2.0)
    try:
        yield Env(kernel, str(host), PodSandbox(uid="u1", name="p", namespace="ns", netns=str(pod)), mover)
    finally:
        kernel.close()


def _dev(*facets: str, rdma: str = "mlx5_0") -> PreparedDevice:
    data = {"netdev": {"ifname": "eth1", "ifindex": 7}, "rdma": {"dev": rdma, "char_devices": []}}
    return PreparedDevice(
        pool="n", device="pci-0000-08-00-0", request_names=("r",), facets={f: data[f] for f in facets}
    )


def _conds(result: AttachResult) -> list[tuple[str, str]]:
    return [(c.type, c.reason) for c in result.conditions]


async def test_exclusive_attach_moves_the_link_into_the_pod(env: Env) -> None:
    dev = _dev("netdev", "rdma")
    snap = await env.mover.snapshot(dev)
    assert snap == {"dev": "mlx5_0", "mode": "exclusive", "index": 3}
    result = await env.mover.attach(dev, env.pod, snap)
    assert _conds(result) == [("RDMALinkReady", "RDMALinkReady")]
    assert env.kernel.where("mlx5_0") == ns_key(str(env.pod.netns))
    assert env.kernel.where("mlx5_1") == ns_key(env.host)  # untouched
    # the SET went out from the host socket with ACK
    assert (env.host, 2, 0x5) in env.kernel.requests


async def test_attach_is_idempotent(env: Env) -> None:
    dev = _dev("netdev", "rdma")
    snap = await env.mover.snapshot(dev)
    await env.mover.attach(dev, env.pod, snap)
    moves = len(env.kernel.moves)
    result = await env.mover.attach(dev, env.pod, snap)  # resumed after a crash
    assert _conds(result) == [("RDMALinkReady", "RDMALinkReady")]
    assert len(env.kernel.moves) == moves


async def test_detach_brings_it_home_from_a_pod_socket(env: Env) -> None:
    dev = _dev("netdev", "rdma")
    snap = await env.mover.snapshot(dev)
    await env.mover.attach(dev, env.pod, snap)
    env.kernel.requests.clear()
    await env.mover.detach(dev, env.pod, snap)
    assert env.kernel.where("mlx5_0") == ns_key(env.host)
    # looked up and moved from a socket opened in the pod netns
    assert [(ns, cmd) for ns, cmd, _ in env.kernel.requests] == [(env.pod.netns, 1), (env.pod.netns, 2)]
    await env.mover.detach(dev, env.pod, snap)  # idempotent: already home
    assert env.kernel.where("mlx5_0") == ns_key(env.host)


async def test_detach_with_the_netns_gone_checks_the_host(env: Env, tmp_path: Path) -> None:
    dev = _dev("netdev", "rdma")
    snap = await env.mover.snapshot(dev)
    gone = attrs.evolve(env.pod, netns=str(tmp_path / "deleted-ns"))
    await env.mover.detach(dev, gone, snap)  # the kernel returned it to init_net: fine
    env.kernel.devices[3][1] = (0, 0)  # somewhere else entirely
    with pytest.raises(DeviceError) as info:
        await env.mover.detach(dev, gone, snap)
    assert info.value.device == "pci-0000-08-00-0"
    assert "neither" in str(info.value)


async def test_ib_only_device_gets_rdma_only_condition(env: Env) -> None:
    dev = _dev("rdma", rdma="mlx5_1")
    snap = await env.mover.snapshot(dev)
    result = await env.mover.attach(dev, env.pod, snap)
    assert _conds(result) == [("RDMALinkReady", "RDMALinkReady"), ("Ready", "RDMAOnlyDeviceReady")]


async def test_shared_mode_moves_nothing(env: Env) -> None:
    shared = RdmaMover(mode="shared", host_netns=env.host, opener=env.kernel.open)
    for dev, expected in (
        (_dev("netdev", "rdma"), []),
        (_dev("rdma"), [("Ready", "RDMAOnlyDeviceReady")]),
    ):
        snap = await shared.snapshot(dev)
        assert snap == {"dev": "mlx5_0", "mode": "shared", "index": None}
        assert _conds(await shared.attach(dev, env.pod, snap)) == expected
        await shared.detach(dev, env.pod, snap)
    assert env.kernel.requests == []  # no netlink at all
    assert env.kernel.where("mlx5_0") == ns_key(env.host)


async def test_detach_follows_the_mode_recorded_at_attach(env: Env) -> None:
    dev = _dev("rdma")
    snap = await env.mover.snapshot(dev)
    await env.mover.attach(dev, env.pod, snap)
    restarted = RdmaMover(mode="shared", host_netns=env.host, opener=env.kernel.open)
    await restarted.detach(dev, env.pod, snap)
    assert env.kernel.where("mlx5_0") == ns_key(env.host)


async def test_kernel_refusal_is_a_device_error(env: Env) -> None:
    dev = _dev("netdev", "rdma")
    snap = await env.mover.snapshot(dev)
    env.kernel.fail[2] = errno.EBUSY
    with pytest.raises(DeviceError) as info:
        await env.mover.attach(dev, env.pod, snap)
    assert info.value.step == "rdma set netns"
    assert "Device or resource busy" in info.value.reason
    assert env.kernel.where("mlx5_0") == ns_key(env.host)  # nothing moved


@pytest.mark.parametrize(
    ("case", "step"),
    [("unknown", "rdma snapshot"), ("no-facet", "rdma facet"), ("no-kernel", "rdma snapshot")],
)
async def test_snapshot_errors(env: Env, case: str, step: str) -> None:
    dev = _dev("netdev", "rdma", rdma="mlx5_7")
    if case == "no-facet":
        dev = attrs.evolve(dev, facets={"rdma": {"char_devices": []}})
    if case == "no-kernel":
        env.kernel.fail[1] = errno.EPROTONOSUPPORT
        dev = _dev("netdev", "rdma")
    with pytest.raises(DeviceError) as info:
        await env.mover.snapshot(dev)
    assert info.value.step == step
    assert info.value.device == "pci-0000-08-00-0"


async def test_attach_errors_for_missing_or_foreign_netns(env: Env, tmp_path: Path) -> None:
    dev = _dev("netdev", "rdma")
    snap = await env.mover.snapshot(dev)
    with pytest.raises(DeviceError, match="no network namespace"):
        await env.mover.attach(dev, attrs.evolve(env.pod, netns=None), snap)
    with pytest.raises(DeviceError, match="cannot open"):
        await env.mover.attach(dev, attrs.evolve(env.pod, netns=str(tmp_path / "nope")), snap)
    env.kernel.devices[3][1] = (0, 0)  # in some other netns
    with pytest.raises(DeviceError, match="not in the host netns"):
        await env.mover.attach(dev, env.pod, snap)


def test_repr_names_mode_and_host(env: Env) -> None:
    assert "exclusive" in repr(env.mover)
    assert env.host in repr(env.mover)
