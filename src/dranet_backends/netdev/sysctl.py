"""Per-interface sysctls (``/proc/sys/net/...``), read and written from inside a netns.

``/proc/sys/net`` shows the netns of the *thread* that opens a file there, so these plain
synchronous functions are meant to run under :func:`~dranet_backends.netdev.nsutil.run_in_netns`
(a thread that entered the target netns). No process is spawned.

Keys are short dotted names, each mapping to one file:

=====================  ==========================================
key                    file under ``/proc/sys/net``
=====================  ==========================================
``ipv4.arp_ignore``    ``ipv4/conf/<if>/arp_ignore``
``ipv4.arp_announce``  ``ipv4/conf/<if>/arp_announce``
``ipv4.forwarding``    ``ipv4/conf/<if>/forwarding``
``ipv6.forwarding``    ``ipv6/conf/<if>/forwarding``
=====================  ==========================================

The kernel resets these when a device changes netns (they belong to the per-netns inet
device), which is why the host snapshot records them and restore writes them back.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Collection, Iterable, Mapping
from typing import Final

__all__ = ["DEVICE_KEYS", "PROC_SYS_NET", "device_path", "read_device", "write_device", "write_global"]

PROC_SYS_NET: Final = "/proc/sys/net"

DEVICE_KEYS: Final = ("ipv4.arp_ignore", "ipv4.arp_announce", "ipv4.forwarding", "ipv6.forwarding")


def device_path(key: str, ifname: str, root: str = PROC_SYS_NET) -> str:
    """The file of per-device sysctl ``key`` (``family.name``) for ``ifname``."""
    family, _, name = key.partition(".")
    if (
        family not in ("ipv4", "ipv6")
        or not name
        or "/" in name
        or "/" in ifname
        or ifname in ("", ".", "..")
    ):
        raise ValueError(f"bad sysctl key {key!r} or interface {ifname!r}")
    return os.path.join(root, family, "conf", ifname, name)


def read_device(ifname: str, keys: Iterable[str] = DEVICE_KEYS, root: str = PROC_SYS_NET) -> dict[str, int]:
    """Current values of ``keys`` for ``ifname``; keys whose file is absent are left out
    (e.g. ``ipv6.*`` when IPv6 is disabled on the device)."""
    out: dict[str, int] = {}
    for key in keys:
        try:
            fd = os.open(device_path(key, ifname, root), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:  # raw reads: a text-mode open costs several times the kernel's work here
            out[key] = int(os.read(fd, 64))
        finally:
            os.close(fd)
    return out


def write_device(
    ifname: str, values: Mapping[str, int], root: str = PROC_SYS_NET, *, optional: Collection[str] = ()
) -> dict[str, int]:
    """Write ``values`` for ``ifname``, skipping those already equal; returns what changed
    (old values). Keys in ``optional`` whose file is absent are skipped (IPv6 disabled);
    any other failure raises ``OSError`` naming the key and the file."""
    changed: dict[str, int] = {}
    for key, value in values.items():
        path = device_path(key, ifname, root)
        try:
            with open(path, "r+", encoding="ascii") as f:
                old = int(f.read().strip())
                if old == int(value):
                    continue
                f.seek(0)
                f.write(f"{int(value)}\n")
                f.flush()
        except FileNotFoundError:
            if key in optional:
                continue
            raise OSError(errno.ENOENT, f"sysctl {key} of {ifname}: no such file {path}") from None
        except OSError as exc:
            raise OSError(exc.errno, f"sysctl {key} of {ifname} = {value}: {exc.strerror}") from exc
        changed[key] = old
    return changed


def write_global(relpath: str, value: int, root: str = PROC_SYS_NET) -> None:
    """Write a netns-wide sysctl, e.g. ``ipv4/tcp_l3mdev_accept``."""
    if relpath.startswith("/") or ".." in relpath.split("/"):
        raise ValueError(f"bad sysctl path {relpath!r}")
    path = os.path.join(root, relpath)
    try:
        with open(path, "w", encoding="ascii") as f:
            f.write(f"{int(value)}\n")
    except OSError as exc:
        raise OSError(exc.errno, f"sysctl {relpath} = {value}: {exc.strerror}") from exc
