"""Driver settings: frozen, keyword-only groups, one per concern, validated on construction.

Every literal host path the driver uses (kubelet root, NRI socket, sysfs, procfs, the host
network namespace) is a field here and nowhere else, so tests and the demo point the driver
at throwaway locations by building different settings — never by patching globals.

The command line (:mod:`dranet_core.cli`) maps the Go driver's flags onto these groups with
the same names and defaults where they mean the same (``--kubeconfig``, ``--hostname-override``,
``--filter``, ``--bind-address``, ``--kubelet-root-dir``, ``--db-path``,
``--inventory-{min,max}-poll-interval``, ``--inventory-poll-burst``, ``--move-ib-interfaces``).

An invalid value raises :class:`~dranet_core.errors.SettingsError` whose message starts with
the flag name (``--bind-address: port must be 0..65535, got 70000``), so the CLI can print it
as it is and exit with status 2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import attrs

from dranet_core.errors import SettingsError

__all__ = [
    "DEFAULT_FILTER_EXPRESSION",
    "CheckpointSettings",
    "CloudSettings",
    "DebugSettings",
    "HostSettings",
    "InventorySettings",
    "KubeSettings",
    "KubeletSettings",
    "LogSettings",
    "MetadataSettings",
    "NriSettings",
    "ObservabilitySettings",
    "Settings",
    "ShutdownSettings",
    "check_kubeconfig",
    "parse_backend_options",
    "parse_bind_address",
    "parse_duration",
    "resolve_kubeconfig",
]

DEFAULT_FILTER_EXPRESSION: Final = (
    '!("dra.net/type" in attributes) || attributes["dra.net/type"].StringValue  != "veth"'
)
"""The Go driver's default ``--filter``: publish everything except veth devices."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS: Final = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _str_map(value: Mapping[str, str]) -> Mapping[str, str]:
    return dict(value)


