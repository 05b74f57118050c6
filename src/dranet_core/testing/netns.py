"""Throwaway network namespaces and veth pairs for tests that touch the kernel (root).

Every name a helper creates starts with a random prefix, so parallel runs and other tests never
collide, and everything is removed on exit, also when the test fails. Nothing here touches an
interface it did not create. Uses iproute2 (``ip``), as an operator would.

    with throwaway_netns("mv") as ns:              # /run/netns/<prefix>-mv
        ns.ip("link", "add", "eth9", "type", "veth", "peer", "name", "eth9p")
        print(ns.links())
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import attrs

__all__ = ["Netns", "can_use_netns", "ip", "throwaway_netns", "unique_prefix", "veth_pair"]


def unique_prefix(tag: str = "dnt") -> str:
    """``<tag>-<6 hex>``: a name prefix no other run uses (keep it short: IFNAMSIZ is 16)."""
    return f"{tag}-{secrets.token_hex(3)}"


def ip(*args: str, check: bool = True) -> str:
    """Run ``ip ARGS``; return stdout. Raises RuntimeError with ip's message when it fails."""
    out = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def can_use_netns() -> str | None:
    """None when this process can create network namespaces, else why not (for a skip reason)."""
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    try:
        ip("-V")
    except (OSError, RuntimeError) as exc:
        return f"iproute2 is not usable: {exc}"
    return None


@attrs.frozen
class Netns:
    """A named network namespace (``/run/netns/<name>``)."""

    name: str

    @property
    def path(self) -> str:
        """The bind-mounted namespace file: what a PodSandbox's ``netns`` holds."""
        return f"/run/netns/{self.name}"

    def ip(self, *args: str, check: bool = True) -> str:
        """``ip -n <name> ARGS``."""
        return ip("-n", self.name, *args, check=check)

    def link(self, ifname: str) -> dict[str, Any] | None:
        """``ip -j addr show dev IFNAME`` in this namespace, or None when it is not there."""
        out = self.ip("-j", "addr", "show", "dev", ifname, check=False)
        data = json.loads(out or "[]")
        return data[0] if data else None

    def links(self) -> list[str]:
        """Interface names in this namespace, sorted."""
        return sorted(x["ifname"] for x in json.loads(self.ip("-j", "link", "show") or "[]"))


@contextlib.contextmanager
def throwaway_netns(tag: str = "ns", *, prefix: str | None = None) -> Iterator[Netns]:
    """A new network namespace ``<prefix>-<tag>`` with loopback up; deleted (with its links) on exit."""
    ns = Netns(f"{prefix or unique_prefix()}-{tag}")
    ip("netns", "add", ns.name)
    try:
        ns.ip("link", "set", "lo", "up")
        yield ns
    finally:
        ip("netns", "del", ns.name, check=False)


def veth_pair(ns: Netns, name: str, peer: str, *, peer_ns: Netns | None = None, up: bool = True) -> None:
    """Create veth ``name`` in ``ns`` with ``peer`` in ``peer_ns`` (default the same); set them up."""
    target = peer_ns or ns
    ns.ip("link", "add", name, "type", "veth", "peer", "name", peer, "netns", target.name)
    if up:
        ns.ip("link", "set", name, "up")
        target.ip("link", "set", peer, "up")
