"""ApiClaimSource against the fake API server, and claim_from_json on hand-written objects."""

from __future__ import annotations

from typing import Any

import pytest

from dranet_core.errors import ClaimError
from dranet_core.kube.claims import ApiClaimSource, claim_from_json
from dranet_core.types import AllocationResult, ClaimRef, ConsumerRef, OpaqueConfig

REF = ClaimRef(namespace="team-a", name="nic-claim", uid="u-1")

# A resource.k8s.io/v1beta1 claim as an API server returns it (written by hand).
V1BETA1_CLAIM: dict[str, Any] = {
    "apiVersion": "resource.k8s.io/v1beta1",
    "kind": "ResourceClaim",
    "metadata": {"name": "nic-claim", "namespace": "team-a", "uid": "u-1"},
    "spec": {"devices": {"requests": [{"name": "nic", "deviceClassName": "dranet"}]}},
    "status": {
        "allocation": {
            "devices": {
                "results": [
                    {"request": "nic", "driver": "dra.net", "pool": "node-a", "device": "eth1"},
                    {"request": "gpu", "driver": "gpu.example.com", "pool": "node-a", "device": "gpu-0"},
                    {"request": "nic", "driver": "dra.net", "pool": "node-b", "device": "eth7"},
                    {
                        "request": "rdma/sub",
                        "driver": "dra.net",
                        "pool": "node-a",
                        "device": "ib0",
                        "adminAccess": True,
                        "shareID": "abc",
                    },
                ],
                "config": [
                    {
                        "source": "FromClass",
                        "requests": [],
                        "opaque": {"driver": "dra.net", "parameters": {"interface": {"mtu": 9000}}},
                    },
                    {
                        "source": "FromClaim",
                        "requests": ["other"],
                        "opaque": {"driver": "dra.net", "parameters": {"interface": {"name": "x"}}},
                    },
                    {
                        "source": "FromClaim",
                        "requests": ["nic"],
                        "opaque": {"driver": "gpu.example.com", "parameters": {"a": 1}},
                    },
                    {
                        "source": "FromClaim",
                        "requests": ["rdma"],
                        "opaque": {"driver": "dra.net", "parameters": {"interface": {"name": "ib"}}},
                    },
                ],
            }
        },
        "reservedFor": [{"resource": "pods", "name": "web-0", "uid": "pod-9"}],
    },
}


def test_claim_from_json_keeps_only_what_concerns_this_driver_and_node() -> None:
    claim = claim_from_json(REF, V1BETA1_CLAIM, driver="dra.net", pool="node-a")
    assert claim.ref == REF
    assert claim.results == (
        AllocationResult(request="nic", driver="dra.net", pool="node-a", device="eth1"),
        AllocationResult(
            request="rdma/sub",
            driver="dra.net",
            pool="node-a",
            device="ib0",
            admin_access=True,
            share_id="abc",
        ),
    )
    assert claim.configs == (
        OpaqueConfig(
            source="FromClass", requests=(), driver="dra.net", parameters={"interface": {"mtu": 9000}}
        ),
        OpaqueConfig(
            source="FromClaim", requests=("rdma",), driver="dra.net", parameters={"interface": {"name": "ib"}}
        ),
    )
    assert claim.reserved_for == (ConsumerRef(resource="pods", name="web-0", uid="pod-9"),)
    # no pool filter: every pool of the driver
    assert len(claim_from_json(REF, V1BETA1_CLAIM, driver="dra.net").results) == 3


def test_claim_from_json_checks_uid_and_allocation() -> None:
    with pytest.raises(ClaimError, match="with UID u-1; it was deleted and re-created"):
        claim_from_json(
            ClaimRef(namespace="team-a", name="nic-claim", uid="u-0"), V1BETA1_CLAIM, driver="dra.net"
        )
    unallocated = {**V1BETA1_CLAIM, "status": {}}
    with pytest.raises(ClaimError, match="not allocated"):
        claim_from_json(REF, unallocated, driver="dra.net")


@pytest.mark.parametrize("served", [("v1", "v1beta2", "v1beta1"), ("v1beta2", "v1beta1"), ("v1beta1",)])
async def test_source_uses_the_best_served_version(
    fake_api: Any, fake_api_client: Any, served: tuple[str, ...]
) -> None:
    fake_api.serve_versions("resource.k8s.io", *served)
    fake_api.put_object(V1BETA1_CLAIM)
    source = ApiClaimSource(fake_api_client, driver_name="dra.net", pool="node-a")
    claim = await source.get(REF)
    assert [r.device for r in claim.results] == ["eth1", "ib0"]
    gets = [r.path for r in fake_api.requests_for("resourceclaims")]
    assert gets == [f"/apis/resource.k8s.io/{served[0]}/namespaces/team-a/resourceclaims/nic-claim"]


