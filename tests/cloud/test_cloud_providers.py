"""AWS, Azure, OKE and Alibaba cloud attributes from loopback metadata services that answer
as the providers document (tokens, headers, JSON layouts), and every way a read can fail."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cloud_metadata import (
    AlibabaImds,
    AwsImds,
    AzureImds,
    OciImds,
    _Loopback,
    aws_identity,
    azure_compute,
    azure_network,
    oci_host,
)

from dranet_core.cloud import CloudAttributes, fetch_cloud_attributes
from dranet_core.cloud.azure import azure_attributes
from dranet_core.cloud.neuron_topology import EFA_OF_NEURON, efa_device_groups
from dranet_core.config.model import NetworkConfig, RouteConfig, RuleConfig
from dranet_core.types import Device

MAC = "00:0d:3a:01:02:03"
EFA = "0000:10:19.0"  # trn1.32xlarge: the adapter of Neuron devices 12 and 13
ERDMA = "0000:00:0b.0"


def dev(name: str, **attrs: Any) -> Device:
    return Device(name=name, attributes={f"dra.net/{k}": v for k, v in attrs.items()})


def pci_function(sysfs: Path, bdf: str, driver: str) -> None:
    """A PCI function under a fake sysfs root, bound to ``driver``, with its bus link."""
    fn = sysfs / "devices" / f"pci0000:{bdf[5:7]}" / bdf
    fn.mkdir(parents=True, exist_ok=True)
    (sysfs / "bus" / "pci" / "drivers" / driver).mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(sysfs / "bus" / "pci" / "drivers" / driver, fn), fn / "driver")
    (sysfs / "bus" / "pci" / "devices").mkdir(parents=True, exist_ok=True)
    os.symlink(
        os.path.relpath(fn, sysfs / "bus" / "pci" / "devices"), sysfs / "bus" / "pci" / "devices" / bdf
    )


def trn1_sysfs(sysfs: Path) -> Path:
    """A trn1.32xlarge host: DMI product name, one EFA adapter bound to efa, one to ena."""
    dmi = sysfs / "devices" / "virtual" / "dmi" / "id"
    dmi.mkdir(parents=True)
    (dmi / "product_name").write_text("trn1.32xlarge\n")
    pci_function(sysfs, EFA, "efa")
    pci_function(sysfs, "0000:a0:19.0", "ena")
    return sysfs


def erdma_sysfs(sysfs: Path) -> Path:
    pci_function(sysfs, ERDMA, "erdma")
    ib = sysfs / "class" / "infiniband" / "erdma_0"
    ib.mkdir(parents=True)
    os.symlink(os.path.relpath(sysfs / "devices" / "pci0000:00" / ERDMA, ib), ib / "device")
    return sysfs


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[_Loopback], Any]]:
    started: list[_Loopback] = []

    async def start(server: _Loopback) -> _Loopback:
        await server.start()
        started.append(server)
        return server

    yield start
    for s in started:
        await s.close()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# --- AWS ---------------------------------------------------------------------------------


def test_the_efa_device_groups_are_the_published_trn1_values() -> None:
    """The values the Go driver publishes for 0000:10:19.0 on a trn1.32xlarge (AWS's published
    reference ResourceSlice)."""
    assert efa_device_groups("trn1")[EFA] == {
        "resource.aws.com/devicegroup1_id": EFA,
        "resource.aws.com/devicegroup4_id": "178a9e264a26793e",
        "resource.aws.com/devicegroup8_id": "aa86c05423d6e8cd",
        "resource.aws.com/devicegroup16_id": "fb838249c99a6341",
    }
    groups = efa_device_groups("trn2")
    assert len(groups) == 16 and len({g["resource.aws.com/devicegroup16_id"] for g in groups.values()}) == 1
    assert len({g["resource.aws.com/devicegroup4_id"] for g in groups.values()}) == 4
    assert all(len(v) == 16 for v in EFA_OF_NEURON.values())


async def test_aws_neuron_instance_publishes_efa_groups_on_the_efa_bound_adapter(
    serve: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    imds = await serve(AwsImds(aws_identity("trn1.32xlarge")))
    found = await fetch_cloud_attributes("AWS", imds.url, seconds=2, sysfs=trn1_sysfs(tmp_path))
    devices = {
        "efa": dev("efa", pciAddress=EFA),
        "ena": dev("ena", pciAddress="0000:a0:19.0"),  # in the topology, but not bound to efa
        "veth": dev("veth", mac=MAC),
    }
    out = found.apply(devices)
    assert {k: v for k, v in out["efa"].attributes.items() if k.startswith("resource.aws.com/")} == (
        efa_device_groups("trn1")[EFA]
    )
    assert out["ena"] is devices["ena"] and out["veth"] is devices["veth"]
    assert imds.requests == [
        ("PUT", "/latest/api/token"),
        ("GET", "/latest/dynamic/instance-identity/document"),
    ]
    assert warnings(caplog) == []


async def test_aws_without_neuron_publishes_nothing_as_go_does(serve: Any, tmp_path: Path) -> None:
    imds = await serve(AwsImds(aws_identity("p5.48xlarge")))
    found = await fetch_cloud_attributes("aws", imds.url, seconds=2, sysfs=trn1_sysfs(tmp_path))
    assert not found
    other = await fetch_cloud_attributes("aws", imds.url, seconds=2, sysfs=tmp_path / "empty")
    assert not other  # a Neuron type whose DMI name is not an EFA topology: nothing either


async def test_the_aws_peer_refuses_a_read_without_a_session_token(serve: Any) -> None:
    imds = await serve(AwsImds(aws_identity()))
    async with aiohttp.ClientSession() as s:
        async with s.get(imds.url + "/latest/dynamic/instance-identity/document") as r:
            assert r.status == 401
        async with s.put(imds.url + "/latest/api/token") as r:
            assert r.status == 400  # no TTL header


# --- Azure -------------------------------------------------------------------------------


async def test_azure_node_attributes_and_the_subnet_on_the_nic_by_mac(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    imds = await serve(AzureImds(azure_compute(), azure_network(MAC)))
    found = await fetch_cloud_attributes("AZURE", imds.url, seconds=2)
    out = found.apply({"eth1": dev("eth1", mac=MAC), "eth2": dev("eth2", mac="02:00:00:00:00:01")})
    node = {
        "azure.dra.net/vmSize": "Standard_ND96isr_H100_v5",
        "azure.dra.net/placementGroupId": "7d6e1f23-0000-4b1c-9e5a-1f2e3d4c5b6a",
        "azure.dra.net/interconnectGroupId": "ig-42",  # interconnectSubgroupId is empty: absent
    }
    assert dict(out["eth1"].attributes) == {"dra.net/mac": MAC, **node, "azure.dra.net/subnet": "10.1.2.0/24"}
    assert dict(out["eth2"].attributes) == {"dra.net/mac": "02:00:00:00:00:01", **node}
    q = "?api-version=2025-11-11&format=json"
    assert imds.requests == [
        ("GET", "/metadata/instance/compute" + q),
        ("GET", "/metadata/instance/network" + q),
    ]
    assert warnings(caplog) == []


@pytest.mark.parametrize("mode", ["500", "badjson", "slow"])
async def test_azure_without_network_metadata_keeps_the_node_attributes(
    serve: Any, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    imds = await serve(AzureImds(azure_compute(), azure_network(MAC)))
    imds.mode, imds.broken = mode, ("/metadata/instance/network",)
    found = await fetch_cloud_attributes("AZURE", imds.url, seconds=0.5)
    got = found.for_device(dev("eth1", mac=MAC))
    assert got["azure.dra.net/vmSize"] == "Standard_ND96isr_H100_v5" and "azure.dra.net/subnet" not in got
    (line,) = warnings(caplog)
    assert "cloud provider AZURE" in line and "/metadata/instance/network" in line


# --- OKE ---------------------------------------------------------------------------------


async def test_oke_topology_ids_are_ocid_suffixes_on_every_device(serve: Any) -> None:
    imds = await serve(OciImds(oci_host()))
    found = await fetch_cloud_attributes("OKE", imds.url, seconds=2)
    assert found.for_device(dev("eth1", mac=MAC)) == {
        "oke.dra.net/hpcIslandId": "islandaaaa",
        "oke.dra.net/networkBlockId": "netaaaa",
        "oke.dra.net/localBlockId": "localaaaa",
        "oke.dra.net/gpuMemoryFabricId": "f" * 60,  # cut to its last 60 characters
        "oke.dra.net/rackId": "rack-7f3a",
    }
    assert imds.requests == [("GET", "/opc/v2/host/")]


async def test_oke_without_topology_data_publishes_nothing_quietly(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    imds = await serve(OciImds(oci_host(topology=False)))
    assert not await fetch_cloud_attributes("OKE", imds.url, seconds=2)
    assert warnings(caplog) == []


async def test_oke_topology_that_is_not_an_ocid_is_one_warning(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    host = oci_host()
    host["rdmaTopologyData"]["customerLocalBlock"] = "local-block-7"
    imds = await serve(OciImds(host))
    assert not await fetch_cloud_attributes("OKE", imds.url, seconds=2)
    (line,) = warnings(caplog)
    assert "not an OCID: 'local-block-7'" in line and "no cloud attributes" in line


# --- Alibaba -----------------------------------------------------------------------------


async def test_alibaba_instance_type_everywhere_and_erdma_on_its_pci_function(
    serve: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    imds = await serve(AlibabaImds("ecs.gn8is-2x.8xlarge"))
    found = await fetch_cloud_attributes("ALIBABA", imds.url, seconds=2, sysfs=erdma_sysfs(tmp_path))
    kind = {"alibaba.dra.net/instanceType": "ecs.gn8is-2x.8xlarge"}
    assert found.for_device(dev("erdma", pciAddress=ERDMA)) == {**kind, "alibaba.dra.net/erdma": True}
    assert found.for_device(dev("eth0", mac=MAC)) == kind
    assert imds.requests == [
        ("PUT", "/latest/api/token"),
        ("GET", "/latest/meta-data/instance/instance-type"),
    ]
    assert warnings(caplog) == []


@pytest.mark.parametrize("mode", ["500", "slow"])
async def test_alibaba_without_metadata_still_marks_erdma(
    serve: Any, tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    imds = await serve(AlibabaImds("ecs.gn8is-2x.8xlarge"))
    imds.mode = mode
    found = await fetch_cloud_attributes("ALIBABA", imds.url, seconds=0.5, sysfs=erdma_sysfs(tmp_path))
    assert found.for_device(dev("erdma", pciAddress=ERDMA)) == {"alibaba.dra.net/erdma": True}
    (line,) = warnings(caplog)
    assert "cloud provider ALIBABA" in line and "/latest/api/token" in line


# --- failures, every provider --------------------------------------------------------------

SERVERS: dict[str, Callable[[], _Loopback]] = {
    "AWS": lambda: AwsImds(aws_identity()),
    "AZURE": lambda: AzureImds(azure_compute(), azure_network(MAC)),
    "OKE": lambda: OciImds(oci_host()),
    "ALIBABA": lambda: AlibabaImds("ecs.g7.large"),
}


FAILURES = [
    (hint, mode)
    for hint in SERVERS
    for mode in ("500", "badjson", "slow")
    if (hint, mode) != ("ALIBABA", "badjson")  # Alibaba answers plain text: no JSON to break
]


@pytest.mark.parametrize(("hint", "mode"), FAILURES)
async def test_a_failing_metadata_service_is_one_warning_and_no_attributes(
    serve: Any, tmp_path: Path, hint: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    imds = await serve(SERVERS[hint]())
    imds.mode = mode
    found = await fetch_cloud_attributes(hint, imds.url, seconds=0.3, sysfs=trn1_sysfs(tmp_path))
    assert not found
    (line,) = warnings(caplog)
    assert f"cloud provider {hint}" in line and imds.url in line
    assert {"500": "HTTP 500", "badjson": "not JSON", "slow": "no answer within 0.3s"}[mode] in line


@pytest.mark.parametrize("hint", ["AWS", "AZURE", "OKE", "ALIBABA"])
async def test_a_refused_connection_is_one_warning(hint: str, caplog: pytest.LogCaptureFixture) -> None:
    found = await fetch_cloud_attributes(hint, "http://127.0.0.1:1", seconds=1)
    assert not found
    (line,) = warnings(caplog)
    assert f"cloud provider {hint}" in line and "127.0.0.1:1" in line


def test_cloud_attributes_match_macs_in_any_notation_and_pci_case_insensitively() -> None:
    cloud = CloudAttributes(
        by_mac={"000D3A010203": {"x.dra.net/a": "1"}}, by_pci={"0000:0A:00.0": {"x.dra.net/b": 2}}
    )
    assert cloud.for_device(dev("a", mac=MAC)) == {"x.dra.net/a": "1"}
    assert cloud.for_device(dev("b", pciAddress="0000:0a:00.0")) == {"x.dra.net/b": 2}
    assert cloud.for_device(dev("c")) == {}


def test_azure_baselines_route_each_nic_through_its_own_table(caplog: pytest.LogCaptureFixture) -> None:
    """The Go driver's Azure GetDeviceConfig: table 100 + NIC index, rule from the subnet,
    default route via the subnet's first address; a subnet that is not a network base is one
    warning and no baseline."""
    network = azure_network(MAC)
    network["interface"].append(
        {"ipv4": {"subnet": [{"address": "10.3.0.5", "prefix": "24"}]}, "macAddress": "000D3A777777"}
    )
    found = azure_attributes(azure_compute(), network)
    found.apply(
        {"eth1": dev("eth1", mac=MAC), "eth2": dev("eth2", mac="00:0d:3a:99:99:99"), "eth3": dev("eth3")}
    )
    assert found.baseline("eth1") == NetworkConfig(
        rules=(RuleConfig(source="10.1.2.0/24", table=100),),
        routes=(RouteConfig(destination="0.0.0.0/0", gateway="10.1.2.1", table=100),),
    )
    second = found.baseline("eth2")
    assert second is not None and second.routes == (
        RouteConfig(destination="0.0.0.0/0", gateway="10.9.0.1", table=101),
    )
    assert found.baseline("eth3") is None
    (line,) = warnings(caplog)
    assert "000D3A777777" in line and "10.3.0.5/24" in line and "no baseline config" in line
