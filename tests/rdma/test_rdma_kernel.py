"""Read-only checks against a real RDMA kernel, gated by a capability probe.

Probe: ``/sys/class/infiniband`` exists AND a ``NETLINK_RDMA`` socket answers
``RDMA_NLDEV_CMD_SYS_GET``. This machine's kernel has no RDMA (``CONFIG_INFINIBAND`` off:
the socket fails with ``EPROTONOSUPPORT``), so these tests report a skip naming the probe;
everything they would exercise is tested against the fake kernel and fake sysfs trees.
Nothing here moves a device: the tests never touch devices they did not create.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dranet_backends.rdma import RdmaBackend, detect_netns_mode
from dranet_backends.rdma.nldev import (
    NETNS_EXCLUSIVE,
    NETNS_SHARED,
    NldevSocket,
    open_nldev_socket,
    probe_netns_mode,
)


def _probe() -> str | None:
    """None when real RDMA is usable, else why not."""
    if not Path("/sys/class/infiniband").is_dir():
        return "probe /sys/class/infiniband failed: no RDMA subsystem in sysfs"
    try:
        probe_netns_mode()
    except OSError as exc:
        return f"probe NETLINK_RDMA SYS_GET failed: {exc.strerror or exc}"
    return None


SKIP = _probe()
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")


def test_real_netns_mode_is_shared_or_exclusive() -> None:
    mode = probe_netns_mode()
    assert mode in (NETNS_SHARED, NETNS_EXCLUSIVE)
    assert detect_netns_mode() == ("exclusive" if mode == NETNS_EXCLUSIVE else "shared")


async def test_real_links_match_sysfs() -> None:
    sock = NldevSocket(await open_nldev_socket())
    try:
        names = {lk.name for lk in await sock.links()}
    finally:
        sock.close()
    in_sysfs = set(os.listdir("/sys/class/infiniband"))
    if detect_netns_mode() == "shared":
        assert names == in_sysfs
    else:
        assert names <= in_sysfs  # exclusive: only this netns's devices


def _pci_rdma_devices() -> set[str]:
    base = Path("/sys/class/infiniband")
    return {n for n in os.listdir(base) if (base / n / "device").exists()}


async def test_real_scan_publishes_pci_rdma_devices() -> None:
    devices = await RdmaBackend().scan()
    published = {d.attributes["dra.net/rdmaDevice"] for d in devices}
    assert published <= set(os.listdir("/sys/class/infiniband"))
    assert bool(published) == bool(_pci_rdma_devices())
