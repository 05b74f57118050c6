"""Prepare-time config checks for SR-IOV devices (pure functions; the PF MTU is read by the caller).

* A **userspace-bound** device (vfio-pci, uio) has no netdev, so every netdev setting is
  rejected, each at its own JSON path: every set field of ``interface`` (``interface.mtu``,
  ``interface.addresses``, ...), and non-empty ``routes``, ``rules``, ``neighbors``,
  ``ethtool.features`` / ``ethtool.privateFlags``. ``profile`` is allowed (as the Go
  driver's RDMA-only rule).
* A **VF** must not get an MTU above its PF's (the Go driver's ``validateVFMTU``): a set
  ``interface.mtu`` greater than the PF netdev's MTU is rejected at ``interface.mtu``,
  naming both values. When the PF's MTU is unknown (no PF netdev in the host namespace),
  nothing is checked.
* An ``sriov`` section (VF settings made through the PF) is only for an SR-IOV VF whose PF
  and VF number the sriov backend knows (its facet); anything else is rejected at
  ``sriov``, naming the device.
"""

from __future__ import annotations

import attrs

from dranet_core.config.model import EthtoolConfig, InterfaceConfig, NetworkConfig
from dranet_core.errors import ConfigIssue

from .facet import SriovFacet

__all__ = ["netdev_config_issues", "sriov_config_issues", "vf_mtu_issues"]


def _json(field: attrs.Attribute[object]) -> str:
    return str(field.metadata.get("json", field.name))


def netdev_config_issues(config: NetworkConfig, device: str, driver: str) -> list[ConfigIssue]:
    """Issues for every netdev setting in ``config`` of ``device``, bound to ``driver`` (no netdev)."""
    why = f"device {device} is bound to {driver} and has no network interface"
    issues: list[ConfigIssue] = []
    if config.interface is not None:
        for field in attrs.fields(InterfaceConfig):
            if getattr(config.interface, field.name) is not None:
                issues.append(ConfigIssue(f"interface.{_json(field)}", f"not allowed: {why}"))
    for name in ("routes", "rules", "neighbors"):
        if getattr(config, name):
            issues.append(ConfigIssue(name, f"not allowed: {why}"))
    if config.ethtool is not None:
        for field in attrs.fields(EthtoolConfig):
            if getattr(config.ethtool, field.name):
                issues.append(ConfigIssue(f"ethtool.{_json(field)}", f"not allowed: {why}"))
    return issues


def vf_mtu_issues(config: NetworkConfig, pf_name: str, pf_mtu: int) -> list[ConfigIssue]:
    """An issue if ``config`` asks for an MTU above ``pf_mtu``, the MTU of PF netdev ``pf_name``."""
    mtu = config.interface.mtu if config.interface is not None else None
    if mtu is None or mtu <= pf_mtu:
        return []
    return [
        ConfigIssue(
            "interface.mtu",
            f"must be <= {pf_mtu}, the MTU of the VF's physical function {pf_name}, got {mtu}",
        )
    ]


def sriov_config_issues(device: str, facet: SriovFacet) -> list[ConfigIssue]:
    """An issue unless ``device`` (a PCI function with sriov ``facet``) is a VF whose PF-side
    settings can be made."""
    if facet.is_vf:
        return []
    if facet.pf is not None:
        why = f"device {device} is an SR-IOV VF whose PF and VF number are unknown here"
    else:
        why = f"device {device} is not an SR-IOV VF"
    return [ConfigIssue("sriov", f"not allowed: {why} (VF settings are made through the VF's PF)")]
