"""The built-in rdma backend runs the testing kit's conformance suite, on a fake sysfs (a RoCE
device with a netdev and an IB-only one); it moves nothing here (no RDMA on this machine)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rdma_helpers import add_pci, add_rdma

from dranet_backends.pci import PciIds
from dranet_backends.rdma import RdmaBackend
from dranet_core.testing.conformance import BackendConformance


class TestRdmaConformance(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> RdmaBackend:
        sysfs = tmp_path / "sys"
        add_rdma(sysfs, "mlx5_0", pci=add_pci(sysfs, "0000:08:00.0", netdevs=["eth1"]))
        add_rdma(
            sysfs, "erdma_0", pci=add_pci(sysfs, "0000:09:00.0"), ports=[(1, "InfiniBand", "1: DOWN", ())]
        )
        return RdmaBackend(
            sysfs=sysfs, dev_root=tmp_path / "dev", pci_ids=PciIds(paths=()), poll_interval=0.01, uevents=None
        )
