"""A loopback GCE metadata server (``computeMetadata/v1/instance/?recursive=true``) for tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web


def gce_instance(mac: str, *, network: str = "projects/12345/networks/test-network") -> dict[str, Any]:
    """An instance document in the layout the GCE metadata service documents."""
    return {
        "id": 4242,
        "machineType": "projects/12345/machineTypes/a3-highgpu-8g",
        "attributes": {"physical_host": "/blk1/sub2/host3"},
        "networkInterfaces": [
            {"mac": mac, "network": network, "ipAliases": ["10.8.0.0/24", "10.9.0.0/28"], "ip": "10.0.0.2"},
            {"mac": "42:01:0a:00:00:99", "network": "projects/67890/networks/other", "ipAliases": []},
        ],
    }


class GceMetadata:
    """Serves ``doc``; ``mode`` breaks it: ``"500"``, ``"badjson"``, ``"slow"`` (never answers)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.mode = ""
        self.requests: list[tuple[str, str]] = []  # (path_qs, Metadata-Flavor header)
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/computeMetadata/v1/instance/", self._instance)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        self._closing.set()  # lets a "slow" answer finish
        if self._runner is not None:
            await self._runner.cleanup()

    async def _instance(self, request: web.Request) -> web.Response:
        self.requests.append((request.path_qs, request.headers.get("Metadata-Flavor", "")))
        if request.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403, text="missing Metadata-Flavor")
        if self.mode == "500":
            return web.Response(status=500, text="boom")
        if self.mode == "badjson":
            return web.Response(text="{not json", content_type="application/json")
        if self.mode == "slow":
            await self._closing.wait()
        return web.Response(text=json.dumps(self.doc), content_type="application/json")
