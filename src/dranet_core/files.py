"""Files the driver creates as root: directories with a fixed mode, files never through a link.

The driver runs as root in directories other processes may write to (the kubelet's plugin
directory, a host path for the checkpoint). Everything here refuses to follow a symbolic
link at the last path component and does not depend on the process umask.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import stat

__all__ = ["filesystem_type", "make_dirs", "open_private", "write_new_file"]


def make_dirs(path: str | os.PathLike[str], mode: int = 0o750) -> None:
    """Create ``path`` and its missing parents with exactly ``mode`` (whatever the umask).

    Directories that already exist are left as they are (they may belong to the kubelet).
    """
    missing: list[pathlib.Path] = []
    p = pathlib.Path(path)
    while not os.path.lexists(p):
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=mode)
            os.chmod(d, mode)  # mkdir's mode is subject to the umask; chmod is not


def open_private(path: str | os.PathLike[str], flags: int, mode: int = 0o600) -> int:
    """``os.open`` that never follows a symbolic link and only opens a regular file.

    Raises OSError with a message naming ``path`` when it is a symbolic link or not a
    regular file. ``flags`` may include ``O_CREAT``/``O_EXCL``; ``O_NOFOLLOW``,
    ``O_NONBLOCK`` (a FIFO must not block the caller) and ``O_CLOEXEC`` are added. With
    ``O_CREAT | O_EXCL`` the file is new, so regular by construction: it is opened as asked,
    without the checks (the kernel refuses any existing name, a link or a FIFO included).
    """
    if flags & os.O_CREAT and flags & os.O_EXCL:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if os.path.islink(path):
            raise OSError(exc.errno, f"{path} is a symbolic link; refusing to follow it") from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path} is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_new_file(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> None:
    """Create ``path`` (it must not exist: ``O_EXCL``, never through a link) holding ``data``.

    Not fsynced: the data is in the page cache, which survives the process being killed.
    """
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)


def filesystem_type(path: str | os.PathLike[str], mounts: str = "/proc/self/mounts") -> str | None:
    """The type of the file system ``path`` is on (``tmpfs``, ``ext4``...), from this
    process's mount table (the mount point that is the longest prefix of the resolved path);
    None when the table cannot be read."""
    target = os.path.realpath(path)
    best, kind = -1, None
    try:
        with open(mounts, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best:  # a later mount over the same point wins
            best, kind = len(point), fields[2]
    return kind
