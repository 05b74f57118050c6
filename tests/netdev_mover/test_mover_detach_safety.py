"""Detach never reports a device gone unless it is, and parked devices survive a restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from mover_lab import Lab, host_state, ipj, sh

from dranet_backends.netdev.attach import MAX_ROUTES
from dranet_backends.netdev.mover import NetdevMover
from dranet_backends.netdev.renames import STATE_FILE
from dranet_core.config.model import InterfaceConfig, NetworkConfig, RouteConfig
from dranet_core.errors import DeviceError, DeviceNotFoundError

pytestmark = pytest.mark.netns


async def _until(cond: object, what: str) -> None:
    for _ in range(400):
        if cond():  # type: ignore[operator]
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"still not {what} after 10 s")


async def test_netns_path_gone_but_namespace_alive_brings_the_device_home_from_it(
    lab: Lab, mover: NetdevMover
) -> None:
    lab.veth("hv0", "hv0p")
    lab.ip(lab.node, "addr", "add", "192.0.2.5/24", "dev", "hv0")
    before = host_state(lab.node, "hv0")
    dev = lab.device("hv0", NetworkConfig(interface=InterfaceConfig(name="net1")))
    pod = lab.pod_sandbox()
    snap = await mover.snapshot(dev)
    await mover.attach(dev, pod, snap)
    # a process inside keeps the pod's namespace alive after its path is removed
    holder = await asyncio.create_subprocess_exec("ip", "netns", "exec", lab.pod, "sleep", "120")
    try:
        await _until(
            lambda: (
                Path(f"/proc/{holder.pid}/ns/net").stat().st_ino
                == Path(f"/run/netns/{lab.pod}").stat().st_ino
            ),
            "inside the pod netns",
        )
        sh(["ip", "netns", "del", lab.pod])
        await mover.detach(dev, pod, snap)  # found in the live namespace, not declared lost
        assert mover.lost == []
        assert host_state(lab.node, "hv0") == before
        left = sh(["nsenter", f"--net=/proc/{holder.pid}/ns/net", "ip", "-j", "link", "show"])
        assert [x["ifname"] for x in json.loads(left)] == ["lo"]
    finally:
        holder.kill()
        await holder.wait()


async def test_virtual_device_whose_namespace_ended_is_recorded_lost(lab: Lab, mover: NetdevMover) -> None:
    lab.veth("hv0", "hv0p")
    dev = lab.device("hv0", NetworkConfig(interface=InterfaceConfig(name="net1")))
    pod = lab.pod_sandbox()
    snap = await mover.snapshot(dev)
    await mover.attach(dev, pod, snap)
    sh(["ip", "netns", "del", lab.pod])
    await _until(lambda: not [x for x in ipj(lab.node, "link", "show") if x["ifname"] == "hv0p"], "gone")
    await mover.detach(dev, pod, snap)
    assert mover.lost == ["hv0"]


async def test_device_neither_in_live_pod_nor_home_is_an_error(lab: Lab, mover: NetdevMover) -> None:
    lab.veth("hv0", "hv0p")
    dev = lab.device("hv0", NetworkConfig(interface=InterfaceConfig(name="net1")))
    pod = lab.pod_sandbox()
    snap = await mover.snapshot(dev)
    await mover.attach(dev, pod, snap)
    lab.ip(lab.pod, "link", "set", "net1", "name", "moved")
    lab.ip(lab.pod, "link", "set", "moved", "address", "02:00:00:00:00:99")  # no longer recognisable
    with pytest.raises(DeviceNotFoundError) as info:
        await mover.detach(dev, pod, snap)
    assert "neither in the pod nor on the host" in info.value.reason
    assert mover.lost == []


async def test_parked_device_is_renamed_back_after_a_restart(lab: Lab, tmp_path: Path) -> None:
    lab.veth("hv0", "hv0p")
    lab.ip(lab.node, "addr", "add", "192.0.2.5/24", "dev", "hv0")
    before = host_state(lab.node, "hv0")
    state = tmp_path / STATE_FILE
    dev = lab.device("hv0")
    first = NetdevMover(host_netns=f"/run/netns/{lab.node}", state_file=state)
    try:
        snap = await first.snapshot(dev)
        await first.attach(dev, lab.pod_sandbox(), snap)
        lab.ip(lab.node, "link", "add", "hv0", "type", "veth", "peer", "name", "squat")
        await first.detach(dev, lab.pod_sandbox(), snap)
        assert list(first.pending_renames.values()) == ["hv0"]
    finally:
        await first.aclose()  # the driver stops while the device is parked
    saved = json.loads(state.read_text())
    assert [e["device"] for e in saved["parked"]] == ["hv0"]
    lab.ip(lab.node, "link", "del", "hv0")  # the name frees while the driver is down
    second = NetdevMover(host_netns=f"/run/netns/{lab.node}", state_file=state, rename_retry_interval=0.05)
    try:
        assert list(second.pending_renames.values()) == ["hv0"]
        async with asyncio.TaskGroup() as tg:
            runner = tg.create_task(second.run(), name="rename retrier")
            await _until(lambda: not second.pending_renames, "renamed back")
            runner.cancel()
    finally:
        await second.aclose()
    assert host_state(lab.node, "hv0") == before
    assert json.loads(state.read_text())["parked"] == []


async def test_unusable_parked_state_is_set_aside(lab: Lab, tmp_path: Path) -> None:
    state = tmp_path / STATE_FILE
    state.write_text("[" * 100000 + "]" * 100000)
    m = NetdevMover(host_netns=f"/run/netns/{lab.node}", state_file=state)
    try:
        assert m.pending_renames == {}
    finally:
        await m.aclose()
    assert not state.exists()
    assert state.with_name(STATE_FILE + ".bad").exists()


async def test_mtu_above_the_device_maximum_names_field_value_and_limit(lab: Lab, mover: NetdevMover) -> None:
    lab.veth("hv0", "hv0p")
    before = host_state(lab.node, "hv0")
    top = ipj(lab.node, "-d", "link", "show", "dev", "hv0")[0]["max_mtu"]
    dev = lab.device("hv0", NetworkConfig(interface=InterfaceConfig(name="net1", mtu=top + 1)))
    snap = await mover.snapshot(dev)
    with pytest.raises(DeviceError) as info:
        await mover.attach(dev, lab.pod_sandbox(), snap)
    assert info.value.step == "move"
    assert info.value.reason == f"interface.mtu {top + 1} is above the maximum MTU {top} of hv0"
    assert host_state(lab.node, "hv0") == before


async def test_unreachable_gateway_names_the_route(lab: Lab, mover: NetdevMover) -> None:
    lab.veth("hv0", "hv0p")
    before = host_state(lab.node, "hv0")
    cfg = NetworkConfig(
        interface=InterfaceConfig(name="net1", addresses=("10.9.0.2/24",)),
        routes=(RouteConfig(destination="10.77.0.0/16", gateway="10.8.0.1"),),
    )
    dev = lab.device("hv0", cfg)
    snap = await mover.snapshot(dev)
    with pytest.raises(DeviceError) as info:
        await mover.attach(dev, lab.pod_sandbox(), snap)
    assert info.value.step == "routes"
    assert "route 10.77.0.0/16 via 10.8.0.1: Network is unreachable" in info.value.reason
    assert host_state(lab.node, "hv0") == before


async def test_too_many_routes_fail_the_routes_step_with_the_bound(lab: Lab, mover: NetdevMover) -> None:
    lab.veth("hv0", "hv0p")
    before = host_state(lab.node, "hv0")
    routes = tuple(RouteConfig(destination=f"10.{i // 250}.{i % 250}.0/24") for i in range(MAX_ROUTES + 1))
    cfg = NetworkConfig(interface=InterfaceConfig(name="net1", addresses=("192.0.2.2/24",)), routes=routes)
    dev = lab.device("hv0", cfg)
    snap = await mover.snapshot(dev)
    with pytest.raises(DeviceError) as info:
        await mover.attach(dev, lab.pod_sandbox(), snap)
    assert info.value.step == "routes"
    assert f"{MAX_ROUTES + 1} routes for one device; at most {MAX_ROUTES} are applied" in info.value.reason
    assert list(ipj(lab.pod, "-4", "route", "show")) == []
    assert host_state(lab.node, "hv0") == before
