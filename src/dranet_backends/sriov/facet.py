"""The sriov facet: what the sriov backend records privately about a device it handles.

``Device.facets["sriov"]`` (and so ``PreparedDevice.facets["sriov"]``, stored in the
checkpoint at prepare time) is a JSON object::

    {
      "pci_address": "0000:00:03.1",   # the function
      "driver":      "vfio-pci",       # vfio-pci, uio_pci_generic, igb_uio, or a kernel
                                       # network driver (a VF with a netdev: iavf, mlx5_core...)
      "iommu_group": 12,               # IOMMU group number, or null (no IOMMU)
      "pf":          "0000:00:03.0",   # PCI address of the PF for a VF, else null
      "vf_index":    0,                # virtfnN index on the PF, else null
      "pf_ifname":   "eth1",           # the PF's netdev at discovery time, else null
      "uio":         ["uio0"]          # uioN nodes of a uio-bound function (else [])
    }

Two kinds of device get it: functions bound to a userspace driver (no netdev; this backend
publishes them) and SR-IOV VFs bound to a kernel driver whose netdev is in the host
namespace (the netdev backend publishes and moves them; this facet lets the sriov backend
apply the claim's ``sriov`` settings through the PF). Readers use
:meth:`SriovFacet.from_json`, which ignores unknown keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from .sysfs import PASSTHROUGH_DRIVERS, SriovFunction

__all__ = ["FACET", "SriovFacet"]

FACET = "sriov"
"""The key of this backend's facet in ``Device.facets``."""


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"sriov facet: {key} must be an integer or null, got {value!r}")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"sriov facet: {key} must be a string or null, got {value!r}")
    return value


@attrs.frozen(kw_only=True)
class SriovFacet:
    """The sriov backend's private data about one device (see the module docstring)."""

    pci_address: str
    driver: str
    iommu_group: int | None = None
    pf: str | None = None
    vf_index: int | None = None
    pf_ifname: str | None = None
    uio: tuple[str, ...] = ()

    @property
    def is_vfio(self) -> bool:
        """Whether the device is bound to vfio-pci."""
        return self.driver == "vfio-pci"

    @property
    def userspace(self) -> bool:
        """Whether the device is bound to a userspace driver (vfio-pci, uio): no netdev."""
        return self.driver in PASSTHROUGH_DRIVERS

    @property
    def is_vf(self) -> bool:
        """Whether the device is an SR-IOV VF with a known PF and VF number."""
        return self.pf is not None and self.vf_index is not None

    @classmethod
    def of(cls, fn: SriovFunction) -> SriovFacet:
        """The facet of a discovered function."""
        return cls(
            pci_address=fn.address,
            driver=fn.driver,
            iommu_group=fn.iommu_group,
            pf=fn.pf,
            vf_index=fn.vf_index,
            pf_ifname=fn.pf_ifname,
            uio=fn.uio,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored in ``Device.facets["sriov"]``."""
        return {
            "pci_address": self.pci_address,
            "driver": self.driver,
            "iommu_group": self.iommu_group,
            "pf": self.pf,
            "vf_index": self.vf_index,
            "pf_ifname": self.pf_ifname,
            "uio": list(self.uio),
        }

    @classmethod
    def from_json(cls, data: Any) -> SriovFacet:
        """Read a facet; raises ValueError naming the key if one is missing or of the wrong type."""
        if not isinstance(data, Mapping):
            raise ValueError(f"sriov facet: expected an object, got {type(data).__name__}")
        address = data.get("pci_address")
        driver = data.get("driver")
        if not isinstance(address, str) or not address:
            raise ValueError(f"sriov facet: missing or bad key 'pci_address': {address!r}")
        if not isinstance(driver, str) or not driver:
            raise ValueError(f"sriov facet: missing or bad key 'driver': {driver!r}")
        uio = data.get("uio") or []
        if not isinstance(uio, list | tuple) or not all(isinstance(u, str) for u in uio):
            raise ValueError(f"sriov facet: uio must be a list of strings, got {uio!r}")
        return cls(
            pci_address=address,
            driver=driver,
            iommu_group=_opt_int(data, "iommu_group"),
            pf=_opt_str(data, "pf"),
            vf_index=_opt_int(data, "vf_index"),
            pf_ifname=_opt_str(data, "pf_ifname"),
            uio=tuple(uio),
        )
