"""Opening the byte stream the NRI trunk runs on: a unix socket path, or an inherited fd.

Runtime-launched NRI plugins get a pre-connected socket as fd 3, announced by the environment
variable ``NRI_PLUGIN_SOCKET=3``; external plugins connect to the runtime's socket
(``/var/run/nri/nri.sock`` by default). Both give an asyncio (reader, writer) pair.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

__all__ = ["NRI_PLUGIN_SOCKET_ENV", "inherited_socket_fd", "open_fd", "open_unix"]

NRI_PLUGIN_SOCKET_ENV = "NRI_PLUGIN_SOCKET"

READ_LIMIT = 1 << 20


async def open_unix(path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to a unix stream socket; raises OSError (ENOENT, ECONNREFUSED, ...)."""
    return await asyncio.open_unix_connection(path, limit=READ_LIMIT)


async def open_fd(fd: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Wrap an already-connected unix stream socket fd; the streams own it from then on."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=fd)
    sock.setblocking(False)
    return await asyncio.open_unix_connection(sock=sock, limit=READ_LIMIT)


def inherited_socket_fd(environ: Mapping[str, str] | None = None) -> int | None:
    """The fd named by ``NRI_PLUGIN_SOCKET`` (runtime-launched plugin), or None.

    Raises ValueError when the variable is set but is not a non-negative integer.
    """
    env = os.environ if environ is None else environ
    raw = env.get(NRI_PLUGIN_SOCKET_ENV)
    if raw is None or raw == "":
        return None
    try:
        fd = int(raw)
    except ValueError:
        raise ValueError(f"{NRI_PLUGIN_SOCKET_ENV}={raw!r}: not a file descriptor number") from None
    if fd < 0:
        raise ValueError(f"{NRI_PLUGIN_SOCKET_ENV}={raw!r}: not a file descriptor number")
    return fd
