"""A minimal in-process container runtime, NRI side: what containerd does for one plugin.

It listens on a unix socket, accepts a plugin's connection, and speaks the runtime half of
NRI over B's codecs: it serves ``Runtime.RegisterPlugin`` on mux connection 2, then calls
``Plugin.Configure`` and ``Plugin.Synchronize`` on connection 1, and afterwards forwards the
pod events the demo (or a test) asks for: RunPodSandbox, StopPodSandbox, RemovePodSandbox,
CreateContainer. One plugin connection at a time; a new one replaces the old (a restarted
driver reconnects). It is enough to drive the real driver, not a full runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import attrs
import betterproto2

from dranet_core.errors import RpcError
from dranet_core.nri import api
from dranet_core.transport.mux import MuxTrunk
from dranet_core.transport.ttrpc import UNAVAILABLE, TtrpcClient, TtrpcServer
from dranet_core.wire.mux import PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN

__all__ = ["DemoPod", "NriRuntimePeer"]

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class DemoPod:
    """A pod sandbox as the runtime knows it."""

    uid: str
    name: str
    namespace: str = "default"
    id: str = ""
    netns: str | None = None

    def to_nri(self) -> api.PodSandbox:
        """The NRI message for this pod (the netns as a ``network`` namespace entry)."""
        namespaces = [api.LinuxNamespace(type="network", path=self.netns)] if self.netns else []
        return api.PodSandbox(
            id=self.id or f"sandbox-{self.uid}",
            name=self.name,
            uid=self.uid,
            namespace=self.namespace,
            linux=api.LinuxPodSandbox(namespaces=namespaces),
        )


class NriRuntimePeer:
    """The runtime end of NRI for one plugin (see the module docstring).

    ``pods`` is the runtime's list of running pods, reported in Synchronize. Run
    :meth:`serve` under a TaskGroup; wait for :attr:`plugin_ready` before sending events.
    """

    def __init__(
        self,
        socket_path: str | Path,
        *,
        runtime_name: str = "dranet-demo-runtime",
        runtime_version: str = "2.1.0",
        request_timeout: float = 2.0,
    ) -> None:
        self.socket_path = str(socket_path)
        self.runtime_name = runtime_name
        self.runtime_version = runtime_version
        self.request_timeout = request_timeout
        self.pods: dict[str, DemoPod] = {}
        self.plugin_ready = asyncio.Event()
        self.plugin_name = ""
        self.events = 0
        self.connections = 0
        self._client: TtrpcClient | None = None
        self._trunk: MuxTrunk | None = None

    def __repr__(self) -> str:
        state = "ready" if self.plugin_ready.is_set() else "waiting"
        return f"NriRuntimePeer({self.socket_path!r}, plugin={self.plugin_name!r}, {state})"

    async def serve(self) -> None:
        """Listen until cancelled; the socket file is removed on the way out."""
        server = await asyncio.start_unix_server(self._connection, path=self.socket_path)
        try:
            async with server:
                await server.serve_forever()
        finally:
            await self.disconnect()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)

    async def disconnect(self) -> None:
        """Drop the plugin's connection (the runtime restarted); the plugin reconnects."""
        trunk = self._trunk
        if trunk is not None:
            await trunk.aclose()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        trunk = MuxTrunk(reader, writer)
        self._trunk = trunk
        registered = asyncio.Event()

        async def register(payload: bytes, deadline: float | None) -> bytes:
            req = api.RegisterPluginRequest.parse(payload)
            self.plugin_name = f"{req.plugin_idx}-{req.plugin_name}"
            registered.set()
            return bytes(api.Empty())

        async def update_containers(payload: bytes, deadline: float | None) -> bytes:
            return bytes(api.UpdateContainersResponse())

        server = TtrpcServer(
            {api.RUNTIME_SERVICE: {"RegisterPlugin": register, "UpdateContainers": update_containers}},
            send=functools.partial(trunk.send_message, RUNTIME_SERVICE_CONN),
            drain=trunk.drain,
        )
        client = TtrpcClient(
            send=functools.partial(trunk.send_message, PLUGIN_SERVICE_CONN), drain=trunk.drain
        )
        trunk.attach(RUNTIME_SERVICE_CONN, server.receive, lambda _e: server.close())
        trunk.attach(PLUGIN_SERVICE_CONN, client.receive, client.close)
        try:
            async with asyncio.TaskGroup() as tg:
                reader_task = tg.create_task(trunk.run(), name="demo-runtime-mux")
                await registered.wait()
                await self._configure_and_sync(client)
                self._client = client
                self.plugin_ready.set()
                await reader_task
        except* (OSError, RpcError) as group:
            log.info("runtime peer: plugin connection ended: %s", group.exceptions[0])
        finally:
            if self._client is client:
                self._client = None
                self.plugin_ready.clear()
            if self._trunk is trunk:
                self._trunk = None
            await server.aclose()
            await trunk.aclose()

    async def _configure_and_sync(self, client: TtrpcClient) -> None:
        conf = api.ConfigureRequest(
            config="",
            runtime_name=self.runtime_name,
            runtime_version=self.runtime_version,
            registration_timeout=int(self.request_timeout * 2500),
            request_timeout=int(self.request_timeout * 1000),
        )
        await client.call(api.PLUGIN_SERVICE, "Configure", bytes(conf), timeout_s=self.request_timeout * 2)
        sync = api.SynchronizeRequest(pods=[p.to_nri() for p in self.pods.values()], containers=[])
        await client.call(api.PLUGIN_SERVICE, "Synchronize", bytes(sync), timeout_s=30.0)

    async def _call(self, method: str, message: betterproto2.Message, within: float | None = None) -> bytes:
        client = self._client
        if client is None:
            raise RpcError(UNAVAILABLE, f"{method}: no plugin connected")
        self.events += 1
        return await client.call(
            api.PLUGIN_SERVICE,
            method,
            bytes(message),
            timeout_s=within or self.request_timeout,
        )

    async def run_pod_sandbox(self, pod: DemoPod) -> None:
        """Start ``pod`` (the plugin's error, if any, is raised as RpcError: the pod fails)."""
        self.pods[pod.uid] = pod
        try:
            await self._call("RunPodSandbox", api.RunPodSandboxRequest(pod=pod.to_nri()))
        except RpcError:
            self.pods.pop(pod.uid, None)
            raise

    async def create_container(self, pod: DemoPod, name: str) -> Sequence[api.LinuxDevice]:
        """Create a container in ``pod``; returns the device nodes the plugin added."""
        ctr = api.Container(id=f"{pod.uid}-{name}", pod_sandbox_id=pod.to_nri().id, name=name)
        raw = await self._call("CreateContainer", api.CreateContainerRequest(pod=pod.to_nri(), container=ctr))
        resp = api.CreateContainerResponse.parse(raw)
        if resp.adjust is None or resp.adjust.linux is None:
            return []
        return list(resp.adjust.linux.devices)

    async def stop_pod_sandbox(self, pod: DemoPod) -> None:
        """Stop ``pod`` (its netns still exists); the runtime ignores the plugin's errors."""
        try:
            await self._call("StopPodSandbox", api.StopPodSandboxRequest(pod=pod.to_nri()))
        except RpcError as exc:
            log.warning("runtime peer: StopPodSandbox error ignored: %s", exc)

    async def remove_pod_sandbox(self, pod: DemoPod) -> None:
        """Forget ``pod``."""
        self.pods.pop(pod.uid, None)
        try:
            await self._call("RemovePodSandbox", api.RemovePodSandboxRequest(pod=pod.to_nri()))
        except RpcError as exc:
            log.warning("runtime peer: RemovePodSandbox error ignored: %s", exc)
