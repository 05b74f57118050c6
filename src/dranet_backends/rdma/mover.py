"""The RDMA link mover: the HCA into the pod netns in exclusive mode, and back.

The Go driver's behaviour (``rdmadevice.go``), per mode:

* **exclusive** (``ib_core netns_mode=0``): :meth:`RdmaMover.attach` finds the RDMA device
  by name in the host netns (``CMD_GET`` dump) and moves it with ``CMD_SET`` +
  ``DEV_INDEX`` + ``NET_NS_FD`` = the pod netns. The driver runs backend movers in order
  netdev, sriov, rdma on attach, so the netdev moves first (the kernel recreates IPoIB
  netdevs when their RDMA device changes netns). :meth:`RdmaMover.detach` runs first on
  detach (reverse order): from an RDMA netlink socket opened *in the pod netns* it finds the
  device by name and sets ``NET_NS_FD`` = the host netns, so the device is home before the
  netdev's return triggers a rescan.
* **shared** (the default): the RDMA device stays on the host; nothing moves. Only the
  char devices are injected (see :mod:`.chardev`).

Both return conditions for the claim status: exclusive mode adds ``RDMALinkReady``; a
device without a netdev facet (IB-only) gets ``Ready``/``RDMAOnlyDeviceReady`` in either
mode (the netdev mover gives ``Ready``/``NetworkDeviceReady`` to the others).

Idempotency: attach of a device already in the pod netns and detach of a device already
home succeed without a move. When the pod netns is gone the kernel has already returned the
RDMA device to the initial netns; detach then only checks that it is there.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Final, Literal

from dranet_backends.netns import SELF_NETNS
from dranet_core.errors import DeviceError
from dranet_core.mover import AttachResult
from dranet_core.plans import PreparedDevice
from dranet_core.types import JSON, Condition, PodSandbox

from .nldev import NldevSocket, RdmaLink, open_nldev_socket

__all__ = ["FACET", "NetnsMode", "RdmaMover", "SocketOpener", "facet_dev"]

log = logging.getLogger(__name__)

FACET: Final = "rdma"
NETDEV_FACET: Final = "netdev"

NetnsMode = Literal["shared", "exclusive"]
SocketOpener = Callable[[str | None], Awaitable[socket.socket]]
"""Opens a non-blocking RDMA netlink socket in a netns (path; None = this process's)."""

RDMA_LINK_READY: Final = Condition(type="RDMALinkReady", status="True", reason="RDMALinkReady")
RDMA_ONLY_READY: Final = Condition(type="Ready", status="True", reason="RDMAOnlyDeviceReady")


def facet_dev(device: PreparedDevice) -> str:
    """The RDMA device name of ``device``'s rdma facet; DeviceError if the facet is unusable."""
    facet = device.facets.get(FACET)
    name = facet.get("dev") if isinstance(facet, dict) else None
    if not isinstance(name, str) or not name or "/" in name:
        raise DeviceError(device.device, "rdma facet", f"no RDMA device name in facet {facet!r}")
    return name


class RdmaMover:
    """:class:`~dranet_core.mover.NamespaceMover` for the RDMA link (see the module docstring).

    ``host_netns`` is the path of the host network namespace (None: this process's);
    ``opener`` opens RDMA netlink sockets (tests pass one that talks to a fake kernel).
    """

    def __init__(
        self,
        *,
        mode: NetnsMode,
        host_netns: str | None = None,
        opener: SocketOpener = open_nldev_socket,
        timeout: float = 5.0,
    ) -> None:
        self.mode: NetnsMode = mode
        self.host_netns = host_netns
        self._opener = opener
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"RdmaMover(mode={self.mode}, host_netns={self.host_netns or 'own'!r})"

    async def _socket(self, netns: str | None) -> NldevSocket:
        return NldevSocket(await self._opener(netns), timeout=self._timeout)

    async def _find(self, netns: str | None, name: str) -> RdmaLink | None:
        async with await self._socket(netns) as sock:
            return await sock.link(name)

    def _conditions(self, device: PreparedDevice, exclusive: bool) -> tuple[Condition, ...]:
        out: list[Condition] = []
        if exclusive:
            out.append(RDMA_LINK_READY)
        if NETDEV_FACET not in device.facets:
            out.append(RDMA_ONLY_READY)
        return tuple(out)

    async def snapshot(self, device: PreparedDevice) -> JSON:
        """``{"dev", "mode", "index"}``: the RDMA device, the mode, its host index (exclusive)."""
        name = facet_dev(device)
        if self.mode == "shared":
            return {"dev": name, "mode": "shared", "index": None}
        try:
            link = await self._find(self.host_netns, name)
        except OSError as exc:
            raise DeviceError(device.device, "rdma snapshot", f"{name}: {exc.strerror or exc}") from exc
        if link is None:
            raise DeviceError(device.device, "rdma snapshot", f"RDMA device {name} is not in the host netns")
        return {"dev": name, "mode": "exclusive", "index": link.index}

    async def attach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> AttachResult:
        """Exclusive mode: move the RDMA device into ``pod.netns``. Shared: conditions only."""
        name = facet_dev(device)
        exclusive = _mode_of(snapshot, self.mode) == "exclusive"
        if not exclusive:
            return AttachResult(conditions=self._conditions(device, False))
        if not pod.netns:
            raise DeviceError(device.device, "rdma attach", f"pod {pod} has no network namespace")
        step = "rdma set netns"
        try:
            fd = os.open(pod.netns, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise DeviceError(device.device, step, f"cannot open {pod.netns}: {exc.strerror}") from exc
        try:
            async with await self._socket(self.host_netns) as host:
                link = await host.link(name)
                if link is None:
                    if await self._find(pod.netns, name) is not None:
                        log.info("rdma: %s already in the netns of pod %s", name, pod)
                        return AttachResult(conditions=self._conditions(device, True))
                    raise DeviceError(device.device, step, f"RDMA device {name} is not in the host netns")
                await host.set_netns(link.index, fd)
        except OSError as exc:
            raise DeviceError(device.device, step, f"{name} -> {pod.netns}: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)
        log.info("rdma: %s moved into the netns of pod %s", name, pod)
        return AttachResult(conditions=self._conditions(device, True))

    async def detach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> None:
        """Exclusive mode: bring the RDMA device home from ``pod.netns``. Shared: nothing."""
        name = facet_dev(device)
        if _mode_of(snapshot, self.mode) != "exclusive":
            return
        step = "rdma detach"
        link: RdmaLink | None = None
        if pod.netns:
            try:
                link = await self._find(pod.netns, name)
            except OSError as exc:  # ENOENT: the netns is gone
                log.info("rdma: cannot look in %s for %s: %s", pod.netns, name, exc.strerror or exc)
        if link is None:
            # gone with the netns (the kernel returns it to init_net), or already home
            try:
                home = await self._find(self.host_netns, name)
            except OSError as exc:
                raise DeviceError(device.device, step, f"{name}: {exc.strerror or exc}") from exc
            if home is None:
                raise DeviceError(
                    device.device, step, f"RDMA device {name} is neither in {pod.netns} nor in the host netns"
                )
            log.info("rdma: %s already in the host netns", name)
            return
        host_path = self.host_netns or SELF_NETNS
        try:
            fd = os.open(host_path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise DeviceError(device.device, step, f"cannot open {host_path}: {exc.strerror}") from exc
        try:
            async with await self._socket(pod.netns) as sock:
                await sock.set_netns(link.index, fd)
        except OSError as exc:
            raise DeviceError(device.device, step, f"{name} -> host: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)
        log.info("rdma: %s back in the host netns from pod %s", name, pod)


def _mode_of(snapshot: JSON, default: NetnsMode) -> NetnsMode:
    """The mode recorded in ``snapshot`` (the mode at attach time), else ``default``."""
    mode = snapshot.get("mode") if isinstance(snapshot, dict) else None
    if mode == "exclusive":
        return "exclusive"
    if mode == "shared":
        return "shared"
    return default
