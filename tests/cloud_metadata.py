"""Loopback instance metadata services for tests, answering as the providers document.

Each server checks what its real peer checks (GCE's ``Metadata-Flavor`` header, AWS IMDSv2
and Alibaba hardened-mode session tokens, Azure's ``Metadata`` header and ``api-version``,
OCI's ``Authorization: Bearer Oracle``) and refuses a request without it the way the provider
does. ``mode`` breaks the answers: ``"500"``, ``"badjson"`` (a 200 whose body is not JSON) or
``"slow"`` (no answer until the server closes); ``broken`` limits that to paths starting
with one of its prefixes (default: every path). ``requests`` records ``(method, path_qs)``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

from aiohttp import web

Handler = Any


class _Loopback:
    def __init__(self) -> None:
        self.mode = ""
        self.broken: tuple[str, ...] = ("",)
        self.requests: list[tuple[str, str]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> str:
        app = web.Application()
        self.routes(app)
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

    async def _fault(self, request: web.Request) -> web.Response | None:
        """Record the request; the broken answer if ``mode`` applies to it, else None."""
        self.requests.append((request.method, request.path_qs))
        if not self.mode or not request.path.startswith(self.broken):
            return None
        if self.mode == "500":
            return web.Response(status=500, text="internal error")
        if self.mode == "badjson":
            return web.Response(text="{not json", content_type="application/json")
        if self.mode == "slow":
            await self._closing.wait()
        return None


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


class GceMetadata(_Loopback):
    """``/computeMetadata/v1/instance/``; 403 without ``Metadata-Flavor: Google``."""

    def __init__(self, doc: dict[str, Any]) -> None:
        super().__init__()
        self.doc = doc

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/computeMetadata/v1/instance/", self._instance)

    async def _instance(self, request: web.Request) -> web.Response:
        if (bad := await self._fault(request)) is not None:
            return bad
        if request.headers.get("Metadata-Flavor") != "Google":
            return web.Response(status=403, text="missing Metadata-Flavor")
        return web.Response(text=json.dumps(self.doc), content_type="application/json")


class _TokenImds(_Loopback):
    """IMDS with session tokens: ``PUT /latest/api/token`` with a TTL header (1..21600) gives
    a token; every GET must carry it, else ``denied`` (401 on AWS, 403 on Alibaba)."""

    ttl_header = ""
    token_header = ""
    denied = 401

    def __init__(self) -> None:
        super().__init__()
        self.tokens: set[str] = set()

    def routes(self, app: web.Application) -> None:
        app.router.add_put("/latest/api/token", self._token)
        app.router.add_get("/latest/{path:.*}", self._get)

    async def _token(self, request: web.Request) -> web.Response:
        if (bad := await self._fault(request)) is not None:
            return bad
        ttl = request.headers.get(self.ttl_header, "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return web.Response(status=400, text=f"missing or invalid {self.ttl_header}")
        token = secrets.token_urlsafe(16)
        self.tokens.add(token)
        return web.Response(text=token)

    async def _get(self, request: web.Request) -> web.Response:
        if (bad := await self._fault(request)) is not None:
            return bad
        if request.headers.get(self.token_header) not in self.tokens:
            return web.Response(status=self.denied, text="Unauthorized")
        body = self.answer(request.match_info["path"])
        if body is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(text=body)

    def answer(self, path: str) -> str | None:
        raise NotImplementedError


def aws_identity(instance_type: str = "trn1.32xlarge") -> dict[str, Any]:
    """An instance identity document in the layout AWS documents."""
    return {
        "accountId": "123456789012",
        "architecture": "x86_64",
        "availabilityZone": "us-east-1b",
        "imageId": "ami-0123456789abcdef0",
        "instanceId": "i-0123456789abcdef0",
        "instanceType": instance_type,
        "pendingTime": "2026-01-01T00:00:00Z",
        "privateIp": "10.0.0.5",
        "region": "us-east-1",
        "version": "2017-09-30",
    }


class AwsImds(_TokenImds):
    """EC2 IMDSv2 (tokens required): ``dynamic/instance-identity/document``."""

    ttl_header = "X-aws-ec2-metadata-token-ttl-seconds"
    token_header = "X-aws-ec2-metadata-token"
    denied = 401

    def __init__(self, identity: dict[str, Any]) -> None:
        super().__init__()
        self.identity = identity

    def answer(self, path: str) -> str | None:
        return json.dumps(self.identity) if path == "dynamic/instance-identity/document" else None


class AlibabaImds(_TokenImds):
    """ECS metadata in hardened mode: ``meta-data/instance/instance-type`` (plain text)."""

    ttl_header = "X-aliyun-ecs-metadata-token-ttl-seconds"
    token_header = "X-aliyun-ecs-metadata-token"
    denied = 403

    def __init__(self, instance_type: str) -> None:
        super().__init__()
        self.instance_type = instance_type

    def answer(self, path: str) -> str | None:
        return self.instance_type if path == "meta-data/instance/instance-type" else None


def azure_compute() -> dict[str, Any]:
    """An IMDS ``instance/compute`` document (the fields Azure documents, abridged)."""
    return {
        "azEnvironment": "AzurePublicCloud",
        "location": "eastus",
        "name": "node-0",
        "vmSize": "Standard_ND96isr_H100_v5",
        "placementGroupId": "7d6e1f23-0000-4b1c-9e5a-1f2e3d4c5b6a",
        "interconnectGroupId": "ig-42",
        "interconnectSubgroupId": "",
        "zone": "1",
    }


def azure_network(mac: str) -> dict[str, Any]:
    """An IMDS ``instance/network`` document; ``mac`` is written as Azure does (``000D3A...``)."""
    return {
        "interface": [
            {
                "ipv4": {
                    "ipAddress": [{"privateIpAddress": "10.1.2.4", "publicIpAddress": ""}],
                    "subnet": [{"address": "10.1.2.0", "prefix": "24"}],
                },
                "ipv6": {"ipAddress": []},
                "macAddress": mac.replace(":", "").upper(),
            },
            {
                "ipv4": {"ipAddress": [], "subnet": [{"address": "10.9.0.0", "prefix": "16"}]},
                "ipv6": {"ipAddress": []},
                "macAddress": "000D3A999999",
            },
        ]
    }


class AzureImds(_Loopback):
    """``/metadata/instance/{compute,network}``; 400 without ``Metadata: true`` or
    ``api-version``, as Azure IMDS answers."""

    def __init__(self, compute: dict[str, Any], network: dict[str, Any]) -> None:
        super().__init__()
        self.docs = {"compute": compute, "network": network}

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/metadata/instance/{part}", self._get)

    async def _get(self, request: web.Request) -> web.Response:
        if (bad := await self._fault(request)) is not None:
            return bad
        if request.headers.get("Metadata") != "true":
            return web.json_response(
                {"error": "Bad request. Required metadata header not specified"}, status=400
            )
        if not request.query.get("api-version"):
            return web.json_response({"error": "Bad request. api-version was not specified"}, status=400)
        doc = self.docs.get(request.match_info["part"])
        return web.json_response(doc) if doc is not None else web.Response(status=404)


def oci_host(*, topology: bool = True) -> dict[str, Any]:
    """An OCI IMDS v2 ``/opc/v2/host/`` document (RDMA shape with topology data)."""
    doc: dict[str, Any] = {
        "id": "ocid1.host.oc1.iad.aaaahost",
        "buildingId": "building:abc",
        "networkBlockId": "ocid1.networkblock.oc1.iad.aaaablock",
        "rackId": "rack-7f3a",
    }
    if topology:
        doc["rdmaTopologyData"] = {
            "customerGpuMemoryFabric": "ocid1.computegpumemoryfabric.oc1.iad." + "f" * 64,
            "customerHPCIslandId": "ocid1.hpcisland.oc1.iad.islandaaaa",
            "customerHostId": "ocid1.computebaremetalhost.oc1.iad.hostaaaa",
            "customerLocalBlock": "ocid1.computelocalblock.oc1.iad.localaaaa",
            "customerNetworkBlock": "ocid1.computenetworkblock.oc1.iad.netaaaa",
        }
    return doc


class OciImds(_Loopback):
    """``/opc/v2/host/``; 401 without ``Authorization: Bearer Oracle`` (IMDS v2)."""

    def __init__(self, host: dict[str, Any]) -> None:
        super().__init__()
        self.host = host

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/opc/v2/host/", self._host)

    async def _host(self, request: web.Request) -> web.Response:
        if (bad := await self._fault(request)) is not None:
            return bad
        if request.headers.get("Authorization") != "Bearer Oracle":
            return web.Response(status=401, text="Unauthorized")
        return web.json_response(self.host)
