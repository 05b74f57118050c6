"""Standard device attributes derived from dranet's own: ``resource.kubernetes.io/pciBusID``.

Consumers of DRA device metadata (KubeVirt for PCI passthrough of an SR-IOV VF, DPDK apps)
read the PCI address of a device from the standard attribute
``resource.kubernetes.io/pciBusID``. Every PCI-backed device a backend publishes carries
``dra.net/pciAddress`` (netdev NICs and VFs, userspace-bound SR-IOV functions, IB-only RDMA
devices); the inventory adds the standard attribute with the same value where devices are
merged, so one rule covers every backend, third-party ones included.
"""

from __future__ import annotations

from typing import Final

import attrs

from dranet_core.types import DEVICE_ATTRIBUTE_MAX, Device, DeviceMemo

__all__ = ["PCI_ADDRESS", "PCI_BUS_ID", "StandardAttributes", "with_standard_attributes"]

PCI_ADDRESS: Final = "dra.net/pciAddress"
PCI_BUS_ID: Final = "resource.kubernetes.io/pciBusID"


def with_standard_attributes(device: Device) -> Device:
    """``device`` with ``resource.kubernetes.io/pciBusID`` set from ``dra.net/pciAddress``.

    Unchanged when the device has no PCI address, already has the attribute, or has no room
    left under the API's limit of 32 attributes and capacities.
    """
    address = device.attributes.get(PCI_ADDRESS)
    if not isinstance(address, str) or not address or PCI_BUS_ID in device.attributes:
        return device
    if len(device.attributes) + len(device.capacity) >= DEVICE_ATTRIBUTE_MAX:
        return device
    return attrs.evolve(device, attributes={**device.attributes, PCI_BUS_ID: address})


class StandardAttributes(DeviceMemo):
    """:func:`with_standard_attributes` over a whole scan, remembering the last result per
    device so an unchanged device is not rebuilt (and re-validated) on every scan."""

    def __init__(self) -> None:
        super().__init__(with_standard_attributes)
