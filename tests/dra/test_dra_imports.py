"""The kubelet adapters stay thin: importing them pulls in no backend, netlink or k8s client."""

from __future__ import annotations

import subprocess
import sys


def test_dra_package_imports_no_backend_netlink_or_kube_client() -> None:
    code = (
        "import sys, dranet_core.dra, dranet_core.claim_allocator, dranet_core.checkpoint\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('kubernetes_asyncio', 'pyroute2', 'dranet_backends'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
