"""The ``dranet`` command as an operator meets it: every error is one line naming the flag.

Each test runs the real console entry point in a subprocess (``python -m dranet_core``) and
checks the exit status and the exact stderr line, so a traceback anywhere fails the test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
users: [{name: u, user: {}}]
current-context: c
"""


def dranet(
    *argv: str, env: dict[str, str] | None = None, user: int | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    cmd = [sys.executable, "-m", "dranet_core", *argv]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**base, **(env or {})})


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return path


def run_args(tmp_path: Path, kubeconfig: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--hostname-override=n1",
        f"--kubeconfig={kubeconfig}",
        f"--kubelet-root-dir={tmp_path / 'kubelet'}",
        "--db-path=",
        "--bind-address=",
        *extra,
    ]


def assert_one_line(proc: subprocess.CompletedProcess[str], line: str, status: int = 2) -> None:
    assert (proc.returncode, proc.stderr) == (status, line + "\n")


@pytest.mark.parametrize(
    ("option", "line"),
    [
        (
            "sriov.poll_interval=abc",
            "--backend-option sriov.poll_interval=abc: must be a number of seconds > 0",
        ),
        (
            "rdma.netns_mode=bogus",
            "--backend-option rdma.netns_mode=bogus: must be one of auto, shared, exclusive",
        ),
        ("foo=1", "--backend-option foo=1: expected <backend>.<key>=<value>"),
        (
            "netdev.foo=1",
            "--backend-option netdev.foo=1: unknown option "
            "(options of netdev: full_resync, pci_ids, rename_retry_interval, subinterface_parents)",
        ),
        (
            "nosuch.x=1",
            "--backend-option nosuch.x=1: no backend nosuch is installed (installed: sriov, netdev, rdma)",
        ),
        ("novalue", "--backend-option: expected KEY=VALUE, got 'novalue'"),
    ],
)
def test_bad_backend_options_are_one_line_and_exit_2(
    tmp_path: Path, kubeconfig: Path, option: str, line: str
) -> None:
    proc = dranet(*run_args(tmp_path, kubeconfig, f"--backend-option={option}"))
    assert_one_line(proc, f"dranet run: error: {line}")
    assert not (tmp_path / "kubelet").exists()  # nothing started


def test_an_option_for_a_backend_not_loaded_is_rejected(tmp_path: Path, kubeconfig: Path) -> None:
    proc = dranet(
        *run_args(tmp_path, kubeconfig, "--backends=netdev", "--backend-option=rdma.netns_mode=shared")
    )
    assert_one_line(
        proc,
        "dranet run: error: --backend-option rdma.netns_mode=shared: "
        "backend rdma is not loaded (--backends=netdev)",
    )


@pytest.mark.parametrize(
    ("flag", "line"),
    [
        ("--backends=nosuch", "--backends: nosuch not installed (installed: sriov, netdev, rdma)"),
        ("--backends=netdev,netdev", "--backends: netdev named twice"),
    ],
)
def test_bad_backends_exit_2(tmp_path: Path, kubeconfig: Path, flag: str, line: str) -> None:
    assert_one_line(dranet(*run_args(tmp_path, kubeconfig, flag)), f"dranet run: error: {line}")


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        ("a: [b\n", "is not valid YAML at line 2: expected ',' or ']', but got '<stream end>'"),
        ("", "is empty"),
        ("- 1\n", "is not a kubeconfig (no clusters list)"),
    ],
)
def test_a_bad_kubeconfig_names_the_flag(tmp_path: Path, content: str, rule: str) -> None:
    path = tmp_path / "kc.yaml"
    path.write_text(content)
    proc = dranet(*run_args(tmp_path, path))
    assert_one_line(proc, f"dranet run: error: --kubeconfig: {path} {rule}")


def test_kubeconfig_is_found_as_kubectl_finds_it(tmp_path: Path, kubeconfig: Path) -> None:
    from dranet_core.errors import SettingsError
    from dranet_core.settings import resolve_kubeconfig

    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    default = home / ".kube" / "config"
    default.write_text(KUBECONFIG)
    flag = str(kubeconfig)
    env_list = f"{tmp_path / 'missing'}:{kubeconfig}"
    assert resolve_kubeconfig(flag, {"KUBECONFIG": "/x"}, home) == (flag, "--kubeconfig")
    assert resolve_kubeconfig("", {"KUBECONFIG": env_list, "KUBERNETES_SERVICE_HOST": "h"}, home) == (
        str(kubeconfig),
        "KUBECONFIG",
    )
    assert resolve_kubeconfig("", {"KUBERNETES_SERVICE_HOST": "h"}, home) == (
        "",
        "in-cluster service account",
    )
    assert resolve_kubeconfig("", {}, home) == (str(default), "~/.kube/config")
    with pytest.raises(
        SettingsError, match=r"^--kubeconfig: not given, and no file of KUBECONFIG=/x exists$"
    ):
        resolve_kubeconfig("", {"KUBECONFIG": "/x"}, home)
    with pytest.raises(SettingsError, match=r"^--kubeconfig: not given, KUBECONFIG unset"):
        resolve_kubeconfig("", {}, tmp_path / "nohome")


