"""A grpclib server on a unix socket that shuts down gracefully and re-creates its socket.

grpclib's own ``close()`` cancels in-flight handlers without telling the client and keeps
serving existing connections (grpclib#107/#148). :class:`UnixGrpcServer` instead:

* binds under a hidden temporary name (the kubelet ignores names starting with ``.``),
  sets mode 0600, and renames the socket into place, so the kubelet never sees a socket it
  cannot use yet;
* :meth:`shutdown` stops accepting connections, lets in-flight calls finish for up to
  ``grace`` seconds, then cancels what is left, drops every connection and unlinks the file;
* :meth:`ensure_socket` re-creates the socket file if somebody deleted or replaced it (a
  kubelet restart wipes ``plugins_registry``), keeping existing connections alive;
* never holds a dead connection: every connection is pinged after ``idle_timeout`` seconds
  without traffic (HTTP/2 PING, also before the client's preface) and closed when the ping is
  not answered within ``ping_timeout``, so a client that connects and never speaks (or
  vanished without closing) costs one fd for at most ``idle_timeout + ping_timeout`` seconds.
  The kubelet's gRPC client answers pings, so its idle connections stay open.

Messages are encoded and decoded by :class:`~dranet_core.dra.codec.FastProtoCodec`:
betterproto2's bytes and betterproto2's messages, computed with less CPU (the request of
every kubelet call is decoded without betterproto2's parser unless it is malformed or
unusual, when betterproto2 decides).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pathlib
import socket
import time
import weakref
from collections.abc import Sequence
from typing import Any

from grpclib.config import Configuration
from grpclib.server import Server

from dranet_core.dra.codec import FastProtoCodec

__all__ = ["UnixGrpcServer"]

log = logging.getLogger(__name__)


class _Server(Server):
    """grpclib Server that remembers its connections (private attributes; grpclib < 0.5)."""

    def __init__(self, handlers: Sequence[Any], config: Configuration) -> None:
        super().__init__(list(handlers), codec=FastProtoCodec(), config=config)
        self.protocols: weakref.WeakSet[Any] = weakref.WeakSet()

    def _protocol_factory(self) -> Any:
        proto = super()._protocol_factory()
        self.protocols.add(proto)
        return proto

    def tasks(self) -> list[asyncio.Task[None]]:
        return [t for h in self._handlers for t in h._tasks.values() if not t.done()]

    def inflight(self) -> int:
        return len(self.tasks())

    def stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()

    def drop_connections(self) -> None:
        for proto in list(self.protocols):
            conn = getattr(proto, "connection", None)
            if conn is not None:
                conn.close()


def _bind(path: pathlib.Path) -> socket.socket:
    """A listening unix socket at ``path``, mode 0600, appearing there atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(tmp))
        os.chmod(tmp, 0o600)
        sock.listen(128)
        sock.setblocking(False)
        os.replace(tmp, path)
    except BaseException:
        sock.close()
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return sock


def _closed(proto: Any) -> bool:
    conn = getattr(proto, "connection", None)
    return conn is None or bool(conn.is_closing())


def _inode(path: pathlib.Path) -> tuple[int, int] | None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


class UnixGrpcServer:
    """gRPC services (grpclib handlers) served on one unix socket path.

    Construct and use inside a running event loop.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        handlers: Sequence[Any],
        *,
        idle_timeout: float = 60.0,
        ping_timeout: float = 20.0,
    ) -> None:
        if idle_timeout <= 0 or ping_timeout <= 0:
            raise ValueError(
                f"idle_timeout and ping_timeout must be > 0 (got {idle_timeout}, {ping_timeout})"
            )
        self.path = pathlib.Path(path)
        self._handlers = tuple(handlers)
        self._config = Configuration(
            _keepalive_time=idle_timeout,
            _keepalive_timeout=ping_timeout,
            _keepalive_permit_without_calls=True,
            _http2_max_pings_without_data=0,
            _http2_min_sent_ping_interval_without_data=idle_timeout,
        )
        self._servers: list[_Server] = []  # the last one listens; older ones only drain
        self._inode: tuple[int, int] | None = None
        self._closed = False

    @property
    def listening(self) -> bool:
        return bool(self._servers) and not self._closed

    def connections(self) -> int:
        """Number of open client connections."""
        return sum(1 for s in self._servers for p in list(s.protocols) if not _closed(p))

    def inflight(self) -> int:
        """Number of calls being handled right now."""
        return sum(s.inflight() for s in self._servers)

    async def start(self) -> None:
        """Remove a stale file at the path and listen there (the caller holds the instance lock)."""
        if self._servers:
            raise RuntimeError(f"{self.path}: already started")
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        await self._listen()

    async def _listen(self) -> None:
        sock = _bind(self.path)
        server = _Server(self._handlers, self._config)
        try:
            await server.start(sock=sock)
        except BaseException:
            sock.close()
            raise
        self._servers.append(server)
        self._inode = _inode(self.path)
        if self._closed:  # shutdown ran while we were re-creating the socket
            server.stop_listening()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            server.close()
            return
        log.info("serving gRPC on %s", self.path)

    async def ensure_socket(self) -> bool:
        """Re-create the socket file if it was deleted or replaced; True if it did."""
        if not self.listening or _inode(self.path) == self._inode:
            return False
        log.warning("socket %s was removed or replaced; re-creating it", self.path)
        self._servers[-1].stop_listening()  # its connections keep working
        await self._listen()
        return True

    async def shutdown(self, grace: float) -> None:
        """Finish in-flight calls (up to ``grace`` s), then close everything and unlink the file."""
        if self._closed:
            return
        self._closed = True
        for s in self._servers:
            s.stop_listening()
        if _inode(self.path) == self._inode:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        deadline = time.monotonic() + grace
        while (tasks := [t for s in self._servers for t in s.tasks()]) and time.monotonic() < deadline:
            await asyncio.wait(tasks, timeout=deadline - time.monotonic())
        if left := self.inflight():
            log.warning("%s: cancelling %d call(s) still running after %.1fs", self.path, left, grace)
        dropped = self.connections()
        for s in self._servers:
            s.close()
            s.drop_connections()
        for s in self._servers:
            try:
                await asyncio.wait_for(s.wait_closed(), 5)
            except TimeoutError:
                log.warning("%s: connections did not close within 5s", self.path)
        log.info("stopped serving gRPC on %s (%d client connection(s) closed)", self.path, dropped)
