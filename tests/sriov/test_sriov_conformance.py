"""The built-in sriov backend runs the testing kit's conformance suite, on a fake sysfs (a PF,
a vfio-bound VF and a kernel-bound VF); it moves nothing here (no VFs on this machine)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sriov_fakes import FakeSysfs, sriov_node

from dranet_backends.pci import PciIds
from dranet_backends.sriov import SriovBackend
from dranet_core.testing.conformance import BackendConformance


class TestSriovConformance(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> SriovBackend:
        fs = FakeSysfs(tmp_path / "sys")
        sriov_node(fs)
        return SriovBackend(
            sysfs=fs.root,
            dev_root=tmp_path / "dev",
            pci_ids=PciIds(paths=()),
            poll_interval=0.01,
            uevents=None,
        )
