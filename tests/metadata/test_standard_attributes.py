"""resource.kubernetes.io/pciBusID on every PCI-backed device, added where devices merge."""

from __future__ import annotations

from collections.abc import Sequence

from dranet_core.inventory import Inventory
from dranet_core.metadata.standard import PCI_BUS_ID, StandardAttributes, with_standard_attributes
from dranet_core.types import ClaimRef, Device, DeviceStatus


class Scan:
    def __init__(self, *devices: Device) -> None:
        self.devices = list(devices)

    async def scan(self) -> Sequence[Device]:
        return list(self.devices)

    async def watch(self, notify: object) -> None:
        raise AssertionError("not used")


class Publisher:
    def __init__(self) -> None:
        self.published: list[list[Device]] = []

    async def publish_devices(self, devices: Sequence[Device]) -> None:
        self.published.append(list(devices))

    async def set_claim_status(self, claim: ClaimRef, devices: Sequence[DeviceStatus]) -> None:
        raise AssertionError("not used")

    async def clear_claim_status(self, claim: ClaimRef) -> None:
        raise AssertionError("not used")

    async def record_event(self, event: object) -> None:
        raise AssertionError("not used")

    async def run(self) -> None:
        raise AssertionError("not used")


def test_pci_address_gives_pci_bus_id() -> None:
    d = Device(name="eth1", attributes={"dra.net/pciAddress": "0000:3b:02.1", "dra.net/ifName": "eth1"})
    assert with_standard_attributes(d).attributes[PCI_BUS_ID] == "0000:3b:02.1"
    plain = Device(name="veth0", attributes={"dra.net/ifName": "veth0"})
    assert with_standard_attributes(plain) is plain
    own = Device(name="x", attributes={"dra.net/pciAddress": "0000:00:01.0", PCI_BUS_ID: "0000:00:02.0"})
    assert with_standard_attributes(own) is own  # a backend's own value wins


def test_no_pci_bus_id_when_the_device_is_at_the_attribute_limit() -> None:
    full = {f"dra.net/a{i}": i for i in range(31)}
    full["dra.net/pciAddress"] = "0000:00:03.0"
    d = Device(name="busy", attributes=full)
    assert with_standard_attributes(d) is d


def test_memo_reuses_unchanged_devices_and_forgets_gone_ones() -> None:
    std = StandardAttributes()
    a = Device(name="a", attributes={"dra.net/pciAddress": "0000:00:03.0"})
    first = std.apply({"a": a})["a"]
    again = std.apply({"a": Device(name="a", attributes={"dra.net/pciAddress": "0000:00:03.0"})})["a"]
    assert again is first
    moved = std.apply({"a": Device(name="a", attributes={"dra.net/pciAddress": "0000:00:04.0"})})["a"]
    assert moved.attributes[PCI_BUS_ID] == "0000:00:04.0"
    assert std.apply({}) == {}


async def test_inventory_publishes_pci_bus_id_for_merged_pci_devices() -> None:
    # a VF seen by two backends (netdev attributes + SR-IOV attributes) and an IB-only RDMA device
    netdev = Scan(
        Device(name="eth1", attributes={"dra.net/ifName": "eth1", "dra.net/pciAddress": "0000:3b:02.1"})
    )
    sriov = Scan(
        Device(name="eth1", attributes={"dra.net/isSriovVf": True}),
        Device(
            name="pci-0000-3b-00-1", attributes={"dra.net/pciAddress": "0000:3b:00.1", "dra.net/rdma": True}
        ),
        Device(name="veth0", attributes={"dra.net/ifName": "veth0"}),
    )
    pub = Publisher()
    inv = Inventory([netdev, sriov], pub)  # type: ignore[list-item]
    view = await inv.refresh()
    assert view.published["eth1"].attributes[PCI_BUS_ID] == "0000:3b:02.1"
    assert view.published["eth1"].attributes["dra.net/isSriovVf"] is True
    assert view.published["pci-0000-3b-00-1"].attributes[PCI_BUS_ID] == "0000:3b:00.1"
    assert PCI_BUS_ID not in view.published["veth0"].attributes
    (published,) = pub.published
    assert {d.name: d.attributes.get(PCI_BUS_ID) for d in published} == {
        "eth1": "0000:3b:02.1",
        "pci-0000-3b-00-1": "0000:3b:00.1",
        "veth0": None,
    }


def test_claim_source_reads_the_pod_claim_name_annotation() -> None:
    from dranet_core.kube.claims import claim_from_json

    ref = ClaimRef(namespace="default", name="pod-1-net-abcde", uid="u1")
    data = {
        "metadata": {
            "name": ref.name,
            "uid": "u1",
            "annotations": {"resource.kubernetes.io/pod-claim-name": "net"},
        },
        "status": {"allocation": {"devices": {"results": []}}},
    }
    assert claim_from_json(ref, data, driver="dra.net").pod_claim_name == "net"
    del data["metadata"]["annotations"]
    assert claim_from_json(ref, data, driver="dra.net").pod_claim_name is None
