"""Settings and the command line: defaults as the Go driver, each validation message."""

from __future__ import annotations

from pathlib import Path

import pytest

from dranet_core import cli
from dranet_core.errors import SettingsError
from dranet_core.settings import (
    DEFAULT_FILTER_EXPRESSION,
    InventorySettings,
    KubeSettings,
    LogSettings,
    NriSettings,
    Settings,
    parse_bind_address,
    parse_duration,
)


def _settings(*argv: str, env: dict[str, str] | None = None) -> Settings:
    args = cli.build_parser().parse_args(["run", *argv])
    return cli.settings_from_args(args, env if env is not None else {"NODE_NAME": "node-a"})


def test_defaults_match_the_go_driver() -> None:
    s = _settings()
    assert s.kube.node_name == "node-a"
    assert s.kube.kubeconfig == ""
    assert s.kube.driver_name == "dra.net"
    assert s.observability.bind_address == ":9177"
    assert s.kubelet.root_dir == Path("/var/lib/kubelet")
    assert s.kubelet.plugin_dir("dra.net") == Path("/var/lib/kubelet/plugins/dra.net")
    assert s.kubelet.registry_dir() == Path("/var/lib/kubelet/plugins_registry")
    assert s.checkpoint.db_path == Path("/var/run/dranet/dranet.db")
    assert s.inventory.min_poll_interval == 2.0
    assert s.inventory.max_poll_interval == 60.0
    assert s.inventory.poll_burst == 5
    assert s.inventory.move_ib_interfaces is True
    assert s.inventory.filter == DEFAULT_FILTER_EXPRESSION
    assert s.nri.socket_path == Path("/var/run/nri/nri.sock")
    assert s.nri.plugin_index == "00"
    assert s.backends is None


def test_go_style_flags() -> None:
    s = _settings(
        "--hostname-override=worker-1",
        "--move-ib-interfaces=false",
        "--filter=",
        "--db-path=",
        "--v=4",
        "--inventory-min-poll-interval=500ms",
        "--inventory-max-poll-interval=1m30s",
        "--backends=netdev,rdma",
        "--log-format=json",
    )
    assert s.kube.node_name == "worker-1"
    assert s.inventory.move_ib_interfaces is False
    assert s.inventory.filter == ""
    assert s.checkpoint.db_path is None
    assert s.log.verbosity == 4
    assert s.log.format == "json"
    assert s.inventory.min_poll_interval == 0.5
    assert s.inventory.max_poll_interval == 90.0
    assert s.backends == ("netdev", "rdma")


def test_hostname_override_beats_node_name() -> None:
    assert _settings("--hostname-override", "x-1", env={"NODE_NAME": "y"}).kube.node_name == "x-1"
    assert _settings(env={"NODE_NAME": "from-env"}).kube.node_name == "from-env"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bind-address", "9177"], "--bind-address: expected host:port"),
        (["--bind-address", ":70000"], "--bind-address: port must be 0..65535, got 70000"),
        (["--bind-address", "::1:80"], "--bind-address: an IPv6 host must be in brackets"),
        (["--inventory-min-poll-interval", "2 parsecs"], "--inventory-min-poll-interval: invalid duration"),
        (["--inventory-min-poll-interval", "0s"], "--inventory-min-poll-interval: must be > 0"),
        (
            ["--inventory-min-poll-interval", "2m", "--inventory-max-poll-interval", "1m"],
            "--inventory-max-poll-interval: 60.0s is shorter than --inventory-min-poll-interval 120.0s",
        ),
        (["--inventory-poll-burst", "0"], "--inventory-poll-burst: must be > 0"),
        (["--nri-plugin-index", "7"], "--nri-plugin-index: must be two digits"),
        (["--nri-socket", "nri.sock"], "--nri-socket: must be an absolute path"),
        (["--kubelet-root-dir", "kubelet"], "--kubelet-root-dir: must be an absolute path"),
        (["--db-path", "db.json"], "--db-path: must be an absolute path or empty"),
        (["--hostname-override", "Not_A_Node"], "--hostname-override: 'Not_A_Node' is not a valid node name"),
        (["--backends", "netdev,netdev"], "--backends: netdev named twice"),
        (["--backends", "net dev"], "--backends: 'net dev' is not a backend name"),
        (["--shutdown-grace=-1s"], "--shutdown-grace: invalid duration"),
    ],
)
def test_invalid_values_name_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        _settings(*argv)
    assert str(info.value).startswith(message)


