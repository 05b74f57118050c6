"""The kubelet side driven by grpcio (official protobuf codec), as the kubelet would."""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import stat
import types
from typing import Any

import grpc
import pytest
from conftest import DRIVER, NODE, Node, plans, resource_claim

from dranet_core.checkpoint import decode_checkpoint
from dranet_core.dra import KubeletPlugin
from dranet_core.errors import AlreadyRunningError
from dranet_core.types import Claim, ClaimRef

pytestmark = pytest.mark.socket


def claims_msg(mod: Any, *refs: tuple[str, str], namespace: str = "default") -> list[Any]:
    return [mod.Claim(namespace=namespace, name=name, uid=uid) for name, uid in refs]


async def prepare(node: Node, pb: types.SimpleNamespace, *refs: tuple[str, str], version: str = "v1") -> Any:
    mod = getattr(pb, version)
    stub = node.dra_stub(pb, version)
    return await stub.NodePrepareResources(
        mod.NodePrepareResourcesRequest(claims=claims_msg(mod, *refs)), timeout=10
    )


async def unprepare(
    node: Node, pb: types.SimpleNamespace, *refs: tuple[str, str], version: str = "v1"
) -> Any:
    mod = getattr(pb, version)
    stub = node.dra_stub(pb, version)
    return await stub.NodeUnprepareResources(
        mod.NodeUnprepareResourcesRequest(claims=claims_msg(mod, *refs)), timeout=10
    )


# --- registration ---


