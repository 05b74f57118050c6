"""The macvlan backend: Discovery and NamespaceMover over iproute2."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dranet_core import (
    JSON,
    AttachResult,
    Device,
    DeviceError,
    PodSandbox,
    PreparedDevice,
    device_name_for_interface,
)

FACET = "macvlan"
"""The facet key: this backend's private data on each device it discovers."""


class MacvlanBackend:
    """Discovers macvlan links and moves them between the host and pods."""

    name = "macvlan"

    def __init__(self, *, host_netns: Path | None = None, mode: str = "any", poll_interval: float = 5.0):
        # the host namespace by a path that stays valid inside child processes
        self.host_netns = str(host_netns or f"/proc/{os.getpid()}/ns/net")
        self.mode = mode
        self.poll_interval = poll_interval

    # --- Discovery ----------------------------------------------------------------

    async def scan(self) -> Sequence[Device]:
        """Every macvlan link of the host namespace (of the configured mode)."""
        devices = []
        for link in await _links(self.host_netns):
            info = link.get("linkinfo", {})
            if info.get("info_kind") != "macvlan":
                continue
            mode = info.get("info_data", {}).get("mode", "")
            if self.mode not in ("any", mode):
                continue
            ifname = link["ifname"]
            devices.append(
                Device(
                    name=device_name_for_interface(ifname),
                    attributes={
                        "dra.net/ifName": ifname,
                        "dra.net/type": "macvlan",
                        "dra.net/mac": link.get("address", ""),
                        "dra.net/mtu": link.get("mtu", 0),
                        "macvlan.example.com/mode": mode,
                    },
                    facets={FACET: {"ifname": ifname}},
                )
            )
        return devices

    async def watch(self, notify: Callable[[], None]) -> None:
        """Poll: the inventory loop diffs, so a notification without a change is harmless."""
        while True:
            notify()
            await asyncio.sleep(self.poll_interval)

    # --- NamespaceMover -------------------------------------------------------------

    async def snapshot(self, device: PreparedDevice) -> JSON:
        """The link's name, MTU and addresses on the host, to restore on detach."""
        ifname = _ifname(device)
        link = await _link(self.host_netns, ifname)
        if link is None:
            raise DeviceError(device.device, "snapshot", f"no link {ifname} on the host")
        return {"ifname": ifname, "mtu": link["mtu"], "addrs": _addrs(link)}

    async def attach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> AttachResult:
        """Move the link into the pod, rename it, set MTU and addresses, bring it up.

        Idempotent: when the link is already in the pod (a retry after a crash) only the
        configuration is applied again. On failure the link is brought home.
        """
        if not pod.netns:
            raise DeviceError(device.device, "attach", f"pod {pod} has no network namespace")
        snap = _snap(snapshot)
        iface = device.config.interface
        inside = (iface.name if iface and iface.name else None) or snap["ifname"]
        try:
            if await _link(self.host_netns, snap["ifname"]) is not None:
                await _ip(self.host_netns, "link", "set", "dev", snap["ifname"], "netns", pod.netns)
                if inside != snap["ifname"]:
                    await _ip(pod.netns, "link", "set", "dev", snap["ifname"], "name", inside)
            if iface and iface.mtu:
                await _ip(pod.netns, "link", "set", "dev", inside, "mtu", str(iface.mtu))
            await _ip(pod.netns, "addr", "flush", "dev", inside)
            for addr in (iface.addresses if iface and iface.addresses else ()) or ():
                await _ip(pod.netns, "addr", "add", addr, "dev", inside)
            await _ip(pod.netns, "link", "set", "dev", inside, "up")
        except DeviceError:
            await self.detach(device, pod, snapshot)
            raise
        return AttachResult()

    async def detach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> None:
        """Bring the link home under its host name and restore MTU and addresses.

        Idempotent: a link already home is only restored. A macvlan is virtual: when the pod
        namespace is gone, the link went with it and there is nothing to bring back.
        """
        snap = _snap(snapshot)
        iface = device.config.interface
        inside = (iface.name if iface and iface.name else None) or snap["ifname"]
        if await _link(self.host_netns, snap["ifname"]) is None:
            netns = pod.netns or ""
            if not await asyncio.to_thread(os.path.exists, netns) or await _link(netns, inside) is None:
                return  # it died with the pod's namespace
            await _ip(netns, "link", "set", "dev", inside, "down")
            await _ip(netns, "link", "set", "dev", inside, "netns", self.host_netns, "name", snap["ifname"])
        await _ip(self.host_netns, "link", "set", "dev", snap["ifname"], "mtu", str(snap["mtu"]))
        await _ip(self.host_netns, "addr", "flush", "dev", snap["ifname"])
        for addr in snap["addrs"]:
            await _ip(self.host_netns, "addr", "add", addr, "dev", snap["ifname"])
        await _ip(self.host_netns, "link", "set", "dev", snap["ifname"], "up")


# --- iproute2 -------------------------------------------------------------------------


async def _ip(netns: str, *args: str) -> str:
    """``ip ARGS`` inside the network namespace at ``netns``; raises DeviceError on failure."""
    proc = await asyncio.create_subprocess_exec(
        "nsenter",
        f"--net={netns}",
        "ip",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        device = args[args.index("dev") + 1] if "dev" in args else "?"
        raise DeviceError(device, " ".join(args[:2]), err.decode().strip())
    return out.decode()


async def _links(netns: str) -> list[dict[str, Any]]:
    links: list[dict[str, Any]] = json.loads(await _ip(netns, "-j", "-d", "addr", "show") or "[]")
    return links


async def _link(netns: str, ifname: str) -> dict[str, Any] | None:
    return next((link for link in await _links(netns) if link["ifname"] == ifname), None)


def _addrs(link: dict[str, Any]) -> list[str]:
    return sorted(
        f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a.get("scope") == "global"
    )


def _ifname(device: PreparedDevice) -> str:
    facet = device.facets.get(FACET)
    if not isinstance(facet, dict) or not isinstance(facet.get("ifname"), str):
        raise DeviceError(device.device, "facet", f"no {FACET} facet with an ifname")
    return str(facet["ifname"])


def _snap(snapshot: JSON) -> dict[str, Any]:
    if not isinstance(snapshot, dict):
        raise TypeError(f"snapshot must be an object, got {type(snapshot).__name__}")
    return snapshot