def test_empty_node_name_is_rejected() -> None:
    with pytest.raises(SettingsError, match="node name is empty"):
        KubeSettings(node_name="")


def test_log_settings_validate() -> None:
    with pytest.raises(SettingsError, match="--log-format: must be text or json"):
        LogSettings(format="xml")  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="-v: must be >= 0"):
        LogSettings(verbosity=-1)


def test_settings_are_frozen() -> None:
    s = NriSettings()
    with pytest.raises(AttributeError):
        s.plugin_index = "01"  # type: ignore[misc]
    with pytest.raises(TypeError):
        InventorySettings(2.0)  # type: ignore[misc]  # keyword-only


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("2s", 2.0),
        ("500ms", 0.5),
        ("1m", 60.0),
        ("1h2m3s", 3723.0),
        ("1.5s", 1.5),
        ("10us", 1e-5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text, flag="--x") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "2", "2x", "-1s", "1s garbage"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(SettingsError, match="--x: invalid duration"):
        parse_duration(text, flag="--x")


@pytest.mark.parametrize(
    ("text", "parts"),
    [(":9177", ("", 9177)), ("127.0.0.1:80", ("127.0.0.1", 80)), ("[::1]:0", ("::1", 0))],
)
def test_parse_bind_address(text: str, parts: tuple[str, int]) -> None:
    assert parse_bind_address(text) == parts


def test_cli_rejects_invalid_flag_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--nri-plugin-index=abc", "--hostname-override=n1"]) == 2
    assert capsys.readouterr().err == (
        "dranet run: error: --nri-plugin-index: must be two digits (00-99), got 'abc'\n"
    )


def test_cli_rejects_a_bad_filter(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--filter=attributes[", "--hostname-override=n1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dranet run: error: filter: invalid CEL expression 'attributes['")


def test_cli_rejects_unknown_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--no-such-flag"]) == 2
    assert (
        capsys.readouterr().err
        == "dranet run: error: unknown argument '--no-such-flag' (see dranet run --help)\n"
    )


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["version"]) == 0
    assert capsys.readouterr().out.startswith("dranet ")


def test_run_is_the_default_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--bind-address=nonsense", "--hostname-override=n1"]) == 2
    assert capsys.readouterr().err.startswith("dranet run: error: --bind-address: expected host:port")


def test_go_only_flags_are_accepted_and_warned_about() -> None:
    args = cli.build_parser().parse_args(
        ["run", "--cloud-provider-hint=NONE", "--profile-provider=none", "--webhook-url=http://x:1"]
    )  # fmt: skip
    cli.settings_from_args(args, {"NODE_NAME": "n"})  # still valid settings
    assert cli._go_only_warnings(args) == [
        "--webhook-url=http://x:1 is ignored: neither --profile-provider nor --cloud-provider-hint"
        " is webhook",
    ]
    assert cli._go_only_warnings(cli.build_parser().parse_args(["run"])) == []


def test_run_with_an_unusable_kubeconfig_exits_2_naming_the_flag(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "dranet_core", "--hostname-override=n1", f"--kubeconfig={tmp_path / 'nope'}",
         "--bind-address=", f"--kubelet-root-dir={tmp_path}", "--db-path=", "--backends=netdev"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    missing = tmp_path / "nope"
    line = f"dranet run: error: --kubeconfig: cannot read {missing}: No such file or directory"
    assert proc.stderr == line + "\n"
    assert not (tmp_path / "plugins_registry").exists()  # nothing was started


def test_backend_options_reach_the_backend_context() -> None:
    from dranet_core.app import backend_context

    s = _settings(
        "--backend-option=sriov.poll_interval=10",
        "--backend-option",
        "rdma.netns_mode=exclusive",
        "--move-ib-interfaces=false",
    )
    assert s.backend_options == {"sriov.poll_interval": "10", "rdma.netns_mode": "exclusive"}
    ctx = backend_context(s)
    assert ctx.options["sriov.poll_interval"] == "10"
    assert ctx.options["rdma.netns_mode"] == "exclusive"
    assert ctx.move_ib_interfaces is False
    assert ctx.options_for("rdma")["netns_mode"] == "exclusive"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--backend-option=novalue"], "--backend-option: expected KEY=VALUE, got 'novalue'"),
        (["--backend-option==x"], "--backend-option: expected KEY=VALUE, got '=x'"),
        (
            ["--backend-option=a.b=1", "--backend-option=a.b=2"],
            "--backend-option: 'a.b' given twice",
        ),
    ],
)
def test_backend_option_errors_name_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        _settings(*argv)
    assert str(info.value).startswith(message)


