"""Cloud auto-detection's two signals: the Node's providerID and the firmware identity."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dranet_core.cloud.detect import detect_cloud_provider, provider_from_dmi, provider_from_id
from dranet_core.errors import KubeApiError


@pytest.mark.parametrize(
    ("provider_id", "hint"),
    [
        ("gce://p/us-central1-a/n", "GCE"),
        ("aws:///us-east-1a/i-0abc", "AWS"),
        ("azure:///subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/v", "AZURE"),
        ("oci://ocid1.instance.oc1.iad.abc", "OKE"),
        ("ocid1.instance.oc1.iad.abc", "OKE"),
        ("alicloud://cn-hangzhou.i-abc", "ALIBABA"),
        ("kind://docker/kind/kind-worker", ""),
        ("", ""),
    ],
)
def test_provider_id_prefixes(provider_id: str, hint: str) -> None:
    assert provider_from_id(provider_id) == hint


def dmi(tmp_path: Path, **files: str) -> Path:
    d = tmp_path / "devices" / "virtual" / "dmi" / "id"
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).write_text(text + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("files", "hint"),
    [
        ({"product_name": "Google Compute Engine", "sys_vendor": "Google"}, "GCE"),
        ({"sys_vendor": "Amazon EC2", "product_name": "p5.48xlarge"}, "AWS"),
        ({"sys_vendor": "Microsoft Corporation", "chassis_asset_tag": "7783-7084-3265-9085"}, "AZURE"),
        ({"chassis_asset_tag": "OracleCloud.com"}, "OKE"),
        ({"sys_vendor": "Alibaba Cloud"}, "ALIBABA"),
        ({"sys_vendor": "QEMU", "product_name": "Standard PC"}, ""),
        ({}, ""),
    ],
)
def test_firmware_identity(tmp_path: Path, files: dict[str, str], hint: str) -> None:
    assert provider_from_dmi(dmi(tmp_path, **files)) == hint


def test_the_provider_id_wins_and_an_unreadable_node_falls_back_to_firmware(tmp_path: Path) -> None:
    sysfs = dmi(tmp_path, sys_vendor="Amazon EC2")

    async def gce() -> str:
        return "gce://p/z/n"

    async def broken() -> str:
        raise KubeApiError("get node n", 0, "refused", temporary=True)

    assert asyncio.run(detect_cloud_provider(gce, sysfs)) == "GCE"
    assert asyncio.run(detect_cloud_provider(broken, sysfs)) == "AWS"
    assert asyncio.run(detect_cloud_provider(None, tmp_path / "nothing")) == "NONE"
