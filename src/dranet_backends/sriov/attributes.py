"""Device attributes of a userspace-bound PCI network function (vfio-pci, uio), a pure function.

The PCI attributes are the netdev backend's (:func:`dranet_backends.pci.pci_attributes`:
``pciAddress``, ``pciVendor``, ``pciDevice``, ``pciSubsystem``, ``numaNode``,
``resource.kubernetes.io/numaNode``, ``resource.kubernetes.io/pcieRoot``, ``rdma=false``);
this backend adds:

=============================  ======  ====================================================
attribute                      type    value
=============================  ======  ====================================================
dra.net/pciDriver              string  the bound driver: ``vfio-pci``, ``uio_pci_generic``,
                                       ``igb_uio``
dra.net/vfio                   bool    bound to vfio-pci (containers get ``/dev/vfio/*``)
dra.net/iommuGroup             int     IOMMU group number (absent without an IOMMU)
dra.net/iommuGroupShared       bool    other (non-bridge) functions are in the same IOMMU
                                       group: giving this device to a pod is not isolated
                                       from them; absent without a group
dra.net/sriov                  bool    ``sriov_totalvfs`` > 0 (an SR-IOV capable PF)
dra.net/sriovVfs               int     ``sriov_numvfs`` (only when sriov)
dra.net/isSriovVf              bool    a VF (``physfn`` exists); only ``true`` is emitted
dra.net/sriovPfAddress         string  the PF's PCI address (VFs only)
dra.net/sriovPfName            string  the PF's interface name, when the PF has a netdev in
                                       the host namespace (VFs only)
dra.net/sriovVfIndex           int     the VF's ``virtfnN`` index on its PF (VFs only)
=============================  ======  ====================================================

Userspace-bound functions have no netdev, so none of the netdev attributes (``ifName``,
``mtu``, ...) are published for them. For a VF bound to a kernel driver (published by the
netdev backend) this backend adds only the VF attributes (:func:`vf_attributes`).
"""

from __future__ import annotations

from dranet_backends.pci import PciIds, pci_attributes
from dranet_core.types import STRING_ATTRIBUTE_MAX_LEN, AttributeValue

from .sysfs import SriovFunction

__all__ = ["sriov_attributes", "vf_attributes"]

D = "dra.net/"


def sriov_attributes(fn: SriovFunction, ids: PciIds | None) -> dict[str, AttributeValue]:
    """The attributes of userspace-bound function ``fn`` (PCI names from ``ids`` when known)."""
    attrs = pci_attributes(fn.pci, ids)
    attrs[D + "pciDriver"] = fn.driver[:STRING_ATTRIBUTE_MAX_LEN]
    attrs[D + "vfio"] = fn.driver == "vfio-pci"
    if fn.iommu_group is not None:
        attrs[D + "iommuGroup"] = fn.iommu_group
        attrs[D + "iommuGroupShared"] = bool(fn.iommu_peers)
    attrs[D + "sriov"] = bool(fn.sriov_totalvfs)
    if fn.sriov_totalvfs:
        attrs[D + "sriovVfs"] = fn.sriov_numvfs or 0
    attrs.update(vf_attributes(fn))
    return attrs


def vf_attributes(fn: SriovFunction) -> dict[str, AttributeValue]:
    """``isSriovVf``, ``sriovPfAddress``, ``sriovPfName`` and ``sriovVfIndex`` of a VF (empty otherwise)."""
    attrs: dict[str, AttributeValue] = {}
    if fn.pf is not None:
        attrs[D + "isSriovVf"] = True
        attrs[D + "sriovPfAddress"] = fn.pf
        if fn.pf_ifname:
            attrs[D + "sriovPfName"] = fn.pf_ifname[:STRING_ATTRIBUTE_MAX_LEN]
        if fn.vf_index is not None:
            attrs[D + "sriovVfIndex"] = fn.vf_index
    return attrs
