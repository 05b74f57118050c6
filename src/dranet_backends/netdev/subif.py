"""Subinterfaces: a fresh macvlan (or ipvlan) child of a shared parent, made inside a pod.

The parent (the uplink) stays in the host netns; each claim that shares it gets its own child,
created by one RTM_NEWLINK sent in the host netns with ``IFLA_LINK`` naming the parent and
``IFLA_NET_NS_FD`` naming the pod's netns, so the child is born in the pod (it is never visible
on the host). Detach deletes the child in the pod; the parent is never touched.

Byte layouts from the kernel uapi ``linux/if_link.h``: ``IFLA_LINK``, ``IFLA_LINKINFO`` with
``IFLA_INFO_KIND`` and ``IFLA_INFO_DATA``; inside the data ``IFLA_MACVLAN_MODE`` (u32) or
``IFLA_IPVLAN_MODE`` / ``IFLA_IPVLAN_FLAGS`` (u16 each).

Contracts:

* :func:`create_child` either returns the new child's link record in the pod or raises with
  nothing left behind; configuring it (addresses, up, routes ...) is the attach steps' job
  (:mod:`.attach`), which delete it again when a later step fails.
* :func:`delete_child` deletes the child in the pod netns only when it is the claim's own
  (``is_ours``: kind and MAC); a child already gone is success.
* A kernel without the link kind answers ``EOPNOTSUPP``: the error names the type.
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Callable
from typing import Any, Final

from dranet_backends.netdev import rtmsg
from dranet_backends.netdev.nsutil import Rtnl

__all__ = [
    "IPVLAN_MODES",
    "MACVLAN_MODES",
    "child_body",
    "create_child",
    "delete_child",
]

IFLA_ADDRESS = 1
IFLA_IFNAME, IFLA_LINK, IFLA_LINKINFO, IFLA_NET_NS_FD = 3, 5, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_MACVLAN_MODE = 1
IFLA_IPVLAN_MODE, IFLA_IPVLAN_FLAGS = 1, 2
_U16: Final = struct.Struct("=H")

MACVLAN_MODES: Final = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
"""``macvlan`` modes by the names ``ip link`` uses, to the kernel's MACVLAN_MODE_* values."""
IPVLAN_MODES: Final = {"l2": 0, "l3": 1, "l3s": 2}
"""``ipvlan`` modes by the names ``ip link`` uses, to the kernel's IPVLAN_MODE_* values."""
_IPVLAN_FLAGS: Final = {"bridge": 0, "private": 1, "vepa": 2}


def _info_data(kind: str, mode: str, flags: str) -> bytes:
    if kind == "macvlan":
        if mode not in MACVLAN_MODES:
            raise ValueError(
                f"subinterface mode {mode!r} is not a macvlan mode (one of {sorted(MACVLAN_MODES)})"
            )
        return rtmsg._rta(IFLA_MACVLAN_MODE, rtmsg.U32.pack(MACVLAN_MODES[mode]))
    if kind == "ipvlan":
        if mode not in IPVLAN_MODES:
            raise ValueError(
                f"subinterface mode {mode!r} is not an ipvlan mode (one of {sorted(IPVLAN_MODES)})"
            )
        if flags not in _IPVLAN_FLAGS:
            raise ValueError(
                f"subinterface flag {flags!r} is not an ipvlan flag (one of {sorted(_IPVLAN_FLAGS)})"
            )
        return rtmsg._rta(IFLA_IPVLAN_MODE, _U16.pack(IPVLAN_MODES[mode])) + rtmsg._rta(
            IFLA_IPVLAN_FLAGS, _U16.pack(_IPVLAN_FLAGS[flags])
        )
    raise ValueError(f"subinterface kind {kind!r} is not supported (macvlan or ipvlan)")


def child_body(
    *,
    kind: str,
    mode: str,
    parent_index: int,
    name: str,
    netns_fd: int,
    flags: str = "bridge",
    mac: str | None = None,
) -> bytes:
    """The RTM_NEWLINK body creating child ``name`` of ``parent_index`` inside ``netns_fd``
    (with MAC ``mac`` from birth, if given: a macvlan's identity before it exists).

    Raises ``ValueError`` naming the field for an unknown kind, mode or ipvlan flag, or a name
    the kernel would refuse (empty or over 15 bytes).
    """
    if not name or len(name.encode()) > 15 or "/" in name or name.strip() != name:
        raise ValueError(f"subinterface name {name!r} is not a valid interface name (1-15 bytes, no '/')")
    data = _info_data(kind, mode, flags)
    linkinfo = rtmsg._rta(IFLA_INFO_KIND, rtmsg._str(kind)) + rtmsg._rta(IFLA_INFO_DATA, data)
    address = rtmsg._rta(IFLA_ADDRESS, rtmsg._mac(mac)) if mac else b""
    return (
        rtmsg.IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        + rtmsg._rta(IFLA_IFNAME, rtmsg._str(name))
        + rtmsg._rta(IFLA_LINK, rtmsg.U32.pack(parent_index))
        + rtmsg._rta(IFLA_NET_NS_FD, rtmsg.U32.pack(netns_fd))
        + address
        + rtmsg._rta(IFLA_LINKINFO, linkinfo)
    )


async def create_child(
    host: Rtnl,
    pod: Rtnl,
    *,
    kind: str,
    mode: str,
    flags: str = "bridge",
    parent_index: int,
    name: str,
    pod_netns_fd: int,
    mac: str | None = None,
) -> Any:
    """Create child ``name`` of host link ``parent_index`` directly in the pod (down).

    Returns the child's link record in the pod. Raises ``OSError`` (the kernel's refusal;
    ``EOPNOTSUPP`` reworded to name the missing link type) or ``ValueError`` (a bad kind,
    mode, flag or name), with nothing created.
    """
    body = child_body(
        kind=kind,
        mode=mode,
        flags=flags,
        parent_index=parent_index,
        name=name,
        netns_fd=pod_netns_fd,
        mac=mac,
    )
    try:
        await host.link_new(body)
    except OSError as exc:
        if exc.errno == errno.EOPNOTSUPP:
            raise OSError(exc.errno, f"this kernel has no {kind} support (link type unknown)") from exc
        raise
    child = await pod.link_get(ifname=name)
    if child is None:
        raise OSError(errno.ENODEV, f"subinterface {name!r} was created but is not in the pod netns")
    return child


async def delete_child(pod: Rtnl, name: str, is_ours: Callable[[Any], bool]) -> bool:
    """Delete child ``name`` in the pod netns if ``is_ours(link)``; False if there is none
    (gone, or the name is another link's: that one is left alone)."""
    child = await pod.link_get(ifname=name)
    if child is None or not is_ours(child):
        return False
    await pod.link_del(int(child["index"]))
    return True
