"""Health, metrics and logs: what an operator sees of a running driver.

* :class:`Metrics` holds the Prometheus collectors in a registry of its own (no global
  state): the Go driver's names (namespace ``dranet``, subsystem ``driver``, see
  dranet-behaviour §7.2) plus per-device attach/detach latency histograms and a gauge of
  devices per journal state. Process metrics (``process_start_time_seconds``, memory) are
  included, as the Go driver's default registry does.
* :class:`ObservabilityServer` is a deliberately tiny HTTP/1.1 server on asyncio streams
  (no web framework: it must cost almost no memory) serving ``/healthz`` — 200 when every
  part of :class:`~dranet_core.health.Health` is ok, else 503, with a JSON body that
  says which part is unhealthy and why — and ``/metrics`` in the Prometheus text format.
* :func:`setup_logging` installs a text or JSON formatter; both carry the structured fields
  callers pass as ``extra`` (``claim``, ``pod``, ``device``, ``job``, ``backend``, ``step``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging
import logging.handlers
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from dranet_core.health import Health
from dranet_core.settings import LogSettings, parse_bind_address

__all__ = ["Metrics", "ObservabilityServer", "StructuredFormatter", "setup_logging"]

log = logging.getLogger(__name__)

_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The driver's Prometheus collectors, in their own registry.

    Method and status label values follow the Go driver: DRA ``method`` is
    ``PrepareResourceClaims``/``UnprepareResourceClaims`` with ``status`` success|failed; NRI
    ``method`` is ``RunPodSandbox``/``StopPodSandbox``/``RemovePodSandbox``/``CreateContainer``
    with ``status`` success|failed|noop (noop: the pod has no devices of ours).
    """

    def __init__(self, *, process: bool = True) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ns, sub = "dranet", "driver"
        self.dra_requests = Counter(
            "dra_plugin_requests",
            "DRA kubelet plugin requests",
            ["method", "status"],
            namespace=ns,
            subsystem=sub,
            registry=r,
        )
        self.dra_latency = Histogram(
            "dra_plugin_requests_latency_seconds",
            "DRA kubelet plugin request latency",
            ["method"],
            namespace=ns,
            subsystem=sub,
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.nri_requests = Counter(
            "nri_plugin_requests",
            "NRI plugin requests",
            ["method", "status"],
            namespace=ns,
            subsystem=sub,
            registry=r,
        )
        self.nri_latency = Histogram(
            "nri_plugin_requests_latency_seconds",
            "NRI plugin request latency",
            ["method", "status"],
            namespace=ns,
            subsystem=sub,
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.published_devices = Gauge(
            "published_devices_total",
            "Devices published in ResourceSlices",
            ["feature"],
            namespace=ns,
            subsystem=sub,
            registry=r,
        )
        self.last_published = Gauge(
            "last_published_time_seconds",
            "Unix time of the last ResourceSlice publication",
            namespace=ns,
            subsystem=sub,
            registry=r,
        )
        self.attach_latency = Histogram(
            "device_attach_latency_seconds",
            "Moving and configuring one device into a pod netns",
            ["backend", "status"],
            namespace=ns,
            subsystem=sub,
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.detach_latency = Histogram(
            "device_detach_latency_seconds",
            "Bringing one device back to the host netns",
            ["backend", "status"],
            namespace=ns,
            subsystem=sub,
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.attach_steps = Histogram(
            "attach_step_seconds",
            "One step of attaching a device to a pod (step names as in docs/mover.md)",
            ["step"],
            namespace=ns,
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.devices = Gauge(
            "devices",
            "Prepared devices by journal state (prepared, attaching, attached, detaching)",
            ["state"],
            namespace=ns,
            subsystem=sub,
            registry=r,
        )
        if process:
            from prometheus_client import ProcessCollector

            ProcessCollector(registry=r)

    def observe_attach_step(self, step: str, seconds: float) -> None:
        """Record that one attach step took ``seconds``."""
        self.attach_steps.labels(step=step).observe(seconds)

    def record_published(self, total: int, rdma: int, *, now: float | None = None) -> None:
        """Record one publication of ``total`` devices, ``rdma`` of them RDMA-capable."""
        self.published_devices.labels(feature="total").set(total)
        self.published_devices.labels(feature="rdma").set(rdma)
        self.last_published.set(time.time() if now is None else now)

    def set_device_states(self, counts: Mapping[str, int]) -> None:
        """Set the devices-per-state gauge; states not in ``counts`` go to 0."""
        for state in ("prepared", "attaching", "attached", "detaching", *counts):
            self.devices.labels(state=state).set(counts.get(state, 0))

    def render(self) -> bytes:
        """The Prometheus text exposition of every collector."""
        from prometheus_client import generate_latest

        data: bytes = generate_latest(self.registry)
        return data


_MAX_REQUEST_LINE: Final = 8192
_MAX_HEADERS: Final = 100


class ObservabilityServer:
    """``/healthz`` and ``/metrics`` over HTTP/1.1 on ``bind_address`` (``host:port``).

    Serves one request per connection (``Connection: close``); anything but GET/HEAD of a
    known path gets 404/405. Run :meth:`serve` under the supervisor; :attr:`port` is the bound
    port once :meth:`started` is set (useful with port 0).
    """

    def __init__(
        self,
        bind_address: str,
        *,
        health: Health,
        metrics: Metrics,
        request_timeout: float = 10.0,
        max_connections: int = 64,
    ) -> None:
        self.host, self.requested_port = parse_bind_address(bind_address)
        self.health = health
        self.metrics = metrics
        self.request_timeout = request_timeout
        """Seconds a client has to send its request and read the answer, in all."""
        self.max_connections = max_connections
        """Connections served at once; more are closed at once (a scraper retries)."""
        self.open_connections = 0
        self.port: int | None = None
        self.started = asyncio.Event()

    def __repr__(self) -> str:
        return f"ObservabilityServer(host={self.host!r}, port={self.port})"

    async def serve(self) -> None:
        """Listen and serve until cancelled."""
        server = await asyncio.start_server(
            self._handle, host=self.host or None, port=self.requested_port, reuse_address=True
        )
        try:
            self.port = server.sockets[0].getsockname()[1]
            self.started.set()
            log.info("serving /healthz and /metrics on %s:%s", self.host or "*", self.port)
            async with server:
                await server.serve_forever()
        finally:
            self.started.clear()

    def healthz(self) -> tuple[int, bytes]:
        """Status code and JSON body for /healthz."""
        parts = {
            name: {"ok": st.ok, "detail": st.detail} for name, st in sorted(self.health.snapshot().items())
        }
        ready = self.health.ready
        failing = [n for n, p in parts.items() if not p["ok"]]
        body = {"status": "ok" if ready else "unhealthy", "failing": failing, "parts": parts}
        return (200 if ready else 503), json.dumps(body, indent=1).encode() + b"\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open_connections >= self.max_connections:
            writer.transport.abort()
            return
        self.open_connections += 1
        try:
            async with asyncio.timeout(self.request_timeout):
                await self._exchange(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.transport.abort()  # a slow or silent client: drop it, unread data and all
        finally:
            self.open_connections -= 1
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        status, ctype, body, head = await self._respond(reader)
        reason = {
            200: "OK",
            400: "Bad Request",
            404: "Not Found",
            405: "Method Not Allowed",
            503: "Service Unavailable",
        }[status]
        header = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        writer.write(header + (b"" if head else body))
        await writer.drain()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes, bool]:
        line = await reader.readuntil(b"\r\n")
        # drain the headers (within the request's deadline); we use none of them
        for _ in range(_MAX_HEADERS):
            h = await reader.readuntil(b"\r\n")
            if h in (b"\r\n", b""):
                break
        else:
            return 400, "text/plain", b"too many headers\n", False
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or len(line) > _MAX_REQUEST_LINE:
            return 400, "text/plain", b"bad request\n", False
        method, target = parts[0], parts[1].split("?", 1)[0]
        if target not in ("/healthz", "/metrics"):
            return 404, "text/plain", b"not found\n", False
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n", False
        if target == "/healthz":
            code, body = self.healthz()
            return code, "application/json", body, method == "HEAD"
        from prometheus_client import CONTENT_TYPE_LATEST

        return 200, CONTENT_TYPE_LATEST, self.metrics.render(), method == "HEAD"


_STD_ATTRS: Final = frozenset(
    vars(logging.LogRecord("x", 0, "x", 0, "x", None, None)).keys() | {"message", "asctime", "taskName"}
)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STD_ATTRS and not k.startswith("_")}


class StructuredFormatter(logging.Formatter):
    """Text (``time level logger: message key=value ...``) or JSON lines, with extra fields."""

    def __init__(self, fmt: str = "text", *, headers: bool = True) -> None:
        super().__init__()
        self.json = fmt == "json"
        self.headers = headers
        """False (``--skip_headers``): text lines are the message and its fields only."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        fields = _fields(record)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        if self.json:
            obj: dict[str, Any] = {
                "ts": ts,
                "level": record.levelname.lower(),
                "logger": record.name,
                "msg": msg,
            }
            for k, v in fields.items():
                obj[k] = v if isinstance(v, int | float | bool | None) else str(v)
            if record.exc_info:
                obj["exc"] = self.formatException(record.exc_info)
            return json.dumps(obj)
        extra = "".join(f" {k}={v}" for k, v in fields.items())
        out = f"{ts} {record.levelname[0]} {record.name}: {msg}{extra}" if self.headers else msg + extra
        if record.exc_info:
            out += "\n" + self.formatException(record.exc_info)
        return out


_KLOG_LEVELS: Final = (logging.DEBUG, logging.WARNING, logging.ERROR, logging.CRITICAL)
"""klog severity 0..3 (INFO, WARNING, ERROR, FATAL) -> the lowest Python level it lets through."""


class VerbosityFilter(logging.Filter):
    """Lets DEBUG records through only where the verbosity is >= 4: ``--vmodule``'s first glob
    matching the record's file name without ``.py``, its logger's name or that name's last
    part (its path without ``.py`` when the glob has a ``/``), else ``--v``. Records at INFO
    and above always pass."""

    def __init__(self, verbosity: int, vmodule: tuple[tuple[str, int], ...]) -> None:
        super().__init__()
        self.verbosity = verbosity
        self.vmodule = vmodule

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.INFO:
            return True
        for pattern, level in self.vmodule:
            if "/" in pattern:
                names: tuple[str, ...] = (record.pathname.removesuffix(".py"),)
            else:
                names = (record.module, record.name, record.name.rpartition(".")[2])
            if any(fnmatch.fnmatchcase(name, pattern) for name in names):
                return level >= 4
        return self.verbosity >= 4


def setup_logging(
    fmt: str = "text", verbosity: int = 0, *, stream: Any = None, klog: LogSettings | None = None
) -> None:
    """Configure the root logger: INFO at verbosity 0..3, DEBUG from 4 (klog's --v=4).

    ``klog`` (the klog flags, :class:`~dranet_core.settings.LogSettings`) adds ``--vmodule``
    (per-module verbosity), ``--skip_headers`` and klog's outputs: with ``--logtostderr``
    (the default) every line goes to stderr, filtered by ``--stderrthreshold`` only when
    ``--legacy_stderr_threshold_behavior=false``; without it, lines go to the log file and
    those at or above the threshold (all with ``--alsologtostderr``) to stderr too.
    """
    log = klog or LogSettings(format="json" if fmt == "json" else "text", verbosity=verbosity)
    formatter = StructuredFormatter(fmt, headers=not log.skip_headers)
    debug_filter = VerbosityFilter(verbosity, log.vmodule)
    handler = logging.StreamHandler(stream or sys.stderr)
    threshold = _KLOG_LEVELS[min(max(log.stderr_threshold, 0), 3)]
    if log.to_stderr:
        if not log.legacy_threshold:
            handler.setLevel(threshold)
        handlers: list[logging.Handler] = [handler]
    else:
        if not log.also_to_stderr:
            handler.setLevel(threshold)
        handlers = [handler, _log_file_handler(log)]
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        h.setFormatter(formatter)
        h.addFilter(debug_filter)
        root.addHandler(h)
    wants_debug = verbosity >= 4 or any(level >= 4 for _, level in log.vmodule)
    root.setLevel(logging.DEBUG if wants_debug else logging.INFO)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbosity >= 9 else logging.WARNING)


NOISY_LOGGERS: Final = ("pyroute2", "grpclib", "h2", "hpack", "kubernetes_asyncio", "aiohttp")
"""Libraries whose own DEBUG lines (a line per HTTP/2 frame or header) show only from
``-v=9``: below that they log warnings and errors only, whatever ``-v``."""


def _log_file_handler(log: LogSettings) -> logging.Handler:
    """The ``--log_file`` (already resolved from ``--log_dir``), rotated at its size limit."""
    path = Path(log.log_file or Path(tempfile.gettempdir()) / "dranet.log")
    path.parent.mkdir(parents=True, exist_ok=True)
    max_bytes = log.log_file_max_mb * 1024 * 1024
    return logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=1 if max_bytes else 0)
