"""PCI attribute values as the Go driver publishes them, for the same device.

The Go driver names vendors and devices from pci.ids and publishes the subsystem *id*;
its DeviceClasses select on those names (AWS EFA: ``pciDevice == 'Elastic Fabric Adapter
(EFA)'``). These tests pin our values to Go's, with the distribution's pci.ids that the
image installs (Debian package ``pci.ids``; CI installs it too).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dranet_backends.pci import DEFAULT_PATHS, PciFunction, PciIds, pci_attributes

REPO = Path(__file__).resolve().parents[2]
EFA = PciFunction(
    address="0000:10:1c.0",
    vendor="1d0f",
    device="efa0",
    subsystem_vendor="1d0f",
    subsystem_device="efa0",
    pci_class="020000",
    numa_node=0,
    pcie_root="pci0000:10",
    driver="efa",
)


@pytest.fixture(scope="module")
def distro_ids() -> PciIds:
    ids = PciIds(DEFAULT_PATHS)
    ids.load()
    if ids.source is None:
        pytest.fail("no pci.ids in " + ", ".join(DEFAULT_PATHS) + ": install the Debian package pci.ids")
    return ids


def test_the_image_installs_the_pci_ids_the_driver_reads() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    runtime_stage = dockerfile.rsplit("FROM ", 1)[1]
    assert " pci.ids" in runtime_stage
    assert "/usr/share/misc/pci.ids" in DEFAULT_PATHS  # where the Debian package puts it


def test_go_efa_device_class_selector_matches(distro_ids: PciIds) -> None:
    a = pci_attributes(EFA, distro_ids)
    assert a["dra.net/pciVendor"] == "Amazon.com, Inc."
    assert a["dra.net/pciDevice"] == "Elastic Fabric Adapter (EFA)"
    assert a["dra.net/pciSubsystem"] == "efa0"


def test_subsystem_is_the_id_even_when_pci_ids_names_it(tmp_path: Path) -> None:
    ids_file = tmp_path / "pci.ids"
    ids_file.write_text(
        "15b3  Mellanox Technologies\n\t101b  MT28908 Family [ConnectX-6]\n\t\t15b3 0009  A named subsystem\n"
    )
    fn = PciFunction(
        address="0000:8a:00.0", vendor="15b3", device="101b", subsystem_vendor="15b3", subsystem_device="0009"
    )
    a = pci_attributes(fn, PciIds([ids_file]))
    assert a["dra.net/pciVendor"] == "Mellanox Technologies"
    assert a["dra.net/pciDevice"] == "MT28908 Family [ConnectX-6]"
    assert a["dra.net/pciSubsystem"] == "0009"


def test_ids_unknown_to_pci_ids_are_published_as_hex(tmp_path: Path) -> None:
    fn = PciFunction(
        address="0000:8a:00.0", vendor="abcd", device="1234", subsystem_vendor="abcd", subsystem_device="0001"
    )
    a = pci_attributes(fn, PciIds([tmp_path / "missing.ids"]))
    assert (a["dra.net/pciVendor"], a["dra.net/pciDevice"], a["dra.net/pciSubsystem"]) == (
        "abcd",
        "1234",
        "0001",
    )


def test_long_pci_ids_names_are_cut_to_the_attribute_limit(tmp_path: Path) -> None:
    ids_file = tmp_path / "pci.ids"
    ids_file.write_text("abcd  " + "V" * 80 + "\n\t1234  " + "D" * 80 + "\n")
    fn = PciFunction(address="0000:8a:00.0", vendor="abcd", device="1234")
    a = pci_attributes(fn, PciIds([ids_file]))
    assert a["dra.net/pciVendor"] == "V" * 64 and a["dra.net/pciDevice"] == "D" * 64
    assert "dra.net/pciSubsystem" not in a


def test_every_row_of_the_attribute_table_names_an_existing_test() -> None:
    """docs/attributes.md backs each row with a test: every test it names must exist."""
    doc = (REPO / "docs" / "attributes.md").read_text()
    rows = [line for line in doc.splitlines() if line.startswith("| `") or line.startswith("| IB")]
    assert len(rows) >= 15
    named = re.findall(r"(?:(ND) |`tests/)([\w/]*?)`?(test_\w+\.py)::(test_\w+)", doc)
    assert len(named) >= 15
    for nd, folder, module, test in named:
        path = REPO / "tests" / ("netdev_discovery" if nd else folder.removeprefix("tests/")) / module
        assert re.search(rf"^(async )?def {test}\(", path.read_text(), re.M), f"{module}::{test} not found"
