"""VRF devices in a pod netns: the messages, the default table, find-or-create.

A claim with ``interface.vrf`` gets its interface enslaved to a VRF device (created in the pod
netns if no VRF of that name exists), and its routes forced into the VRF's table. This
kernel build has no VRF (``CONFIG_NET_VRF``), so real tests are gated by a probe; the request
built here is checked byte for byte against the rtnetlink layout in the unit tests.

The request to create one is an RTM_NEWLINK with ``NLM_F_CREATE|NLM_F_EXCL`` carrying
``IFLA_IFNAME`` and ``IFLA_LINKINFO { IFLA_INFO_KIND "vrf", IFLA_INFO_DATA { IFLA_VRF_TABLE
u32 } }``.
"""

from __future__ import annotations

import socket
import struct
from typing import Final

__all__ = ["TABLE_OFFSET", "create_request", "default_table", "fnv32a"]

TABLE_OFFSET: Final = 1000
"""Default VRF tables are FNV-32a(name) mod 1000 + 1000 (as the Go driver): 1000..1999."""


def fnv32a(data: bytes) -> int:
    """FNV-1a, 32 bits."""
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def default_table(name: str) -> int:
    """The table a VRF named ``name`` uses when none is configured (deterministic)."""
    return fnv32a(name.encode()) % 1000 + TABLE_OFFSET


def create_request(name: str, table: int) -> bytes:
    """The RTM_NEWLINK body that creates VRF ``name`` bound to ``table``."""

    def rta(atype: int, payload: bytes) -> bytes:
        raw = struct.pack("=HH", 4 + len(payload), atype) + payload
        return raw + b"\0" * (-len(raw) % 4)

    data = rta(2, rta(1, struct.pack("=I", table)))  # IFLA_INFO_DATA { IFLA_VRF_TABLE }
    linkinfo = rta(18, rta(1, b"vrf\0") + data)  # IFLA_LINKINFO { IFLA_INFO_KIND, ... }
    return struct.pack("=BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0) + rta(3, name.encode() + b"\0") + linkinfo
