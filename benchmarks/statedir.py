"""Where the benchmarks keep the checkpoint: on a tmpfs, as ``dranet run`` does on a node.

The driver's checkpoint lives under ``/var/run/dranet`` (``/run``), a tmpfs on every systemd
node; a rename over an existing file on ext4 (``auto_da_alloc``) costs ~0.6 ms more than on
tmpfs, which is not what a node pays. Not a benchmark itself (no ``bench_`` prefix).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

CANDIDATES = ("/run", "/dev/shm")


def fstype(path: str) -> str:
    """The filesystem type mounted at ``path`` (the longest mount point that contains it)."""
    best, kind = "", "?"
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            mnt = fields[1]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, fields[2]
    return kind


@contextlib.contextmanager
def checkpoint_dir(prefix: str) -> Iterator[tuple[Path, str]]:
    """A fresh directory on the first tmpfs of :data:`CANDIDATES` (else ``/tmp``) and a label
    naming where it is; removed afterwards."""
    base = next((c for c in CANDIDATES if fstype(c) == "tmpfs"), "/tmp")
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield path, f"checkpoint on {fstype(base)} ({base})"
    finally:
        shutil.rmtree(path, ignore_errors=True)
