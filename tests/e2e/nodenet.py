"""The node side of the acceptance harness: ``ip`` helpers, the node namespace, its devices."""

from __future__ import annotations

import itertools
import json
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
DRIVER = "dra.net"
NODE_NAME = "node-a"
WAIT = 30.0  # deadline of every wait (a deadline, never an assertion on speed)


# ----------------------------------------------------------------------------- small tools


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ip(*args: str, check: bool = True) -> str:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def ip_json(ns: str, *args: str) -> Any:
    """``ip -j -n NS ARGS`` parsed (``[]`` when ip prints nothing or fails)."""
    out = subprocess.run(["ip", "-j", "-n", ns, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0 or not out.stdout.strip():
        return []
    return json.loads(out.stdout)


def in_ns(ns: str, *argv: str, check: bool = True) -> str:
    """Run a command inside network namespace ``ns`` (``ip netns exec``)."""
    out = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} in {ns}: {out.stderr.strip() or out.stdout.strip()}")
    return out.stdout


def link_in(ns: str, name: str) -> dict[str, Any] | None:
    """``ip -j addr show dev NAME`` in ``ns`` (None when the link is not there)."""
    data = ip_json(ns, "addr", "show", "dev", name)
    return data[0] if data else None


def global_addrs(info: dict[str, Any] | None) -> list[str]:
    if info is None:
        return []
    return sorted(
        f"{a['local']}/{a['prefixlen']}" for a in info.get("addr_info", []) if a.get("scope") == "global"
    )


def wait_for(
    what: str, probe: Callable[[], T | None], within: float = WAIT, log: Callable[[], str] = str
) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` (and the log)."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{log()}")
        time.sleep(0.02)


# ----------------------------------------------------------------------------- the node


@dataclass
class Dev:
    """A device a scenario created on the node (``peer`` is the other end of a veth)."""

    name: str
    kind: str
    peer: str | None = None
    mac: str = ""
    mtu: int = 0
    addrs: tuple[str, ...] = ()


class Node:
    """The node's network namespace and the pod namespaces; names are unique per run."""

    _ids = itertools.count()

    def __init__(self) -> None:
        self.tag = secrets.token_hex(2)
        self.prefix = f"dnt-e2e-{self.tag}"
        self.ns = f"{self.prefix}-node"
        self.namespaces: list[str] = []
        self.created: list[Dev] = []
        ip("netns", "add", self.ns)
        self.namespaces.append(self.ns)
        n = ("-n", self.ns)
        ip(*n, "link", "set", "lo", "up")
        ip(*n, "link", "add", "dnup0", "type", "veth", "peer", "name", "dnup0p")
        ip(*n, "link", "set", "dnup0", "up")
        ip(*n, "link", "set", "dnup0p", "up")

    @property
    def path(self) -> str:
        return f"/run/netns/{self.ns}"

    def unique(self, base: str = "e") -> str:
        """A fresh interface name (at most 15 bytes)."""
        return f"{base}{self.tag}{next(self._ids)}"[:15]

    def ip(self, *args: str, check: bool = True) -> str:
        return ip("-n", self.ns, *args, check=check)

    def veth(
        self,
        name: str | None = None,
        *,
        peer: str | None = None,
        addrs: Iterable[str] = (),
        mtu: int | None = None,
        up: bool = True,
    ) -> Dev:
        """A veth pair in the node; ``name`` is the end a claim gets."""
        name = name or self.unique()
        peer = peer or self.unique("p")
        self.ip("link", "add", name, "type", "veth", "peer", "name", peer)
        return self._finish(Dev(name, "veth", peer), addrs, mtu, up, [peer])

    def macvlan(self, name: str | None = None, *, addrs: Iterable[str] = (), mtu: int | None = None) -> Dev:
        name = name or self.unique("m")
        self.ip("link", "add", name, "link", "dnup0", "type", "macvlan", "mode", "bridge")
        return self._finish(Dev(name, "macvlan"), addrs, mtu, True, [])

    def _finish(self, dev: Dev, addrs: Iterable[str], mtu: int | None, up: bool, also_up: list[str]) -> Dev:
        if mtu:
            self.ip("link", "set", dev.name, "mtu", str(mtu))
        for a in addrs:
            self.ip("addr", "add", a, "dev", dev.name)
        for n in ([dev.name] if up else []) + also_up:
            self.ip("link", "set", n, "up")
        self.created.append(dev)
        info = self.link(dev.name)
        assert info is not None
        dev.mac, dev.mtu, dev.addrs = info["address"], info["mtu"], tuple(global_addrs(info))
        return dev

    def link(self, name: str) -> dict[str, Any] | None:
        return link_in(self.ns, name)

    def links(self) -> list[str]:
        return sorted(x["ifname"] for x in ip_json(self.ns, "link", "show"))

    def new_netns(self, label: str) -> str:
        name = f"{self.prefix}-{label}"
        ip("netns", "add", name)
        ip("-n", name, "link", "set", "lo", "up")
        self.namespaces.append(name)
        return name

    def drop_netns(self, name: str) -> None:
        ip("netns", "del", name, check=False)
        if name in self.namespaces:
            self.namespaces.remove(name)

    def delete_link(self, name: str) -> None:
        self.ip("link", "del", name, check=False)

    def close(self) -> None:
        for name in reversed(self.namespaces):
            ip("netns", "del", name, check=False)
        self.namespaces.clear()


class NetnsHolder:
    """A process that keeps a network namespace alive, e.g. after its /run/netns path is
    deleted (a container still running in a pod whose sandbox was torn down)."""

    def __init__(self, ns: str) -> None:
        want = os.stat(f"/run/netns/{ns}").st_ino
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "3600"])
        self.ns_path = f"/proc/{self.proc.pid}/ns/net"

        def entered() -> bool:
            try:
                return os.stat(self.ns_path).st_ino == want
            except OSError:
                return False

        wait_for(f"a process in {ns}", entered)

    def ip_json(self, *args: str) -> Any:
        out = subprocess.run(
            ["nsenter", f"--net={self.ns_path}", "ip", "-j", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else []

    def links(self) -> list[str]:
        return sorted(x["ifname"] for x in self.ip_json("link", "show"))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def vrf_probe() -> str | None:
    """None when this kernel can make a VRF device, else why not (iproute2's answer)."""
    ns = f"dnt-e2e-vrf-{secrets.token_hex(2)}"
    ip("netns", "add", ns)
    try:
        out = subprocess.run(
            ["ip", "-n", ns, "link", "add", "v0", "type", "vrf", "table", "10"],
            capture_output=True,
            text=True,
            check=False,
        )
        return None if out.returncode == 0 else out.stderr.strip()
    finally:
        ip("netns", "del", ns, check=False)
