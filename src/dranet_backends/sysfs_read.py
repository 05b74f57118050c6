"""Tolerant sysfs readers shared by the backends' discovery code (netdev, rdma, sriov).

Sysfs entries come and go while they are read (hot-unplug, a VF being created, a driver
unbinding), so every reader here turns "cannot read" into an empty answer instead of an
exception: ``None`` for a value, ``[]`` for a directory. Callers decide what absence means.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["listdir", "normal_bdf", "numa_node", "pcie_root", "read", "read_int", "readlink_base"]


def read(path: str | os.PathLike[str]) -> str | None:
    """The stripped text of ``path``; None if it cannot be read or is not UTF-8."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None


def read_int(path: str | os.PathLike[str], base: int = 10) -> int | None:
    """The integer in ``path`` (in ``base``); None if unreadable or not an integer."""
    text = read(path)
    if text is None:
        return None
    try:
        return int(text, base)
    except ValueError:
        return None


def listdir(path: Path) -> list[str]:
    """The sorted entry names of directory ``path``; ``[]`` if it cannot be listed."""
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def readlink_base(path: Path) -> str | None:
    """The last component of symlink ``path``'s target (e.g. a driver's name); None if no link."""
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def normal_bdf(bdf: str) -> str:
    """A PCI address in lower case with its domain (``08:00.0`` -> ``0000:08:00.0``)."""
    bdf = bdf.lower()
    return bdf if bdf.count(":") == 2 else f"0000:{bdf}"


def numa_node(path: Path) -> int | None:
    """The NUMA node in file ``path`` (a device's ``numa_node``); None if unknown or negative."""
    numa = read_int(path)
    return numa if numa is not None and numa >= 0 else None


def pcie_root(real: Path) -> str | None:
    """The PCI root complex (``pci0000:00``) in the resolved sysfs path ``real``; None if none."""
    return next((part for part in real.parts if part.startswith("pci") and ":" in part), None)
