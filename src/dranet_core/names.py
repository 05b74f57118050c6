"""Device names: the names devices get in a ResourceSlice (DNS labels), made injective.

* A PCI device is ``pci-`` + its address with ``:`` and ``.`` turned into ``-``:
  ``0000:8a:00.0`` -> ``pci-0000-8a-00-0``.
* An interface whose name is a DNS label (lower-case letters, digits and ``-``, at most
  63 characters, alphanumeric at both ends) keeps its name: ``eth0`` -> ``eth0``.
* Any other interface name is encoded: ``net-`` + the lower-case, unpadded RFC 4648 base32
  of its UTF-8 bytes: ``eth:0`` -> ``net-mv2gqorq``, ``ETH0`` -> ``net-ivkeqma``.

The collision guard (the Go driver has none): an interface name that starts with ``net-``
or ``pci-`` is *always* encoded, even if it is a DNS label. So the three kinds of output
never overlap: kept names never start with ``net-`` or ``pci-``, encoded names always start
with ``net-``, PCI names with ``pci-``; and base32 is injective. Two different interfaces
(or an interface and a PCI device) can therefore never get the same device name, and
:func:`interface_name_for_device` inverts the mapping. (Difference from Go: an interface
literally named ``net-a`` is published as ``net-nzsxillb`` rather than ``net-a``.)

Also here: :func:`adopted_uid`, the checkpoint key of a claim adopted from the Go driver
(kept apart from :mod:`dranet_core.go_upgrade`, which a running driver loads only when it
meets a Go checkpoint).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from dranet_core.types import is_dns_label

__all__ = [
    "ADOPTED_UID_PREFIX",
    "ENCODED_PREFIX",
    "PCI_PREFIX",
    "adopted_uid",
    "device_name_for_interface",
    "device_name_for_pci",
    "interface_name_for_device",
]

ENCODED_PREFIX: Final = "net-"
PCI_PREFIX: Final = "pci-"
_RESERVED_PREFIXES: Final = (ENCODED_PREFIX, PCI_PREFIX)
_MAX_LABEL: Final = 63
_PCI_ADDRESS: Final = re.compile(r"^([0-9a-f]{4,8}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$")


def device_name_for_pci(address: str) -> str:
    """``pci-`` + the PCI address with ``:``/``.`` as ``-``; ``ValueError`` if not an address.

    Accepts ``DDDD:BB:DD.F`` (domain of 4 to 8 hex digits, any case; the name is lower-case).
    """
    m = _PCI_ADDRESS.match(address.lower())
    if not m:
        raise ValueError(f"not a PCI address (DDDD:BB:DD.F): {address!r}")
    return PCI_PREFIX + "-".join(m.groups())


def device_name_for_interface(ifname: str) -> str:
    """The device name of a network interface without PCI identity (see module doc).

    Raises ``ValueError`` for an empty name, or one so long that its encoding would not fit
    a DNS label (more than 36 bytes; Linux names have at most 15).
    """
    if not ifname:
        raise ValueError("interface name must not be empty")
    if is_dns_label(ifname) and not ifname.startswith(_RESERVED_PREFIXES):
        return ifname
    raw = ifname.encode("utf-8", "surrogateescape")
    encoded = ENCODED_PREFIX + base64.b32encode(raw).decode("ascii").rstrip("=").lower()
    if len(encoded) > _MAX_LABEL:
        raise ValueError(f"interface name too long to encode as a device name: {ifname!r}")
    return encoded


def interface_name_for_device(device: str) -> str | None:
    """The interface name a device name stands for; ``None`` for PCI or foreign names.

    The inverse of :func:`device_name_for_interface`:
    ``interface_name_for_device(device_name_for_interface(n)) == n`` for every valid ``n``.
    """
    if device.startswith(PCI_PREFIX):
        return None
    if not device.startswith(ENCODED_PREFIX):
        return device if is_dns_label(device) else None
    body = device[len(ENCODED_PREFIX) :].upper()
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except (binascii.Error, ValueError):
        return None
    if not raw:
        return None
    name = raw.decode("utf-8", "surrogateescape")
    # only a canonical encoding maps back (rejects e.g. non-zero trailing bits)
    return name if device_name_for_interface(name) == device else None


ADOPTED_UID_PREFIX: Final = "go-dranet:"


def adopted_uid(namespace: str, name: str) -> str:
    """The journal key of a claim adopted from the Go driver (it recorded no claim UID)."""
    return f"{ADOPTED_UID_PREFIX}{namespace}/{name}"
