"""The ``dranet`` command line: ``run`` (the default), ``inventory``, ``demo``, ``version``.

``dranet run`` takes the Go driver's flags with the same names and defaults where they mean
the same (``--kubeconfig``, ``--hostname-override``, ``--filter``, ``--bind-address``,
``--kubelet-root-dir``, ``--db-path``, ``--inventory-*``, ``--move-ib-interfaces``, and
klog's ``--v``), plus ours (``--nri-socket``, ``--nri-plugin-index``, ``--backends``,
``--log-format``, ``--shutdown-grace``). Go-style ``--flag=value`` and booleans written
``--move-ib-interfaces=false`` work. Invalid values are rejected before anything starts,
with a message naming the flag, and exit status 2.

Heavy modules (the driver, kubernetes-asyncio) are imported only by the command that needs
them, so ``dranet version`` and argument errors are instant.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import socket
import sys
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import attrs

from dranet_core.errors import BackendError, SettingsError
from dranet_core.settings import (
    DEFAULT_FILTER_EXPRESSION,
    CheckpointSettings,
    CloudSettings,
    DebugSettings,
    HostSettings,
    InventorySettings,
    KubeletSettings,
    KubeSettings,
    LogSettings,
    MetadataSettings,
    NriSettings,
    ObservabilitySettings,
    ProfileSettings,
    Settings,
    ShutdownSettings,
    check_kubeconfig,
    parse_backend_options,
    parse_duration,
    parse_feature_gates,
    parse_klog_severity,
    parse_vmodule,
    resolve_kubeconfig,
)

__all__ = ["build_parser", "main", "settings_from_args"]

COMMANDS = ("run", "inventory", "demo", "version")

_HOST = HostSettings()  # the defaults of the host paths (settings.py owns every literal path)

GO_ONLY_FLAGS: dict[str, str] = {}
"""Go driver flags this driver accepts (so its manifests and Helm values still start it) but
does not implement (none at present: ``--feature-gates`` is parsed as Go does). A value other
than the default or ``NONE`` is logged as a warning at start."""
_HARMLESS = {"", "none", "NONE"}


def _go_only_warnings(args: argparse.Namespace) -> list[str]:
    out = []
    url = getattr(args, "webhook_url", "")
    users = (getattr(args, "profile_provider", "").lower(), getattr(args, "cloud_provider_hint", "").lower())
    if url and "webhook" not in users:  # the Go driver would use it to auto-detect a provider
        out.append(
            f"--webhook-url={url} is ignored: neither --profile-provider nor --cloud-provider-hint is webhook"
        )
    for flag, default in GO_ONLY_FLAGS.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"), default)
        if value != default and value not in _HARMLESS:
            out.append(f"{flag}={value} is not supported by this driver and is ignored")
    return out


def _bool(text: str) -> bool:
    v = text.strip().lower()
    if v in ("1", "t", "true", "yes", "on"):
        return True
    if v in ("0", "f", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block) pointing at ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` only when the help does not say it already and X is not empty."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, "", False, [], argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


RUN_DESCRIPTION = """\
Run the dra.net driver on this node: publish its network devices as ResourceSlices, prepare
claims for the kubelet (DRA) and move the devices into pods as the container runtime creates
them (NRI). Runs as root in the host network namespace, as the DaemonSet in deploy/ does.
Invalid flags are reported in one line naming the flag, with exit status 2.
"""

INVENTORY_DESCRIPTION = """\
Discover this host's devices with the installed backends and print them, with the devices
left out and why. Read-only: nothing is published, nothing is moved, no cluster is needed.
"""


def _add_node_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--hostname-override", default="", help="node name (default: $NODE_NAME, else the hostname)"
    )
    p.add_argument(
        "--filter",
        default=DEFAULT_FILTER_EXPRESSION,
        help="CEL expression over device attributes; only matching devices are published ('' = all)",
    )
    p.add_argument("--backends", default="", help="comma-separated backends to load, in order (default: all)")
    p.add_argument(
        "--backend-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a backend's option, <backend>.<key>=<value>, e.g. rdma.netns_mode=exclusive (repeatable)",
    )
    p.add_argument(
        "--feature-gates",
        default="",
        metavar="GATE=BOOL,...",
        help="the Go driver's feature gates: DRAListTypeAttributes=true publishes list-typed "
        "attributes (resource.kubernetes.io/numaNode) as lists; PersistentResourceSliceAttributes "
        "is accepted (moved devices always stay published here)",
    )
    p.add_argument(
        "--move-ib-interfaces",
        type=_bool,
        nargs="?",
        const=True,
        default=True,
        metavar="BOOL",
        help="move IPoIB netdevs into pods (false: RDMA only)",
    )
    p.add_argument("--host-netns", default=str(_HOST.host_netns), help=argparse.SUPPRESS)
    p.add_argument("--sysfs-root", default=str(_HOST.sysfs_root), help=argparse.SUPPRESS)
    p.add_argument("--procfs-root", default=str(_HOST.procfs_root), help=argparse.SUPPRESS)


def _add_metadata_flags(p: argparse.ArgumentParser) -> None:
    defaults = MetadataSettings()
    group = p.add_argument_group("DRA device metadata (KEP-5304; needs CDI support in the runtime)")
    group.add_argument(
        "--enable-device-metadata",
        type=_bool,
        nargs="?",
        const=True,
        default=defaults.enabled,
        metavar="BOOL",
        help="write a metadata file per claim request and mount it into its containers by CDI",
    )
    group.add_argument("--cdi-dir", default=str(defaults.cdi_dir), help="where the runtime reads CDI specs")
    group.add_argument(
        "--device-metadata-versions",
        default=",".join(defaults.versions),
        help="metadata.resource.k8s.io versions written, in order",
    )


def _metadata(args: argparse.Namespace) -> MetadataSettings:
    versions = tuple(v.strip() for v in args.device_metadata_versions.split(",") if v.strip())
    return MetadataSettings(
        enabled=args.enable_device_metadata, cdi_dir=Path(args.cdi_dir), versions=versions
    )


def _add_log_flags(p: argparse.ArgumentParser, *, klog_flags: bool = True) -> None:
    p.add_argument("--log-format", default="text", choices=("text", "json"), help="log line format")
    p.add_argument("-v", dest="verbosity", action="count", default=0, help="more verbose (repeatable)")
    p.add_argument("--v", dest="verbosity", type=int, metavar="N", help="log verbosity, as klog (4 = debug)")
    if not klog_flags:
        return
    klog = p.add_argument_group("klog's flags, as the Go driver takes them")
    klog.add_argument(
        "--vmodule",
        default="",
        metavar="PATTERN=N,...",
        help="per-module verbosity: a glob over the file name without .py, the logger name or its last part",
    )

    def flag(name: str, default: bool, text: str) -> None:
        klog.add_argument(name, type=_bool, nargs="?", const=True, default=default, metavar="BOOL", help=text)

    flag("--logtostderr", True, "log to stderr only (false: to the log file too)")
    flag("--alsologtostderr", False, "with a log file, every line to stderr as well")
    klog.add_argument("--log_dir", default="", help="with --logtostderr=false, write <dir>/dranet.log")
    klog.add_argument("--log_file", default="", help="with --logtostderr=false, write this file")
    klog.add_argument(
        "--log_file_max_size",
        type=int,
        default=1800,
        metavar="MB",
        help="rotate the log file beyond it (0 = never)",
    )
    klog.add_argument(
        "--stderrthreshold",
        default="ERROR",
        help="lines at this severity or above reach stderr with a log file (INFO, WARNING, ERROR, FATAL)",
    )
    flag(
        "--legacy_stderr_threshold_behavior",
        True,
        "true: --stderrthreshold is ignored while --logtostderr is true, as klog",
    )
    flag("--skip_headers", False, "text lines without the time, level and logger prefix")
    flag("--skip_log_headers", False, "accepted; no log file header is ever written")
    flag("--add_dir_header", False, "accepted; not implemented (warns)")
    flag("--one_output", False, "accepted; there is one log file (no per-severity files)")
    klog.add_argument(
        "--log_backtrace_at", default="", metavar="FILE:N", help="accepted; not implemented (warns)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = _Parser(
        prog="dranet",
        description="Kubernetes network DRA driver (dra.net). Without a command, runs the driver.",
    )
    parser.add_argument("--version", action="version", version=f"dranet {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="{run,inventory,demo,version}")

    fmt = _HelpFormatter
    run = sub.add_parser(
        "run", help="run the driver (the default command)", description=RUN_DESCRIPTION, formatter_class=fmt
    )
    run.add_argument(
        "--kubeconfig",
        default="",
        help="kubeconfig path (default: $KUBECONFIG, else in-cluster, else ~/.kube/config)",
    )
    run.add_argument("--bind-address", default=":9177", help="host:port for /healthz and /metrics ('' = off)")
    run.add_argument(
        "--kubelet-root-dir", default=str(KubeletSettings().root_dir), help="kubelet root directory"
    )
    run.add_argument(
        "--db-path", default=str(CheckpointSettings().db_path), help="checkpoint file ('' = memory only)"
    )
    run.add_argument("--inventory-min-poll-interval", default="2s", help="minimum time between rescans")
    run.add_argument("--inventory-max-poll-interval", default="1m", help="periodic full rescan")
    run.add_argument("--inventory-poll-burst", type=int, default=5, help="rescans allowed back to back")
    run.add_argument("--nri-socket", default=str(NriSettings().socket_path), help="the runtime's NRI socket")
    run.add_argument("--nri-plugin-index", default="00", help="NRI plugin index (two digits)")
    run.add_argument("--shutdown-grace", default="10s", help="time in-flight calls get after SIGTERM")
    run.add_argument(
        "--event-loop",
        default=DEFAULT_EVENT_LOOP,
        choices=EVENT_LOOPS,
        help="the asyncio event loop: uvloop (libuv; the default) or asyncio (the standard library's)",
    )
    run.add_argument("--driver-name", default="dra.net", help=argparse.SUPPRESS)
    run.add_argument("--debug-hold-after", default="", help=argparse.SUPPRESS)
    _add_metadata_flags(run)
    run.add_argument(
        "--cloud-provider-hint",
        default="",
        help="publish this cloud's attributes: GCE, AWS, AZURE, OKE, ALIBABA or webhook; "
        "'' detects the cloud from the Node's providerID or the firmware, NONE = none",
    )
    run.add_argument(
        "--cloud-metadata-url",
        default="",
        help="the cloud metadata service address ('' = the provider's own)",
    )
    run.add_argument("--cloud-metadata-timeout", default="5s", help="how long start-up waits for it")
    run.add_argument(
        "--cloud-provider-options",
        action="append",
        default=[],
        metavar="PROVIDER.OPTION=VALUE",
        help="a cloud provider's option, one per flag (repeatable); the Go driver's "
        "oke.rdma-child-ipv4-cidr is checked and accepted",
    )
    run.add_argument(
        "--profile-provider",
        default="cloud",
        help="who resolves a claim config's profile: webhook (needs --webhook-url), cloud or none",
    )
    run.add_argument(
        "--webhook-url",
        default="",
        help="the Go-protocol webhook (http(s):// or unix:///) of the webhook profile/cloud provider",
    )
    compat = run.add_argument_group("accepted for compatibility with the Go driver, not implemented")
    for flag, default in GO_ONLY_FLAGS.items():
        compat.add_argument(flag, default=default, metavar="VALUE", help="ignored")
    _add_node_flags(run)
    _add_log_flags(run)

    inv = sub.add_parser(
        "inventory",
        help="discover this host's devices and print them (read-only)",
        description=INVENTORY_DESCRIPTION,
        formatter_class=fmt,
    )
    inv.add_argument(
        "-o", "--output", default="table", choices=("table", "yaml", "json"), help="output format"
    )
    _add_node_flags(inv)
    _add_log_flags(inv)

    demo = sub.add_parser(
        "demo",
        help="walk one pod through its life in throwaway namespaces (root)",
        description="Walk one pod through its life on this machine, no cluster needed: a driver with "
        "in-process kubelet and runtime peers, in throwaway network namespaces. Needs root.",
        formatter_class=fmt,
    )
    demo.add_argument("--quiet", action="store_true", help="print only the step summary")
    _add_log_flags(demo, klog_flags=False)

    sub.add_parser("version", help="print the version", description="Print the version.")
    return parser


def _node_name(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    name: str = args.hostname_override or environ.get("NODE_NAME", "") or socket.gethostname().lower()
    return name


def _backends(text: str) -> tuple[str, ...] | None:
    if not text.strip():
        return None
    return tuple(n.strip() for n in text.split(",") if n.strip()) or None


def _duration(args: argparse.Namespace, dest: str, default: float) -> float:
    text = getattr(args, dest, None)
    return default if text is None else parse_duration(text, flag="--" + dest.replace("_", "-"))


def _debug(text: str) -> DebugSettings:
    if not text:
        return DebugSettings()
    phase, sep, secs = text.partition(":")
    if not sep:
        raise SettingsError(f"--debug-hold-after: expected PHASE:SECONDS, got {text!r}")
    return DebugSettings(hold_phase=phase, hold_seconds=parse_duration(secs, flag="--debug-hold-after"))


def _log_settings(args: argparse.Namespace) -> LogSettings:
    """The ``--log-format``, ``-v`` and klog flags as :class:`LogSettings`; SettingsError naming one."""
    if args.log_file_max_size < 0:
        raise SettingsError(f"--log_file_max_size: must be >= 0 (MiB), got {args.log_file_max_size}")
    if args.log_backtrace_at and not re.fullmatch(r"[^:]+\.go:\d+|[^:]+:\d+", args.log_backtrace_at):
        raise SettingsError(f"--log_backtrace_at: must be FILE:LINE, got {args.log_backtrace_at!r}")
    log_file = args.log_file or (str(Path(args.log_dir) / "dranet.log") if args.log_dir else "")
    return LogSettings(
        format=args.log_format,
        verbosity=args.verbosity or 0,
        vmodule=parse_vmodule(args.vmodule),
        to_stderr=args.logtostderr,
        also_to_stderr=args.alsologtostderr,
        log_file=log_file,
        log_file_max_mb=args.log_file_max_size,
        stderr_threshold=parse_klog_severity(args.stderrthreshold),
        legacy_threshold=args.legacy_stderr_threshold_behavior,
        skip_headers=args.skip_headers,
    )


def klog_warnings(args: argparse.Namespace) -> list[str]:
    """One line per klog flag given that this driver accepts but does not act on, saying why."""
    out = []
    if args.logtostderr and (args.log_file or args.log_dir):
        which = "--log_file" if args.log_file else "--log_dir"
        out.append(f"{which} is ignored, as klog ignores it, because --logtostderr is true")
    if args.add_dir_header:
        out.append(
            "--add_dir_header is accepted for compatibility and ignored: lines name the logger instead"
        )
    if args.one_output:
        out.append("--one_output is accepted for compatibility and ignored: there is one log file already")
    if args.skip_log_headers:
        out.append("--skip_log_headers is accepted for compatibility: no log file header is ever written")
    if args.log_backtrace_at:
        out.append(
            f"--log_backtrace_at={args.log_backtrace_at} is accepted for compatibility and ignored: "
            "errors carry their own traceback at --v=4"
        )
    return out


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from parsed ``run``/``inventory`` arguments.

    Raises :class:`SettingsError` naming the flag for any invalid value.
    """
    env = os.environ if environ is None else environ
    run = args.command == "run"
    inv = InventorySettings(
        filter=args.filter,
        min_poll_interval=_duration(args, "inventory_min_poll_interval", 2.0),
        max_poll_interval=_duration(args, "inventory_max_poll_interval", 60.0),
        poll_burst=args.inventory_poll_burst if run else 5,
        move_ib_interfaces=args.move_ib_interfaces,
        list_attributes=parse_feature_gates(args.feature_gates)["DRAListTypeAttributes"],
    )
    host = HostSettings(
        sysfs_root=Path(args.sysfs_root),
        procfs_root=Path(args.procfs_root),
        host_netns=Path(args.host_netns),
    )
    log = _log_settings(args)
    if not run:
        return Settings(
            kube=KubeSettings(node_name=_node_name(args, env)),
            inventory=inv,
            host=host,
            log=log,
            backends=_backends(args.backends),
            backend_options=parse_backend_options(args.backend_option),
            checkpoint=CheckpointSettings(db_path=None),
            observability=ObservabilitySettings(bind_address=""),
        )
    return Settings(
        kube=KubeSettings(
            node_name=_node_name(args, env),
            kubeconfig=args.kubeconfig,
            kubeconfig_source="--kubeconfig" if args.kubeconfig else "",
            driver_name=args.driver_name,
        ),
        kubelet=KubeletSettings(root_dir=Path(args.kubelet_root_dir)),
        nri=NriSettings(socket_path=Path(args.nri_socket), plugin_index=args.nri_plugin_index),
        inventory=inv,
        host=host,
        checkpoint=CheckpointSettings(db_path=Path(args.db_path) if args.db_path else None),
        observability=ObservabilitySettings(bind_address=args.bind_address),
        log=log,
        shutdown=ShutdownSettings(grace_period=parse_duration(args.shutdown_grace, flag="--shutdown-grace")),
        backends=_backends(args.backends),
        backend_options=parse_backend_options(args.backend_option),
        debug=_debug(args.debug_hold_after),
        profile=ProfileSettings(provider=args.profile_provider, webhook_url=args.webhook_url),
        cloud=CloudSettings(
            hint=args.cloud_provider_hint,
            options=_cloud_options(args),
            metadata_url=args.cloud_metadata_url,
            webhook_url=args.webhook_url,
            timeout=parse_duration(args.cloud_metadata_timeout, flag="--cloud-metadata-timeout"),
        ),
        metadata=_metadata(args),
    )


