"""The public API: ``dranet_core`` exports what an author needs, and every exported name is documented."""

from __future__ import annotations

import inspect
import subprocess
import sys

import dranet_core

DOC = dranet_core.__doc__ or ""


def test_every_public_name_is_exported_and_documented() -> None:
    undocumented = []
    for name in dranet_core.__all__:
        obj = getattr(dranet_core, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            own = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
            if not (own or "").strip():
                undocumented.append(name)
        elif name not in DOC:  # constants and type aliases are described in the package doc
            undocumented.append(name)
    assert undocumented == []


def test_no_public_name_outside_all() -> None:
    stray = {
        n
        for n, v in vars(dranet_core).items()
        if not n.startswith("_")
        and not inspect.ismodule(v)
        and n not in ("annotations", "TYPE_CHECKING", "Any")
    }
    assert stray <= set(dranet_core.__all__)


def test_a_backend_author_needs_one_import() -> None:
    for name in (
        "Discovery", "NamespaceMover", "ValidatesConfig", "AdjustsContainers", "ReportsHealth",
        "ReportsExclusions", "Backend", "BackendContext", "BackendOption", "backend_options",
        "Device", "PreparedDevice", "PodSandbox", "AttachResult", "DeviceNode", "NetworkConfig",
        "BackendError", "DeviceError", "ConfigError", "Settings", "Driver", "LocalStatusPublisher",
    ):  # fmt: skip
        assert name in dranet_core.__all__, name


def test_importing_the_package_stays_light() -> None:
    heavy = "('grpclib', 'kubernetes_asyncio')"
    code = f"import sys, dranet_core; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_lazy_names_resolve() -> None:
    from dranet_core.app import Driver
    from dranet_core.kube.local import LocalStatusPublisher

    assert dranet_core.Driver is Driver
    assert dranet_core.LocalStatusPublisher is LocalStatusPublisher
