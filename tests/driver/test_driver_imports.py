"""What the driver loads: every module of the driver and its built-in backends, and none of
the dependencies it does not use (each costs resident memory on every node); CEL only for a
``--filter`` other than the default; and no dependency that installs pydantic."""

from __future__ import annotations

import pathlib
import pkgutil
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest

import dranet_backends
import dranet_core

UNUSED = ("pyroute2",)
"""pyroute2 (installed for the tests): the driver speaks rtnetlink itself."""

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
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {UNUSED!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.fixture
def empty_netns() -> Iterator[str]:
    name = f"dnt-memt-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


@pytest.mark.parametrize(
    ("filter_flag", "cel_loaded"),
    [([], False), (["--filter="], False), (['--filter=attributes["dra.net/mtu"].IntValue > 1'], True)],
)
def test_the_command_loads_cel_only_for_a_filter_that_needs_it(
    empty_netns: str, filter_flag: list[str], cel_loaded: bool
) -> None:
    argv = ["dranet", "inventory", f"--host-netns=/run/netns/{empty_netns}", "--backends=netdev",
            "--output=json", "--hostname-override=n1", *filter_flag]  # fmt: skip
    code = (
        "import runpy, sys\n"
        f"sys.argv = {argv!r}\n"
        "try:\n"
        "    runpy.run_module('dranet_core', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        f"print('RESULT', 'cel_expr_python' in sys.modules, *(m in sys.modules for m in {UNUSED!r}))\n"
    )
    run = [sys.executable, "-c", code]
    out = subprocess.run(run, capture_output=True, text=True, check=True, timeout=120)
    result = next(line for line in out.stdout.splitlines() if line.startswith("RESULT"))
    assert result.split()[1:] == [str(cel_loaded)] + ["False"] * len(UNUSED)


ON_DEMAND = ("dranet_core.go_upgrade", "dranet_core.bbolt", "difflib")
"""Loaded only when needed: the Go checkpoint reader when a Go checkpoint is met, difflib for
the "did you mean" of a bad flag or config field."""


def test_run_loads_the_go_checkpoint_reader_and_difflib_only_on_demand(tmp_path: pathlib.Path) -> None:
    code = (
        "import asyncio, sys, pathlib\n"
        "import dranet_core.cli, dranet_core.app, dranet_backends.netdev.backend\n"
        "from dranet_core.checkpoint import ClaimStore\n"
        f"d = pathlib.Path({str(tmp_path)!r})\n"
        "(d / 'dranet.db').write_text('{\"version\": 1, \"claims\": {}}')\n"
        "assert asyncio.run(ClaimStore(d / 'dranet.db').load()) is None\n"
        f"print(','.join(m for m in {ON_DEMAND!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _requirements(dist: str) -> list[str]:
    """The distributions ``dist`` requires here (no extras; markers evaluated for this Python)."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    out = []
    for line in requires(dist) or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        out.append(req.name.lower().replace("_", "-"))
    return out


def test_the_runtime_dependencies_do_not_install_pydantic() -> None:
    """betterproto2 imports pydantic whenever it is installed (about 6 MiB of resident memory
    the driver never uses), so nothing the driver depends on may bring it in."""
    seen: set[str] = set()
    todo = ["dranet"]
    while todo:
        dist = todo.pop()
        if dist in seen:
            continue
        seen.add(dist)
        todo.extend(_requirements(dist))
    assert "betterproto2" in seen and "kubernetes-asyncio" in seen  # the walk did run
    assert "pydantic" not in seen, sorted(seen)
