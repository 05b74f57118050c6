"""What ``dranet run`` loads: every module of the driver and its built-in backends, and none
of the dependencies it does not use (each costs resident memory on every node)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import dranet_backends
import dranet_core

UNUSED = ("pyroute2", "prompt_toolkit", "pygments")
"""pyroute2: the driver speaks rtnetlink itself; the others: the CEL package's interactive CLI."""

SKIP = ("dranet_core.demo", "dranet_core.testing", "dranet_core.__main__")


def driver_modules() -> list[str]:
    names = []
    for pkg in (dranet_core, dranet_backends):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if not info.name.startswith(SKIP) and "._generated" not in info.name:
                names.append(info.name)
    return names


def test_driver_and_backends_import_no_unused_dependency() -> None:
    modules = driver_modules()
    assert "dranet_core.app" in modules and "dranet_backends.netdev.backend" in modules
    code = (
        "import importlib, sys\n"
        "from dranet_core.cli import prefer_light_cel\n"
        "prefer_light_cel()\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {UNUSED!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
