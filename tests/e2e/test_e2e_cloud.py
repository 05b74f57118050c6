"""``--cloud-provider-hint`` for AWS, Azure, OKE and Alibaba on the real ``dranet run``: the
metadata service is a loopback peer that answers as the provider documents (tokens, headers,
JSON layouts), and the attributes appear in the published ResourceSlice as the Go driver's do.

AWS and Alibaba key attributes on PCI functions, so those tests start the driver with a sysfs
tree (``--sysfs-root``) in which the test's veth is that PCI function."""

from __future__ import annotations

import os
from pathlib import Path

from cloud_metadata import (
    AlibabaImds,
    AwsImds,
    AzureImds,
    OciImds,
    aws_identity,
    azure_compute,
    azure_network,
    oci_host,
)
from e2e.harness import Cluster, global_addrs, ip_json
from profile_webhook import ProfileWebhook

from dranet_core.cloud.neuron_topology import efa_device_groups

EFA = "0000:10:19.0"
ERDMA = "0000:00:0b.0"


def netdev_on_pci(sysfs: Path, ifname: str, ifindex: int, bdf: str, driver: str) -> Path:
    """``ifname`` as the netdev of PCI function ``bdf`` bound to ``driver``, in a sysfs tree."""
    fn = sysfs / "devices" / f"pci0000:{bdf[5:7]}" / bdf
    (fn / "net" / ifname).mkdir(parents=True)
    (fn / "net" / ifname / "ifindex").write_text(f"{ifindex}\n")
    drivers = sysfs / "bus" / "pci" / "drivers" / driver
    drivers.mkdir(parents=True)
    os.symlink(os.path.relpath(drivers, fn), fn / "driver")
    (sysfs / "bus" / "pci" / "devices").mkdir(parents=True)
    os.symlink(
        os.path.relpath(fn, sysfs / "bus" / "pci" / "devices"), sysfs / "bus" / "pci" / "devices" / bdf
    )
    (sysfs / "class" / "net").mkdir(parents=True)
    os.symlink(
        os.path.relpath(fn / "net" / ifname, sysfs / "class" / "net"), sysfs / "class" / "net" / ifname
    )
    return fn


def ifindex(c: Cluster, ifname: str) -> int:
    info = c.node.link(ifname)
    assert info is not None
    return int(info["ifindex"])


def test_aws_neuron_efa_device_groups_are_published_on_the_efa_adapter(
    fresh_cluster: Cluster, tmp_path: Path
) -> None:
    """A trn1.32xlarge: IMDSv2 token then identity document; the veth that sysfs shows as the
    EFA adapter 0000:10:19.0 carries the resource.aws.com/devicegroup*_id values."""
    c = fresh_cluster
    dev = c.node.veth()
    netdev_on_pci(tmp_path, dev.name, ifindex(c, dev.name), EFA, "efa")
    dmi = tmp_path / "devices" / "virtual" / "dmi" / "id"
    dmi.mkdir(parents=True)
    (dmi / "product_name").write_text("trn1.32xlarge\n")
    imds = AwsImds(aws_identity("trn1.32xlarge"))
    url = c.loop.run(imds.start())
    try:
        c.start("--cloud-provider-hint=AWS", f"--cloud-metadata-url={url}", f"--sysfs-root={tmp_path}")
        attrs = c.wait_attrs(dev.name, lambda a: "resource.aws.com/devicegroup4_id" in a)
        assert attrs["dra.net/pciAddress"] == {"string": EFA}
        want = {k: {"string": v} for k, v in efa_device_groups("trn1")[EFA].items()}
        assert {k: v for k, v in attrs.items() if k.startswith("resource.aws.com/")} == want
        assert attrs["resource.aws.com/devicegroup4_id"] == {"string": "178a9e264a26793e"}
        assert imds.requests == [
            ("PUT", "/latest/api/token"),
            ("GET", "/latest/dynamic/instance-identity/document"),
        ]
    finally:
        c.loop.run(imds.close())


