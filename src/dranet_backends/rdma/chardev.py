"""Char device nodes for containers: stat the RDMA char devices on the host.

A path in a facet is the path the container sees (``/dev/infiniband/uverbs0``); it is
stat'ed under ``dev_root`` (the host's ``/dev``, a parameter so tests create real device
nodes in a temporary directory). As the Go driver: a path that is missing or not a char or
block device is logged and skipped; nothing raises.

Mode, owner and group of the nodes in the container come from the claim's ``rdma`` section
(``fileMode``, ``uid``, ``gid``); unset, the mode is 0666 and owner and group are left to
the runtime (root), as before.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Final

from dranet_core.config.model import RdmaConfig
from dranet_core.types import DeviceNode

__all__ = ["FILE_MODE", "device_node", "device_nodes"]

log = logging.getLogger(__name__)

FILE_MODE: Final = 0o666
"""Mode of the nodes created in containers (the Go driver leaves it unset: runtime default)."""


def _host_path(path: str, dev_root: Path) -> Path | None:
    p = PurePosixPath(path)
    if not p.is_absolute() or ".." in p.parts or p.parts[:2] != ("/", "dev"):
        return None
    return dev_root.joinpath(*p.parts[2:])


def device_node(
    path: str,
    dev_root: Path = Path("/dev"),
    *,
    file_mode: int = FILE_MODE,
    uid: int | None = None,
    gid: int | None = None,
) -> DeviceNode | None:
    """The :class:`DeviceNode` for container path ``path`` (under ``/dev``), or None (logged)."""
    host = _host_path(path, dev_root)
    if host is None:
        log.warning("rdma: %r is not a path under /dev; skipped", path)
        return None
    try:
        st = os.stat(host)
    except OSError as exc:
        log.warning("rdma: cannot stat %s: %s; skipped", host, exc.strerror or exc)
        return None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        log.warning("rdma: %s is not a device file; skipped", host)
        return None
    return DeviceNode(
        path=path,
        type=kind,
        major=os.major(st.st_rdev),
        minor=os.minor(st.st_rdev),
        file_mode=file_mode,
        uid=uid,
        gid=gid,
    )


def device_nodes(
    paths: Iterable[str], dev_root: Path = Path("/dev"), config: RdmaConfig | None = None
) -> list[DeviceNode]:
    """Device nodes for ``paths`` in order, duplicates and failures left out; mode and owner per
    ``config`` (the claim's ``rdma`` section)."""
    mode = FILE_MODE if config is None or config.file_mode is None else config.file_mode
    uid = None if config is None else config.uid
    gid = None if config is None else config.gid
    out: list[DeviceNode] = []
    seen: set[str] = set()
    for path in paths:
        if path in seen:
            continue
        seen.add(path)
        node = device_node(path, dev_root, file_mode=mode, uid=uid, gid=gid)
        if node is not None:
            out.append(node)
    return out
