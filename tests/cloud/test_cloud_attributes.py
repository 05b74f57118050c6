"""``--cloud-provider-hint=GCE``: the Go driver's gce.dra.net attributes from a loopback
metadata server, matched to devices by MAC; failures are one warning and no attributes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from cloud_metadata import GceMetadata, gce_instance

from dranet_core.cli import _go_only_warnings, build_parser, settings_from_args
from dranet_core.cloud import CloudAttributes, fetch_cloud_attributes, gce_attributes
from dranet_core.errors import SettingsError
from dranet_core.types import Device

MAC = "42:01:0A:00:00:02"
NIC = Device(name="eth1", attributes={"dra.net/mac": MAC.lower(), "dra.net/ifName": "eth1"})
OTHER = Device(name="eth2", attributes={"dra.net/mac": "02:00:00:00:00:77"})
NODE = {
    "gce.dra.net/machineType": "a3-highgpu-8g",
    "gce.dra.net/block": "blk1",
    "gce.dra.net/subBlock": "sub2",
    "gce.dra.net/host": "host3",
}


@pytest.fixture
async def server() -> AsyncIterator[GceMetadata]:
    s = GceMetadata(gce_instance(MAC))
    await s.start()
    yield s
    await s.close()


async def test_gce_attributes_go_to_every_device_and_the_vnic_by_mac(server: GceMetadata) -> None:
    found = await fetch_cloud_attributes("GCE", server.url, seconds=2)
    out = found.apply({"eth1": NIC, "eth2": OTHER})
    assert dict(out["eth1"].attributes) == {
        **NIC.attributes,
        **NODE,
        "gce.dra.net/networkName": "test-network",
        "gce.dra.net/networkProjectNumber": 12345,
        "gce.dra.net/ipAliases": "10.8.0.0/24,10.9.0.0/28",
    }
    assert dict(out["eth2"].attributes) == {**OTHER.attributes, **NODE}
    assert server.requests == [("GET", "/computeMetadata/v1/instance/?recursive=true")]


def test_a_vnic_without_aliases_or_a_parsable_network_gets_only_what_it_has() -> None:
    doc = {
        "networkInterfaces": [{"mac": "02:00:00:00:00:77", "network": "global/networks/x", "ipAliases": []}]
    }
    got = gce_attributes(doc)
    assert got.node == {} and got.for_device(OTHER) == {}
    assert not got
    bad_topology = gce_attributes(
        {"machineType": "zones/z/machineTypes/n2", "attributes": {"physical_host": "x/y"}}
    )
    assert bad_topology.node == {"gce.dra.net/machineType": "n2"}


@pytest.mark.parametrize("mode", ["500", "badjson", "slow"])
async def test_a_failing_metadata_service_is_one_warning_and_no_attributes(
    server: GceMetadata, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    server.mode = mode
    with caplog.at_level(logging.WARNING, logger="dranet_core.cloud"):
        found = await fetch_cloud_attributes("GCE", server.url, seconds=0.3)
    assert not found and found.apply({"eth1": NIC})["eth1"] is NIC
    (rec,) = caplog.records
    assert "cloud provider GCE" in rec.getMessage() and "no cloud attributes" in rec.getMessage()


async def test_a_refused_connection_is_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dranet_core.cloud"):
        found = await fetch_cloud_attributes("gce", "http://127.0.0.1:1", seconds=1)
    assert not found and len(caplog.records) == 1


@pytest.mark.parametrize("hint", ["CKS", "DigitalOcean"])
async def test_providers_not_built_in_say_so_once(hint: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dranet_core.cloud"):
        assert not await fetch_cloud_attributes(hint, "http://127.0.0.1:1")
    (rec,) = caplog.records
    assert f"--cloud-provider-hint={hint} is not supported" in rec.getMessage()


async def test_no_hint_asks_nobody(caplog: pytest.LogCaptureFixture) -> None:
    for hint in ("", "NONE", "none"):
        assert not await fetch_cloud_attributes(hint, "http://127.0.0.1:1")
    assert caplog.records == []


def test_cloud_values_win_and_unchanged_devices_are_kept() -> None:
    cloud = CloudAttributes({"gce.dra.net/machineType": "n2"})
    same = Device(name="a", attributes={"gce.dra.net/machineType": "n2"})
    assert cloud.apply({"a": same})["a"] is same


def test_flags_reach_the_settings() -> None:
    args = build_parser().parse_args(
        [
            "run",
            "--cloud-provider-hint=GCE",
            "--cloud-metadata-url=http://127.0.0.1:9",
            "--cloud-metadata-timeout=2s",
        ]
    )
    s = settings_from_args(args, {"NODE_NAME": "n"})
    assert (s.cloud.hint, s.cloud.metadata_url, s.cloud.timeout) == ("GCE", "http://127.0.0.1:9", 2.0)
    assert _go_only_warnings(args) == []  # implemented: not "accepted and ignored"
    with pytest.raises(SettingsError, match="--cloud-metadata-url"):
        settings_from_args(
            build_parser().parse_args(["run", "--cloud-metadata-url=ftp://x"]), {"NODE_NAME": "n"}
        )
