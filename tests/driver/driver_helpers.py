"""Helpers and fixtures for the driver tests: a throwaway node, grpcio kubelet stubs, the NRI test peer.

* ``node_ns``: a "node" network namespace with a veth uplink ``dnv0``/``dnv0p``, a macvlan
  device on it (``dnm0``, 10.98.0.10/24), a veth pair ``dnt0`` (10.98.2.10/24) / ``dnt0p``, and
  an empty "pod" namespace; every name starts with
  ``dnt-drv-<random>``; both are deleted (with their devices) even when the test fails.
* ``grpc_pb``: the kubelet's registration and DRA v1 messages and stubs compiled with
  grpc_tools.protoc from the project's .proto files (an independent codec: grpcio + upb), by
  the testing kit (:func:`dranet_core.testing.kubelet.kubelet_stubs`).
* The NRI runtime peer is the testing kit's (:mod:`dranet_core.testing.nri_runtime`).

Test modules import the fixture functions (``node_ns_fixture``, registered as ``node_ns``); this
directory has no conftest.py on purpose: ``from conftest import ...`` elsewhere in the suite
is ambiguous once several test directories have one.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from dranet_core.testing.kubelet import KubeletStubs, kubelet_stubs

NRI_TESTS = Path(__file__).resolve().parents[1] / "nri"
if str(NRI_TESTS) not in sys.path:
    sys.path.insert(0, str(NRI_TESTS))

PROTO_ROOT = Path(__file__).resolve().parents[2] / "src" / "dranet_core" / "proto"


def ip(*args: str, check: bool = True) -> str:
    out = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out.stdout


def link(ns: str, name: str) -> dict[str, Any] | None:
    """``ip -j addr show`` of one link in ``ns`` (None if it is not there)."""
    out = subprocess.run(["ip", "-j", "-n", ns, "addr", "show", "dev", name], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    data = json.loads(out.stdout or "[]")
    return data[0] if data else None


def global_addrs(info: dict[str, Any]) -> list[str]:
    return sorted(
        f"{a['local']}/{a['prefixlen']}" for a in info.get("addr_info", []) if a.get("scope") == "global"
    )


@attrs.frozen
class NodeNs:
    prefix: str
    node: str
    pod: str

    @property
    def node_path(self) -> str:
        return f"/run/netns/{self.node}"

    @property
    def pod_path(self) -> str:
        return f"/run/netns/{self.pod}"

    def links(self, ns: str) -> list[str]:
        return sorted(x["ifname"] for x in json.loads(ip("-j", "-n", ns, "link", "show")))


@pytest.fixture(name="node_ns")
def node_ns_fixture() -> Iterator[NodeNs]:
    if os.geteuid() != 0:
        pytest.skip("probe euid==0 failed: network namespace tests need root")
    prefix = f"dnt-drv-{secrets.token_hex(3)}"
    ns = NodeNs(prefix=prefix, node=f"{prefix}-n", pod=f"{prefix}-p")
    try:
        ip("netns", "add", ns.node)
        ip("netns", "add", ns.pod)
        n = ("-n", ns.node)
        ip(*n, "link", "set", "lo", "up")
        ip(*n, "link", "add", "dnv0", "type", "veth", "peer", "name", "dnv0p")
        ip(*n, "link", "set", "dnv0", "up")
        ip(*n, "link", "set", "dnv0p", "up")
        ip(*n, "link", "add", "dnm0", "link", "dnv0", "type", "macvlan", "mode", "bridge")
        ip(*n, "addr", "add", "10.98.0.10/24", "dev", "dnm0")
        ip(*n, "link", "set", "dnm0", "up")
        ip(*n, "link", "add", "dnt0", "type", "veth", "peer", "name", "dnt0p")
        ip(*n, "addr", "add", "10.98.2.10/24", "dev", "dnt0")
        ip(*n, "link", "set", "dnt0", "up")
        ip(*n, "link", "set", "dnt0p", "up")
        ip("-n", ns.pod, "link", "set", "lo", "up")
        yield ns
    finally:
        ip("netns", "del", ns.pod, check=False)
        ip("netns", "del", ns.node, check=False)


@pytest.fixture(name="grpc_pb", scope="session")
def grpc_pb_fixture() -> Iterator[KubeletStubs]:
    with kubelet_stubs() as stubs:
        yield stubs
