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
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from dranet_core.errors import SettingsError
from dranet_core.settings import (
    DEFAULT_FILTER_EXPRESSION,
    CheckpointSettings,
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
    parse_backend_options,
    parse_duration,
)

__all__ = ["build_parser", "main", "prefer_light_cel", "settings_from_args"]

COMMANDS = ("run", "inventory", "demo", "version")

_HOST = HostSettings()  # the defaults of the host paths (settings.py owns every literal path)

GO_ONLY_FLAGS = {
    "--cloud-provider-hint": "",
    "--profile-provider": "cloud",
    "--webhook-url": "",
    "--feature-gates": "",
}
"""Go driver flags this driver accepts (so its manifests and Helm values still start it) but
does not implement: cloud/webhook providers and feature gates. A value other than the
default or ``NONE`` is logged as a warning at start."""
_HARMLESS = {"", "none", "NONE"}


def _go_only_warnings(args: argparse.Namespace) -> list[str]:
    out = []
    for flag, default in GO_ONLY_FLAGS.items():
        if flag == "--profile-provider" or (
            flag == "--webhook-url" and getattr(args, "profile_provider", "").lower() == "webhook"
        ):
            continue  # implemented (profiles): the URL is used by the webhook profile provider
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
        help="option for the backends, e.g. rdma.netns_mode=exclusive (repeatable)",
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


def _add_log_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-format", default="text", choices=("text", "json"), help="log line format")
    p.add_argument("-v", dest="verbosity", action="count", default=0, help="more verbose (repeatable)")
    p.add_argument("--v", dest="verbosity", type=int, metavar="N", help="log verbosity, as klog (4 = debug)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(prog="dranet", description="Kubernetes network DRA driver (dra.net)")
    sub = parser.add_subparsers(dest="command", metavar="{run,inventory,demo,version}")

    fmt = argparse.ArgumentDefaultsHelpFormatter
    run = sub.add_parser("run", help="run the driver (the default command)", formatter_class=fmt)
    run.add_argument("--kubeconfig", default="", help="kubeconfig path ('' = in-cluster config)")
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
    run.add_argument("--driver-name", default="dra.net", help=argparse.SUPPRESS)
    run.add_argument("--debug-hold-after", default="", help=argparse.SUPPRESS)
    _add_metadata_flags(run)
    compat = run.add_argument_group("accepted for compatibility with the Go driver, not implemented")
    for flag, default in GO_ONLY_FLAGS.items():
        compat.add_argument(flag, default=default, metavar="VALUE", help="ignored")
    _add_node_flags(run)
    _add_log_flags(run)

    inv = sub.add_parser(
        "inventory", help="discover this host's devices and print them (read-only)", formatter_class=fmt
    )
    inv.add_argument(
        "-o", "--output", default="table", choices=("table", "yaml", "json"), help="output format"
    )
    _add_node_flags(inv)
    _add_log_flags(inv)

    demo = sub.add_parser("demo", help="walk one pod through its life in throwaway namespaces (root)")
    demo.add_argument("--quiet", action="store_true", help="print only the step summary")
    _add_log_flags(demo)

    sub.add_parser("version", help="print the version")
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
    )
    host = HostSettings(
        sysfs_root=Path(args.sysfs_root),
        procfs_root=Path(args.procfs_root),
        host_netns=Path(args.host_netns),
    )
    log = LogSettings(format=args.log_format, verbosity=args.verbosity or 0)
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
            node_name=_node_name(args, env), kubeconfig=args.kubeconfig, driver_name=args.driver_name
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
        metadata=_metadata(args),
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dranet")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def prefer_light_cel() -> None:
    """Make ``import cel`` load only the CEL extension module, not the package's CLI.

    The ``common-expression-language`` package's ``__init__`` imports its interactive CLI
    (prompt_toolkit and friends): about 24 MiB of resident memory the driver never uses. When
    ``cel`` is not imported yet, register a package module whose attributes are the compiled
    extension's (``compile``, ``evaluate``, ``Context``, ...); submodules (``cel.cli``) still
    import normally if someone asks. Called by the commands before anything imports ``cel``.
    """
    if "cel" in sys.modules:
        return
    import importlib
    import importlib.util
    import types

    spec = importlib.util.find_spec("cel")
    if spec is None or spec.submodule_search_locations is None:
        return
    pkg = types.ModuleType("cel")
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__spec__ = spec
    pkg.__file__ = spec.origin
    sys.modules["cel"] = pkg
    try:
        ext = importlib.import_module("cel.cel")
    except ImportError:
        del sys.modules["cel"]
        return
    for name in dir(ext):
        if not name.startswith("_"):
            setattr(pkg, name, getattr(ext, name))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dranet`` console script; returns the exit status."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    if not args_in or (args_in[0] not in COMMANDS and args_in[0] not in ("-h", "--help")):
        args_in.insert(0, "run")
    parser = build_parser()
    args = parser.parse_args(args_in)
    if args.command == "version":
        print(f"dranet {_version()}")
        return 0
    prefer_light_cel()
    if args.command == "demo":
        from dranet_core.demo import run_demo

        return run_demo(quiet=args.quiet, verbosity=args.verbosity or 0, log_format=args.log_format)
    try:
        settings = settings_from_args(args)
        from dranet_core.filter import DeviceFilter

        DeviceFilter.compile(settings.inventory.filter)  # a bad --filter is a flag error too
    except SettingsError as exc:
        print(f"dranet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    from dranet_core.observability import setup_logging

    setup_logging(settings.log.format, settings.log.verbosity)
    if args.command == "run":
        import logging

        for warning in _go_only_warnings(args):
            logging.getLogger("dranet_core.cli").warning(warning)
    if args.command == "inventory":
        from dranet_core.app import print_inventory

        status: int = asyncio.run(print_inventory(settings, output=args.output))
        return status
    from dranet_core.app import run_driver

    code: int = asyncio.run(run_driver(settings))
    return code
