"""Static defaults of a claim configuration (those that need no device or host state).

A VRF without a ``table`` gets ``FNV-32a(name) % 1000 + 1000`` (range 1000..1999), as in
the Go driver. It is deterministic, so every interface that joins the same VRF name gets
the same table. A ``subinterface`` without a ``mode`` gets its type's first mode (macvlan
``bridge``, ipvlan ``l2``) and an ipvlan one without a ``flag`` gets ``bridge``. Runtime
defaults (interface name = host name, addresses and routes copied from the host) belong to
the backend at prepare time.
"""

from __future__ import annotations

from typing import Final

import attrs

from dranet_core.config.model import IPVLAN_FLAGS, SUBINTERFACE_MODES, NetworkConfig

__all__ = ["VRF_TABLE_OFFSET", "apply_defaults", "fnv32a", "vrf_table_for"]

VRF_TABLE_OFFSET: Final = 1000
"""First table of the default VRF table range (as the Go driver's ``VRFTableOffset``)."""

_FNV32_OFFSET_BASIS: Final = 0x811C9DC5
_FNV32_PRIME: Final = 0x01000193


def fnv32a(data: bytes) -> int:
    """The 32-bit FNV-1a hash of ``data``."""
    h = _FNV32_OFFSET_BASIS
    for byte in data:
        h = ((h ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def vrf_table_for(name: str) -> int:
    """The default routing table of VRF ``name``: FNV-32a(UTF-8 name) % 1000 + 1000."""
    return fnv32a(name.encode("utf-8")) % 1000 + VRF_TABLE_OFFSET


def apply_defaults(config: NetworkConfig) -> NetworkConfig:
    """``config`` with the static defaults filled in (a new value; the input is unchanged).

    Set fields are never touched, and a VRF with no (or an empty) name gets no table.
    """
    sub = config.subinterface
    if sub is not None and sub.type is not None and sub.type in SUBINTERFACE_MODES:
        mode = sub.mode or SUBINTERFACE_MODES[sub.type][0]
        flag = (sub.flag or IPVLAN_FLAGS[0]) if sub.type == "ipvlan" else sub.flag
        if (mode, flag) != (sub.mode, sub.flag):
            config = attrs.evolve(config, subinterface=attrs.evolve(sub, mode=mode, flag=flag))
    iface = config.interface
    if iface is None or iface.vrf is None or iface.vrf.table is not None or not iface.vrf.name:
        return config
    vrf = attrs.evolve(iface.vrf, table=vrf_table_for(iface.vrf.name))
    return attrs.evolve(config, interface=attrs.evolve(iface, vrf=vrf))
