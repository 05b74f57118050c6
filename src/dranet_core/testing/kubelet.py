"""The kubelet, as a test peer: plugin registration and DRA v1 prepare/unprepare over grpcio.

It plays the kubelet's part toward a DRA driver on a node: like the kubelet's plugin watcher
it dials ``<root>/plugins_registry/<driver>-reg.sock``, calls ``GetInfo`` and then
``NotifyRegistrationStatus(plugin_registered=True)``; afterwards it calls
``NodePrepareResources`` and ``NodeUnprepareResources`` on the endpoint the driver named.

It shares no code with the driver: the messages and stubs are compiled by
``grpc_tools.protoc`` from the kubelet's ``.proto`` files (:func:`kubelet_stubs`) and the
transport is grpcio (the C-core gRPC that real kubelets' Go gRPC interoperates with), where the
driver uses grpclib and its own generated code. A bug in the driver's codec therefore shows
up as a failed call here instead of being mirrored.

Needs the ``testing`` extra (``pip install 'dranet[testing]'``: grpcio and grpcio-tools);
both are imported on first use, so importing this module needs neither. Calls are
synchronous (grpcio's blocking API); the ``async`` methods run them in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

__all__ = ["Kubelet", "KubeletStubs", "compile_kubelet_protos", "kubelet_stubs"]

PROTO_ROOT = Path(__file__).resolve().parents[1] / "proto"
"""The ``.proto`` files shipped with the package (``kubelet/...``)."""

_PROTOS = ("kubelet/pluginregistration/v1/api.proto", "kubelet/dra/v1/api.proto")


@attrs.frozen
class KubeletStubs:
    """The compiled modules: registration messages and stubs, DRA v1 messages and stubs."""

    reg: Any
    reg_grpc: Any
    v1: Any
    v1_grpc: Any


def compile_kubelet_protos(out: Path, protos: Sequence[str] = _PROTOS) -> None:
    """Compile kubelet protos (paths under :data:`PROTO_ROOT`; registration and DRA v1 by
    default) with ``grpc_tools.protoc`` into ``out``: ``kubelet/.../api_pb2.py`` and
    ``api_pb2_grpc.py``, importable once ``out`` is on ``sys.path``."""
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_ROOT}", f"--python_out={out}"]
    subprocess.run([*cmd, f"--grpc_python_out={out}", *protos], check=True)


@contextlib.contextmanager
def kubelet_stubs() -> Iterator[KubeletStubs]:
    """Compile the kubelet's registration and DRA v1 protos with ``grpc_tools.protoc`` into a
    temporary directory and import them; the directory is removed on exit. Compile once per
    test session: the modules are imported under their proto package names (``kubelet.*``)."""
    out = Path(tempfile.mkdtemp(prefix="dranet-kubelet-pb-"))
    try:
        compile_kubelet_protos(out)
        sys.path.insert(0, str(out))
        try:
            yield KubeletStubs(
                reg=importlib.import_module("kubelet.pluginregistration.v1.api_pb2"),
                reg_grpc=importlib.import_module("kubelet.pluginregistration.v1.api_pb2_grpc"),
                v1=importlib.import_module("kubelet.dra.v1.api_pb2"),
                v1_grpc=importlib.import_module("kubelet.dra.v1.api_pb2_grpc"),
            )
        finally:
            sys.path.remove(str(out))
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _grpc() -> Any:
    return importlib.import_module("grpc")


class Kubelet:
    """The kubelet's side of plugin registration and DRA v1 for driver ``driver`` under the
    kubelet root directory ``root`` (module doc). ``stubs`` come from :func:`kubelet_stubs`."""

    def __init__(self, stubs: Any, root: Path, driver: str = "dra.net", *, wait: float = 60.0) -> None:
        self.pb = stubs
        self.driver = driver
        self.reg_sock = root / "plugins_registry" / f"{driver}-reg.sock"
        self.wait = wait
        self.endpoint = ""
        """The DRA endpoint the driver named in GetInfo (set by :meth:`register_sync`)."""
        self.versions: list[str] = []
        """GetInfo's supported_versions, as the kubelet read them."""

    def register_sync(self, within: float | None = None, alive: Callable[[], bool] | None = None) -> None:
        """Like the kubelet's plugin watcher: (re)try until the registration socket answers (a
        crashed driver leaves a stale socket file behind), then GetInfo and accept. Gives up
        after ``within`` seconds (default ``wait``) or as soon as ``alive()`` is false, raising
        the last ``grpc.RpcError``; raises AssertionError if GetInfo names another driver or
        no DRA v1 service."""
        grpc = _grpc()
        deadline = time.monotonic() + (self.wait if within is None else within)
        while True:
            try:
                with grpc.insecure_channel(f"unix://{self.reg_sock}") as ch:
                    stub = self.pb.reg_grpc.RegistrationStub(ch)
                    info = stub.GetInfo(self.pb.reg.InfoRequest(), timeout=2)
                    if info.name != self.driver:
                        raise AssertionError(f"GetInfo names driver {info.name!r}, not {self.driver!r}")
                    if "v1.DRAPlugin" not in info.supported_versions:
                        raise AssertionError(
                            f"GetInfo offers no v1.DRAPlugin: {list(info.supported_versions)}"
                        )
                    status = self.pb.reg.RegistrationStatus(plugin_registered=True)
                    stub.NotifyRegistrationStatus(status, timeout=10)
                self.endpoint = info.endpoint
                self.versions = list(info.supported_versions)
                return
            except grpc.RpcError:
                if time.monotonic() > deadline or (alive is not None and not alive()):
                    raise
                time.sleep(0.05)

    async def register(self) -> None:
        """:meth:`register_sync` in a worker thread."""
        await asyncio.to_thread(self.register_sync)

    def call(self, method: str, claims: Sequence[tuple[str, str, str]], timeout: float = 60) -> Any:
        """NodePrepareResources (``method="prepare"``) or NodeUnprepareResources of
        ``(namespace, name, uid)`` claims; returns the reply's ``claims`` map (uid -> result
        with ``error`` and, for prepare, ``devices``)."""
        grpc = _grpc()
        with grpc.insecure_channel(f"unix://{self.endpoint}") as ch:
            stub = self.pb.v1_grpc.DRAPluginStub(ch)
            msgs = [self.pb.v1.Claim(namespace=ns, name=n, uid=u) for ns, n, u in claims]
            if method == "prepare":
                req = self.pb.v1.NodePrepareResourcesRequest(claims=msgs)
                return stub.NodePrepareResources(req, timeout=timeout).claims
            req = self.pb.v1.NodeUnprepareResourcesRequest(claims=msgs)
            return stub.NodeUnprepareResources(req, timeout=timeout).claims

    def prepare_sync(self, name: str, uid: str, namespace: str = "default") -> Any:
        """Prepare one claim; its result (``.error`` is empty on success, ``.devices``)."""
        return self.call("prepare", [(namespace, name, uid)])[uid]

    def unprepare_sync(self, name: str, uid: str, namespace: str = "default") -> Any:
        """Unprepare one claim; its result (``.error`` is empty on success)."""
        return self.call("unprepare", [(namespace, name, uid)])[uid]

    async def prepare(self, name: str, uid: str, namespace: str = "default") -> Any:
        """:meth:`prepare_sync` in a worker thread."""
        return await asyncio.to_thread(self.prepare_sync, name, uid, namespace)

    async def unprepare(self, name: str, uid: str, namespace: str = "default") -> Any:
        """:meth:`unprepare_sync` in a worker thread."""
        return await asyncio.to_thread(self.unprepare_sync, name, uid, namespace)
