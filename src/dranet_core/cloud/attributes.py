"""The cloud attributes read at start: node-wide ones, and ones matched by MAC or PCI address."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from dranet_core.config.model import NetworkConfig
from dranet_core.types import AttributeValue, Device

__all__ = ["CloudAttributes", "normal_mac"]


def normal_mac(mac: str) -> str:
    """``mac`` lower-case without separators, so ``00-0D-3A-01-02-03`` (Azure), ``000D3A010203``
    and ``00:0d:3a:01:02:03`` (Linux) compare equal."""
    return mac.replace(":", "").replace("-", "").lower()


class CloudAttributes:
    """Node-level attributes plus per-MAC and per-PCI-address attributes.

    :meth:`apply` adds them to the devices of every scan: ``node`` to every device, ``by_mac``
    to the device whose ``dra.net/mac`` matches (see :func:`normal_mac`), ``by_pci`` to the
    device whose ``dra.net/pciAddress`` matches (case-insensitive). The cloud's values win over
    the backends', as in the Go driver. ``configs_by_mac`` are baseline configs (the Go
    driver's ``GetDeviceConfig``); :meth:`baseline` gives the one of a device seen by the last
    :meth:`apply`, by MAC.
    """

    def __init__(
        self,
        node: Mapping[str, AttributeValue] | None = None,
        by_mac: Mapping[str, Mapping[str, AttributeValue]] | None = None,
        by_pci: Mapping[str, Mapping[str, AttributeValue]] | None = None,
        configs_by_mac: Mapping[str, NetworkConfig] | None = None,
    ) -> None:
        self.node = dict(node or {})
        self.by_mac = {normal_mac(mac): dict(a) for mac, a in (by_mac or {}).items()}
        self.by_pci = {bdf.lower(): dict(a) for bdf, a in (by_pci or {}).items()}
        self.configs_by_mac = {normal_mac(mac): c for mac, c in (configs_by_mac or {}).items()}
        self._baselines: dict[str, NetworkConfig] = {}

    def __bool__(self) -> bool:
        return (
            bool(self.node)
            or any(self.by_mac.values())
            or any(self.by_pci.values())
            or bool(self.configs_by_mac)
        )

    def baseline(self, device: str) -> NetworkConfig | None:
        """The baseline config of ``device`` (by its MAC at the last :meth:`apply`), or None."""
        return self._baselines.get(device)

    def __repr__(self) -> str:
        return f"CloudAttributes(node={self.node!r}, by_mac={self.by_mac!r}, by_pci={self.by_pci!r})"

    def for_device(self, dev: Device) -> dict[str, AttributeValue]:
        """The attributes ``dev`` gets (node-wide, then by MAC, then by PCI address)."""
        mac = normal_mac(str(dev.attributes.get("dra.net/mac") or ""))
        pci = str(dev.attributes.get("dra.net/pciAddress") or "").lower()
        return {
            **self.node,
            **(self.by_mac.get(mac, {}) if mac else {}),
            **(self.by_pci.get(pci, {}) if pci else {}),
        }

    async def enrich(self, devices: Mapping[str, Device]) -> dict[str, Device]:
        """:meth:`apply`, as the inventory's enrichment step (it awaits it)."""
        return self.apply(devices)

    def apply(self, devices: Mapping[str, Device]) -> dict[str, Device]:
        """``devices`` with the cloud attributes added; an unchanged device is the same object."""
        out: dict[str, Device] = {}
        self._baselines = {}
        for name, dev in devices.items():
            if self.configs_by_mac:
                config = self.configs_by_mac.get(normal_mac(str(dev.attributes.get("dra.net/mac") or "")))
                if config is not None:
                    self._baselines[name] = config
            extra = self.for_device(dev)
            if extra and any(dev.attributes.get(k) != v for k, v in extra.items()):
                dev = attrs.evolve(dev, attributes={**dev.attributes, **extra})
            out[name] = dev
        return out
