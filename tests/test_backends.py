"""Backend loading through the dranet.backends entry points, with throw-away distributions.

Each test writes a real ``*.dist-info`` (METADATA + entry_points.txt) and a module into a
temporary directory put on ``sys.path``, so importlib.metadata finds them exactly as it
finds an installed third-party backend. The built-in backends are installed too; tests that
use auto mode disable them so the result does not depend on this machine.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dranet_core.backends import (
    BUILTIN_ORDER,
    BackendContext,
    available_backends,
    load_backends,
)
from dranet_core.errors import BackendError

BUILTINS = set(BUILTIN_ORDER)
CTX = BackendContext(node_name="node-1", options={"good.x": "1", "other.y": "2", "plain": "3"})

MODULE_SOURCE = """
class Backend:
    def __init__(self, name, context):
        self._name = name
        self.context = context

    @property
    def name(self):
        return self._name

    async def health(self):
        return {}


class NoCapability:
    name = "nocap"


def good(context):
    return Backend("good", context)


def zeta(context):
    return Backend("zeta", context)


def alpha(context):
    return Backend("alpha", context)


def raises(context):
    raise RuntimeError("no such hardware")


def declines(context):
    from dranet_core.errors import BackendError
    raise BackendError("declines", "no SR-IOV capable device on this node")


def nocap(context):
    return NoCapability()


def wrongname(context):
    return Backend("something-else", context)


def notabackend(context):
    return 42


async def asyncfactory(context):
    return Backend("asyncfactory", context)


