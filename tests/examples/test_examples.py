"""The examples run as their README says: the local custom driver end to end (root)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.netns]


def test_custom_driver_runs_on_one_machine_without_a_cluster() -> None:
    if os.geteuid() != 0:
        pytest.skip("probe euid==0 failed: the example creates network namespaces")
    env = {
        k: v for k, v in os.environ.items() if k not in ("NODE_NAME", "KUBECONFIG", "KUBERNETES_SERVICE_HOST")
    }
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "custom_driver" / "local_driver.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "device mv0 is in the pod as net1\ndevice mv0 is back on the node\n"
    assert "device attached" in proc.stderr  # it set up logging
    assert "Traceback" not in proc.stderr
