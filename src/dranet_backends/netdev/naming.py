"""Device names for netdevs and PCI functions (DNS labels, stable across moves).

Delegates to :mod:`dranet_core.names` when the core has it; the fallback below follows the
same rules (the Go driver's ``pkg/names`` plus an injectivity guard):

* PCI: ``pci-`` + the address with ``:`` and ``.`` replaced by ``-``
  (``0000:8a:00.0`` -> ``pci-0000-8a-00-0``).
* Interface: kept as is when it is a DNS label and does not start with ``net-`` or ``pci-``;
  otherwise ``net-`` + lower-case unpadded base32 of the name (``eth:0`` -> ``net-mv2gqorq``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from dranet_core.types import is_dns_label

__all__ = ["device_name_for_interface", "device_name_for_pci"]


def _pci(address: str) -> str:
    return "pci-" + address.lower().replace(":", "-").replace(".", "-")


def _iface(ifname: str) -> str:
    if not ifname:
        raise ValueError("interface name is empty")
    if is_dns_label(ifname) and not ifname.startswith(("net-", "pci-")):
        return ifname
    return "net-" + base64.b32encode(ifname.encode()).decode().rstrip("=").lower()


def _core(name: str) -> Callable[[str], str] | None:
    try:
        from dranet_core import names
    except ImportError:
        return None
    fn = getattr(names, name, None)
    return fn if callable(fn) else None


device_name_for_pci: Callable[[str], str] = _core("device_name_for_pci") or _pci
device_name_for_interface: Callable[[str], str] = _core("device_name_for_interface") or _iface
