"""A minimal in-process kubelet, DRA side: register a plugin and prepare/unprepare claims.

It does what the kubelet's plugin manager and DRA manager do over gRPC (grpclib client,
the generated kubelet stubs): dial ``<driver>-reg.sock``, ``GetInfo``, check the answer,
``NotifyRegistrationStatus(true)``, then call ``NodePrepareResources`` /
``NodeUnprepareResources`` on the endpoint the plugin advertised (DRA v1).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from grpclib.client import Channel

from dranet_core._generated.k8s.io.kubelet.pkg.apis.dra import v1 as dra
from dranet_core._generated.pluginregistration import InfoRequest, RegistrationStatus, RegistrationStub
from dranet_core.errors import RpcError
from dranet_core.types import ClaimRef

__all__ = ["KubeletPeer"]


class KubeletPeer:
    """The kubelet end for one DRA driver whose registration socket is ``registration_socket``."""

    def __init__(self, registration_socket: str | Path, *, driver_name: str = "dra.net") -> None:
        self.registration_socket = str(registration_socket)
        self.driver_name = driver_name
        self.endpoint: str | None = None
        self._channel: Channel | None = None

    def __repr__(self) -> str:
        return f"KubeletPeer({self.registration_socket!r}, endpoint={self.endpoint!r})"

    async def register(self, *, within: float = 10.0) -> str:
        """Wait for the registration socket, register the plugin; returns its DRA endpoint."""
        loop = asyncio.get_running_loop()
        end = loop.time() + within
        while not await asyncio.to_thread(os.path.exists, self.registration_socket):
            if loop.time() > end:
                raise TimeoutError(f"no registration socket at {self.registration_socket}")
            await asyncio.sleep(0.02)
        channel = Channel(path=self.registration_socket)
        try:
            stub = RegistrationStub(channel)
            info = await stub.get_info(InfoRequest(), timeout=within)
            ok = (
                info.type == "DRAPlugin"
                and info.name == self.driver_name
                and "v1.DRAPlugin" in info.supported_versions
            )
            error = "" if ok else f"unexpected plugin info {info.type}/{info.name} {info.supported_versions}"
            await stub.notify_registration_status(
                RegistrationStatus(plugin_registered=ok, error=error), timeout=within
            )
        finally:
            channel.close()
        if not ok:
            raise RpcError(9, error)
        self.endpoint = info.endpoint
        return info.endpoint

    def _stub(self) -> dra.DraPluginStub:
        if self.endpoint is None:
            raise RuntimeError("register() first")
        if self._channel is None:
            self._channel = Channel(path=self.endpoint)
        return dra.DraPluginStub(self._channel)

    async def prepare(
        self, claims: Sequence[ClaimRef], *, within: float = 45.0
    ) -> Mapping[str, dra.NodePrepareResourceResponse]:
        """NodePrepareResources; per-claim responses by UID."""
        req = dra.NodePrepareResourcesRequest(
            claims=[dra.Claim(namespace=c.namespace, name=c.name, uid=c.uid) for c in claims]
        )
        resp = await self._stub().node_prepare_resources(req, timeout=within)
        return dict(resp.claims)

    async def unprepare(self, claims: Sequence[ClaimRef], *, within: float = 45.0) -> Mapping[str, str]:
        """NodeUnprepareResources; per-claim error strings by UID (empty = done)."""
        req = dra.NodeUnprepareResourcesRequest(
            claims=[dra.Claim(namespace=c.namespace, name=c.name, uid=c.uid) for c in claims]
        )
        resp = await self._stub().node_unprepare_resources(req, timeout=within)
        return {uid: r.error for uid, r in resp.claims.items()}

    def close(self) -> None:
        """Close the DRA channel."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
