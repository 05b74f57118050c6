"""kube.client: ApiClient from a kubeconfig, resource.k8s.io version probing, error mapping."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakeapi import FakeApiServer, write_kubeconfig
from kubernetes_asyncio import client

from dranet_core.errors import KubeApiError, SettingsError
from dranet_core.kube.client import call_raw, load_api_client, probe_resource_api_version


async def test_kubeconfig_client_reaches_the_server(fake_api: FakeApiServer, tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kubeconfig", fake_api.url)
    api = await load_api_client(path)
    try:
        assert await probe_resource_api_version(api) == "v1"
        fake_api.put_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}})
        node = await call_raw("get node", client.CoreV1Api(api).read_node, "node-a")
        assert node["metadata"]["name"] == "node-a"
        req = fake_api.requests[-1]
        assert req.path == "/api/v1/nodes/node-a"
    finally:
        await api.close()


@pytest.mark.parametrize(
    ("served", "expected"), [(("v1beta2", "v1beta1"), "v1beta2"), (("v1beta1",), "v1beta1")]
)
async def test_probe_falls_back(
    fake_api: FakeApiServer, fake_api_client: client.ApiClient, served: tuple[str, ...], expected: str
) -> None:
    fake_api.serve_versions("resource.k8s.io", *served)
    assert await probe_resource_api_version(fake_api_client) == expected
    assert fake_api.requests[-1].path in ("/apis/resource.k8s.io", "/apis/resource.k8s.io/")


async def test_probe_errors_are_classified(
    fake_api: FakeApiServer, fake_api_client: client.ApiClient
) -> None:
    fake_api.serve_versions("resource.k8s.io")
    with pytest.raises(KubeApiError) as exc:
        await probe_resource_api_version(fake_api_client)
    assert exc.value.status == 404 and not exc.value.temporary
    fake_api.serve_versions("resource.k8s.io", "v1")
    fake_api.fail_next("GET", "/apis/resource.k8s.io", status=503)
    with pytest.raises(KubeApiError) as exc:
        await probe_resource_api_version(fake_api_client)
    assert exc.value.status == 503 and exc.value.temporary
    await fake_api.go_down()
    with pytest.raises(KubeApiError) as exc:
        await probe_resource_api_version(fake_api_client)
    assert exc.value.status == 0 and exc.value.temporary and "unreachable" in str(exc.value)


async def test_call_raw_maps_statuses(fake_api: FakeApiServer, fake_api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(fake_api_client)
    with pytest.raises(KubeApiError) as exc:
        await call_raw("get node", core.read_node, "missing")
    assert (
        exc.value.status == 404 and not exc.value.temporary and 'nodes "missing" not found' in str(exc.value)
    )
    fake_api.fail_next("GET", "/api/v1/nodes", status=429)
    with pytest.raises(KubeApiError) as exc:
        await call_raw("get node", core.read_node, "missing")
    assert exc.value.temporary


async def test_bad_kubeconfig_is_a_settings_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError, match=r"--kubeconfig: .*does not exist"):
        await load_api_client(tmp_path / "nope")
    garbage = tmp_path / "garbage"
    garbage.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    with pytest.raises(SettingsError, match="--kubeconfig"):
        await load_api_client(garbage)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(SettingsError, match="not running in a cluster"):
        await load_api_client("")


async def test_one_probe_serves_the_publisher_and_the_claim_source(
    fake_api: FakeApiServer, fake_api_client: client.ApiClient
) -> None:
    from dranet_core.kube.apiversion import ResourceApiVersion
    from dranet_core.kube.claims import ApiClaimSource
    from dranet_core.kube.publisher import KubeStatusPublisher

    fake_api.serve_versions("resource.k8s.io", "v1beta2", "v1beta1")
    versions = ResourceApiVersion(fake_api_client)
    publisher = KubeStatusPublisher(
        fake_api_client, driver_name="dra.net", node_name="n", api_versions=versions
    )
    source = ApiClaimSource(fake_api_client, driver_name="dra.net", api_versions=versions)
    assert await source.served_version() == "v1beta2"
    assert await publisher.ctx.ensure_api_version() == "v1beta2"
    probes = [r for r in fake_api.requests if r.path.rstrip("/") == "/apis/resource.k8s.io"]
    assert len(probes) == 1
    versions.forget("v1beta2")  # a version that went away is re-probed for both
    fake_api.serve_versions("resource.k8s.io", "v1beta1")
    assert await publisher.ctx.ensure_api_version() == "v1beta1"
    assert await source.served_version() == "v1beta1"


async def test_call_raw_leaves_no_response_body_on_the_client(
    fake_api: FakeApiServer, fake_api_client: client.ApiClient
) -> None:
    fake_api.put_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}})
    node = await call_raw("get node", client.CoreV1Api(fake_api_client).read_node, "node-a")
    assert node["metadata"]["name"] == "node-a"
    assert getattr(fake_api_client, "last_response", None) is None
