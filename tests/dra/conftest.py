"""Fixtures for the kubelet-side tests: official grpcio stubs and a test "node".

The grpcio stubs are compiled at test time with grpc_tools.protoc (official protobuf/upb
codec, an implementation independent of betterproto2/grpclib) from the same .proto files, so
the tests talk to our servers the way the kubelet's grpc-go does.
"""

from __future__ import annotations

import contextlib
import importlib
import pathlib
import shutil
import sys
import tempfile
import types
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import grpc
import pytest

from dranet_core.checkpoint import ClaimStore
from dranet_core.claim_allocator import ClaimAllocator
from dranet_core.dra import DefaultPreparer, KubeletPlugin
from dranet_core.kube.claims import ApiClaimSource
from dranet_core.plans import ClaimPlan
from dranet_core.testing.kubelet import compile_kubelet_protos
from dranet_core.types import Device

DRIVER = "dra.net"
NODE = "node-a"


@pytest.fixture(scope="session")
def pb() -> Iterator[types.SimpleNamespace]:
    """Official protobuf + grpcio modules for registration, DRA v1 and DRA v1beta1."""
    out = pathlib.Path(tempfile.mkdtemp(prefix="dnt-dra-pb-"))
    files = [
        "kubelet/pluginregistration/v1/api.proto",
        "kubelet/dra/v1/api.proto",
        "kubelet/dra/v1beta1/api.proto",
    ]
    compile_kubelet_protos(out, files)
    sys.path.insert(0, str(out))
    try:
        ns = types.SimpleNamespace(
            reg=importlib.import_module("kubelet.pluginregistration.v1.api_pb2"),
            reg_grpc=importlib.import_module("kubelet.pluginregistration.v1.api_pb2_grpc"),
            v1=importlib.import_module("kubelet.dra.v1.api_pb2"),
            v1_grpc=importlib.import_module("kubelet.dra.v1.api_pb2_grpc"),
            v1beta1=importlib.import_module("kubelet.dra.v1beta1.api_pb2"),
            v1beta1_grpc=importlib.import_module("kubelet.dra.v1beta1.api_pb2_grpc"),
        )
        yield ns
    finally:
        sys.path.remove(str(out))
        shutil.rmtree(out, ignore_errors=True)


def resource_claim(
    name: str,
    uid: str,
    devices: Sequence[tuple[str, str]] = (("nic", "eth1"),),
    *,
    namespace: str = "default",
    pods: Sequence[str] = ("pod-1",),
    parameters: dict[str, Any] | None = None,
    allocated: bool = True,
    share_id: str | None = None,
) -> dict[str, Any]:
    """A resource.k8s.io/v1 ResourceClaim as the API server returns it."""
    results = []
    for req, dev in devices:
        r: dict[str, Any] = {"request": req, "driver": DRIVER, "pool": NODE, "device": dev}
        if share_id:
            r["shareID"] = share_id
        results.append(r)
    status: dict[str, Any] = {"reservedFor": [{"resource": "pods", "name": f"p-{p}", "uid": p} for p in pods]}
    if allocated:
        config = []
        if parameters is not None:
            config.append(
                {
                    "source": "FromClaim",
                    "requests": [],
                    "opaque": {"driver": DRIVER, "parameters": parameters},
                }
            )
        status["allocation"] = {"devices": {"results": results, "config": config}}
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
        "spec": {"devices": {"requests": [{"name": r} for r, _ in devices]}},
        "status": status,
    }


def inventory(*names: str) -> dict[str, Device]:
    return {
        n: Device(name=n, attributes={"dra.net/ifName": n}, facets={"netdev": {"ifName": n}}) for n in names
    }


def plans(allocator: ClaimAllocator) -> dict[str, ClaimPlan]:
    """The prepared claims' plans, by claim UID, as the checkpoint holds them."""
    return {uid: pc.plan for uid, pc in allocator.store.claims().items()}


class Node:
    """One test node: fake API objects, checkpoint, allocator, preparer and the kubelet plugin."""

    def __init__(
        self, root: pathlib.Path, api_client: Any, *, checkpoint: pathlib.Path | None = None
    ) -> None:
        self.root = root
        self.api_client = api_client
        self.checkpoint = checkpoint or root / "state" / "checkpoint.json"
        self.inventory = inventory(*(f"eth{i}" for i in range(1, 41)))
        self.problems: list[Any] = []
        self.store = ClaimStore(self.checkpoint, on_problem=self.problems.append)
        self.allocator = ClaimAllocator(DRIVER, NODE, self.store)
        self.source: Any = ApiClaimSource(api_client, driver_name=DRIVER, pool=NODE)
        self.preparer = DefaultPreparer(self.source, self.allocator, lambda: self.inventory)
        self.plugin = KubeletPlugin(DRIVER, self.preparer, kubelet_root=root, watch_interval=0.05)
        self._channels: list[grpc.aio.Channel] = []

    async def start(self) -> None:
        await self.store.load()
        await self.plugin.start()

    def channel(self, path: pathlib.Path) -> grpc.aio.Channel:
        ch = grpc.aio.insecure_channel(f"unix://{path}")
        self._channels.append(ch)
        return ch

    def dra_stub(self, pb: types.SimpleNamespace, version: str = "v1") -> Any:
        mod = getattr(pb, f"{version}_grpc")
        return mod.DRAPluginStub(self.channel(self.plugin.paths.dra_socket))

    def reg_stub(self, pb: types.SimpleNamespace) -> Any:
        return pb.reg_grpc.RegistrationStub(self.channel(self.plugin.paths.registration_socket))

    async def close(self) -> None:
        for ch in self._channels:
            await ch.close()
        self._channels.clear()
        await self.plugin.shutdown(grace=1.0)


@pytest.fixture
def kubelet_root() -> Iterator[pathlib.Path]:
    """A short temporary kubelet root dir (unix socket paths must stay under 108 bytes)."""
    root = pathlib.Path(tempfile.mkdtemp(prefix=f"dnt-dra-{uuid.uuid4().hex[:6]}-", dir="/tmp"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def node(kubelet_root: pathlib.Path, fake_api_client: Any) -> AsyncIterator[Node]:
    n = Node(kubelet_root, fake_api_client)
    await n.start()
    try:
        yield n
    finally:
        with contextlib.suppress(Exception):
            await n.close()
