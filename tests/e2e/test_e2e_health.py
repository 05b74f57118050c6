"""Device health on the real ``dranet run`` (KEP-4680): grpcio plays the kubelet's health
client on the DRA socket, in both versions of the service at once (v1, which kubelets 1.37+
pick, and v1alpha1, which older ones use); a link set down and up in the node namespace is
streamed as UNHEALTHY then HEALTHY on both, a deleted link as UNHEALTHY."""

from __future__ import annotations

import importlib
import pathlib
import queue
import shutil
import sys
import tempfile
import threading
import types
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from e2e.harness import Cluster, wait_for

from dranet_core.testing.kubelet import compile_kubelet_protos


@pytest.fixture(scope="module")
def health_pb() -> Iterator[dict[str, types.SimpleNamespace]]:
    """Official protobuf + grpcio stubs of the kubelet's health API (v1 and v1alpha1), compiled now."""
    out = pathlib.Path(tempfile.mkdtemp(prefix="dnt-health-pb-"))
    versions = ("v1", "v1alpha1")
    protos = [f"kubelet/drahealth/{v}/api.proto" for v in versions]
    compile_kubelet_protos(out, protos)
    sys.path.insert(0, str(out))
    try:
        yield {
            v: types.SimpleNamespace(
                pb=importlib.import_module(f"kubelet.drahealth.{v}.api_pb2"),
                grpc=importlib.import_module(f"kubelet.drahealth.{v}.api_pb2_grpc"),
            )
            for v in versions
        }
    finally:
        sys.path.remove(str(out))
        shutil.rmtree(out, ignore_errors=True)


class HealthWatch:
    """One NodeWatchResources stream read in a thread; ``latest`` is device -> status name."""

    def __init__(self, socket: pathlib.Path, mods: types.SimpleNamespace) -> None:
        self.mods = mods
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        stub = mods.grpc.DRAResourceHealthStub(self.channel)
        self.call = stub.NodeWatchResources(mods.pb.NodeWatchResourcesRequest(), timeout=120)
        self.messages: queue.Queue[Any] = queue.Queue()
        self.latest: dict[str, str] = {}
        self.pools: set[str] = set()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for msg in self.call:
                self.messages.put(msg)
        except grpc.RpcError as exc:
            self.messages.put(exc)

    def status(self, device: str) -> str | None:
        while not self.messages.empty():
            msg = self.messages.get()
            if isinstance(msg, Exception):
                raise msg
            for d in msg.devices:
                self.pools.add(d.device.pool_name)
                self.latest[d.device.device_name] = self.mods.pb.HealthStatus.Name(d.health)
        return self.latest.get(device)

    def close(self) -> None:
        self.call.cancel()
        self.channel.close()
        self.thread.join(10)


def test_link_down_and_up_are_streamed_to_the_kubelet(
    cluster: Cluster, health_pb: dict[str, types.SimpleNamespace]
) -> None:
    # the kubelet watches health only of a plugin that advertises the service in GetInfo; one
    # that knows v1 picks it, an older one finds v1alpha1
    versions = cluster.kubelet.versions
    assert "v1.DRAResourceHealth" in versions and "v1alpha1.DRAResourceHealth" in versions, versions
    dev = cluster.node.veth()
    gone = cluster.node.veth()
    socket = cluster.driver.root / "plugins" / "dra.net" / "dra.sock"
    watches = {v: HealthWatch(socket, mods) for v, mods in health_pb.items()}

    def all_say(device: str, status: str) -> bool:
        return all(w.status(device) == status for w in watches.values())

    try:
        for d in (dev, gone):
            wait_for(f"{d.name} HEALTHY", lambda d=d: all_say(d.name, "HEALTHY"), log=cluster.log)
        cluster.node.ip("link", "set", dev.name, "down")
        wait_for(f"{dev.name} UNHEALTHY", lambda: all_say(dev.name, "UNHEALTHY"), log=cluster.log)
        cluster.node.ip("link", "set", dev.name, "up")
        wait_for(f"{dev.name} HEALTHY again", lambda: all_say(dev.name, "HEALTHY"), log=cluster.log)
        cluster.node.delete_link(gone.name)
        cluster.node.created.remove(gone)
        wait_for(f"{gone.name} UNHEALTHY (gone)", lambda: all_say(gone.name, "UNHEALTHY"), log=cluster.log)
        assert {v: w.pools for v, w in watches.items()} == {"v1": {"node-a"}, "v1alpha1": {"node-a"}}
    finally:
        for w in watches.values():
            w.close()
