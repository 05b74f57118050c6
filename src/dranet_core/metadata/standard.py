"""Standard device attributes derived from dranet's own: ``resource.kubernetes.io/pciBusID``.

Consumers of DRA device metadata (KubeVirt for PCI passthrough of an SR-IOV VF, DPDK apps)
read the PCI address of a device from the standard attribute
``resource.kubernetes.io/pciBusID``. Every PCI-backed device a backend publishes carries
``dra.net/pciAddress`` (netdev NICs and VFs, userspace-bound SR-IOV functions, IB-only RDMA
devices); the inventory adds the standard attribute with the same value where devices are
merged, so one rule covers every backend, third-party ones included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import attrs

from dranet_core.types import DEVICE_ATTRIBUTE_MAX, Device

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


class StandardAttributes:
    """:func:`with_standard_attributes` over a whole scan, remembering the last result per
    device so an unchanged device is not rebuilt (and re-validated) on every scan."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[Device, Device]] = {}

    def apply(self, devices: Mapping[str, Device]) -> dict[str, Device]:
        """``devices`` with the standard attributes added, by name."""
        out: dict[str, Device] = {}
        for name, dev in devices.items():
            hit = self._last.get(name)
            if hit is not None and (hit[0] is dev or hit[0] == dev):
                out[name] = hit[1]
            else:
                out[name] = with_standard_attributes(dev)
                self._last[name] = (dev, out[name])
        for gone in self._last.keys() - devices.keys():
            del self._last[gone]
        return out