def test_device_metadata_flags() -> None:
    off = _settings()
    assert off.metadata.enabled is False
    assert off.metadata.cdi_dir == Path("/var/run/cdi")
    assert off.metadata.versions == ("v1beta1", "v1alpha1")
    on = _settings("--enable-device-metadata", "--cdi-dir=/run/cdi", "--device-metadata-versions=v1alpha1")
    assert (on.metadata.enabled, on.metadata.cdi_dir, on.metadata.versions) == (
        True,
        Path("/run/cdi"),
        ("v1alpha1",),
    )
    assert _settings("--enable-device-metadata=false").metadata.enabled is False


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cdi-dir=cdi"], "--cdi-dir: must be an absolute path, got 'cdi'"),
        (
            ["--device-metadata-versions=v1"],
            "--device-metadata-versions: unknown version 'v1' (known: v1beta1, v1alpha1)",
        ),
        (["--device-metadata-versions="], "--device-metadata-versions: names no version"),
        (
            ["--device-metadata-versions=v1beta1,v1beta1"],
            "--device-metadata-versions: a version is named twice",
        ),
    ],
)
def test_device_metadata_flag_errors_name_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        _settings(*argv)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("flag", "lists"),
    [
        ("", False),
        ("DRAListTypeAttributes=true", True),
        ("DRAListTypeAttributes=true,PersistentResourceSliceAttributes=true", True),
        (" PersistentResourceSliceAttributes=true ", False),
        ("AllAlpha=true", True),
        ("AllAlpha=true,DRAListTypeAttributes=false", False),
        ("AllBeta=true", False),
    ],
)
def test_feature_gates_as_the_go_driver_parses_them(flag: str, lists: bool) -> None:
    for command in ("run", "inventory"):
        args = cli.build_parser().parse_args([command, f"--feature-gates={flag}"])
        assert cli.settings_from_args(args, {"NODE_NAME": "n"}).inventory.list_attributes is lists


@pytest.mark.parametrize(
    ("flag", "line"),
    [
        (
            "X=true",
            "--feature-gates: unknown feature gate 'X' (known: DRAListTypeAttributes, "
            "PersistentResourceSliceAttributes, AllAlpha, AllBeta)",
        ),
        (
            "DRAListTypeAttributes=maybe",
            "--feature-gates: 'DRAListTypeAttributes=maybe': expected <gate>=true or <gate>=false",
        ),
        (
            "DRAListTypeAttributes",
            "--feature-gates: 'DRAListTypeAttributes': expected <gate>=true or <gate>=false",
        ),
    ],
)
def test_a_bad_feature_gate_is_one_line_naming_the_flag(flag: str, line: str) -> None:
    args = cli.build_parser().parse_args(["run", f"--feature-gates={flag}"])
    with pytest.raises(SettingsError) as exc:
        cli.settings_from_args(args, {"NODE_NAME": "n"})
    assert str(exc.value) == line
