"""Fixtures for the netdev mover tests (helpers live in mover_lab.py)."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator

import pytest
from mover_lab import Lab, sh

from dranet_backends.netdev.mover import NetdevMover


def _netns_add(name: str) -> None:
    sh(["ip", "netns", "add", name])
    sh(["ip", "-n", name, "link", "set", "lo", "up"])


@pytest.fixture
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("netns tests need root (probe: geteuid() != 0)")
    if shutil.which("ethtool") is None:
        pytest.skip("probe: the ethtool CLI is missing (apt-get install ethtool)")
    prefix = f"dnt-mv-{secrets.token_hex(3)}"
    lab = Lab(prefix=prefix, node=f"{prefix}-node", pod=f"{prefix}-pod")
    try:
        _netns_add(lab.node)
        _netns_add(lab.pod)
        yield lab
    finally:
        for ns in (lab.pod, lab.node):
            sh(["ip", "netns", "del", ns], check=False)


@pytest.fixture
async def mover(lab: Lab) -> AsyncIterator[NetdevMover]:
    m = NetdevMover(host_netns=f"/run/netns/{lab.node}")
    try:
        yield m
    finally:
        await m.aclose()
