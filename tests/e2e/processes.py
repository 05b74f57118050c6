"""The driver process and the kubelet (grpcio), and the loop thread that hosts the other peers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
for _p in (TESTS / "nri", TESTS / "driver"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from e2e.nodenet import NODE_NAME, WAIT, T, free_port  # noqa: E402
from fakeapi import write_kubeconfig  # noqa: E402

# ----------------------------------------------------------------------------- the loop thread


class Loop:
    """An asyncio loop in a daemon thread: hosts the fake API server and the NRI runtime peer."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="e2e-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[T], timeout: float = 300) -> T:
        """Run ``coro`` on the loop and return its result (from the test's thread)."""

        async def wrap() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(timeout)

    def run_later(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        """Start ``coro`` on the loop; the caller collects ``.result(timeout)`` later."""

        async def wrap() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrap(), self.loop)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a plain function on the loop thread (the fake API server is not thread-safe)."""

        async def wrap() -> T:
            return fn(*args, **kwargs)

        return self.run(wrap(), timeout=60)

    def close(self) -> None:
        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(drain(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


# ----------------------------------------------------------------------------- the driver process


class DriverProcess:
    """One ``dranet run`` (restartable): its flags, its log files, /healthz, its checkpoint."""

    def __init__(self, tmp: Path, host_netns: str, api_url: str, node_name: str = NODE_NAME) -> None:
        self.tmp = tmp
        self.host_netns = host_netns
        self.node_name = node_name
        self.root = tmp / "kubelet"
        self.db = tmp / "state" / "dranet.db"
        self.nri_sock = tmp / "nri.sock"
        self.kubeconfig = write_kubeconfig(tmp / "kubeconfig", api_url)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []
        self.wrap: list[str] = []  # a command the driver runs under (e.g. unshare)

    def argv(self, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "dranet_core",
            "run",
            f"--hostname-override={self.node_name}",
            f"--kubeconfig={self.kubeconfig}",
            f"--kubelet-root-dir={self.root}",
            f"--nri-socket={self.nri_sock}",
            f"--db-path={self.db}",
            f"--bind-address=127.0.0.1:{self.port}",
            "--filter=",
            "--backends=netdev",
            f"--host-netns={self.host_netns}",
            "--inventory-min-poll-interval=100ms",
            "--shutdown-grace=5s",
            "-v",
            *extra,
        ]

    def spawn(self, *extra: str) -> None:
        log = self.tmp / f"driver-{len(self.logs)}.log"
        self.logs.append(log)
        self.proc = self.popen(log, [*self.wrap, *self.argv(*extra)])

    @staticmethod
    def popen(log: Path, argv: list[str]) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def healthz(self) -> tuple[int, dict[str, Any]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), json.loads(body)

    async def wait_healthy(self, within: float = WAIT) -> None:
        deadline = time.monotonic() + within
        last: Any = None
        while time.monotonic() < deadline:
            if not self.alive:
                raise AssertionError(f"driver exited\n{self.log_text()}")
            try:
                code, last = await self.healthz()
                if code == 200:
                    return
            except OSError as exc:
                last = exc
            await asyncio.sleep(0.05)
        raise AssertionError(f"driver never healthy: {last}\n{self.log_text()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait_exit(self, within: float = WAIT) -> int:
        assert self.proc is not None
        deadline = time.monotonic() + within
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"driver did not exit in {within}s\n{self.log_text()}")
            await asyncio.sleep(0.02)
        return self.proc.returncode

    def stop_now(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def db_file(self) -> Path:
        """The checkpoint as this process sees it (through the driver's own mount namespace
        when it runs in one)."""
        if self.wrap and self.proc is not None and self.proc.poll() is None:
            return Path(f"/proc/{self.proc.pid}/root{self.db}")
        return self.db

    def checkpoint(self) -> dict[str, Any]:
        """The checkpoint file as JSON (``{}`` when there is none)."""
        if not self.db_file.exists():
            return {}
        doc: dict[str, Any] = json.loads(self.db_file.read_text())
        return doc

    def journal(self) -> dict[str, Any]:
        """``{device: journal entry}`` over every claim in the checkpoint."""
        doc = self.checkpoint()
        return {dev: st for c in doc.get("claims", {}).values() for dev, st in c["devices"].items()}

    def claim_uids(self) -> set[str]:
        return set(self.checkpoint().get("claims", {}))

    def log_text(self, tail: int = 8000) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}" for p in self.logs if p.exists()
        )

    def log_all(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())
