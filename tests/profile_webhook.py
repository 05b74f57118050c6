"""A loopback profile-provider webhook (the Go driver's protocol) for tests, on aiohttp."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web


class ProfileWebhook:
    """Answers /health, /GetProfileConfig, /ReleaseProfileConfig; records every request.

    ``profiles`` maps a profile name to the config returned; ``mode`` breaks the answers:
    ``"500"``, ``"404"``, ``"badjson"`` or ``"slow"`` (never answers in time).
    """

    def __init__(self, profiles: dict[str, Any], *, provider: bool = True) -> None:
        self.profiles = profiles
        self.provider = provider
        self.mode = ""
        self.requests: list[tuple[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_post("/GetProfileConfig", self._get)
        app.router.add_post("/ReleaseProfileConfig", self._release)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"cloudProvider": False, "profileProvider": self.provider})

    async def _get(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(("get", body))
        if self.mode == "500":
            return web.Response(status=500, text="ipam exhausted")
        if self.mode == "404":
            return web.Response(status=404, text="no such profile")
        if self.mode == "badjson":
            return web.Response(status=200, text="{not json")
        if self.mode == "slow":
            await asyncio.sleep(3)
        return web.Response(status=200, text=json.dumps(self.profiles[body["config"]["profile"]]))

    async def _release(self, request: web.Request) -> web.Response:
        self.requests.append(("release", await request.json()))
        return web.Response(status=200, text="{}")
