"""A loopback webhook speaking the Go driver's protocol (profile and cloud provider halves)
for tests, on aiohttp."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web


class ProfileWebhook:
    """Answers /health, /GetProfileConfig, /ReleaseProfileConfig, /GetDeviceAttributes and
    /GetDeviceConfig; records every request as ``(kind, body)``.

    ``profiles`` maps a profile name to the config returned. ``device_attrs`` and
    ``device_configs`` map a device identifier ``name`` to what GetDeviceAttributes and
    GetDeviceConfig answer (``{}`` for other devices, as the Go suite's webhook does);
    ``provider`` and ``cloud`` are the capabilities /health reports. ``mode`` breaks the
    profile answers and ``device_mode`` the device answers: ``"500"``, ``"404"``,
    ``"badjson"`` or ``"slow"`` (no answer within the driver's timeout).
    """

    def __init__(
        self,
        profiles: dict[str, Any],
        *,
        provider: bool = True,
        cloud: bool = False,
        device_attrs: dict[str, Any] | None = None,
        device_configs: dict[str, Any] | None = None,
    ) -> None:
        self.profiles = profiles
        self.provider = provider
        self.cloud = cloud
        self.device_attrs = device_attrs or {}
        self.device_configs = device_configs or {}
        self.mode = ""
        self.device_mode = ""
        self.slow_seconds = 3.0
        self.requests: list[tuple[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_post("/GetProfileConfig", self._get)
        app.router.add_post("/ReleaseProfileConfig", self._release)
        app.router.add_post("/GetDeviceAttributes", self._device)
        app.router.add_post("/GetDeviceConfig", self._device)
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
        return web.json_response({"cloudProvider": self.cloud, "profileProvider": self.provider})

    async def _broken(self, mode: str) -> web.Response | None:
        if mode == "500":
            return web.Response(status=500, text="ipam exhausted")
        if mode == "404":
            return web.Response(status=404, text="no such profile")
        if mode == "badjson":
            return web.Response(status=200, text="{not json")
        if mode == "slow":
            await asyncio.sleep(self.slow_seconds)
        return None

    async def _get(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(("get", body))
        if (bad := await self._broken(self.mode)) is not None:
            return bad
        return web.Response(status=200, text=json.dumps(self.profiles[body["config"]["profile"]]))

    async def _release(self, request: web.Request) -> web.Response:
        self.requests.append(("release", await request.json()))
        return web.Response(status=200, text="{}")

    async def _device(self, request: web.Request) -> web.Response:
        body = await request.json()
        kind = request.path.lstrip("/")
        self.requests.append((kind, body))
        if not self.cloud:  # the Go driver never calls a webhook that is not a cloud provider
            return web.Response(status=501, text="Not Implemented")
        if (bad := await self._broken(self.device_mode)) is not None:
            return bad
        table = self.device_attrs if kind == "GetDeviceAttributes" else self.device_configs
        return web.json_response(table.get(body.get("name"), {}))
