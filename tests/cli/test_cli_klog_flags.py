"""The Go driver's klog flags and ``--cloud-provider-options`` on the real ``dranet run``.

Bad values are one line naming the flag, exit 2. Good ones start the driver (against an API
server that is not there: it keeps running), which is stopped with SIGTERM once its log says
what the test looks for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli_errors import KUBECONFIG, assert_one_line, dranet, run_args


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return path


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--vmodule=rdma"], "--vmodule: 'rdma' is not pattern=N (a file glob and a verbosity >= 0)"),
        (["-vmodule=rdma=x"], "--vmodule: 'rdma=x' is not pattern=N (a file glob and a verbosity >= 0)"),
        (
            ["-stderrthreshold", "LOUD"],
            "--stderrthreshold: must be INFO, WARNING, ERROR, FATAL or 0..3, got 'LOUD'",
        ),
        (["--log_file_max_size=-1"], "--log_file_max_size: must be >= 0 (MiB), got -1"),
        (["--log_backtrace_at=main"], "--log_backtrace_at: must be FILE:LINE, got 'main'"),
        (
            ["--cloud-provider-options=gce.a=1"],
            "--cloud-provider-options: provider gce defines no options, got 'gce.a' "
            "(known: oke.rdma-child-ipv4-cidr)",
        ),
        (
            ["--cloud-provider-options=OKE.rdma-child-ipv4-cidr=10.192.0.0/14"],
            "--cloud-provider-options: provider OKE defines no options, got 'OKE.rdma-child-ipv4-cidr' "
            "(known: oke.rdma-child-ipv4-cidr)",
        ),
        (
            ["--cloud-provider-options=oke.x=1"],
            "--cloud-provider-options: oke has no option 'x' (options: rdma-child-ipv4-cidr)",
        ),
        (
            ["--cloud-provider-options=oke"],
            "--cloud-provider-options: 'oke' is not a <provider>.<option>=<value> pair",
        ),
        (
            ["--cloud-provider-options=.a=1"],
            "--cloud-provider-options: the key '.a' must have the form <provider>.<option>",
        ),
        (
            [
                "--cloud-provider-options=oke.rdma-child-ipv4-cidr=10.0.0.0/8",
                "--cloud-provider-options= oke.rdma-child-ipv4-cidr=10.0.0.0/8",
            ],
            "--cloud-provider-options: oke.rdma-child-ipv4-cidr is given twice",
        ),
        (
            ["--cloud-provider-options=oke.rdma-child-ipv4-cidr=10.192.0.0/31"],
            "--cloud-provider-options: oke.rdma-child-ipv4-cidr: "
            "the prefix length must be from 8 to 30, got '10.192.0.0/31'",
        ),
        (
            ["--cloud-provider-options=oke.rdma-child-ipv4-cidr=169.254.0.0/16"],
            "--cloud-provider-options: oke.rdma-child-ipv4-cidr: "
            "169.254.0.0/16 overlaps the reserved range 169.254.0.0/16",
        ),
        (
            ["--cloud-provider-options=oke.rdma-child-ipv4-cidr=10.192.0.0/14", "--cloud-provider-hint=GCE"],
            "--cloud-provider-options: sets oke.* options, but --cloud-provider-hint is 'GCE'",
        ),
        (
            ["--cloud-provider-options=oke.rdma-child-ipv4-cidr=10.192.0.0/14", "--cloud-provider-hint=NONE"],
            "--cloud-provider-options: sets oke.* options, but --cloud-provider-hint is 'NONE'",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_flag(
    tmp_path: Path, kubeconfig: Path, flags: list[str], line: str
) -> None:
    assert_one_line(dranet(*run_args(tmp_path, kubeconfig, *flags)), f"dranet run: error: {line}")


def test_a_log_file_that_cannot_be_written_is_one_line(tmp_path: Path, kubeconfig: Path) -> None:
    (tmp_path / "afile").write_text("")
    bad = tmp_path / "afile" / "d.log"
    proc = dranet(*run_args(tmp_path, kubeconfig, "--logtostderr=false", f"--log_file={bad}"))
    assert_one_line(proc, f"dranet run: error: --log_file: cannot write {bad}: File exists")


def run_until(tmp_path: Path, kubeconfig: Path, *flags: str, log: Path, marker: str) -> str:
    """Run the driver until ``log`` holds ``marker``; SIGTERM; its stderr."""
    base = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    argv = [*run_args(tmp_path, kubeconfig, *flags), f"--nri-socket={tmp_path / 'nri.sock'}"]
    err = tmp_path / "stderr"
    with err.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dranet_core", *argv], stderr=out, env=base)
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and marker in log.read_text()):
            assert proc.poll() is None, err.read_text()
            assert time.monotonic() < deadline, f"no {marker!r} in {log}"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    return err.read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="dranet run needs root")
def test_go_style_log_file_flags_write_the_file_and_keep_stderr_to_errors(
    tmp_path: Path, kubeconfig: Path
) -> None:
    """``-logtostderr=false -log_file F`` (Go's single dash, value as the next word): every
    line goes to F, stderr gets only ERROR and above; the flags with nothing to do say so."""
    log = tmp_path / "logs" / "d.log"
    stderr = run_until(
        tmp_path,
        kubeconfig,
        "-logtostderr=false",
        "-log_file",
        str(log),
        "--one_output",
        "-vmodule=rdma=4",
        log=log,
        marker="cloud provider auto-detection",
    )
    text = log.read_text()
    assert " I dranet_core.app: dranet " in text
    assert "W dranet_core.cli: --one_output is accepted for compatibility and ignored" in text
    assert " D dranet_backends.rdma: " in text  # --vmodule turned debug on for that module only
    assert not [line for line in text.splitlines() if " D " in line and " dranet_backends.rdma: " not in line]
    assert [line[25:26] for line in stderr.splitlines() if line] in ([], ["E"] * len(stderr.splitlines()))


@pytest.mark.skipif(os.geteuid() != 0, reason="dranet run needs root")
def test_stderrthreshold_applies_to_stderr_only_when_not_legacy(tmp_path: Path, kubeconfig: Path) -> None:
    """With ``--legacy_stderr_threshold_behavior=false`` the threshold filters stderr even when
    logging to stderr only; ``--skip_headers`` drops the time/level/logger prefix; the
    log file flags are ignored (as klog does) with a warning since --logtostderr is true."""
    log = tmp_path / "unused.log"
    err = tmp_path / "stderr"
    base = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    argv = [
        *run_args(tmp_path, kubeconfig),
        f"--nri-socket={tmp_path / 'nri.sock'}",
        "--legacy_stderr_threshold_behavior=false",
        "--stderrthreshold=WARNING",
        "--skip_headers",
        f"--log_file={log}",
    ]
    with err.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dranet_core", *argv], stderr=out, env=base)
    try:
        deadline = time.monotonic() + 60
        while "ResourceSlices" not in err.read_text():
            assert proc.poll() is None, err.read_text()
            assert time.monotonic() < deadline, err.read_text()
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    text = err.read_text()
    assert "--log_file is ignored, as klog ignores it, because --logtostderr is true" in text.splitlines()
    assert "starting on node" not in text  # INFO is below the threshold
    assert not log.exists()
