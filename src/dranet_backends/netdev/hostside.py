"""The host side of the netdev mover: the host netns, its netlink socket, and finding a device.

Shared by the attach steps (:mod:`.attach`), detach and restore (:mod:`.restore`) and the
rename-back of parked devices (:mod:`.renames`). One :class:`HostSide` per mover holds:

* an fd on the host netns (the netns the mover treats as home) and one on the driver's own;
* one netlink socket in the host netns, opened on first use and shared by every call (the
  kernel serialises link moves anyway; dumps take turns on it, see :class:`.nsutil.Rtnl`);
* one ``AF_INET`` socket in the host netns for the snapshot's ethtool reads, made on first
  use and kept (:meth:`HostSide.ethtool_socket`): a socket closed just before a link move
  costs the move a kernel tick or more (the move waits for every CPU's pending RCU
  callbacks, and a closed socket's inode is freed through one);
* the test seam (:data:`StepHook`) and the timing observer (:data:`StepObserver`).

Identity: a link is "the device" if its permanent MAC matches, else its PCI function, else
kind and a MAC it may carry (the host's or the configured one). A name or an ifindex is never
proof: both are per netns, and a device moving into a netns where its ifindex is taken gets
a new one.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from dranet_backends.netdev import ethtool
from dranet_backends.netdev.nsutil import SELF_NETNS, Rtnl, RtnlSync, call_in_netns, on_worker, open_netns
from dranet_backends.netdev.snapshot import HostSnapshot, link_identity
from dranet_backends.netns import live_netns, netns_id, open_pod_netns

__all__ = ["HostSide", "StepHook", "StepObserver", "home_link", "pod_link", "same_device", "temp_name"]

log = logging.getLogger(__name__)

T = TypeVar("T")

StepHook = Callable[[str, str], Awaitable[None]]
"""Called as ``hook(device, step)`` before each attach step and each detach step (``return``,
``restore:name`` ... ``restore:neighbors``); raising fails that step. A test seam for failure
and crash injection."""

StepObserver = Callable[[str, float], None]
"""Called as ``observer(step, seconds)`` after each attach step (and ``snapshot``, ``netns``)
has run, successfully or not: the per-step histogram of the driver's metrics."""

_TEMP_PREFIX: Final = "drn"
OPEN_TIMEOUT: Final = 10.0
"""Seconds a pod netns path may take to open."""


