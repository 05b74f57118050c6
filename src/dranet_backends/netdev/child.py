"""Subinterface devices in the mover: the journalled record of a claim's child, and its identity.

A device published as shareable stays on the host; each claim that shares it gets a fresh
macvlan or ipvlan child created in its pod (:mod:`.subif`). For such a device the mover's
"snapshot" is not the host state of the device (nothing on the host changes) but a
:class:`ChildRecord`, written to the journal *before* the child exists: the child's kind,
mode, name, parent and MAC. A macvlan child gets its MAC at creation (the configured one, or
a random locally administered one chosen here), so after a crash at any step the driver
can tell the claim's child from any other link, finish the attach or delete it; an ipvlan
child always carries its parent's MAC, so it is known by kind, name and that MAC.

JSON form (the checkpoint's ``snapshot.netdev`` of the device)::

    {"version": 1, "subinterface": {"kind": "macvlan", "mode": "bridge", "flag": null,
     "parent": "eth1", "parent_index": 4, "parent_mac": "...", "name": "net1", "mac": "...",
     "unique_mac": true}}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

import attrs

from dranet_backends.netdev.facet import NetdevFacet
from dranet_backends.netdev.hostside import same_device
from dranet_backends.netdev.nsutil import Rtnl
from dranet_backends.netdev.snapshot import HostSnapshot
from dranet_core.config.formats import parse_mac
from dranet_core.errors import DeviceError, DeviceNotFoundError
from dranet_core.plans import PreparedDevice

__all__ = ["CHILD_RECORD_VERSION", "ChildRecord", "is_child_record", "random_mac", "record_child"]

CHILD_RECORD_VERSION: Final = 1
_KEY: Final = "subinterface"


def random_mac() -> str:
    """A random unicast, locally administered Ethernet MAC."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFE) | 0x02
    return raw.hex(":")


@attrs.frozen(kw_only=True)
class ChildRecord:
    """What the journal holds about one claim's child (see the module docstring)."""

    kind: str
    mode: str
    flag: str | None
    parent: str
    parent_index: int
    parent_mac: str
    name: str
    mac: str
    unique_mac: bool = False
    """The driver chose ``mac`` at random: no other link carries it (a configured MAC may be
    given to several claims; an ipvlan child carries its parent's)."""

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored in the checkpoint."""
        return {"version": CHILD_RECORD_VERSION, _KEY: attrs.asdict(self)}

    @classmethod
    def from_json(cls, data: Any) -> ChildRecord:
        """Parse :meth:`to_json` output; raises ``ValueError`` naming what is wrong."""
        if not is_child_record(data):
            raise ValueError("subinterface record must be an object with a 'subinterface' object")
        if data.get("version") != CHILD_RECORD_VERSION:
            raise ValueError(
                f"subinterface record version {data.get('version')!r} is not {CHILD_RECORD_VERSION}"
            )
        body = data[_KEY]
        try:
            rec = cls(**body)
        except TypeError as exc:
            raise ValueError(f"subinterface record: {exc}") from exc
        for field in attrs.fields(cls):
            value = getattr(rec, field.name)
            if field.name == "parent_index":
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif field.name == "unique_mac":
                ok = isinstance(value, bool)
            else:
                ok = (value is None and field.name == "flag") or isinstance(value, str)
            if not ok:
                raise ValueError(f"subinterface record: {field.name} {value!r} has the wrong type")
        return rec

    @property
    def identity(self) -> HostSnapshot:
        """The child as a link to look for: its name, kind and MAC (never an ifindex)."""
        return HostSnapshot(ifname=self.name, ifindex=0, kind=self.kind, mac=self.mac, virtual=True)

    def is_ours(self, link: Any) -> bool:
        """Whether ``link`` (a link record in some netns) is this claim's child."""
        return same_device(link, self.identity)


def is_child_record(data: Any) -> bool:
    """Whether a journalled netdev snapshot is a subinterface record."""
    return isinstance(data, Mapping) and isinstance(data.get(_KEY), Mapping)


async def record_child(host: Rtnl, device: PreparedDevice, facet: NetdevFacet) -> ChildRecord:
    """The record of the child ``device``'s claim will get (before it exists).

    Raises :class:`DeviceNotFoundError` when the parent is not on the host, and
    :class:`DeviceError` when the config has no ``subinterface`` section.
    """
    sub = device.config.subinterface
    if sub is None or not sub.type or not sub.mode:
        raise DeviceError(device.device, "snapshot", "no subinterface type and mode in the config")
    link = await host.link_get(index=facet.ifindex)
    if link is None or link.get("ifname") != facet.ifname:
        link = await host.link_get(ifname=facet.ifname)
    if link is None:
        raise DeviceNotFoundError(
            device.device, "snapshot", f"subinterface parent {facet.ifname} is not on the host"
        )
    parent_mac = str(link.get("address") or "").lower()
    iface = device.config.interface
    name = (iface.name if iface is not None and iface.name else None) or facet.ifname
    configured = (
        parse_mac(iface.hardware_addr).hex(":") if iface is not None and iface.hardware_addr else None
    )
    mac = (configured or random_mac()) if sub.type == "macvlan" else parent_mac
    return ChildRecord(
        kind=sub.type,
        mode=sub.mode,
        flag=sub.flag,
        parent=str(link.get("ifname")),
        parent_index=int(link["index"]),
        parent_mac=parent_mac,
        name=name,
        mac=mac,
        unique_mac=sub.type == "macvlan" and configured is None,
    )
