"""The kubelet sockets never hold a dead connection: a client that connects and never speaks
(or stops answering) is pinged and dropped, while a live gRPC client stays connected."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from dranet_core.dra.registration import RegistrationServicer
from dranet_core.dra.server import UnixGrpcServer

pytestmark = [pytest.mark.socket]


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dnt-idle-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _until(pred: object, what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_silent_clients_are_dropped_and_their_fds_freed(sock_dir: Path) -> None:
    path = sock_dir / "reg.sock"
    server = UnixGrpcServer(path, [RegistrationServicer("dra.net", "/x")], idle_timeout=0.2, ping_timeout=0.2)
    await server.start()
    before = _open_fds()
    clients = []
    try:
        for _ in range(50):  # half-open: connect, never send the HTTP/2 preface, never read
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.setblocking(False)
            await asyncio.get_running_loop().sock_connect(c, str(path))
            clients.append(c)
        await _until(lambda: server.connections() == 50, "the server accepted the 50 connections")
        assert _open_fds() >= before + 100  # our 50 ends and the server's 50
        await _until(lambda: server.connections() == 0, "silent connections dropped")
        await _until(lambda: _open_fds() <= before + 50, "the server's fds were closed")
    finally:
        for c in clients:
            c.close()
        await server.shutdown(1)


def _get_info(path: Path, calls: int) -> str:
    """A real gRPC client on one channel, idle between calls for longer than the idle timeout."""
    from dranet_core._generated import pluginregistration  # noqa: F401  (the servicer's messages)

    with grpc.insecure_channel(f"unix://{path}") as ch:
        method = ch.unary_unary(
            "/pluginregistration.Registration/GetInfo",
            request_serializer=lambda _: b"",
            response_deserializer=lambda b: b,
        )
        out = b""
        for _ in range(calls):
            out = method(None, timeout=5)
            time.sleep(0.6)  # idle: the server pings, grpc answers, the connection stays
        return out.decode(errors="replace")


async def test_a_live_client_keeps_its_idle_connection(sock_dir: Path) -> None:
    path = sock_dir / "reg.sock"
    server = UnixGrpcServer(path, [RegistrationServicer("dra.net", "/x")], idle_timeout=0.2, ping_timeout=0.2)
    await server.start()
    try:
        reply = await asyncio.to_thread(_get_info, path, 3)
        assert "dra.net" in reply
    finally:
        await server.shutdown(1)


async def test_shutdown_says_how_many_client_connections_it_closed(
    sock_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = sock_dir / "reg.sock"
    server = UnixGrpcServer(path, [RegistrationServicer("dra.net", "/x")], idle_timeout=60, ping_timeout=60)
    await server.start()
    clients = []
    try:
        for _ in range(2):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.setblocking(False)
            await asyncio.get_running_loop().sock_connect(c, str(path))
            clients.append(c)
        await _until(lambda: server.connections() == 2, "the server accepted the 2 connections")
        with caplog.at_level("INFO", logger="dranet_core.dra.server"):
            await server.shutdown(1)
        assert f"stopped serving gRPC on {path} (2 client connection(s) closed)" in caplog.messages
        assert server.connections() == 0
    finally:
        for c in clients:
            c.close()