def _close_late_fd(fut: asyncio.Future[int]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        os.close(fut.result())


def _close_late_pair(fut: asyncio.Future[tuple[int, Rtnl | OSError]]) -> None:
    if not fut.cancelled() and fut.exception() is None:
        fd, rtnl = fut.result()
        if isinstance(rtnl, Rtnl):
            rtnl.close_now()
        os.close(fd)


def temp_name(ifindex: int) -> str:
    """The temporary name of a device that came home while its name was taken."""
    return f"{_TEMP_PREFIX}{ifindex:x}"


def same_device(link: Any, snap: HostSnapshot, cfg_mac: str | None = None) -> bool:
    """Whether ``link`` is the snapshot's device (see the module docstring)."""
    ident = link_identity(link)
    if snap.perm_mac and ident["perm_mac"]:
        return bool(ident["perm_mac"] == snap.perm_mac)
    if snap.pci_address and ident["pci_address"]:
        return bool(ident["pci_address"] == snap.pci_address)
    if ident["kind"] != snap.kind:
        return False
    macs = {m.lower() for m in (snap.mac, cfg_mac) if m}
    return (ident["mac"] or "").lower() in macs


class HostSide:
    """The host netns of a mover: fds, the shared netlink client, lookups, hook and timings."""

    def __init__(
        self,
        host_netns: str,
        proc_sys: str,
        step_hook: StepHook | None = None,
        step_observer: StepObserver | None = None,
    ) -> None:
        self.fd = open_netns(host_netns)
        try:
            self.own_fd = open_netns(SELF_NETNS)
        except BaseException:
            os.close(self.fd)
            raise
        self.path = host_netns
        self.is_self = netns_id(self.own_fd) == netns_id(self.fd)
        self.proc_sys = proc_sys
        self.hook = step_hook
        self.observer = step_observer
        self._rtnl: Rtnl | None = None
        self._lock = asyncio.Lock()
        self._ethtool: socket.socket | None = None
        self._ethtool_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HostSide({self.path!r})"

    async def aclose(self) -> None:
        """Close the host netlink client and the fds (idempotent)."""
        if self._rtnl is not None:
            await self._rtnl.aclose()
            self._rtnl = None
        with self._ethtool_lock:
            if self._ethtool is not None:
                self._ethtool.close()
                self._ethtool = None
        if self.fd >= 0:
            os.close(self.fd)
            os.close(self.own_fd)
            self.fd = self.own_fd = -1

    async def rtnl(self) -> Rtnl:
        """The host netns's netlink client (opened once)."""
        if self._rtnl is None:
            async with self._lock:
                if self._rtnl is None:
                    self._rtnl = await Rtnl.open(self.fd)
        return self._rtnl

    def ethtool_socket(self) -> socket.socket:
        """The host netns's socket for ethtool reads, made on first use and kept until
        :meth:`aclose`. Call it only on a thread that is in the host netns (a netlink
        worker inside :func:`.nsutil.call_in_netns` with :attr:`ns_fd_for_thread`): the
        socket belongs to the netns of the thread that makes it. Any thread may then use it
        (an ethtool ioctl keeps no state on the socket)."""
        with self._ethtool_lock:
            if self._ethtool is None:
                if self.fd < 0:
                    raise OSError(errno.EBADF, "the mover is closed")
                self._ethtool = ethtool.inet_socket()
            return self._ethtool

    @property
    def ns_fd_for_thread(self) -> int | None:
        """The host netns fd for :func:`.nsutil.call_in_netns` on a worker thread; ``None``
        when the host is the driver's own netns (the worker is there already)."""
        return None if self.is_self else self.fd

    async def in_ns(self, fn: Callable[[], T]) -> T:
        """Run quick ``fn`` in the host netns on the netlink worker thread (:func:`.nsutil.on_worker`)."""
        return await on_worker(self.ns_fd_for_thread, fn)

    async def at(self, device: str, step: str) -> None:
        """The step hook, if any."""
        if self.hook is not None:
            await self.hook(device, step)

    def observe(self, step: str, since: float) -> None:
        """Report that ``step`` took from ``since`` (``time.perf_counter()``) until now."""
        if self.observer is not None:
            try:
                self.observer(step, time.perf_counter() - since)
            except Exception:  # a metrics bug must not fail an attach
                log.exception("step observer failed")

    async def open_pod(self, path: str) -> int:
        """Open a pod netns path: ``ValueError`` naming the path and the rule when it is not a
        pod's network namespace, ``OSError`` when it cannot be opened (or not within
        :data:`OPEN_TIMEOUT`).

        The open never blocks on what the path names (:func:`.netns.open_pod_netns`), but
        the path lookup itself may wait on the kernel's mount table (busy while namespaces
        come and go) or a hung filesystem: it runs in the default executor's threads.
        """
        return await self._opening(lambda: self._open_pod_here(path), _close_late_fd)

    async def open_pod_rtnl(self, path: str) -> tuple[int, Rtnl | OSError]:
        """:meth:`open_pod`, and a netlink client made in that netns by the same thread (one
        trip instead of two): ``(fd, client)``, or ``(fd, error)`` when the fd opened but no
        socket could be made in it. The caller closes the fd (and the client)."""

        def both() -> tuple[int, Rtnl | OSError]:
            fd = self._open_pod_here(path)
            try:
                return fd, call_in_netns(fd, Rtnl.open_here)
            except OSError as exc:
                return fd, exc
            except BaseException:
                os.close(fd)
                raise

        return await self._opening(both, _close_late_pair)

    def _open_pod_here(self, path: str) -> int:
        refuse = (
            (self.fd, "the node's own network namespace"),
            (self.own_fd, "the driver's own network namespace"),
        )
        return open_pod_netns(path, refuse=refuse)

    @staticmethod
    async def _opening(fn: Callable[[], T], close_late: Callable[[asyncio.Future[T]], None]) -> T:
        """``fn`` in the default executor, waited for up to :data:`OPEN_TIMEOUT`; what it
        delivers after the caller gave up (timeout, cancellation) is closed by ``close_late``."""
        fut = asyncio.get_running_loop().run_in_executor(None, fn)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), OPEN_TIMEOUT)
        except BaseException as exc:
            fut.add_done_callback(close_late)  # the thread may still deliver
            if isinstance(exc, TimeoutError):
                raise OSError(errno.ETIMEDOUT, f"not opened within {OPEN_TIMEOUT:.0f}s") from exc
            raise

    # -- finding the device --------------------------------------------------------------

    async def find_home(
        self,
        snap: HostSnapshot,
        *,
        scan: bool = False,
        pod_name: str | None = None,
        cfg_mac: str | None = None,
    ) -> Any | None:
        """The device in the host netns (:func:`home_link`), in one trip to a worker."""
        host = await self.rtnl()
        return await host.batch(lambda s: home_link(s, snap, scan=scan, pod_name=pod_name, cfg_mac=cfg_mac))

    @staticmethod
    async def find_in_pod(pod: Rtnl, snap: HostSnapshot, name: str, cfg_mac: str | None) -> Any | None:
        """The device in a pod netns (:func:`pod_link`), in one trip to a worker."""
        return await pod.batch(lambda s: pod_link(s, snap, name, cfg_mac))

    async def find_elsewhere(self, snap: HostSnapshot, cfg_mac: str | None) -> list[tuple[int, str]]:
        """The live network namespaces but the host's that hold the device (its pod's path is
        gone or names another namespace now, but something still holds the old one): an open
        fd (the caller closes it) and the path it was found at, for each. Empty: no
        namespace this process can see holds it."""
        found = await asyncio.to_thread(live_netns, (self.fd,))
        hits: list[tuple[int, str]] = []
        try:
            for fd, path in found:
                try:
                    rtnl = await Rtnl.open(fd)
                except OSError:
                    continue
                async with rtnl:
                    try:
                        links = await rtnl.link_dump()
                    except OSError:
                        continue
                    if any(same_device(link, snap, cfg_mac) for link in links):
                        hits.append((fd, path))
            return list(hits)
        finally:
            kept = {fd for fd, _ in hits}
            for fd, _ in found:
                if fd not in kept:
                    os.close(fd)