async def test_source_reprobes_when_a_version_disappears(fake_api: Any, fake_api_client: Any) -> None:
    fake_api.put_object(V1BETA1_CLAIM)
    source = ApiClaimSource(fake_api_client, driver_name="dra.net")
    assert await source.served_version() == "v1"
    fake_api.serve_versions("resource.k8s.io", "v1beta2")
    claim = await source.get(REF)
    assert claim.ref == REF
    assert await source.served_version() == "v1beta2"


async def test_source_errors_are_claim_errors(fake_api: Any, fake_api_client: Any) -> None:
    source = ApiClaimSource(fake_api_client, driver_name="dra.net")
    with pytest.raises(ClaimError, match="not found in the API server"):
        await source.get(REF)


async def test_source_with_api_server_unreachable(fake_api: Any, fake_api_client: Any) -> None:
    source = ApiClaimSource(fake_api_client, driver_name="dra.net", request_timeout=2)
    await fake_api.go_down()
    with pytest.raises(ClaimError, match=r"^reading claim team-a/nic-claim: \w+"):
        await source.get(REF)


class _Resp:
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.reason = "Not Found" if status == 404 else "OK"
        self.body = body

    async def read(self) -> bytes:
        return self.body


class _DiscoveryOnly:
    """An ApiClient stand-in answering only group discovery (for what the fake cannot serve)."""

    def __init__(self, status: int, body: bytes) -> None:
        self.answer = _Resp(status, body)
        self.paths: list[str] = []

    async def call_api(self, path: str, method: str, **kwargs: Any) -> _Resp:
        self.paths.append(path)
        return self.answer


async def test_group_with_none_of_our_versions() -> None:
    client = _DiscoveryOnly(200, b'{"kind": "APIGroup", "versions": [{"version": "v1alpha3"}]}')
    with pytest.raises(ClaimError, match="serves none of"):
        await ApiClaimSource(client, driver_name="dra.net").get(REF)
    assert client.paths == ["/apis/resource.k8s.io"]


async def test_group_not_served_at_all() -> None:
    client = _DiscoveryOnly(404, b"404 page not found")
    with pytest.raises(ClaimError, match=r"does not serve resource\.k8s\.io"):
        await ApiClaimSource(client, driver_name="dra.net").get(REF)


class _Answers:
    """An ApiClient stand-in: discovery says v1; the claim GET answers ``body``."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def call_api(self, path: str, method: str, **kwargs: Any) -> _Resp:
        if path == "/apis/resource.k8s.io":
            return _Resp(200, b'{"versions": [{"version": "v1"}]}')
        return _Resp(200, self.body)


def _raw_claim(parameters: str) -> bytes:
    """V1BETA1_CLAIM's JSON text with one opaque config whose parameters are ``parameters``."""
    import json

    doc = json.loads(json.dumps(V1BETA1_CLAIM))
    doc["status"]["allocation"]["devices"]["config"] = [
        {"source": "FromClaim", "requests": [], "opaque": {"driver": "dra.net", "parameters": "@@"}}
    ]
    return json.dumps(doc).replace('"@@"', parameters).encode()


async def test_duplicate_keys_in_claim_parameters_are_rejected() -> None:
    from dranet_core.config import resolve_config
    from dranet_core.errors import ConfigError

    client = _Answers(_raw_claim('{"interface": {"mtu": 1400, "mtu": 9000}}'))
    claim = await ApiClaimSource(client, driver_name="dra.net", pool="node-a").get(REF)
    with pytest.raises(ConfigError, match=r"interface\.mtu: duplicate field"):
        resolve_config(claim.configs, "nic", "dra.net")


async def test_claim_nested_10000_levels_is_one_clear_error() -> None:
    client = _Answers(_raw_claim('{"interface": ' + "[" * 10_000 + "]" * 10_000 + "}"))
    with pytest.raises(ClaimError) as info:
        await ApiClaimSource(client, driver_name="dra.net", pool="node-a").get(REF)
    text = str(info.value)
    assert text.startswith("reading claim team-a/nic-claim: ") and "nested too deeply" in text
    assert "RecursionError" not in text and "\n" not in text


async def test_hung_api_server_names_the_claim_and_the_timeout(fake_api: Any, fake_api_client: Any) -> None:
    fake_api.put_object(V1BETA1_CLAIM)
    source = ApiClaimSource(fake_api_client, driver_name="dra.net", request_timeout=0.5)
    await source.served_version()
    fake_api.fail_next("GET", "/apis/resource.k8s.io/v1/namespaces", hang=5, count=2)
    with pytest.raises(ClaimError) as info:
        await source.get(REF)
    assert str(info.value) == "reading claim team-a/nic-claim: the API server did not answer within 0.5s"
