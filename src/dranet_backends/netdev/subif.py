"""Subinterfaces: a fresh macvlan (or ipvlan) child of a shared parent, made inside a pod.

The parent (the uplink) stays in the host netns; each claim that shares it gets its own child,
created by one RTM_NEWLINK sent in the host netns with ``IFLA_LINK`` naming the parent and
``IFLA_NET_NS_FD`` naming the pod's netns, so the child is born in the pod (it is never visible
on the host). Detach deletes the child in the pod; the parent is never touched.

Byte layouts from the kernel uapi ``linux/if_link.h``: ``IFLA_LINK``, ``IFLA_LINKINFO`` with
``IFLA_INFO_KIND`` and ``IFLA_INFO_DATA``; inside the data ``IFLA_MACVLAN_MODE`` (u32) or
``IFLA_IPVLAN_MODE`` / ``IFLA_IPVLAN_FLAGS`` (u16 each).

Contracts:

* :func:`attach_child` either returns the child's index in the pod, up and configured, or
  raises with nothing left behind (a child it made is deleted again: rollback).
* :func:`detach_child` deletes the child by name in the pod netns; a child already gone (the
  pod's netns was torn down, which deletes its children) is success.
* :func:`kernel_supports` is the probe for a link kind: ipvlan is not built into every kernel.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path
from typing import Final

from dranet_backends.netdev import rtmsg
from dranet_backends.netdev.nsutil import Rtnl

__all__ = [
    "IPVLAN_MODES",
    "MACVLAN_MODES",
    "attach_child",
    "child_body",
    "detach_child",
    "kernel_supports",
]

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
    *, kind: str, mode: str, parent_index: int, name: str, netns_fd: int, flags: str = "bridge"
) -> bytes:
    """The RTM_NEWLINK body creating child ``name`` of ``parent_index`` inside ``netns_fd``.

    Raises ``ValueError`` naming the field for an unknown kind, mode or ipvlan flag, or a name
    the kernel would refuse (empty or over 15 bytes).
    """
    if not name or len(name.encode()) > 15 or "/" in name or name.strip() != name:
        raise ValueError(f"subinterface name {name!r} is not a valid interface name (1-15 bytes, no '/')")
    data = _info_data(kind, mode, flags)
    linkinfo = rtmsg._rta(IFLA_INFO_KIND, rtmsg._str(kind)) + rtmsg._rta(IFLA_INFO_DATA, data)
    return (
        rtmsg.IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        + rtmsg._rta(IFLA_IFNAME, rtmsg._str(name))
        + rtmsg._rta(IFLA_LINK, rtmsg.U32.pack(parent_index))
        + rtmsg._rta(IFLA_NET_NS_FD, rtmsg.U32.pack(netns_fd))
        + rtmsg._rta(IFLA_LINKINFO, linkinfo)
    )


async def attach_child(
    host: Rtnl,
    pod: Rtnl,
    *,
    kind: str,
    mode: str,
    parent: str,
    name: str,
    pod_netns_fd: int,
    mtu: int | None = None,
) -> int:
    """Create child ``name`` of host link ``parent`` in the pod, set its MTU (if given) and up.

    Returns the child's ifindex in the pod. On any failure after the child exists it is deleted
    before the error propagates, so a failed attach leaves neither pod nor host changed.
    """
    link = await host.link_get(ifname=parent)
    if link is None:
        raise OSError(f"subinterface parent {parent!r} does not exist in the host netns")
    body = child_body(kind=kind, mode=mode, parent_index=link["index"], name=name, netns_fd=pod_netns_fd)
    await host.link_new(body)
    index = 0
    try:
        child = await pod.link_get(ifname=name)
        if child is None:
            raise OSError(f"subinterface {name!r} was created but is not in the pod netns")
        index = int(child["index"])
        attrs: list[tuple[str, object]] = [("IFLA_MTU", mtu)] if mtu is not None else []
        await pod.link_set(index, attrs, up=True)
    except BaseException:
        await detach_child(pod, name)
        raise
    return index


async def detach_child(pod: Rtnl, name: str) -> bool:
    """Delete child ``name`` in the pod netns; False if it was already gone."""
    child = await pod.link_get(ifname=name)
    if child is None:
        return False
    await pod.link_del(int(child["index"]))
    return True


def kernel_supports(
    kind: str, *, sys_module: Path = Path("/sys/module"), proc_modules: Path = Path("/proc/modules")
) -> bool:
    """Whether the running kernel has link kind ``kind`` loaded or built in (a cheap probe)."""
    if (sys_module / kind).exists():
        return True
    try:
        return any(line.split(" ", 1)[0] == kind for line in proc_modules.read_text().splitlines())
    except OSError:
        return False