def parse_backend_options(items: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings from ``--backend-option`` -> a dict; raises SettingsError."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SettingsError(f"--backend-option: expected KEY=VALUE, got {item!r}")
        if key in out:
            raise SettingsError(f"--backend-option: {key!r} given twice")
        out[key] = value.strip()
    return out


def resolve_kubeconfig(flag: str, environ: Mapping[str, str], home: Path | None = None) -> tuple[str, str]:
    """Find the kubeconfig as kubectl does: ``(path, where it came from)``; path ``""`` is in-cluster.

    Order: ``--kubeconfig``; then the first existing file of ``$KUBECONFIG`` (``:``-separated);
    then the in-cluster service account (``$KUBERNETES_SERVICE_HOST`` set); then
    ``~/.kube/config``. Raises :class:`SettingsError` naming ``--kubeconfig`` when none applies.
    """
    if flag:
        return flag, "--kubeconfig"
    listed = [p for p in environ.get("KUBECONFIG", "").split(":") if p]
    for path in listed:
        if Path(path).is_file():
            return path, "KUBECONFIG"
    if listed:
        raise SettingsError(f"--kubeconfig: not given, and no file of KUBECONFIG={':'.join(listed)} exists")
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return "", "in-cluster service account"
    default = (home if home is not None else Path.home()) / ".kube" / "config"
    if default.is_file():
        return str(default), "~/.kube/config"
    raise SettingsError(
        "--kubeconfig: not given, KUBECONFIG unset, not in a cluster (KUBERNETES_SERVICE_HOST unset) "
        f"and no {default}"
    )


def check_kubeconfig(path: str) -> None:
    """Raise :class:`SettingsError` naming ``--kubeconfig`` unless ``path`` is a readable YAML mapping.

    ``""`` (in-cluster) passes. Catches what would otherwise surface as a YAML traceback
    deep in the API client: a missing or unreadable file, invalid YAML, an empty file.
    """
    if not path:
        return
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SettingsError(f"--kubeconfig: cannot read {path}: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise SettingsError(f"--kubeconfig: {path} is not valid YAML{where}: {problem}") from None
    if doc is None:
        raise SettingsError(f"--kubeconfig: {path} is empty")
    if not isinstance(doc, dict) or not isinstance(doc.get("clusters"), list):
        raise SettingsError(f"--kubeconfig: {path} is not a kubeconfig (no clusters list)")


def parse_duration(text: str, *, flag: str) -> float:
    """Parse a Go duration (``"2s"``, ``"1m30s"``, ``"500ms"``, a bare ``"0"``) into seconds.

    Raises :class:`SettingsError` naming ``flag`` when ``text`` is not a duration.
    """
    s = text.strip()
    if s in ("0", "+0"):
        return 0.0
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise SettingsError(f"{flag}: invalid duration {text!r} (examples: 2s, 500ms, 1m30s)")
    return total


def parse_bind_address(text: str, *, flag: str = "--bind-address") -> tuple[str, int]:
    """Split ``host:port`` (``":9177"``, ``"127.0.0.1:9177"``, ``"[::1]:9177"``) into parts.

    An empty host means every address. Raises :class:`SettingsError` naming ``flag``.
    """
    host, sep, port_s = text.rpartition(":")
    if not sep:
        raise SettingsError(f"{flag}: expected host:port, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise SettingsError(f"{flag}: an IPv6 host must be in brackets, got {text!r}")
    if not port_s.isdigit():
        raise SettingsError(f"{flag}: port must be a number, got {port_s!r}")
    port = int(port_s)
    if not 0 <= port <= 65535:
        raise SettingsError(f"{flag}: port must be 0..65535, got {port}")
    return host, port


def _positive(flag: str, *, allow_zero: bool = False) -> Any:
    def check(_: object, __: attrs.Attribute[Any], value: float) -> None:
        if value < 0 or (value == 0 and not allow_zero):
            raise SettingsError(f"{flag}: must be {'>= 0' if allow_zero else '> 0'}, got {value}")

    return check


def _absolute(flag: str) -> Any:
    def check(_: object, __: attrs.Attribute[Any], value: Path) -> None:
        if not value.is_absolute():
            raise SettingsError(f"{flag}: must be an absolute path, got {str(value)!r}")

    return check


@attrs.frozen(kw_only=True)
class KubeSettings:
    """How to reach the API server and who we are."""

    node_name: str = attrs.field()
    """``--hostname-override`` / ``$NODE_NAME`` / the OS hostname: the pool and slice node."""

    kubeconfig: str = ""
    """``--kubeconfig``: path to a kubeconfig; empty means in-cluster config (service account).
    The command line resolves it as kubectl does (:func:`resolve_kubeconfig`)."""

    kubeconfig_source: str = ""
    """Where :attr:`kubeconfig` came from (``--kubeconfig``, ``KUBECONFIG``, ...), for the log."""

    driver_name: str = "dra.net"
    """The DRA driver name; ``dra.net`` so manifests written for the Go driver work unchanged."""

    @node_name.validator
    def _check_node(self, _: attrs.Attribute[str], value: str) -> None:
        if not value:
            raise SettingsError("--hostname-override: node name is empty (set it or NODE_NAME)")
        if len(value) > 253 or not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", value):
            raise SettingsError(f"--hostname-override: {value!r} is not a valid node name (DNS subdomain)")


@attrs.frozen(kw_only=True)
class KubeletSettings:
    """Where the kubelet looks for plugins, and how long we wait for it."""

    root_dir: Path = attrs.field(default=Path("/var/lib/kubelet"), validator=_absolute("--kubelet-root-dir"))
    """``--kubelet-root-dir``: sockets go to ``<root>/plugins_registry`` and ``<root>/plugins/<driver>``."""

    def registry_dir(self) -> Path:
        """``<root>/plugins_registry``: where the registration socket goes."""
        return self.root_dir / "plugins_registry"

    def plugin_dir(self, driver_name: str) -> Path:
        """``<root>/plugins/<driver>``: where ``dra.sock`` goes."""
        return self.root_dir / "plugins" / driver_name


@attrs.frozen(kw_only=True)
class NriSettings:
    """How we register with the container runtime."""

    socket_path: Path = attrs.field(
        default=Path("/var/run/nri/nri.sock"), validator=_absolute("--nri-socket")
    )
    """``--nri-socket``: the runtime's NRI socket."""

    plugin_index: str = attrs.field(default="00")
    """``--nri-plugin-index``: two digits; ``00`` runs us before any other plugin, as the Go driver."""

    @plugin_index.validator
    def _check_index(self, _: attrs.Attribute[str], value: str) -> None:
        if not re.fullmatch(r"\d\d", value):
            raise SettingsError(f"--nri-plugin-index: must be two digits (00-99), got {value!r}")


@attrs.frozen(kw_only=True)
class InventorySettings:
    """Device discovery and publishing."""

    filter: str = DEFAULT_FILTER_EXPRESSION
    """``--filter``: a CEL expression over ``attributes``; a device is published when it is true.
    Empty publishes every device."""

    min_poll_interval: float = attrs.field(default=2.0, validator=_positive("--inventory-min-poll-interval"))
    """``--inventory-min-poll-interval`` in seconds: at most one rescan per interval (token refill)."""

    max_poll_interval: float = attrs.field(default=60.0, validator=_positive("--inventory-max-poll-interval"))
    """``--inventory-max-poll-interval`` in seconds: full resync even without kernel events."""

    poll_burst: int = attrs.field(default=5, validator=_positive("--inventory-poll-burst"))
    """``--inventory-poll-burst``: rescans allowed back to back before the rate limit applies."""

    move_ib_interfaces: bool = True
    """``--move-ib-interfaces``: false keeps IPoIB netdevs on the host (device exposed RDMA-only)."""

    def __attrs_post_init__(self) -> None:
        if self.max_poll_interval < self.min_poll_interval:
            raise SettingsError(
                f"--inventory-max-poll-interval: {self.max_poll_interval}s is shorter than "
                f"--inventory-min-poll-interval {self.min_poll_interval}s"
            )


@attrs.frozen(kw_only=True)
class HostSettings:
    """The host file systems and namespaces the backends read and move devices between."""

    sysfs_root: Path = attrs.field(default=Path("/sys"), validator=_absolute("--sysfs-root"))
    """Root of sysfs (tests point it at a fake tree)."""

    procfs_root: Path = attrs.field(default=Path("/proc"), validator=_absolute("--procfs-root"))
    """Root of procfs."""

    host_netns: Path = attrs.field(default=Path("/proc/self/ns/net"), validator=_absolute("--host-netns"))
    """The network namespace devices come home to: the one the driver runs in (hostNetwork)."""


@attrs.frozen(kw_only=True)
class CheckpointSettings:
    """Where prepared claims and the per-device attach journal survive restarts."""

    db_path: Path | None = attrs.field(default=Path("/var/run/dranet/dranet.db"))
    """``--db-path``: the checkpoint file; None (flag set to "") keeps state in memory only."""

    @db_path.validator
    def _check_db(self, _: attrs.Attribute[Path | None], value: Path | None) -> None:
        if value is not None and not value.is_absolute():
            raise SettingsError(f"--db-path: must be an absolute path or empty, got {str(value)!r}")


@attrs.frozen(kw_only=True)
class ProfileSettings:
    """``--profile-provider`` / ``--webhook-url``: who resolves a claim config's ``profile``.

    ``webhook`` (needs ``--webhook-url``: ``http(s)://host:port`` or ``unix:///path``) asks the
    Go driver's webhook protocol (:mod:`dranet_core.profiles`); ``cloud`` (the Go default) and
    ``none`` mean no provider here (no built-in cloud provides profiles).
    """

    provider: str = attrs.field(default="cloud")
    webhook_url: str = ""

    @provider.validator
    def _check_provider(self, _: attrs.Attribute[str], value: str) -> None:
        if value.lower() not in ("cloud", "webhook", "none"):
            raise SettingsError(f"--profile-provider: must be cloud, webhook or none, got {value!r}")

    def __attrs_post_init__(self) -> None:
        if self.provider.lower() == "webhook":
            url = self.webhook_url
            if not url.startswith(("http://", "https://", "unix:///")):
                raise SettingsError(
                    "--webhook-url: --profile-provider=webhook needs an http(s):// or unix:/// URL, "
                    f"got {url!r}"
                )


@attrs.frozen(kw_only=True)
class CloudSettings:
    """``--cloud-provider-hint`` and where its metadata service is (:mod:`dranet_core.cloud`)."""

    hint: str = ""
    metadata_url: str = ""
    """'' = the provider's well-known address; tests point it at loopback."""
    timeout: float = 5.0
    webhook_url: str = ""
    """``--webhook-url``: the webhook asked when the hint is ``webhook``."""

    def __attrs_post_init__(self) -> None:
        if self.hint.strip().lower() == "webhook" and not self.webhook_url.startswith(
            ("http://", "https://", "unix:///")
        ):
            raise SettingsError(
                "--webhook-url: --cloud-provider-hint=webhook needs an http(s):// or unix:/// URL, "
                f"got {self.webhook_url!r}"
            )
        if self.metadata_url and not self.metadata_url.startswith(("http://", "https://")):
            raise SettingsError(f"--cloud-metadata-url: must be an http(s):// URL, got {self.metadata_url!r}")
        if self.timeout <= 0:
            raise SettingsError(f"--cloud-metadata-timeout: must be > 0, got {self.timeout}")


@attrs.frozen(kw_only=True)
class ObservabilitySettings:
    """The health and metrics HTTP endpoint."""

    bind_address: str = attrs.field(default=":9177")
    """``--bind-address``: ``host:port`` serving ``/healthz`` and ``/metrics``; empty disables it."""

    @bind_address.validator
    def _check_bind(self, _: attrs.Attribute[str], value: str) -> None:
        if value:
            parse_bind_address(value)


@attrs.frozen(kw_only=True)
class LogSettings:
    """Logging."""

    format: Literal["text", "json"] = attrs.field(default="text")
    """``--log-format``: ``text`` for people, ``json`` (one object per line) for collectors."""

    verbosity: int = attrs.field(default=0, validator=_positive("-v", allow_zero=True))
    """``-v``: 0 info, 1..3 more info, >= 4 debug (the manifests use 4, as the Go driver's klog)."""

    @format.validator
    def _check_format(self, _: attrs.Attribute[str], value: str) -> None:
        if value not in ("text", "json"):
            raise SettingsError(f"--log-format: must be text or json, got {value!r}")


@attrs.frozen(kw_only=True)
class ShutdownSettings:
    """What the first SIGTERM waits for (the second one exits at once)."""

    grace_period: float = attrs.field(default=10.0, validator=_positive("--shutdown-grace", allow_zero=True))
    """``--shutdown-grace`` in seconds: how long in-flight kubelet and NRI calls may take to finish
    after the first signal. The DaemonSet's terminationGracePeriodSeconds (30) must exceed it."""


@attrs.frozen(kw_only=True)
class DebugSettings:
    """Test seams; never set in production."""

    hold_phase: str | None = attrs.field(default=None)
    """``--debug-hold-after=PHASE:SECONDS``: after writing journal phase PHASE (``attaching`` or
    ``detaching``) for a device, wait SECONDS before touching it, so a test can kill the process
    in the middle of an attach or detach, or send SIGTERM while a call is in flight."""

    hold_seconds: float = attrs.field(default=0.0, validator=_positive("--debug-hold-after", allow_zero=True))

    @hold_phase.validator
    def _check_phase(self, _: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None and value not in ("attaching", "detaching"):
            raise SettingsError(f"--debug-hold-after: phase must be attaching or detaching, got {value!r}")


METADATA_VERSIONS: Final = ("v1beta1", "v1alpha1")
"""``metadata.resource.k8s.io`` versions the device metadata writer knows, newest first."""


@attrs.frozen(kw_only=True)
class MetadataSettings:
    """DRA device metadata (KEP-5304): a JSON file per claim request, bind-mounted by CDI."""

    enabled: bool = False
    """``--enable-device-metadata``: write the files and CDI specs and return the CDI device IDs
    to the kubelet. Off by default: a runtime without CDI support fails every container whose
    CDI device it cannot resolve, so turning it on is the operator's decision."""

    cdi_dir: Path = attrs.field(default=Path("/var/run/cdi"), validator=_absolute("--cdi-dir"))
    """``--cdi-dir``: where the runtime reads CDI specs (containerd's and CRI-O's default)."""

    versions: tuple[str, ...] = attrs.field(default=METADATA_VERSIONS)
    """``--device-metadata-versions``: the ``metadata.resource.k8s.io`` versions written, in
    order; readers take the first they know (Kubernetes 1.36 reads v1alpha1, 1.37 v1beta1)."""

    @versions.validator
    def _check_versions(self, _: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]) -> None:
        flag = "--device-metadata-versions"
        if not value:
            raise SettingsError(f"{flag}: names no version (known: {', '.join(METADATA_VERSIONS)})")
        for v in value:
            if v not in METADATA_VERSIONS:
                raise SettingsError(f"{flag}: unknown version {v!r} (known: {', '.join(METADATA_VERSIONS)})")
        if len(set(value)) != len(value):
            raise SettingsError(f"{flag}: a version is named twice in {','.join(value)!r}")


@attrs.frozen(kw_only=True)
class Settings:
    """Everything the reference driver needs, grouped by concern."""

    kube: KubeSettings
    kubelet: KubeletSettings = attrs.field(factory=KubeletSettings)
    nri: NriSettings = attrs.field(factory=NriSettings)
    inventory: InventorySettings = attrs.field(factory=InventorySettings)
    host: HostSettings = attrs.field(factory=HostSettings)
    checkpoint: CheckpointSettings = attrs.field(factory=CheckpointSettings)
    observability: ObservabilitySettings = attrs.field(factory=ObservabilitySettings)
    log: LogSettings = attrs.field(factory=LogSettings)
    shutdown: ShutdownSettings = attrs.field(factory=ShutdownSettings)
    debug: DebugSettings = attrs.field(factory=DebugSettings)
    profile: ProfileSettings = attrs.field(factory=ProfileSettings)
    cloud: CloudSettings = attrs.field(factory=CloudSettings)
    metadata: MetadataSettings = attrs.field(factory=MetadataSettings)

    backends: tuple[str, ...] | None = attrs.field(default=None)
    """``--backends``: entry-point names to load, in attach order; None loads every installed one."""

    backend_options: Mapping[str, str] = attrs.field(factory=dict, converter=_str_map)
    """``--backend-option KEY=VALUE`` (repeatable): options handed to the backends, e.g.
    ``rdma.netns_mode=exclusive`` or ``sriov.poll_interval=10``; a ``<backend>.`` prefix
    addresses one backend (see docs/backends.md)."""

    @backends.validator
    def _check_backends(self, _: attrs.Attribute[Any], value: tuple[str, ...] | None) -> None:
        if value is None:
            return
        if not value:
            raise SettingsError("--backends: names no backend")
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
                raise SettingsError(f"--backends: {name!r} is not a backend name")
        dup = sorted({n for n in value if value.count(n) > 1})
        if dup:
            raise SettingsError(f"--backends: {', '.join(dup)} named twice")