def home_link(
    host: RtnlSync,
    snap: HostSnapshot,
    *,
    scan: bool = False,
    pod_name: str | None = None,
    cfg_mac: str | None = None,
) -> Any | None:
    """The device in the host netns, by ifindex, then by name (original, temporary, pod
    name), then (``scan``) among all links: a device back from a dead netns as devN.
    Blocking: on a worker thread holding ``host``'s turn."""
    link = host.link_get(index=snap.ifindex) if snap.ifindex else None  # 0: not known
    if link is not None and same_device(link, snap, cfg_mac):
        return link
    for name in (snap.ifname, temp_name(snap.ifindex), pod_name):
        if name is None:
            continue
        link = host.link_get(ifname=name)
        if link is not None and same_device(link, snap, cfg_mac):
            return link
    if scan:
        for link in host.link_dump():
            if same_device(link, snap, cfg_mac):
                return link
    return None


def pod_link(pod: RtnlSync, snap: HostSnapshot, name: str, cfg_mac: str | None) -> Any | None:
    """The device in a pod netns: by its pod name, its ifindex, else among the pod's links.
    Blocking: on a worker thread holding ``pod``'s turn."""
    link = pod.link_get(ifname=name)
    if link is not None and same_device(link, snap, cfg_mac):
        return link
    link = pod.link_get(index=snap.ifindex) if snap.ifindex else None
    if link is not None and same_device(link, snap, cfg_mac):
        return link
    for link in pod.link_dump():  # a pod has few links
        if same_device(link, snap, cfg_mac):
            return link
    return None
