"""ttrpc framing and envelopes, sans-IO (containerd/ttrpc v1.2 ``PROTOCOL.md``).

Theory of operation
-------------------
A ttrpc connection is a byte stream of *frames*: a 10-byte header followed by ``length``
bytes of data::

    offset 0  u32 BE  data length (max 4 MiB = 4194304; so byte 0 is always 0)
    offset 4  u32 BE  stream id (client-initiated streams are odd: 1, 3, 5, ...)
    offset 8  u8      message type: 1 request, 2 response, 3 data
    offset 9  u8      flags (0 for the unary calls NRI makes)

A unary call is one Request frame whose data is a protobuf ``ttrpc.Request`` envelope
(service, method, payload, timeout_nano, metadata) answered by one Response frame on the same
stream id carrying ``ttrpc.Response`` (google.rpc.Status, payload). An absent status means OK.

:class:`FrameDecoder` turns bytes into :class:`Frame` events. It accepts input split at any
byte boundary and keeps trailing bytes for the next call. A frame whose length is above the
4 MiB limit is *not* an error of the connection (Go's ttrpc discards the data and answers that
stream with RESOURCE_EXHAUSTED): the decoder skips its data without buffering it and emits an
:class:`OversizedFrame` event instead, so memory never grows beyond the limit. Input that
cannot be a frame at all (unknown message type) raises
:class:`~dranet_core.errors.RemoteProtocolError` naming the rule; the connection must then be
closed. :func:`encode_frame` raises :class:`~dranet_core.errors.LocalProtocolError` before
we would send something the peer must reject.

The envelopes are decoded by hand (:mod:`dranet_core.wire._protobuf`): five fields, unknown
fields and unknown metadata skipped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from dranet_core.errors import LocalProtocolError, RemoteProtocolError
from dranet_core.wire._protobuf import WT_LEN, iter_fields, put_bytes, put_varint_field, varint

__all__ = [
    "FLAG_NO_DATA",
    "FLAG_REMOTE_CLOSED",
    "FLAG_REMOTE_OPEN",
    "HEADER_LENGTH",
    "MAX_MESSAGE_LENGTH",
    "MESSAGE_TYPE_DATA",
    "MESSAGE_TYPE_REQUEST",
    "MESSAGE_TYPE_RESPONSE",
    "Frame",
    "FrameDecoder",
    "OversizedFrame",
    "Request",
    "Response",
    "Status",
    "decode_request",
    "decode_response",
    "encode_frame",
    "encode_request",
    "encode_response",
]

HEADER_LENGTH: Final = 10
MAX_MESSAGE_LENGTH: Final = 4 << 20
"""Largest frame data ttrpc accepts (``messageLengthMax``)."""

MESSAGE_TYPE_REQUEST: Final = 0x01
MESSAGE_TYPE_RESPONSE: Final = 0x02
MESSAGE_TYPE_DATA: Final = 0x03
_KNOWN_TYPES: Final = frozenset({MESSAGE_TYPE_REQUEST, MESSAGE_TYPE_RESPONSE, MESSAGE_TYPE_DATA})

FLAG_REMOTE_CLOSED: Final = 0x01
FLAG_REMOTE_OPEN: Final = 0x02
FLAG_NO_DATA: Final = 0x04

_HEADER = struct.Struct(">IIBB")
LIMIT_MESSAGE = f"ttrpc max message size {MAX_MESSAGE_LENGTH}"


@dataclass(frozen=True, slots=True)
class Frame:
    """One ttrpc frame: header fields plus its data."""

    stream_id: int
    type: int
    flags: int
    data: bytes


@dataclass(frozen=True, slots=True)
class OversizedFrame:
    """A frame whose declared length broke the 4 MiB limit; its data was skipped, not kept."""

    stream_id: int
    type: int
    flags: int
    length: int


def encode_frame(frame: Frame) -> bytes:
    """Header + data. Raises LocalProtocolError for oversized data or invalid header fields."""
    n = len(frame.data)
    if n > MAX_MESSAGE_LENGTH:
        raise LocalProtocolError(
            f"ttrpc message of {n} bytes exceeds the maximum of {MAX_MESSAGE_LENGTH}", limit=LIMIT_MESSAGE
        )
    if not 0 <= frame.stream_id <= 0xFFFFFFFF:
        raise LocalProtocolError(
            f"ttrpc stream id {frame.stream_id} out of range", limit="ttrpc stream id u32"
        )
    if frame.type not in _KNOWN_TYPES or not 0 <= frame.flags <= 0xFF:
        raise LocalProtocolError(f"ttrpc message type {frame.type}/flags {frame.flags} invalid")
    return _HEADER.pack(n, frame.stream_id, frame.type, frame.flags) + frame.data


class FrameDecoder:
    """Bytes in, frames out. Keeps partial input between calls; never buffers > 4 MiB + 10."""

    __slots__ = ("_buf", "_pending", "_skip")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip = 0  # data bytes of an oversized frame still to discard
        self._pending: tuple[int, int, int, int] | None = None  # header of the frame being read

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buf)

    @property
    def skipping(self) -> int:
        """Data bytes of an oversized frame still to be discarded."""
        return self._skip

    def end_skip(self) -> int:
        """Stop discarding the data of an oversized frame; return how many bytes were still owed.

        For a transport whose units bound what can still follow (the NRI mux: the rest of one
        ttrpc message comes in one more frame of at most ``10 + 4 MiB``), a frame owing more
        than that can never be completed; the next unit starts a fresh frame. Without this a
        header claiming gigabytes would make every later request on the connection vanish.
        """
        owed, self._skip = self._skip, 0
        return owed

    def feed(self, data: bytes) -> list[Frame | OversizedFrame]:
        """Add ``data``; return every frame it completes, in order.

        Raises RemoteProtocolError for an unknown message type (the stream is unusable).
        """
        out: list[Frame | OversizedFrame] = []
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        if not data:
            return out
        buf = self._buf
        buf += data
        pos = 0
        end = len(buf)
        while True:
            if self._pending is None:
                if end - pos < HEADER_LENGTH:
                    break
                length, sid, mtype, flags = _HEADER.unpack_from(buf, pos)
                pos += HEADER_LENGTH
                if mtype not in _KNOWN_TYPES:
                    del buf[:]
                    raise RemoteProtocolError(
                        f"ttrpc frame on stream {sid} has unknown message type {mtype:#x}",
                        limit="ttrpc message type 1..3",
                    )
                if length > MAX_MESSAGE_LENGTH:
                    out.append(OversizedFrame(sid, mtype, flags, length))
                    avail = end - pos
                    if avail >= length:
                        pos += length
                        continue
                    self._skip = length - avail
                    pos = end
                    break
                self._pending = (length, sid, mtype, flags)
            length, sid, mtype, flags = self._pending
            if end - pos < length:
                break
            out.append(Frame(sid, mtype, flags, bytes(buf[pos : pos + length])))
            pos += length
            self._pending = None
        del buf[:pos]
        return out


# --- envelopes ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Status:
    """google.rpc.Status: a gRPC code and message (details are skipped when decoding)."""

    code: int
    message: str = ""


@dataclass(frozen=True, slots=True)
class Request:
    """ttrpc.Request. ``timeout_nano`` is relative, 0 = no deadline; metadata is key/values."""

    service: str
    method: str
    payload: bytes = b""
    timeout_nano: int = 0
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Response:
    """ttrpc.Response. ``status`` None (absent) means OK."""

    status: Status | None = None
    payload: bytes = b""

    @property
    def ok(self) -> bool:
        """True for an absent status or code 0, as the Go client reads it."""
        return self.status is None or self.status.code == 0


def encode_request(req: Request) -> bytes:
    """Serialize a ttrpc.Request envelope."""
    parts = [
        put_bytes(1, req.service.encode()),
        put_bytes(2, req.method.encode()),
        put_bytes(3, req.payload),
        put_varint_field(4, req.timeout_nano),
    ]
    for key, value in req.metadata:
        kv = put_bytes(1, key.encode()) + put_bytes(2, value.encode())
        parts.append(varint(5 << 3 | WT_LEN) + varint(len(kv)) + kv)
    return b"".join(parts)


def encode_response(resp: Response) -> bytes:
    """Serialize a ttrpc.Response; an OK status is left absent, as the Go server does."""
    out = b""
    st = resp.status
    if st is not None and st.code != 0:
        body = put_varint_field(1, st.code) + put_bytes(2, st.message.encode())
        out = varint(1 << 3 | WT_LEN) + varint(len(body)) + body
    return out + put_bytes(2, resp.payload)


def _string(value: bytes, what: str) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"{what}: not UTF-8") from exc


def _int64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def decode_request(data: bytes) -> Request:
    """Parse a ttrpc.Request; unknown fields and malformed metadata entries are skipped."""
    service = method = ""
    payload = b""
    timeout = 0
    meta: list[tuple[str, str]] = []
    for num, _, value in iter_fields(data, "ttrpc request"):
        if isinstance(value, int):
            if num == 4:
                timeout = _int64(value)
        elif num == 1:
            service = _string(value, "ttrpc request service")
        elif num == 2:
            method = _string(value, "ttrpc request method")
        elif num == 3:
            payload = value
        elif num == 5:
            meta.append(_key_value(value))
    return Request(service, method, payload, timeout, tuple(meta))


def _key_value(data: bytes) -> tuple[str, str]:
    key = val = ""
    for num, _, value in iter_fields(data, "ttrpc metadata"):
        if isinstance(value, bytes) and num == 1:
            key = _string(value, "ttrpc metadata key")
        elif isinstance(value, bytes) and num == 2:
            val = _string(value, "ttrpc metadata value")
    return key, val


def _status(data: bytes) -> Status:
    code = 0
    message = ""
    for num, _, value in iter_fields(data, "ttrpc status"):
        if isinstance(value, int) and num == 1:
            code = _int64(value) & 0xFFFFFFFF  # int32 on the wire, sign-extended to 64 bits
            code = code - (1 << 32) if code >= 1 << 31 else code
        elif isinstance(value, bytes) and num == 2:
            message = _string(value, "ttrpc status message")
    return Status(code, message)


def decode_response(data: bytes) -> Response:
    """Parse a ttrpc.Response (google.rpc.Status details are skipped)."""
    status: Status | None = None
    payload = b""
    for num, _, value in iter_fields(data, "ttrpc response"):
        if isinstance(value, bytes) and num == 1:
            status = _status(value)
        elif isinstance(value, bytes) and num == 2:
            payload = value
    return Response(status, payload)
