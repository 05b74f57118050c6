"""Entering a network namespace from the calling thread, or from a fresh thread, and coming back.

Shared by every backend that must make a socket, or do a short piece of work, inside another
network namespace without forking (``os.setns`` is Python 3.12+, so ``setns(2)`` is called
through libc). A netns is always named by an open fd (``O_RDONLY`` on ``/run/netns/x`` or
``/proc/<pid>/ns/net``), or by a path that is opened here for the duration of one call.

Contract:

* :func:`call_in_netns` / :func:`call_in_netns_at` run ``fn()`` on the *calling* thread inside
  the target netns, then **always** return the thread to the netns it was in before (also when
  ``fn`` raises), through an fd on ``/proc/thread-self/ns/net`` opened before leaving. ``fn``
  must be quick and must not block: on an event loop thread nothing else runs meanwhile.
  Entering the target can fail (``OSError`` from ``setns``: the thread has not moved).
  Returning cannot fail short of the kernel running out of memory; if it ever does, an
  ``OSError`` saying "cannot return to this thread's own netns" is raised and the thread is
  left where it is, so a caller must treat that error as fatal for the thread (run such calls
  on the event loop thread of a process that stops on it, or on a throw-away thread).
* :func:`run_in_netns` runs ``fn()`` in a fresh, short-lived thread that enters the netns and
  then exits: it is never reused, so it never needs a way back.
* :func:`open_pod_netns` opens a netns path that comes from outside (a runtime's pod sandbox)
  without ever blocking (a FIFO, a device node or a socket at that path is refused, never
  opened for I/O) and checks it really is a network namespace, and not one it must not be.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import os
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, TypeVar

__all__ = [
    "CLONE_NEWNET",
    "SELF_NETNS",
    "THREAD_NETNS",
    "call_in_netns",
    "call_in_netns_at",
    "live_netns",
    "netns_id",
    "open_netns",
    "open_pod_netns",
    "shown_path",
    "run_in_netns",
    "setns",
]

T = TypeVar("T")

CLONE_NEWNET: Final = 0x40000000
SELF_NETNS: Final = "/proc/self/ns/net"
"""The netns of this process."""
THREAD_NETNS: Final = "/proc/thread-self/ns/net"
"""The netns of the calling thread."""

_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd: int) -> None:
    """Move the *calling thread* into the network namespace ``fd`` refers to; ``OSError`` if not."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def open_netns(path: str) -> int:
    """Open a netns reference (``O_RDONLY|O_CLOEXEC``); raises ``OSError`` if it is gone."""
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


NS_GET_NSTYPE: Final = 0xB703  # _IO(0xb7, 0x3), linux/nsfs.h
PATH_MAX: Final = 4096
_NS_KINDS: Final = {
    0x00020000: "mount",
    0x02000000: "cgroup",
    0x04000000: "uts",
    0x08000000: "ipc",
    0x10000000: "user",
    0x20000000: "pid",
    0x00000080: "time",
    CLONE_NEWNET: "network",
}
_FILE_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def shown_path(path: object, limit: int = 120) -> str:
    """``path`` for a log line or an error: quoted, and shortened (with its length) if long."""
    text = repr(path)
    if len(text) <= limit:
        return text
    size = len(path) if isinstance(path, str | bytes) else len(text)
    return f"{text[: limit - 20]}...' ({size} characters)"