def test_azure_attributes_and_the_subnet_of_the_nic_with_the_same_mac(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    dev, other = c.node.veth(), c.node.veth()
    imds = AzureImds(azure_compute(), azure_network(dev.mac))
    url = c.loop.run(imds.start())
    try:
        c.start("--cloud-provider-hint=AZURE", f"--cloud-metadata-url={url}")
        attrs = c.wait_attrs(dev.name, lambda a: "azure.dra.net/subnet" in a)
        assert attrs["azure.dra.net/subnet"] == {"string": "10.1.2.0/24"}
        assert attrs["azure.dra.net/vmSize"] == {"string": "Standard_ND96isr_H100_v5"}
        assert attrs["azure.dra.net/interconnectGroupId"] == {"string": "ig-42"}
        others = c.wait_attrs(other.name, lambda a: "azure.dra.net/vmSize" in a)
        assert "azure.dra.net/subnet" not in others
        assert len(imds.requests) == 2  # compute and network, once at start
    finally:
        c.loop.run(imds.close())


def test_azure_baseline_policy_routing_reaches_the_pod(fresh_cluster: Cluster) -> None:
    """The Go driver's Azure GetDeviceConfig: the pod's NIC gets a rule from its subnet to
    table 100 + its IMDS index and a default route via the subnet's first address there,
    merged under the claim's own config (name and address)."""
    c = fresh_cluster
    dev = c.node.veth()
    imds = AzureImds(azure_compute(), azure_network(dev.mac))
    url = c.loop.run(imds.start())
    try:
        c.start("--cloud-provider-hint=AZURE", f"--cloud-metadata-url={url}")
        c.wait_attrs(dev.name, lambda a: "azure.dra.net/subnet" in a)
        claim = c.claim([dev], config={"interface": {"name": "net1", "addresses": ["10.1.2.4/24"]}})
        pod = c.create_pod([claim])
        assert global_addrs(pod.link("net1")) == ["10.1.2.4/24"]
        rules = [r for r in ip_json(pod.netns, "rule", "show") if r.get("table") == "100"]
        assert [(r["src"], r["srclen"]) for r in rules] == [("10.1.2.0", 24)], c.log()
        (route,) = ip_json(pod.netns, "route", "show", "table", "100")
        assert (route["dst"], route["gateway"], route["dev"]) == ("default", "10.1.2.1", "net1")
        c.delete_pod(pod)
    finally:
        c.loop.run(imds.close())


def test_oke_topology_attributes_on_every_device(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    dev = c.node.veth()
    imds = OciImds(oci_host())
    url = c.loop.run(imds.start())
    try:
        c.start("--cloud-provider-hint=OKE", f"--cloud-metadata-url={url}")
        attrs = c.wait_attrs(dev.name, lambda a: "oke.dra.net/rackId" in a)
        assert attrs["oke.dra.net/hpcIslandId"] == {"string": "islandaaaa"}
        assert attrs["oke.dra.net/gpuMemoryFabricId"] == {"string": "f" * 60}
        assert attrs["oke.dra.net/rackId"] == {"string": "rack-7f3a"}
    finally:
        c.loop.run(imds.close())


def test_alibaba_instance_type_and_erdma_on_the_erdma_function(
    fresh_cluster: Cluster, tmp_path: Path
) -> None:
    c = fresh_cluster
    dev = c.node.veth()
    fn = netdev_on_pci(tmp_path, dev.name, ifindex(c, dev.name), ERDMA, "erdma")
    ib = tmp_path / "class" / "infiniband" / "erdma_0"
    ib.mkdir(parents=True)
    os.symlink(os.path.relpath(fn, ib), ib / "device")
    imds = AlibabaImds("ecs.gn8is-2x.8xlarge")
    url = c.loop.run(imds.start())
    try:
        c.start("--cloud-provider-hint=ALIBABA", f"--cloud-metadata-url={url}", f"--sysfs-root={tmp_path}")
        attrs = c.wait_attrs(dev.name, lambda a: "alibaba.dra.net/erdma" in a)
        assert attrs["alibaba.dra.net/erdma"] == {"bool": True}
        assert attrs["alibaba.dra.net/instanceType"] == {"string": "ecs.gn8is-2x.8xlarge"}
    finally:
        c.loop.run(imds.close())


def test_a_broken_metadata_service_is_one_warning_and_the_driver_runs_on(fresh_cluster: Cluster) -> None:
    """Azure IMDS answering 500: one warning line, the devices are published without cloud
    attributes, and the driver is healthy."""
    c = fresh_cluster
    dev = c.node.veth()
    imds = AzureImds(azure_compute(), azure_network(dev.mac))
    imds.mode = "500"
    url = c.loop.run(imds.start())
    try:
        c.start("--cloud-provider-hint=AZURE", f"--cloud-metadata-url={url}", "--cloud-metadata-timeout=2s")
        attrs = c.wait_attrs(dev.name, lambda a: "dra.net/mac" in a)
        assert not [k for k in attrs if k.startswith("azure.dra.net/")]
        lines = [ln for ln in c.log().splitlines() if "cloud provider AZURE" in ln]
        assert len(lines) == 1 and "HTTP 500" in lines[0] and "Traceback" not in c.log()
    finally:
        c.loop.run(imds.close())


def test_webhook_cloud_and_profile_provider_as_the_go_python_webhook_scenario(fresh_cluster: Cluster) -> None:
    """The Go suite's python-webhook scenario: --cloud-provider-hint=webhook and
    --profile-provider=webhook on one webhook. The device carries the webhook's attribute in
    the ResourceSlice; the pod gets the profile's address and the MTU of the webhook's
    baseline config (GetDeviceConfig), under the claim's own interface name."""
    c = fresh_cluster
    dev, other = c.node.veth(), c.node.veth()
    hook = ProfileWebhook(
        {"python-profile": {"interface": {"addresses": ["10.200.200.200/24"]}}},
        cloud=True,
        device_attrs={dev.name: {"dra.net/webhook_attr": {"string": "python"}}},
        device_configs={dev.name: {"interface": {"mtu": 1450}}},
    )
    url = c.loop.run(hook.start())
    try:
        c.start("--cloud-provider-hint=webhook", "--profile-provider=webhook", f"--webhook-url={url}")
        attrs = c.wait_attrs(dev.name, lambda a: "dra.net/webhook_attr" in a)
        assert attrs["dra.net/webhook_attr"] == {"string": "python"}
        assert "dra.net/webhook_attr" not in c.published(other.name).get("attributes", {})
        asked = {b["name"] for k, b in hook.requests if k == "GetDeviceAttributes"}
        assert {dev.name, other.name} <= asked
        claim = c.claim([dev], config={"profile": "python-profile", "interface": {"name": "eth99"}})
        pod = c.create_pod([claim])
        info = pod.link("eth99")
        assert info is not None and info["mtu"] == 1450, c.log()
        assert global_addrs(info) == ["10.200.200.200/24"]
        c.delete_pod(pod)
        assert "Traceback" not in c.log()
    finally:
        c.loop.run(hook.close())


def test_webhook_that_is_no_cloud_provider_is_one_warning_and_the_driver_runs(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    dev = c.node.veth()
    hook = ProfileWebhook({}, cloud=False)
    url = c.loop.run(hook.start())
    try:
        c.start("--cloud-provider-hint=webhook", f"--webhook-url={url}")
        c.published(dev.name)
        lines = [ln for ln in c.log().splitlines() if "cloud provider webhook" in ln]
        assert len(lines) == 1 and "does not report cloudProvider: true" in lines[0]
        assert not [r for r in hook.requests if r[0].startswith("GetDevice")]
    finally:
        c.loop.run(hook.close())
