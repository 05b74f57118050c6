"""Kernel uevents (``NETLINK_KOBJECT_UEVENT``): discovery that reacts within a second.

sysfs has no change notification, but the kernel announces every device added, removed,
bound to or unbound from a driver, and renamed, on the ``NETLINK_KOBJECT_UEVENT`` socket,
multicast group 1 (kernel events; group 2 carries udev's re-broadcasts, prefixed
``libudev\\0``, which are ignored). A kernel message is::

    ACTION@DEVPATH \\0 ACTION=add \\0 DEVPATH=/devices/... \\0 SUBSYSTEM=pci \\0 SEQNUM=1234 \\0 ...

:func:`parse_uevent` reads it; :class:`UeventSource` is the socket, read on the event loop
in batches (a burst, e.g. 64 VFs created at once, is read to its end before the caller
looks at sysfs once); :func:`watch_sysfs` is the loop the sriov and rdma backends run: a
check on every batch with a relevant event, plus the slow periodic resync that catches
what has no uevent (an RDMA port going active) or a lost event (socket overrun, reported
as a batch holding ``None``).

Network device events are delivered in the network namespace that owns the device; PCI
and RDMA device events in the initial one, where the driver runs (``hostNetwork``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, Protocol

import attrs

from dranet_backends.netns import call_in_netns_at

__all__ = [
    "KERNEL_GROUP",
    "NETLINK_KOBJECT_UEVENT",
    "Uevent",
    "UeventSource",
    "UeventStream",
    "parse_uevent",
    "watch_sysfs",
]

log = logging.getLogger(__name__)

NETLINK_KOBJECT_UEVENT: Final = 15
KERNEL_GROUP: Final = 1
_RECV: Final = 64 * 1024
_RCVBUF: Final = 4 * 1024 * 1024
_SO_RCVBUFFORCE: Final = 33


@attrs.frozen
class Uevent:
    """One kernel uevent: action (``add``, ``remove``, ``bind``, ``unbind``, ``change``,
    ``move``, ...), device path under ``/sys`` and the ``KEY=VALUE`` environment."""

    action: str
    devpath: str
    env: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def subsystem(self) -> str:
        """``SUBSYSTEM`` (``pci``, ``net``, ``infiniband``, ...), or empty."""
        return self.env.get("SUBSYSTEM", "")


def parse_uevent(data: bytes) -> Uevent | None:
    """The kernel uevent in datagram ``data``; None for udev's messages and malformed data."""
    if data.startswith(b"libudev\0"):
        return None
    parts = data.split(b"\0")
    head = parts[0].decode("utf-8", "replace")
    action, at, devpath = head.partition("@")
    if not at or not action or not devpath.startswith("/"):
        return None
    env: dict[str, str] = {}
    for raw in parts[1:]:
        key, eq, value = raw.decode("utf-8", "replace").partition("=")
        if eq and key:
            env[key] = value
    if env.get("ACTION", action) != action:
        return None
    return Uevent(action=action, devpath=devpath, env=env)


class UeventStream(Protocol):
    """A source of uevent batches (the real socket, or a test's queue)."""

    async def batch(self) -> list[Uevent | None]:
        """Wait for at least one event; return every event available now (None: events were lost)."""
        ...

    def close(self) -> None:
        """Release the source."""
        ...


class UeventSource:
    """The ``NETLINK_KOBJECT_UEVENT`` socket, group 1, non-blocking, read on the event loop."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    def opener(cls, netns: str | None = None) -> Callable[[], UeventSource]:
        """A factory opening the socket in network namespace ``netns`` (a path; None: this thread's)."""
        if netns is None:
            return cls.open
        return lambda: call_in_netns_at(netns, cls.open)

    @classmethod
    def open(cls) -> UeventSource:
        """Open and bind the socket in the calling thread's network namespace (OSError if refused)."""
        sock = socket.socket(
            socket.AF_NETLINK,
            socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
            NETLINK_KOBJECT_UEVENT,
        )
        try:
            for opt in (_SO_RCVBUFFORCE, socket.SO_RCVBUF):  # a burst of events must not overrun it
                try:
                    sock.setsockopt(socket.SOL_SOCKET, opt, _RCVBUF)
                    break
                except OSError:
                    continue
            sock.bind((0, KERNEL_GROUP))
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    def _drain(self, out: list[Uevent | None]) -> None:
        while True:
            try:
                data = self.sock.recv(_RECV)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                out.append(None)
                continue
            out.append(parse_uevent(data))

    async def batch(self) -> list[Uevent | None]:
        """Wait for one datagram, then read every other one already queued (see the protocol)."""
        loop = asyncio.get_running_loop()
        out: list[Uevent | None] = []
        try:
            out.append(parse_uevent(await loop.sock_recv(self.sock, _RECV)))
        except OSError as exc:
            if exc.errno != errno.ENOBUFS:
                raise
            out.append(None)
        self._drain(out)
        return out

    def close(self) -> None:
        self.sock.close()


async def watch_sysfs(
    name: str,
    check: Callable[[], Awaitable[bool]],
    notify: Callable[[], None],
    *,
    relevant: Callable[[Uevent], bool],
    interval: float,
    open_source: Callable[[], UeventStream] | None = UeventSource.open,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Call ``check()`` at start, on every uevent batch with a relevant (or lost) event, and
    every ``interval`` seconds; ``notify()`` whenever it returns True (something changed).

    Without uevents (``open_source`` None or refused, or the socket failing later: logged
    once) it only polls. Checks never overlap. Runs until cancelled.
    """
    lock = asyncio.Lock()

    async def run_check() -> None:
        async with lock:
            if await check():
                notify()

    async def poll() -> None:
        while True:
            await run_check()
            await sleep(interval)

    source: UeventStream | None = None
    if open_source is not None:
        try:
            source = open_source()
        except OSError as exc:
            log.warning(
                "%s: no kernel uevents (%s); polling sysfs every %gs", name, exc.strerror or exc, interval
            )
    if source is None:
        await poll()
        return
    try:
        async with asyncio.TaskGroup() as tg:
            poller = tg.create_task(poll(), name=f"{name} sysfs resync")
            try:
                while True:
                    events = await source.batch()
                    hits = [e for e in events if e is None or relevant(e)]
                    if hits:
                        log.debug("%s: %d relevant uevent(s), e.g. %s", name, len(hits), hits[0])
                        await run_check()
            except OSError as exc:
                log.warning("%s: uevent socket failed (%s); polling sysfs every %gs", name, exc, interval)
                await poller
    finally:
        with contextlib.suppress(OSError):
            source.close()