NOT_CALLABLE = 5
"""

Register = Callable[[dict[str, str]], str]


@pytest.fixture
def register(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Register]:
    """Install a throw-away distribution whose entry points map name -> ``{mod}:attr``."""
    modules: list[str] = []

    def install(entries: dict[str, str]) -> str:
        tag = uuid.uuid4().hex[:10]
        mod = f"dnt_backends_{tag}"
        root = tmp_path / tag
        root.mkdir()
        (root / f"{mod}.py").write_text(MODULE_SOURCE)
        (root / f"{mod}_broken.py").write_text("raise RuntimeError('boom at import')\n")
        info = root / f"dnt_backends_{tag}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: dnt-backends-{tag}\nVersion: 1.0\n")
        lines = ["[dranet.backends]"] + [f"{n} = {v.format(mod=mod)}" for n, v in entries.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        monkeypatch.syspath_prepend(str(root))
        modules.extend([mod, f"{mod}_broken"])
        return mod

    yield install
    for m in modules:
        sys.modules.pop(m, None)


def test_third_party_backend_is_found_and_loaded(register: Register) -> None:
    register({"good": "{mod}:good"})
    assert "good" in available_backends()
    (backend,) = load_backends(CTX, enabled=["good"])
    assert backend.name == "good"
    ctx = backend.context  # type: ignore[attr-defined]
    assert ctx is CTX
    assert ctx.options_for("good") == {"x": "1"}


def test_builtins_are_registered_like_third_parties() -> None:
    available = available_backends()
    assert list(available)[:3] == list(BUILTIN_ORDER)
    assert available["netdev"].value == "dranet_backends.netdev:create"


def test_auto_mode_order_builtins_first_then_by_name(register: Register) -> None:
    register({"zeta": "{mod}:zeta", "alpha": "{mod}:alpha"})
    names = list(available_backends())
    assert names[: len(BUILTIN_ORDER)] == list(BUILTIN_ORDER)
    assert names.index("alpha") < names.index("zeta")
    loaded = load_backends(CTX, disabled=BUILTINS)
    assert [b.name for b in loaded] == ["alpha", "zeta"]


def test_explicit_order_is_kept(register: Register) -> None:
    register({"zeta": "{mod}:zeta", "alpha": "{mod}:alpha"})
    assert [b.name for b in load_backends(CTX, enabled=["zeta", "alpha", "zeta"])] == ["zeta", "alpha"]


def test_disable_by_name(register: Register) -> None:
    register({"zeta": "{mod}:zeta", "alpha": "{mod}:alpha"})
    assert [b.name for b in load_backends(CTX, disabled=[*BUILTINS, "zeta"])] == ["alpha"]


def test_unknown_enabled_name_lists_the_available(register: Register) -> None:
    register({"good": "{mod}:good"})
    with pytest.raises(BackendError) as info:
        load_backends(CTX, enabled=["good", "nosuch"])
    assert info.value.backend == "nosuch"
    assert "not installed" in info.value.reason
    assert "good" in info.value.reason and "netdev" in info.value.reason


def test_enabled_and_disabled_conflict(register: Register) -> None:
    register({"good": "{mod}:good"})
    with pytest.raises(BackendError, match="both enabled and disabled"):
        load_backends(CTX, enabled=["good"], disabled=["good"])


def test_disabling_an_uninstalled_backend_is_only_logged(
    register: Register, caplog: pytest.LogCaptureFixture
) -> None:
    register({"good": "{mod}:good"})
    with caplog.at_level(logging.WARNING, logger="dranet_core.backends"):
        loaded = load_backends(CTX, disabled=[*BUILTINS, "nosuch"])
    assert [b.name for b in loaded] == ["good"]
    assert "nosuch" in caplog.text


FAILURES = [
    ("missing", "dnt_no_such_module_xyz:create", "cannot import", ModuleNotFoundError),
    ("broken", "{mod}_broken:create", "cannot import", RuntimeError),
    ("noattr", "{mod}:no_such_factory", "cannot import", AttributeError),
    ("raises", "{mod}:raises", "factory", RuntimeError),
    ("declines", "{mod}:declines", "no SR-IOV capable device", type(None)),
    ("nocap", "{mod}:nocap", "implements no capability", type(None)),
    ("wrongname", "{mod}:wrongname", "named 'something-else'", type(None)),
    ("notabackend", "{mod}:notabackend", "returned int", type(None)),
    ("asyncfactory", "{mod}:asyncfactory", "not async", type(None)),
    ("notcallable", "{mod}:NOT_CALLABLE", "not callable", type(None)),
]


@pytest.mark.parametrize(("name", "target", "reason", "cause"), FAILURES, ids=[f[0] for f in FAILURES])
def test_explicit_failure_is_fatal(
    register: Register, name: str, target: str, reason: str, cause: type
) -> None:
    register({name: target, "good": "{mod}:good"})
    with pytest.raises(BackendError) as info:
        load_backends(CTX, enabled=["good", name])
    assert info.value.backend == name
    assert reason in info.value.reason
    assert type(info.value.__cause__) is cause


@pytest.mark.parametrize(("name", "target", "reason", "cause"), FAILURES, ids=[f[0] for f in FAILURES])
def test_auto_mode_skips_a_failing_backend(
    register: Register, caplog: pytest.LogCaptureFixture, name: str, target: str, reason: str, cause: type
) -> None:
    register({name: target, "good": "{mod}:good"})
    with caplog.at_level(logging.WARNING, logger="dranet_core.backends"):
        loaded = load_backends(CTX, disabled=BUILTINS)
    assert [b.name for b in loaded] == ["good"]
    skipped = [
        r for r in caplog.records if r.levelno == logging.WARNING and f"backend {name}" in r.getMessage()
    ]
    assert len(skipped) == 1
    assert reason in skipped[0].getMessage()


def test_nothing_loaded_is_logged(register: Register, caplog: pytest.LogCaptureFixture) -> None:
    register({"raises": "{mod}:raises"})
    with caplog.at_level(logging.WARNING, logger="dranet_core.backends"):
        assert load_backends(CTX, disabled=BUILTINS) == []
    assert "no backend loaded" in caplog.text


def test_same_name_from_two_distributions(register: Register) -> None:
    register({"twice": "{mod}:good"})
    register({"twice": "{mod}:alpha"})
    with pytest.raises(BackendError, match="registered twice"):
        available_backends()


def test_context_defaults_and_frozen() -> None:
    ctx = BackendContext(node_name="n")
    assert ctx.driver_name == "dra.net"
    assert ctx.sysfs == Path("/sys") and ctx.procfs == Path("/proc")
    assert ctx.options_for("rdma") == {}
    with pytest.raises(AttributeError):
        ctx.node_name = "m"  # type: ignore[misc]