async def test_registration_handshake(
    node: Node, pb: types.SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    stub = node.reg_stub(pb)
    info = await stub.GetInfo(pb.reg.InfoRequest(), timeout=5)
    assert info.type == "DRAPlugin"
    assert info.name == DRIVER
    assert info.endpoint == str(node.root / "plugins" / DRIVER / "dra.sock")
    assert os.path.isabs(info.endpoint)
    assert list(info.supported_versions) == ["v1.DRAPlugin", "v1beta1.DRAPlugin"]
    assert node.plugin.health.registered is False

    await stub.NotifyRegistrationStatus(pb.reg.RegistrationStatus(plugin_registered=True), timeout=5)
    assert node.plugin.health.registered is True and node.plugin.health.last_error is None
    await asyncio.wait_for(node.plugin.wait_registered(), 1)

    caplog.set_level(logging.ERROR)
    await stub.NotifyRegistrationStatus(
        pb.reg.RegistrationStatus(plugin_registered=False, error="no supported version"), timeout=5
    )
    assert node.plugin.health.registered is False
    assert node.plugin.health.last_error == "no supported version"
    assert "rejected the registration" in caplog.text and "no supported version" in caplog.text
    # the kubelet keeps polling GetInfo on the same connection
    for _ in range(3):
        assert (await stub.GetInfo(pb.reg.InfoRequest(), timeout=5)).name == DRIVER
    assert node.plugin.health.info_calls == 4


async def test_sockets_and_dirs_have_restrictive_modes(node: Node) -> None:
    paths = node.plugin.paths
    for sock in (paths.dra_socket, paths.registration_socket):
        st = os.stat(sock)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
    for d in (paths.dra_socket.parent, paths.registration_socket.parent):
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o750
    # no hidden temporary files left next to the sockets
    assert sorted(os.listdir(paths.registration_socket.parent)) == [f"{DRIVER}-reg.sock"]


# --- prepare / unprepare ---


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
async def test_prepare_and_unprepare(
    node: Node, pb: types.SimpleNamespace, fake_api: Any, version: str
) -> None:
    fake_api.put_object(
        resource_claim(
            "c1",
            "uid-1",
            [("nic", "eth1"), ("nic2/sub", "eth2")],
            parameters={"interface": {"name": "net1", "mtu": 1400}},
        )
    )
    resp = await prepare(node, pb, ("c1", "uid-1"), version=version)
    assert set(resp.claims) == {"uid-1"}
    entry = resp.claims["uid-1"]
    assert entry.error == ""
    got = [(list(d.request_names), d.pool_name, d.device_name, list(d.cdi_device_ids)) for d in entry.devices]
    assert got == [(["nic"], NODE, "eth1", []), (["nic2"], NODE, "eth2", [])]
    plan = node.allocator.get("uid-1")
    assert plan.pods == ("pod-1",)
    assert plan.devices[0].config.interface is not None and plan.devices[0].config.interface.mtu == 1400
    assert "uid-1" in decode_checkpoint(node.checkpoint.read_bytes())

    resp2 = await unprepare(node, pb, ("c1", "uid-1"), version=version)
    assert dict(resp2.claims)["uid-1"].error == ""
    assert plans(node.allocator) == {}
    assert decode_checkpoint(node.checkpoint.read_bytes()) == {}


async def test_v1_reports_share_id(node: Node, pb: types.SimpleNamespace, fake_api: Any) -> None:
    sub = {"subinterface": {"type": "macvlan"}}  # a shared device is used through a child
    fake_api.put_object(resource_claim("c1", "uid-1", share_id="s-1", parameters=sub))
    resp = await prepare(node, pb, ("c1", "uid-1"))
    dev = resp.claims["uid-1"].devices[0]
    assert dev.HasField("share_id") and dev.share_id == "s-1"
    fake_api.put_object(resource_claim("c2", "uid-2", [("nic", "eth2")]))
    dev2 = (await prepare(node, pb, ("c2", "uid-2"))).claims["uid-2"].devices[0]
    assert not dev2.HasField("share_id")


async def test_one_bad_claim_does_not_fail_the_others(
    node: Node, pb: types.SimpleNamespace, fake_api: Any
) -> None:
    fake_api.put_object(resource_claim("good1", "u-good1", [("nic", "eth1")]))
    fake_api.put_object(resource_claim("good2", "u-good2", [("nic", "eth2")]))
    fake_api.put_object(resource_claim("replaced", "u-new", [("nic", "eth3")]))
    fake_api.put_object(resource_claim("notalloc", "u-na", allocated=False))
    fake_api.put_object(resource_claim("nodev", "u-nodev", [("nic", "eth99")]))
    fake_api.put_object(
        resource_claim("badcfg", "u-bad", [("nic", "eth4")], parameters={"interface": {"mtu": 20}})
    )
    fake_api.put_object(resource_claim("twopods", "u-2p", [("nic", "eth5")], pods=("a", "b")))
    resp = await prepare(
        node,
        pb,
        ("good1", "u-good1"),
        ("missing", "u-missing"),
        ("replaced", "u-old"),
        ("notalloc", "u-na"),
        ("nodev", "u-nodev"),
        ("badcfg", "u-bad"),
        ("twopods", "u-2p"),
        ("good2", "u-good2"),
    )
    errors = {uid: r.error for uid, r in resp.claims.items()}
    assert set(errors) == {"u-good1", "u-missing", "u-old", "u-na", "u-nodev", "u-bad", "u-2p", "u-good2"}
    assert errors["u-good1"] == "" and errors["u-good2"] == ""
    assert [d.device_name for d in resp.claims["u-good1"].devices] == ["eth1"]
    assert "not found in the API server" in errors["u-missing"]
    assert "deleted and re-created" in errors["u-old"] and "u-new" in errors["u-old"]
    assert "not allocated" in errors["u-na"]
    assert "eth99" in errors["u-nodev"] and "not on this node" in errors["u-nodev"]
    assert "interface.mtu" in errors["u-bad"]  # the JSON path of the bad field
    assert "2 pods" in errors["u-2p"]
    assert sorted(plans(node.allocator)) == ["u-good1", "u-good2"]
    for bad in ("u-missing", "u-old", "u-na", "u-nodev", "u-bad", "u-2p"):
        assert resp.claims[bad].devices == [] or len(resp.claims[bad].devices) == 0


async def test_repeated_calls_are_idempotent(node: Node, pb: types.SimpleNamespace, fake_api: Any) -> None:
    fake_api.put_object(resource_claim("c1", "uid-1"))
    first = await prepare(node, pb, ("c1", "uid-1"))
    raw = node.checkpoint.read_bytes()
    fake_api.clear_requests()
    again = await prepare(node, pb, ("c1", "uid-1"), version="v1beta1")
    assert [d.device_name for d in again.claims["uid-1"].devices] == ["eth1"]
    assert again.claims["uid-1"].error == first.claims["uid-1"].error == ""
    assert node.checkpoint.read_bytes() == raw
    assert fake_api.requests_for("resourceclaims") == []  # answered from the checkpoint
    for _ in range(2):
        assert (await unprepare(node, pb, ("c1", "uid-1"))).claims["uid-1"].error == ""
    # unprepare of something never prepared is fine too
    assert (await unprepare(node, pb, ("zz", "uid-never"))).claims["uid-never"].error == ""


async def test_concurrent_calls(node: Node, pb: types.SimpleNamespace, fake_api: Any) -> None:
    for i in range(1, 31):
        fake_api.put_object(resource_claim(f"c{i}", f"u{i}", [("nic", f"eth{i}")]))
    stub = node.dra_stub(pb)
    calls = [
        stub.NodePrepareResources(
            pb.v1.NodePrepareResourcesRequest(claims=claims_msg(pb.v1, (f"c{i}", f"u{i}"))), timeout=10
        )
        for i in range(1, 31)
    ]
    resps = await asyncio.gather(*calls)
    assert all(r.claims[f"u{i}"].error == "" for i, r in enumerate(resps, start=1))
    assert len(plans(node.allocator)) == 30
    # the same claim from many calls at once: one plan, every answer the same
    fake_api.put_object(resource_claim("same", "u-same", [("nic", "eth31")]))
    resps = await asyncio.gather(*(prepare(node, pb, ("same", "u-same")) for _ in range(10)))
    assert {r.claims["u-same"].devices[0].device_name for r in resps} == {"eth31"}
    # prepare racing unprepare for the same UID: serialised, never a leaked device
    await asyncio.gather(prepare(node, pb, ("same", "u-same")), unprepare(node, pb, ("same", "u-same")))
    resp = await unprepare(node, pb, ("same", "u-same"))
    assert resp.claims["u-same"].error == ""
    assert "u-same" not in plans(node.allocator) and "eth31" not in node.allocator.taken()


async def test_restart_between_prepare_and_unprepare(
    kubelet_root: pathlib.Path, fake_api_client: Any, fake_api: Any, pb: types.SimpleNamespace
) -> None:
    first = Node(kubelet_root, fake_api_client)
    await first.start()
    try:
        fake_api.put_object(resource_claim("c1", "uid-1", [("nic", "eth1")]))
        assert (await prepare(first, pb, ("c1", "uid-1"))).claims["uid-1"].error == ""
    finally:
        await first.close()
    assert not first.plugin.paths.dra_socket.exists()
    # the claim is deleted while the driver is down
    fake_api.delete_object("resourceclaims", "c1", "default")
    second = Node(kubelet_root, fake_api_client)
    await second.start()
    try:
        assert list(plans(second.allocator)) == ["uid-1"]  # from the checkpoint
        # a repeated prepare after restart answers from the checkpoint, API object gone or not
        again = await prepare(second, pb, ("c1", "uid-1"))
        assert [d.device_name for d in again.claims["uid-1"].devices] == ["eth1"]
        # eth1 is still taken by uid-1
        fake_api.put_object(resource_claim("c2", "uid-2", [("nic", "eth1")]))
        assert (
            "already prepared for claim uid-1"
            in (await prepare(second, pb, ("c2", "uid-2"))).claims["uid-2"].error
        )
        assert (await unprepare(second, pb, ("c1", "uid-1"))).claims["uid-1"].error == ""
        assert (await prepare(second, pb, ("c2", "uid-2"))).claims["uid-2"].error == ""
    finally:
        await second.close()


async def test_corrupt_checkpoint_does_not_stop_the_driver(
    kubelet_root: pathlib.Path, fake_api_client: Any, fake_api: Any, pb: types.SimpleNamespace
) -> None:
    cp = kubelet_root / "state" / "checkpoint.json"
    cp.parent.mkdir()
    cp.write_bytes(b'{"version": 1, "claims": {"x": ')
    n = Node(kubelet_root, fake_api_client, checkpoint=cp)
    await n.start()
    try:
        assert len(n.problems) == 1 and "not JSON" in n.problems[0].reason
        assert any(p.name.startswith("checkpoint.json.corrupt-") for p in cp.parent.iterdir())
        fake_api.put_object(resource_claim("c1", "uid-1"))
        assert (await prepare(n, pb, ("c1", "uid-1"))).claims["uid-1"].error == ""
        assert "uid-1" in decode_checkpoint(cp.read_bytes())
    finally:
        await n.close()


async def test_api_version_fallback(node: Node, pb: types.SimpleNamespace, fake_api: Any) -> None:
    fake_api.serve_versions("resource.k8s.io", "v1beta1")
    fake_api.put_object(resource_claim("c1", "uid-1"))
    resp = await prepare(node, pb, ("c1", "uid-1"), version="v1beta1")
    assert resp.claims["uid-1"].error == ""
    paths = [r.path for r in fake_api.requests_for("resourceclaims")]
    assert paths == ["/apis/resource.k8s.io/v1beta1/namespaces/default/resourceclaims/c1"]


async def test_api_server_down_is_a_per_claim_error(
    node: Node, pb: types.SimpleNamespace, fake_api: Any
) -> None:
    fake_api.put_object(resource_claim("c1", "uid-1"))
    fake_api.fail_next("GET", "/apis/resource.k8s.io/v1/namespaces", status=503)
    resp = await prepare(node, pb, ("c1", "uid-1"))
    assert "HTTP 503" in resp.claims["uid-1"].error
    assert plans(node.allocator) == {}
    # the kubelet retries; now it works
    assert (await prepare(node, pb, ("c1", "uid-1"))).claims["uid-1"].error == ""


async def test_unprepare_hook_sees_plan_and_its_failure_keeps_the_claim(
    node: Node, pb: types.SimpleNamespace, fake_api: Any
) -> None:
    seen: list[tuple[str, Any]] = []
    fail = [True]

    async def hook(ref: ClaimRef, plan: Any) -> None:
        seen.append((ref.uid, None if plan is None else [d.device for d in plan.devices]))
        if fail[0]:
            raise RuntimeError("device still attached")

    node.preparer.on_unprepare.append(hook)
    fake_api.put_object(resource_claim("c1", "uid-1"))
    await prepare(node, pb, ("c1", "uid-1"))
    resp = await unprepare(node, pb, ("c1", "uid-1"))
    assert "device still attached" in resp.claims["uid-1"].error
    assert "uid-1" in plans(node.allocator)
    fail[0] = False
    assert (await unprepare(node, pb, ("c1", "uid-1"))).claims["uid-1"].error == ""
    assert seen == [("uid-1", ["eth1"]), ("uid-1", ["eth1"])]
    assert plans(node.allocator) == {}


# --- sockets, instances, shutdown ---


async def test_second_instance_is_refused(node: Node, pb: types.SimpleNamespace, fake_api: Any) -> None:
    other = KubeletPlugin(DRIVER, node.preparer, kubelet_root=node.root)
    with pytest.raises(AlreadyRunningError, match="another instance"):
        await other.start()
    # the first instance still owns and serves its sockets
    info = await node.reg_stub(pb).GetInfo(pb.reg.InfoRequest(), timeout=5)
    assert info.name == DRIVER


async def test_stale_socket_files_are_replaced(
    kubelet_root: pathlib.Path, fake_api_client: Any, pb: types.SimpleNamespace
) -> None:
    n = Node(kubelet_root, fake_api_client)
    for p in (n.plugin.paths.dra_socket, n.plugin.paths.registration_socket):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("stale")
    await n.start()
    try:
        assert stat.S_ISSOCK(os.stat(n.plugin.paths.dra_socket).st_mode)
        assert (await n.reg_stub(pb).GetInfo(pb.reg.InfoRequest(), timeout=5)).name == DRIVER
    finally:
        await n.close()


async def test_deleted_socket_is_recreated(node: Node, pb: types.SimpleNamespace) -> None:
    reg = node.plugin.paths.registration_socket
    old_stub = node.reg_stub(pb)
    assert (await old_stub.GetInfo(pb.reg.InfoRequest(), timeout=5)).name == DRIVER
    runner = asyncio.create_task(node.plugin.run())
    try:
        reg.unlink()  # what a kubelet restart does to plugins_registry
        for _ in range(100):
            if reg.exists():
                break
            await asyncio.sleep(0.02)
        assert stat.S_ISSOCK(os.stat(reg).st_mode) and stat.S_IMODE(os.stat(reg).st_mode) == 0o600
        # a new kubelet connection works, and so does the old one
        assert (await node.reg_stub(pb).GetInfo(pb.reg.InfoRequest(), timeout=5)).name == DRIVER
        assert (await old_stub.GetInfo(pb.reg.InfoRequest(), timeout=5)).name == DRIVER
        # replaced by some other file: re-created too
        reg.unlink()
        reg.write_text("not a socket")
        assert await node.plugin.check_sockets() is True
        assert stat.S_ISSOCK(os.stat(reg).st_mode)
    finally:
        await node.plugin.shutdown(grace=1)
        await runner
    assert not reg.exists() and not node.plugin.paths.dra_socket.exists()


class SlowSource:
    def __init__(self, inner: Any, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.started = asyncio.Event()

    async def get(self, ref: ClaimRef) -> Claim:
        self.started.set()
        await asyncio.sleep(self.delay)
        claim: Claim = await self.inner.get(ref)
        return claim


async def test_graceful_shutdown_finishes_the_call_in_flight(
    node: Node, pb: types.SimpleNamespace, fake_api: Any
) -> None:
    slow = SlowSource(node.source, 0.3)
    node.preparer.source = slow
    fake_api.put_object(resource_claim("c1", "uid-1"))
    call = asyncio.ensure_future(prepare(node, pb, ("c1", "uid-1")))
    await asyncio.wait_for(slow.started.wait(), 5)
    await node.plugin.shutdown(grace=3)
    resp = await call
    assert resp.claims["uid-1"].error == ""
    assert "uid-1" in plans(node.allocator)
    assert not node.plugin.paths.dra_socket.exists()
    assert not node.plugin.paths.registration_socket.exists()


async def test_shutdown_cancels_calls_that_outlive_the_grace(
    node: Node, pb: types.SimpleNamespace, fake_api: Any
) -> None:
    slow = SlowSource(node.source, 30)
    node.preparer.source = slow
    fake_api.put_object(resource_claim("c1", "uid-1"))
    call = asyncio.ensure_future(prepare(node, pb, ("c1", "uid-1")))
    await asyncio.wait_for(slow.started.wait(), 5)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await node.plugin.shutdown(grace=0.3)
    assert loop.time() - t0 < 3
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    assert plans(node.allocator) == {}


async def test_draining_refuses_new_prepares_but_serves_unprepares(
    node: Node, pb: types.SimpleNamespace, fake_api: Any
) -> None:
    fake_api.put_object(resource_claim("c1", "uid-1"))
    fake_api.put_object(resource_claim("c2", "uid-2", [("nic", "eth2")]))
    await prepare(node, pb, ("c1", "uid-1"))
    node.plugin.service.drain()
    assert "shutting down" in (await prepare(node, pb, ("c2", "uid-2"))).claims["uid-2"].error
    assert (await unprepare(node, pb, ("c1", "uid-1"))).claims["uid-1"].error == ""
    assert plans(node.allocator) == {}


async def test_preparer_crash_becomes_per_claim_errors(node: Node, pb: types.SimpleNamespace) -> None:
    class Broken:
        async def prepare(self, claims: Any) -> Any:
            raise RuntimeError("boom")

        async def unprepare(self, claims: Any) -> Any:
            return {}

    node.plugin.service.preparer = Broken()
    resp = await prepare(node, pb, ("a", "u-a"), ("b", "u-b"))
    assert {u: r.error for u, r in resp.claims.items()} == {
        "u-a": "internal error: boom",
        "u-b": "internal error: boom",
    }
    resp2 = await unprepare(node, pb, ("a", "u-a"))
    assert "no result" in resp2.claims["u-a"].error


@pytest.mark.parametrize("version", ["v1", "v1beta1"])
async def test_requests_are_decoded_without_betterproto2s_parser(
    node: Node, pb: types.SimpleNamespace, fake_api: Any, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    """The servers decode the kubelet's requests with FastProtoCodec, not betterproto2's parser."""
    from dranet_core._generated import pluginregistration
    from dranet_core._generated.k8s.io.kubelet.pkg.apis.dra import v1, v1beta1

    def refuse(cls: type, data: bytes) -> Any:
        raise AssertionError(f"betterproto2 parsed a {cls.__name__}")

    for mod in (v1, v1beta1):
        for name in ("NodePrepareResourcesRequest", "NodeUnprepareResourcesRequest", "Claim"):
            monkeypatch.setattr(getattr(mod, name), "parse", classmethod(refuse))
    for cls in (pluginregistration.InfoRequest, pluginregistration.RegistrationStatus):
        monkeypatch.setattr(cls, "parse", classmethod(refuse))
    stub = node.reg_stub(pb)
    assert (await stub.GetInfo(pb.reg.InfoRequest(), timeout=5)).name == DRIVER
    await stub.NotifyRegistrationStatus(pb.reg.RegistrationStatus(plugin_registered=True), timeout=5)
    assert node.plugin.health.registered is True
    fake_api.put_object(resource_claim("c1", "uid-1", [("nic", "eth1")]))
    resp = await prepare(node, pb, ("c1", "uid-1"), version=version)
    assert resp.claims["uid-1"].error == "" and len(resp.claims["uid-1"].devices) == 1
    resp2 = await unprepare(node, pb, ("c1", "uid-1"), version=version)
    assert resp2.claims["uid-1"].error == ""
    assert plans(node.allocator) == {}


async def test_unknown_method_is_unimplemented(node: Node, pb: types.SimpleNamespace) -> None:
    ch = node.channel(node.plugin.paths.dra_socket)
    call = ch.unary_unary(
        "/k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin/NodeFrobnicate",
        request_serializer=lambda b: b,
        response_deserializer=lambda b: b,
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(b"", timeout=5)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_existing_kubelet_dirs_keep_their_mode(
    kubelet_root: pathlib.Path, fake_api_client: Any
) -> None:
    registry = kubelet_root / "plugins_registry"
    registry.mkdir()
    os.chmod(registry, 0o755)
    n = Node(kubelet_root, fake_api_client)
    await n.start()
    try:
        assert stat.S_IMODE(os.stat(registry).st_mode) == 0o755
        assert stat.S_IMODE(os.stat(kubelet_root / "plugins" / DRIVER).st_mode) == 0o750
        assert stat.S_IMODE(os.stat(kubelet_root / "plugins").st_mode) == 0o750
    finally:
        await n.close()


async def test_cancelling_run_closes_the_plugin(node: Node) -> None:
    runner = asyncio.create_task(node.plugin.run())
    await asyncio.sleep(0.05)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert not node.plugin.paths.dra_socket.exists()
    assert not node.plugin.paths.registration_socket.exists()
    # the lock is free again: a new instance can start
    again = KubeletPlugin(DRIVER, node.preparer, kubelet_root=node.root)
    await again.start()
    await again.shutdown(0)


async def test_a_symlinked_instance_lock_is_replaced_and_its_target_untouched(
    kubelet_root: pathlib.Path, fake_api_client: Any, tmp_path: pathlib.Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    plugin_dir = kubelet_root / "plugins" / DRIVER
    plugin_dir.mkdir(parents=True)
    lock = plugin_dir / "instance.lock"
    lock.symlink_to(victim)
    n = Node(kubelet_root, fake_api_client)
    await n.start()
    try:
        assert victim.read_text() == "keep me\n"
        assert not lock.is_symlink() and lock.read_text() == f"{os.getpid()}\n"
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    finally:
        await n.close()


async def test_plugin_dirs_are_0750_under_umask_0(kubelet_root: pathlib.Path, fake_api_client: Any) -> None:
    old = os.umask(0)
    try:
        n = Node(kubelet_root / "deep" / "root", fake_api_client)
        await n.start()
    finally:
        os.umask(old)
    try:
        for d in (
            kubelet_root / "deep",
            kubelet_root / "deep" / "root",
            kubelet_root / "deep" / "root" / "plugins",
        ):
            assert stat.S_IMODE(os.stat(d).st_mode) == 0o750, d
    finally:
        await n.close()