def _cloud_options(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    from dranet_core.cloud.options import check_hint, parse_provider_options

    options = parse_provider_options(args.cloud_provider_options)
    check_hint(options, args.cloud_provider_hint)
    return options


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dranet")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def _command_line(args_in: list[str]) -> list[str] | str:
    """The arguments with the command first (``run`` when none is given), or an error line."""
    if not args_in or (args_in[0].startswith("-") and args_in[0] not in ("-h", "--help", "--version")):
        return ["run", *args_in]
    first = args_in[0]
    if first in COMMANDS or first.startswith("-"):
        return args_in
    close = _close_matches(first, COMMANDS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (commands: {', '.join(COMMANDS)})"
    return f"dranet: error: unknown command {first!r}{hint}"


def go_style_flags(parser: argparse.ArgumentParser, args_in: list[str]) -> list[str]:
    """Go's flag package takes ``-flag`` as ``--flag``: rewrite those the command knows.

    ``-v=N`` and ``-v N`` are klog's verbosity (``--v``); a bare ``-v`` stays the counting
    short flag. Everything else is left for the parser (and its one-line errors).
    """
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = sub.choices.get(args_in[0]) if args_in else None
    if command is None:
        return args_in
    known = {o for a in command._actions for o in a.option_strings if o.startswith("--")}
    out = list(args_in)
    for i, tok in enumerate(out):
        if not tok.startswith("-") or tok.startswith("--"):
            continue
        if tok == "-v":  # the counting short flag, unless a number follows (Go's -v N)
            if i + 1 < len(out) and out[i + 1].isdigit():
                out[i] = "--v"
        elif "-" + tok.split("=", 1)[0] in known:
            out[i] = "-" + tok
    return out


def _unknown_flags(parser: argparse.ArgumentParser, command: str, unknown: Sequence[str]) -> str:
    """One line for flags the command does not take, suggesting the closest of its own."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    known = [
        o for a in sub.choices[command]._actions for o in a.option_strings if a.help != argparse.SUPPRESS
    ]
    flag = unknown[0].split("=", 1)[0]
    close = _close_matches(flag, known, n=1) if flag.startswith("-") else []
    hint = f" (did you mean {close[0]}?)" if close else f" (see dranet {command} --help)"
    return f"dranet {command}: error: unknown argument {unknown[0]!r}{hint}"


def _check_backends(settings: Settings) -> None:
    """``--backends`` names installed backends; each ``--backend-option`` is declared and valid."""
    from dranet_core.backends import available_backends, check_backend_options

    installed = available_backends()
    missing = [n for n in settings.backends or () if n not in installed]
    if missing:
        raise SettingsError(
            f"--backends: {', '.join(missing)} not installed (installed: {', '.join(installed) or 'none'})"
        )
    check_backend_options(settings.backend_options, enabled=settings.backends)


def _writable(flag: str, path: Path) -> None:
    """Raise SettingsError unless this process may create or write ``path``."""
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        what = (
            f"{path} is not writable" if probe == path else f"cannot create {path}: {probe} is not writable"
        )
        raise SettingsError(
            f"{flag}: {what} by uid {os.geteuid()}; run the driver as root, as its DaemonSet does"
        )


def check_run_environment(settings: Settings, environ: Mapping[str, str] | None = None) -> Settings:
    """What ``dranet run`` needs before it starts anything: a kubeconfig, writable directories.

    Returns ``settings`` with the kubeconfig found as kubectl finds it
    (:func:`~dranet_core.settings.resolve_kubeconfig`), checked to be a YAML kubeconfig.
    Raises :class:`SettingsError` naming the flag.
    """
    env = os.environ if environ is None else environ
    path, source = resolve_kubeconfig(settings.kube.kubeconfig, env)
    check_kubeconfig(path)
    settings = attrs.evolve(
        settings, kube=attrs.evolve(settings.kube, kubeconfig=path, kubeconfig_source=source)
    )
    _writable("--kubelet-root-dir", settings.kubelet.root_dir)
    if settings.checkpoint.db_path is not None:
        _writable("--db-path", settings.checkpoint.db_path.parent)
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dranet`` console script; returns the exit status."""
    args_in = _command_line(list(sys.argv[1:] if argv is None else argv))
    if isinstance(args_in, str):
        print(args_in, file=sys.stderr)
        return 2
    parser = build_parser()
    args, unknown = parser.parse_known_args(go_style_flags(parser, args_in))
    if unknown:
        print(_unknown_flags(parser, args.command, unknown), file=sys.stderr)
        return 2
    if args.command == "version":
        print(f"dranet {_version()}")
        return 0
    if args.command == "demo":
        from dranet_core.demo import run_demo

        return run_demo(quiet=args.quiet, verbosity=args.verbosity or 0, log_format=args.log_format)
    try:
        settings = settings_from_args(args)
        from dranet_core.filter import DeviceFilter

        DeviceFilter.compile(settings.inventory.filter)  # a bad --filter is a flag error too
        _check_backends(settings)
        if args.command == "run":
            settings = check_run_environment(settings)
    except (SettingsError, BackendError) as exc:
        print(f"dranet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    from dranet_core.observability import setup_logging

    try:
        setup_logging(settings.log.format, settings.log.verbosity, klog=settings.log)
    except OSError as exc:  # --logtostderr=false and the log file cannot be opened
        flag = "--log_file" if args.log_file else "--log_dir"
        where = settings.log.log_file or "the log file in the temporary directory"
        print(
            f"dranet {args.command}: error: {flag}: cannot write {where}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    if args.command == "inventory":
        from dranet_core.inventory_report import print_inventory

        if not settings.log.verbosity:  # quiet by default: the report says what matters; -v for the log
            logging.getLogger().setLevel(logging.ERROR)
        status: int = asyncio.run(print_inventory(settings, output=args.output))
        return status
    log = logging.getLogger("dranet_core.cli")
    for warning in [*_go_only_warnings(args), *klog_warnings(args)]:
        log.warning(warning)
    log.info(
        "kubeconfig: %s (from %s)", settings.kube.kubeconfig or "in-cluster", settings.kube.kubeconfig_source
    )
    from dranet_core.app import run_driver

    code: int = run_on_loop(run_driver(settings), args.event_loop)
    return code


_T = TypeVar("_T")

EVENT_LOOPS = ("uvloop", "asyncio")
"""The event loops ``dranet run --event-loop`` takes."""
DEFAULT_EVENT_LOOP = "uvloop"
"""The loop ``dranet run`` runs on without ``--event-loop`` (the benchmarks run the driver's
parts on it too)."""


def run_on_loop(main: Coroutine[Any, Any, _T], loop: str) -> _T:
    """Run ``main`` to completion on a new event loop of the kind named (:data:`EVENT_LOOPS`).

    uvloop (libuv) is the driver's default: the same asyncio API with the loop's socket and
    callback machinery in C, which takes about a quarter off a prepare as the kubelet sees it (see
    docs/performance.md). The library itself never requires it: everything runs on the
    standard loop, which ``asyncio`` selects.
    """
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def _close_matches(word: str, possibilities: Iterable[str], n: int) -> list[str]:
    """:func:`difflib.get_close_matches`, loaded on this error path only."""
    import difflib

    return difflib.get_close_matches(word, possibilities, n=n)
