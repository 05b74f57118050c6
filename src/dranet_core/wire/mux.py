"""NRI connection multiplexer framing, sans-IO (containerd/nri ``pkg/net/multiplex``).

Theory of operation
-------------------
NRI runs two ttrpc connections over one unix socket (the *trunk*). Each trunk frame is an
8-byte header and a payload::

    offset 0  u32 BE  connection id (1 = plugin serves Plugin, 2 = runtime serves Runtime)
    offset 4  u32 BE  payload length
    offset 8  n       payload: raw bytes of that logical connection's byte stream

There is no handshake: "opening" an id is local. Each logical connection is an independent
byte stream, so the receiver concatenates the payloads of one id and feeds them to that
connection's ttrpc :class:`~dranet_core.wire.ttrpc.FrameDecoder` (Go sends a large ttrpc
message as a 4096-byte frame plus one frame with the rest).

The sender must respect the Go reader (fact sheet §0.1 trap 1, §B.5): containerd reads each
logical connection through a 4096-byte ``bufio.Reader`` and a mux ``Read`` fails with ENOMEM
when a frame is larger than the buffer it is read into, after which no reply ever comes; and
its per-connection queue holds 256 frames. :func:`frames_for_message` therefore emits exactly
what the Go writer emits: the first ≤ 4096 bytes of one ttrpc message, then the rest as one
more frame, never bytes of two messages in one frame.

Limits enforced on receive, each with a RemoteProtocolError naming it: connection id 0 is
reserved; a payload above ``10 + 4 MiB`` (the Go sender's ``maxPayloadSize``, which it never
exceeds) is refused before anything is allocated for it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from dranet_core.errors import LocalProtocolError, RemoteProtocolError
from dranet_core.wire.ttrpc import HEADER_LENGTH as TTRPC_HEADER_LENGTH
from dranet_core.wire.ttrpc import MAX_MESSAGE_LENGTH

__all__ = [
    "GO_READ_BUFFER",
    "HEADER_LENGTH",
    "MAX_PAYLOAD",
    "PLUGIN_SERVICE_CONN",
    "RUNTIME_SERVICE_CONN",
    "MuxDecoder",
    "MuxFrame",
    "encode_mux_frame",
    "frames_for_message",
]

HEADER_LENGTH: Final = 8
MAX_PAYLOAD: Final = TTRPC_HEADER_LENGTH + MAX_MESSAGE_LENGTH
"""Largest payload a Go mux sender writes in one frame (10 + 4 MiB)."""

PLUGIN_SERVICE_CONN: Final = 1
"""Logical connection where the plugin is the ttrpc server (service Plugin)."""
RUNTIME_SERVICE_CONN: Final = 2
"""Logical connection where the runtime is the ttrpc server (service Runtime)."""

GO_READ_BUFFER: Final = 4096
"""Size of the bufio.Reader containerd's ttrpc reads each logical connection through."""

_HEADER = struct.Struct(">II")
LIMIT_PAYLOAD = f"mux max payload {MAX_PAYLOAD}"
LIMIT_CONN_ID = "mux connection id 0 is reserved"


@dataclass(frozen=True, slots=True)
class MuxFrame:
    """One trunk frame: a connection id and a chunk of that connection's byte stream."""

    conn_id: int
    payload: bytes


def encode_mux_frame(conn_id: int, payload: bytes) -> bytes:
    """Header + payload. Raises LocalProtocolError for id 0 / out of range or oversize."""
    if not 0 < conn_id <= 0xFFFFFFFF:
        raise LocalProtocolError(f"mux connection id {conn_id} invalid", limit=LIMIT_CONN_ID)
    if len(payload) > MAX_PAYLOAD:
        raise LocalProtocolError(
            f"mux payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}", limit=LIMIT_PAYLOAD
        )
    return _HEADER.pack(conn_id, len(payload)) + payload


def frames_for_message(conn_id: int, message: bytes) -> bytes:
    """Trunk bytes for one complete ttrpc message (header included), Go-reader safe.

    The first ``min(len, 4096)`` bytes go in one frame, any rest in exactly one more.
    """
    if len(message) <= GO_READ_BUFFER:
        return encode_mux_frame(conn_id, message)
    return encode_mux_frame(conn_id, message[:GO_READ_BUFFER]) + encode_mux_frame(
        conn_id, message[GO_READ_BUFFER:]
    )


class MuxDecoder:
    """Trunk bytes in, :class:`MuxFrame` events out; partial input kept between calls."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[MuxFrame]:
        """Add ``data``; return the frames it completes. Raises RemoteProtocolError on a broken limit."""
        buf = self._buf
        buf += data
        out: list[MuxFrame] = []
        pos = 0
        end = len(buf)
        while end - pos >= HEADER_LENGTH:
            conn_id, length = _HEADER.unpack_from(buf, pos)
            if conn_id == 0:
                del buf[:]
                raise RemoteProtocolError("mux frame for reserved connection id 0", limit=LIMIT_CONN_ID)
            if length > MAX_PAYLOAD:
                del buf[:]
                raise RemoteProtocolError(
                    f"mux frame for connection {conn_id} declares {length} bytes, more than {MAX_PAYLOAD}",
                    limit=LIMIT_PAYLOAD,
                )
            if end - pos - HEADER_LENGTH < length:
                break
            start = pos + HEADER_LENGTH
            out.append(MuxFrame(conn_id, bytes(buf[start : start + length])))
            pos = start + length
        if pos:
            del buf[:pos]
        return out
