"""Cloud auto-detection on the real ``dranet run``: with no ``--cloud-provider-hint`` the
driver reads its Node's ``spec.providerID`` and asks that provider's metadata service (a
loopback peer); ``NONE`` turns it off; ``--cloud-provider-options`` for another provider are
ignored with a warning, as in the Go driver."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cloud_metadata import AwsImds, GceMetadata, aws_identity, gce_instance
from e2e.harness import NODE_NAME, Cluster

from dranet_core.cloud.detect import provider_from_dmi


def node_with_provider_id(c: Cluster, provider_id: str) -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE_NAME}, "spec": {}}
    node["spec"] = {"providerID": provider_id}
    c.loop.call(c.api.put_object, node)


def test_a_gce_node_gets_gce_attributes_without_a_hint(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    node_with_provider_id(c, "gce://my-project/us-central1-a/node-1")
    dev = c.node.veth()
    meta = GceMetadata(gce_instance(dev.mac))
    url = c.loop.run(meta.start())
    try:
        c.start(f"--cloud-metadata-url={url}")
        attrs = c.wait_attrs(dev.name, lambda a: "gce.dra.net/networkName" in a)
        assert attrs["gce.dra.net/machineType"] == {"string": "a3-highgpu-8g"}
        assert len(meta.requests) == 1
        assert "cloud provider auto-detected: GCE (Node spec.providerID gce://" in c.log()
    finally:
        c.loop.run(meta.close())


def test_an_aws_node_gets_aws_attributes_and_foreign_options_are_ignored(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    node_with_provider_id(c, "aws:///us-east-1a/i-0123456789abcdef0")
    dev = c.node.veth()
    imds = AwsImds(aws_identity("p5.48xlarge"))
    url = c.loop.run(imds.start())
    try:
        c.start(
            f"--cloud-metadata-url={url}", "--cloud-provider-options=oke.rdma-child-ipv4-cidr=10.192.0.0/14"
        )
        c.published(dev.name)
        deadline = time.monotonic() + 30
        while ("GET", "/latest/dynamic/instance-identity/document") not in imds.requests:
            assert time.monotonic() < deadline, c.log()
            time.sleep(0.05)
        assert imds.requests[0] == ("PUT", "/latest/api/token")
        log = c.log()
        assert "cloud provider auto-detected: AWS" in log
        assert "ignoring the oke.* options, because the cloud provider is AWS" in log
    finally:
        c.loop.run(imds.close())


def test_none_disables_detection_on_a_gce_node(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    node_with_provider_id(c, "gce://my-project/us-central1-a/node-1")
    dev = c.node.veth()
    meta = GceMetadata(gce_instance(dev.mac))
    url = c.loop.run(meta.start())
    try:
        c.start("--cloud-provider-hint=NONE", f"--cloud-metadata-url={url}")
        attrs = c.wait_attrs(dev.name, lambda a: True)
        assert not [k for k in attrs if k.startswith("gce.dra.net/")]
        assert meta.requests == []
        assert "auto-detect" not in c.log()
    finally:
        c.loop.run(meta.close())


@pytest.mark.skipif(bool(provider_from_dmi(Path("/sys"))), reason="this machine is a cloud VM")
def test_a_node_without_a_provider_id_starts_with_no_cloud(fresh_cluster: Cluster) -> None:
    """No providerID, no firmware identity (this machine's sysfs has no cloud DMI): one line,
    no metadata request."""
    c = fresh_cluster
    dev = c.node.veth()
    meta = GceMetadata(gce_instance(dev.mac))
    url = c.loop.run(meta.start())
    try:
        c.start(f"--cloud-metadata-url={url}")
        c.published(dev.name)
        assert meta.requests == []
        assert c.log().count("cloud provider auto-detection: none (Node spec.providerID ''") == 1
    finally:
        c.loop.run(meta.close())