def netns_id(fd: int) -> tuple[int, int]:
    """The identity of the namespace ``fd`` refers to: ``(st_dev, st_ino)`` of its nsfs inode."""
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def open_pod_netns(path: object, *, refuse: Iterable[tuple[int, str]] = ()) -> int:
    """Open ``path`` as a pod's network namespace; return an ``O_RDONLY`` fd (caller closes).

    Never blocks: the path is first opened ``O_PATH`` (which does no I/O, so a FIFO or a
    device is never opened), checked to be an nsfs inode, and only then reopened for use.
    Raises ``ValueError("<path>: <rule>")`` when the path breaks a rule: not an absolute
    path of at most :data:`PATH_MAX` bytes, not a namespace file (a regular file, a
    directory, a FIFO, ...), a namespace of another kind (``/proc/self/ns/mnt``), or one of
    ``refuse`` (pairs of an open netns fd and what to call it, e.g. the node's own netns).
    Raises ``OSError`` when it cannot be opened (``ENOENT``: the path is gone).
    """
    shown = shown_path(path)
    if not isinstance(path, str) or not path:
        raise ValueError(f"{shown}: a netns path must be a non-empty string")
    if "\0" in path:
        raise ValueError(f"{shown}: a netns path must not contain NUL")
    if not path.startswith("/"):
        raise ValueError(f"{shown}: a netns path must be absolute")
    if len(os.fsencode(path)) >= PATH_MAX:
        raise ValueError(f"{shown}: a netns path must be shorter than {PATH_MAX} bytes")
    probe = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        st = os.fstat(probe)
        for test, what in _FILE_KINDS:
            if test(st.st_mode):
                raise ValueError(f"{shown}: is {what}, not a network namespace")
        if st.st_dev != _nsfs_dev():
            raise ValueError(f"{shown}: is a regular file, not a network namespace")
        fd = os.open(f"/proc/self/fd/{probe}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(probe)
    try:
        kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
        if kind != CLONE_NEWNET:
            raise ValueError(
                f"{shown}: is a {_NS_KINDS.get(kind, 'non-network')} namespace, not a network one"
            )
        ident = netns_id(fd)
        for other, name in refuse:
            if netns_id(other) == ident:
                raise ValueError(f"{shown}: is {name}, never a pod's")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _candidates(proc: str) -> Iterator[str]:
    """Paths that may name a live netns: every process's ``ns/net``, every open nsfs fd,
    every nsfs mount (``ip netns add`` bind mounts) of this mount namespace."""
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        pids = []
    for pid in pids:
        yield f"{proc}/{pid}/ns/net"
    try:
        with open(f"{proc}/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.startswith("nsfs "):
                    yield left.split(" ")[4].replace("\\040", " ")
    except OSError:
        pass
    for pid in pids:
        try:
            fds = os.listdir(f"{proc}/{pid}/fd")
        except OSError:
            continue
        for n in fds:
            try:
                if os.readlink(f"{proc}/{pid}/fd/{n}").startswith("net:["):
                    yield f"{proc}/{pid}/fd/{n}"
            except OSError:
                continue


def live_netns(exclude: Iterable[int] = (), *, proc: str = "/proc") -> list[tuple[int, str]]:
    """Open fds on every network namespace this process can find alive (see
    :func:`_candidates`), one per namespace with the path it was found at, leaving out
    those ``exclude`` fds refer to.

    Blocking filesystem work (one pass over ``/proc``): run it in a worker thread. The
    caller closes the fds. A namespace that nothing visible holds (no process in it, no fd
    on it, no mount of it here) is not found: for the kernel it is about to be freed.
    """
    seen = {netns_id(fd) for fd in exclude}
    out: list[tuple[int, str]] = []
    for path in _candidates(proc):
        try:
            st = os.stat(path)
        except OSError:
            continue
        if st.st_dev != _nsfs_dev() or (st.st_dev, st.st_ino) in seen:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            if fcntl.ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET or netns_id(fd) in seen:
                os.close(fd)
                continue
        except OSError:
            os.close(fd)
            continue
        seen.add(netns_id(fd))
        out.append((fd, path))
    return out


_NSFS_DEV: list[int] = []


def _nsfs_dev() -> int:
    """The device number of nsfs (every namespace file has it)."""
    if not _NSFS_DEV:
        _NSFS_DEV.append(os.stat(SELF_NETNS).st_dev)
    return _NSFS_DEV[0]


def call_in_netns(ns_fd: int, fn: Callable[[], T]) -> T:
    """Run ``fn()`` on the calling thread inside netns ``ns_fd``, then return the thread to
    the netns it was in (always, also when ``fn`` raises). See the module contract."""
    own = open_netns(THREAD_NETNS)
    try:
        setns(ns_fd)
        try:
            return fn()
        finally:
            try:
                setns(own)
            except OSError as exc:  # pragma: no cover - needs ENOMEM from setns
                raise OSError(exc.errno, f"cannot return to this thread's own netns: {exc}") from exc
    finally:
        os.close(own)


def call_in_netns_at(path: str, fn: Callable[[], T]) -> T:
    """:func:`call_in_netns` for a netns named by ``path`` (opened and closed around the call;
    ``OSError`` if it cannot be opened, before the thread moves)."""
    fd = open_netns(path)
    try:
        return call_in_netns(fd, fn)
    finally:
        os.close(fd)


async def run_in_netns(ns_fd: int, fn: Callable[[], T]) -> T:
    """Run ``fn()`` in a fresh thread that has entered netns ``ns_fd``; return its result.

    The thread ends when ``fn`` returns; it is never reused, so it needs no way back. If the
    awaiting task is cancelled, ``fn`` still runs to its end (these are microsecond jobs).
    """
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def deliver(ok: bool, value: Any) -> None:
        if fut.done():
            return
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)

    def body() -> None:
        try:
            setns(ns_fd)
            result = fn()
        except BaseException as exc:
            loop.call_soon_threadsafe(deliver, False, exc)
        else:
            loop.call_soon_threadsafe(deliver, True, result)

    thread = threading.Thread(target=body, name="dranet-netns", daemon=True)
    thread.start()
    result = await fut
    thread.join()  # it has delivered its result: only its exit is left
    return result
