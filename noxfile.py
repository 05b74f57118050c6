"""Development sessions. ``nox`` with no arguments runs what CI runs.

Sessions run in the current environment (the venv the README creates with
``pip install -e '.[dev]'``), so a run does not rebuild virtualenvs.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "typecheck", "imports", "protos", "tests", "examples", "docs"]

ROOT = pathlib.Path(__file__).parent
PY = sys.executable
BIN = pathlib.Path(sys.executable).parent


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (netns tests need root; CI runs as root)."""
    session.run(PY, "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting (``ruff format --check``); vulture: no dead code in src/
    (names kept on purpose are listed, with the reason, in ``vulture_whitelist.py``)."""
    paths = ("src", "tests", "benchmarks", "examples", "scripts", "fuzz", "noxfile.py")
    session.run(PY, "-m", "ruff", "check", *paths)
    session.run(PY, "-m", "ruff", "format", "--check", *paths)
    session.run(
        PY,
        "-m",
        "vulture",
        "src",
        "vulture_whitelist.py",
        "--exclude",
        "src/dranet_core/_generated",
        "--ignore-decorators",
        "@*.validator,@property",
        "--ignore-names",
        "[A-Z]*",
    )


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src/."""
    session.run(PY, "-m", "mypy", "--strict", "src")


@nox.session
def imports(session: nox.Session) -> None:
    """import-linter: core never imports backends; layers; sans-IO codecs."""
    session.run(str(BIN / "lint-imports"))


@nox.session
def protos(session: nox.Session) -> None:
    """Regenerate protocol code and fail if it differs from what is committed."""
    session.run(PY, "scripts/gen_protos.py", "--check")


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmark and print its table (each titled with its script); fails, after
    running them all, when any missed a target. Not among the default sessions: the figures
    depend on the machine, and the netns benchmarks need root. bench_dra's kubelet is a Go
    program (grpc-go, as the kubelet's): the Go toolchain and grpc-go are installed from
    Debian's packages when missing and this runs as root."""
    go_grpc = pathlib.Path("/usr/share/gocode/src/google.golang.org/grpc")
    if (shutil.which("go") is None or not go_grpc.is_dir()) and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-qq", external=True, env=env)
        packages = ("golang-go", "golang-google-grpc-dev")
        session.run("apt-get", "install", "-y", "-qq", *packages, external=True, env=env)
    missed = []
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        session.log(f"benchmarks/{script.name}")
        code = subprocess.run([PY, str(script)], check=False).returncode  # nox.run hides the code
        if code:
            missed.append(f"{script.name} (exit {code})")
    if missed:
        session.error("targets missed: " + ", ".join(missed))


@nox.session
def examples(session: nox.Session) -> None:
    """The example backend as a third party ships it: installed, its own tests, then removed.

    It is uninstalled afterwards so the main suite keeps seeing only the built-in backends.
    """
    example = ROOT / "examples" / "macvlan_backend"
    session.run(PY, "-m", "pip", "install", "-q", "-e", str(example))
    try:
        session.run(PY, "-m", "dranet_core", "inventory", "--backends=macvlan", "-o", "json", silent=True)
        session.run(PY, "-m", "pytest", "-p", "no:cacheprovider", str(example), *session.posargs)
        session.run(
            PY, "-m", "mypy", "--strict", str(example / "src"), str(ROOT / "examples" / "custom_driver")
        )
    finally:
        session.run(PY, "-m", "pip", "uninstall", "-q", "-y", "dranet-macvlan-example")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site (MkDocs, warnings are errors) and check its links."""
    session.run(PY, "scripts/gen_config_reference.py")  # the reference follows the code
    session.run(PY, "-m", "mkdocs", "build", "--strict", "--site-dir", str(ROOT / "site"))
    session.run(PY, "scripts/check_links.py", str(ROOT / "site"))