def test_the_log_says_which_kubeconfig_was_used(tmp_path: Path, kubeconfig: Path) -> None:
    args = [
        a for a in run_args(tmp_path, kubeconfig, "--backends=netdev") if not a.startswith("--kubeconfig")
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dranet_core", *args],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)},
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "kubeconfig:" in line:
                assert f"kubeconfig: {kubeconfig} (from KUBECONFIG)" in line
                break
        else:
            pytest.fail("no kubeconfig line in the log")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_non_root_gets_one_line_not_a_retry_loop() -> None:
    if os.geteuid() != 0:
        pytest.skip("probe euid==0 failed: switching to an unprivileged user needs root")
    proc = dranet(
        "run", "--hostname-override=n1", "--kubelet-root-dir=/var/lib/kubelet-x", "--db-path=",
        "--bind-address=", env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, user=65534,
    )  # fmt: skip
    assert_one_line(
        proc,
        "dranet run: error: --kubelet-root-dir: cannot create /var/lib/kubelet-x: /var/lib is not writable "
        "by uid 65534; run the driver as root, as its DaemonSet does",
    )


def test_version_flag_and_command() -> None:
    from importlib.metadata import version

    for argv in (["--version"], ["version"]):
        proc = dranet(*argv)
        assert (proc.returncode, proc.stdout) == (0, f"dranet {version('dranet')}\n")


@pytest.mark.parametrize(
    ("word", "line"),
    [
        ("inventroy", "dranet: error: unknown command 'inventroy' (did you mean 'inventory'?)"),
        ("dmeo", "dranet: error: unknown command 'dmeo' (did you mean 'demo'?)"),
        ("xyzzy", "dranet: error: unknown command 'xyzzy' (commands: run, inventory, demo, version)"),
    ],
)
def test_a_mistyped_command_suggests_the_right_one(word: str, line: str) -> None:
    assert_one_line(dranet(word), line)


def test_help_has_descriptions_and_no_doubled_defaults() -> None:
    for command in ("run", "inventory", "demo"):
        out = dranet(command, "--help").stdout
        assert "(default: " in out or command == "demo"
        assert not re.search(r"\(default:[^)]*\)\s+\(default:", out), out
        assert "(default: )" not in out
        description = out.split("\n\n")[1]
        assert not description.startswith("options:"), f"dranet {command} --help has no description"
    run_help = dranet("run", "--help").stdout
    assert "--sysfs-root" not in run_help and "--driver-name" not in run_help  # test seams stay hidden


FAILING_BACKEND = """\
from dranet_core.errors import BackendError


def create(context):
    raise BackendError("failing", "no such hardware on this node")


def broken(context):
    raise RuntimeError("boom")
"""


@pytest.fixture
def failing_backends(tmp_path: Path) -> dict[str, str]:
    """A distribution (on PYTHONPATH) registering backends whose factories fail."""
    root = tmp_path / "dist"
    root.mkdir()
    (root / "dnt_failing.py").write_text(FAILING_BACKEND)
    info = root / "dnt_failing-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dnt-failing\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[dranet.backends]\nfailing = dnt_failing:create\nbroken = dnt_failing:broken\n"
    )
    return {"PYTHONPATH": str(root)}


def test_a_backend_asked_for_that_fails_is_fatal(
    tmp_path: Path, kubeconfig: Path, failing_backends: dict[str, str]
) -> None:
    proc = dranet(*run_args(tmp_path, kubeconfig, "--backends=netdev,failing"), env=failing_backends)
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if " E " in line or "Traceback" in line]
    assert len(errors) == 1, proc.stderr
    assert errors[0].endswith("dranet cannot run: backend failing: no such hardware on this node")
    assert not (tmp_path / "kubelet" / "plugins_registry").exists()


def test_inventory_in_auto_mode_skips_a_failing_backend_quietly(failing_backends: dict[str, str]) -> None:
    proc = dranet("inventory", "--hostname-override=n1", "-o", "json", env=failing_backends)
    assert (proc.returncode, proc.stderr) == (0, "")
    import json

    loaded = json.loads(proc.stdout)["backends"]
    assert "failing" not in loaded and "broken" not in loaded and "netdev" in loaded
    verbose = dranet("inventory", "--hostname-override=n1", "-v", env=failing_backends)
    skipped = [line for line in verbose.stderr.splitlines() if "skipping backend" in line]
    assert len(skipped) == 2 and "Traceback" not in verbose.stderr


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["inventory", "--outptu", "json"],
            "dranet inventory: error: unknown argument '--outptu' (did you mean --output?)",
        ),
        (
            ["--bind-adress=:1"],
            "dranet run: error: unknown argument '--bind-adress=:1' (did you mean --bind-address?)",
        ),
        (
            ["run", "--no-such-flag"],
            "dranet run: error: unknown argument '--no-such-flag' (see dranet run --help)",
        ),
        (
            ["inventory", "-o", "xml"],
            "dranet inventory: error: argument -o/--output: invalid choice: 'xml' "
            "(choose from 'table', 'yaml', 'json') (see dranet inventory --help)",
        ),
        (
            ["run", "--inventory-poll-burst=x"],
            "dranet run: error: argument --inventory-poll-burst: invalid int value: 'x' "
            "(see dranet run --help)",
        ),
    ],
)
def test_argument_errors_are_one_line(argv: list[str], line: str) -> None:
    assert_one_line(dranet(*argv), line)
