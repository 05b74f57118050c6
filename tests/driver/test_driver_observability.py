"""/healthz states, /metrics names (the Go driver's), and structured logs."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from typing import Any

import pytest

from dranet_core.observability import Metrics, ObservabilityServer, StructuredFormatter, setup_logging
from dranet_core.supervisor import Health

GO_METRICS = [
    "dranet_driver_dra_plugin_requests_total",
    "dranet_driver_dra_plugin_requests_latency_seconds",
    "dranet_driver_nri_plugin_requests_total",
    "dranet_driver_nri_plugin_requests_latency_seconds",
    "dranet_driver_published_devices_total",
    "dranet_driver_last_published_time_seconds",
    "process_start_time_seconds",
]


async def _get(port: int, path: str, method: str = "GET") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.fixture
async def server() -> object:
    health = Health()
    metrics = Metrics()
    srv = ObservabilityServer("127.0.0.1:0", health=health, metrics=metrics)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(srv.serve())
        await asyncio.wait_for(srv.started.wait(), 5)
        yield srv
        task.cancel()


@pytest.mark.socket
async def test_healthz_states(server: ObservabilityServer) -> None:
    assert server.port
    code, body = await _get(server.port, "/healthz")
    assert code == 503  # nothing registered yet
    server.health.register("kubelet")
    server.health.register("nri")
    server.health.ok("kubelet", "registered")
    code, body = await _get(server.port, "/healthz")
    doc = json.loads(body)
    assert code == 503
    assert doc["status"] == "unhealthy"
    assert doc["failing"] == ["nri"]
    assert doc["parts"]["nri"] == {"ok": False, "detail": "starting"}
    server.health.ok("nri", "registered as 00-dra.net")
    code, body = await _get(server.port, "/healthz")
    assert code == 200
    assert json.loads(body)["status"] == "ok"
    server.health.failing("nri", "ConnectionResetError: connection lost; retry 1 in 0.5s")
    code, body = await _get(server.port, "/healthz")
    assert code == 503
    assert "connection lost" in json.loads(body)["parts"]["nri"]["detail"]


@pytest.mark.socket
async def test_metrics_have_the_go_names(server: ObservabilityServer) -> None:
    m = server.metrics
    m.dra_requests.labels(method="PrepareResourceClaims", status="success").inc()
    m.dra_latency.labels(method="PrepareResourceClaims").observe(0.01)
    m.nri_requests.labels(method="RunPodSandbox", status="noop").inc()
    m.nri_latency.labels(method="RunPodSandbox", status="noop").observe(0.001)
    m.record_published(total=10, rdma=2, now=1234.0)
    m.attach_latency.labels(backend="netdev", status="success").observe(0.02)
    m.set_device_states({"attached": 3})
    assert server.port
    code, body = await _get(server.port, "/metrics")
    text = body.decode()
    assert code == 200
    for name in GO_METRICS:
        assert f"\n{name}" in text, name
    dra = 'dranet_driver_dra_plugin_requests_total{method="PrepareResourceClaims",status="success"} 1.0'
    assert dra in text
    assert 'dranet_driver_published_devices_total{feature="total"} 10.0' in text
    assert 'dranet_driver_published_devices_total{feature="rdma"} 2.0' in text
    assert "dranet_driver_last_published_time_seconds 1234.0" in text
    assert 'dranet_driver_device_attach_latency_seconds_count{backend="netdev",status="success"} 1.0' in text
    assert 'dranet_driver_devices{state="attached"} 3.0' in text
    assert 'dranet_driver_devices{state="prepared"} 0.0' in text


@pytest.mark.socket
async def test_unknown_paths_and_methods(server: ObservabilityServer) -> None:
    assert server.port
    assert (await _get(server.port, "/nope"))[0] == 404
    assert (await _get(server.port, "/healthz", "POST"))[0] == 405
    code, body = await _get(server.port, "/metrics", "HEAD")
    assert code == 200
    assert body == b""


def test_text_log_carries_fields() -> None:
    rec = logging.LogRecord("dranet_core.pods", logging.INFO, "x", 1, "device attached", None, None)
    rec.claim = "default/c1(uid-1)"
    rec.pod = "default/p1(uid-p)"
    rec.device = "veth-a"
    out = StructuredFormatter("text").format(rec)
    assert out.endswith(
        "I dranet_core.pods: device attached claim=default/c1(uid-1) pod=default/p1(uid-p) device=veth-a"
    )


def test_json_log_carries_fields() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    setup_logging("json", 0, stream=stream)
    try:
        logging.getLogger("dranet_core.x").info("moved %s", "eth1", extra={"claim": "ns/c", "device": "d1"})
        logging.getLogger("dranet_core.x").debug("hidden at -v 0")
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["msg"] == "moved eth1"
    assert doc["level"] == "info"
    assert doc["claim"] == "ns/c"
    assert doc["device"] == "d1"


def _fd_count() -> int:
    import os

    return len(os.listdir("/proc/self/fd"))


@pytest.mark.socket
async def test_slow_clients_are_dropped_and_never_starve_a_scrape() -> None:
    srv = ObservabilityServer(
        "127.0.0.1:0", health=Health(), metrics=Metrics(), request_timeout=0.3, max_connections=20
    )
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(srv.serve())
        await asyncio.wait_for(srv.started.wait(), 5)
        assert srv.port
        before = _fd_count()
        slow = []
        for _ in range(100):  # slowloris: a request line, then a header line now and then, forever
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            writer.write(b"GET /metrics HTTP/1.1\r\n")
            slow.append((reader, writer))
        # never more than max_connections held, however many connect
        assert srv.open_connections <= 20
        deadline = asyncio.get_running_loop().time() + 20
        while srv.open_connections:  # each is dropped at its request deadline
            for _, w in slow:
                if not w.is_closing():
                    w.write(b"X-Slow: 1\r\n")
            assert asyncio.get_running_loop().time() < deadline, srv.open_connections
            await asyncio.sleep(0.05)
        for r, _ in slow:  # dropped (reset or closed), nothing answered
            with contextlib.suppress(ConnectionResetError):
                assert await r.read() == b""
        for _, w in slow:
            w.close()
        code, _ = await _get(srv.port, "/healthz")  # a normal scrape is served
        assert code == 503
        await asyncio.sleep(0.1)
        assert _fd_count() <= before + 2
        task.cancel()


@pytest.mark.parametrize(("verbosity", "library_debug"), [(4, False), (9, True)])
def test_http2_library_debug_lines_show_only_from_v9(verbosity: int, library_debug: bool) -> None:
    """At -v=4 the driver's own debug lines show, not grpclib's HTTP/2 libraries' (a line per
    header: h2 and hpack); from -v=9 those too."""
    stream = io.StringIO()
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    saved_levels = {name: logging.getLogger(name).level for name in ("h2", "hpack", "grpclib")}
    setup_logging("text", verbosity, stream=stream)
    try:
        logging.getLogger("dranet_core.x").debug("ours")
        logging.getLogger("hpack.hpack").debug("Decoded header")
        logging.getLogger("h2.connection").debug("Processing event")
        logging.getLogger("grpclib.protocol").warning("a warning always shows")
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
        for name, lvl in saved_levels.items():
            logging.getLogger(name).setLevel(lvl)
    out = stream.getvalue()
    assert "ours" in out and "a warning always shows" in out
    assert ("Decoded header" in out) is library_debug
    assert ("Processing event" in out) is library_debug


async def test_metered_preparer_counts_each_call_under_its_labels() -> None:
    from dranet_core.metered import InFlight, MeteredPreparer
    from dranet_core.types import ClaimRef

    class Inner:
        async def prepare(self, claims: Any) -> dict[str, Any]:
            return {c.uid: ("bad" if c.uid == "bad" else object()) for c in claims}

        async def unprepare(self, claims: Any) -> dict[str, str | None]:
            return {c.uid: None for c in claims}

    metrics = Metrics(process=False)
    metered = MeteredPreparer(Inner(), metrics=metrics, inflight=InFlight())  # type: ignore[arg-type]
    ok, bad = ClaimRef(namespace="n", name="a", uid="ok"), ClaimRef(namespace="n", name="b", uid="bad")
    for refs in ([ok], [ok], [bad], [ok, bad]):
        await metered.prepare(refs)
    await metered.unprepare([ok])
    value = metrics.registry.get_sample_value
    name = "dranet_driver_dra_plugin_requests_total"
    assert value(name, {"method": "PrepareResourceClaims", "status": "success"}) == 2
    assert value(name, {"method": "PrepareResourceClaims", "status": "failed"}) == 2
    assert value(name, {"method": "UnprepareResourceClaims", "status": "success"}) == 1
    assert value(name, {"method": "UnprepareResourceClaims", "status": "failed"}) is None  # never used
    latency = "dranet_driver_dra_plugin_requests_latency_seconds_count"
    assert value(latency, {"method": "PrepareResourceClaims"}) == 4
