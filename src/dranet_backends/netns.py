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
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
from collections.abc import Callable
from typing import Any, Final, TypeVar

__all__ = [
    "CLONE_NEWNET",
    "SELF_NETNS",
    "THREAD_NETNS",
    "call_in_netns",
    "call_in_netns_at",
    "open_netns",
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
