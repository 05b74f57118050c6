"""Typed backend options and capability completeness: what a backend author declares is enforced."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from dranet_core.backends import (
    BackendContext,
    BackendOption,
    BackendOptionError,
    available_backends,
    backend_options,
    check_backend_options,
    check_capabilities,
    declared_options,
    load_backend,
    parse_bool,
    parse_choice,
    parse_path,
    parse_path_list,
    parse_seconds,
)
from dranet_core.errors import BackendError, SettingsError
from dranet_core.types import Device

MODE = BackendOption("demo", "mode", parse_choice("fast", "safe"), "safe", "how to run")
POLL = BackendOption("demo", "poll", parse_seconds, 5.0, "seconds between polls")


def test_context_option_parses_or_defaults() -> None:
    ctx = BackendContext(node_name="n", options={"demo.poll": "2.5"})
    assert ctx.option(POLL) == 2.5
    assert ctx.option(MODE) == "safe"


def test_a_bad_value_names_the_option_and_the_rule() -> None:
    ctx = BackendContext(node_name="n", options={"demo.mode": "turbo"})
    with pytest.raises(BackendOptionError) as info:
        ctx.option(MODE)
    assert str(info.value) == "--backend-option demo.mode=turbo: must be one of fast, safe"
    assert isinstance(info.value, BackendError) and isinstance(info.value, SettingsError)
    assert info.value.backend == "demo"


@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        (parse_seconds, "0.5", 0.5),
        (parse_bool, "False", False),
        (parse_bool, "on", True),
        (parse_path, "/dev", Path("/dev")),
        (parse_path_list, "/a:/b", (Path("/a"), Path("/b"))),
    ],
)
def test_parsers_accept(parse: Callable[[str], Any], text: str, value: Any) -> None:
    assert parse(text) == value


@pytest.mark.parametrize(
    ("parse", "text", "rule"),
    [
        (parse_seconds, "abc", "must be a number of seconds > 0"),
        (parse_seconds, "0", "must be a number of seconds > 0"),
        (parse_seconds, "inf", "must be a number of seconds > 0"),
        (parse_bool, "maybe", "must be true or false"),
        (parse_path, "dev", "must be an absolute path"),
        (parse_path_list, "/a:b", "must be an absolute path"),
    ],
)
def test_parsers_reject_with_the_rule(parse: Callable[[str], Any], text: str, rule: str) -> None:
    with pytest.raises(ValueError, match=f"^{rule}$"):
        parse(text)


def test_declared_options_of_the_builtins() -> None:
    declared = {n: [o.key for o in declared_options(ep.load())] for n, ep in available_backends().items()}
    assert declared["netdev"] == ["pci_ids", "full_resync", "rename_retry_interval", "subinterface_parents"]
    assert declared["sriov"] == ["dev_root", "poll_interval", "full_resync", "pci_ids"]
    assert declared["rdma"] == ["netns_mode", "dev_root", "poll_interval"]
    for name in ("netdev", "sriov", "rdma"):
        assert all(o.backend == name and o.help for o in declared_options(available_backends()[name].load()))


def test_decorator_marks_the_factory() -> None:
    @backend_options(MODE, POLL)
    def create(context: BackendContext) -> object:
        return object()

    assert declared_options(create) == (MODE, POLL)
    assert declared_options(lambda c: c) == ()


def test_check_backend_options_accepts_declared_values() -> None:
    check_backend_options(
        {"rdma.netns_mode": "exclusive", "sriov.poll_interval": "3", "netdev.full_resync": "9"}
    )
    check_backend_options({})


@pytest.mark.parametrize(
    ("options", "enabled", "message"),
    [
        ({"x": "1"}, None, "x=1: expected <backend>.<key>=<value>"),
        ({".x": "1"}, None, ".x=1: expected <backend>.<key>=<value>"),
        ({"netdev.": "1"}, None, "netdev.=1: expected <backend>.<key>=<value>"),
        (
            {"netdev.nope": "1"},
            None,
            "netdev.nope=1: unknown option (options of netdev: full_resync, pci_ids, "
            "rename_retry_interval, subinterface_parents)",
        ),
        ({"sriov.dev_root": "dev"}, None, "sriov.dev_root=dev: must be an absolute path"),
        ({"rdma.poll_interval": "1"}, ["netdev"], "rdma.poll_interval=1: backend rdma is not loaded"),
    ],
)
def test_check_backend_options_rejects_by_name(
    options: dict[str, str], enabled: Sequence[str] | None, message: str
) -> None:
    with pytest.raises(BackendOptionError) as info:
        check_backend_options(options, enabled=enabled)
    assert str(info.value).startswith(f"--backend-option {message}")


class _Partial:
    name = "partial"

    async def scan(self) -> Sequence[Device]:
        return []

    async def snapshot(self, device: object) -> None:
        return None

    async def attach(self, device: object, pod: object, snapshot: object) -> None:
        return None


def test_a_partial_capability_names_the_missing_method() -> None:
    with pytest.raises(BackendError) as info:
        check_capabilities(_Partial())
    assert str(info.value) == "backend partial: implements part of Discovery: has scan, lacks watch"


def test_a_complete_backend_passes_and_builtins_load_clean(tmp_path: Path) -> None:
    ctx = BackendContext(node_name="n", sysfs=tmp_path, options={"rdma.netns_mode": "shared"})
    for name in ("netdev", "sriov", "rdma"):
        backend = load_backend(available_backends()[name], ctx)
        check_capabilities(backend)
        close = getattr(backend, "close", None)
        if callable(close):
            close()
