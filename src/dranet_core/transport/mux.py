"""The NRI mux trunk over an asyncio stream: one reader task, per-connection byte streams.

:class:`MuxTrunk` owns a connected (reader, writer) pair. Each logical connection id that is
*attached* gets its own ttrpc :class:`~dranet_core.wire.ttrpc.FrameDecoder`, so a ttrpc
message split over several mux frames (Go sends 4096 + rest) is reassembled; frames for ids
that are not attached are dropped, as the Go mux does. :meth:`MuxTrunk.run` is the single
reader loop; it returns at EOF and raises on a protocol error, and either way it closes
every attached connection (their ``on_close`` callbacks run once) before it ends.

Writes are synchronous appends to the stream buffer: :meth:`MuxTrunk.send_message` writes all
mux frames of one ttrpc message in one go (see :func:`~dranet_core.wire.mux.frames_for_message`
for the Go-reader rule), so frames of two messages never interleave on a connection.
Callers that care about back-pressure await :meth:`MuxTrunk.drain`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from dranet_core.wire.mux import MAX_PAYLOAD, MuxDecoder, frames_for_message
from dranet_core.wire.ttrpc import Frame, FrameDecoder, OversizedFrame

__all__ = ["FrameSink", "MuxTrunk"]

log = logging.getLogger(__name__)

FrameSink = Callable[[list[Frame | OversizedFrame]], None]
"""Receives the ttrpc frames completed by one read, in order."""

CloseCallback = Callable[[BaseException | None], None]

_READ_SIZE = 1 << 16


class _Attached:
    __slots__ = ("decoder", "on_close", "sink")

    def __init__(self, sink: FrameSink, on_close: CloseCallback) -> None:
        self.decoder = FrameDecoder()
        self.sink = sink
        self.on_close = on_close


class MuxTrunk:
    """A multiplexed NRI connection. Attach connection ids, then run the reader."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._mux = MuxDecoder()
        self._conns: dict[int, _Attached] = {}
        self._closed = False
        self.frames_dropped = 0
        """Mux frames received for connection ids nobody attached (dropped, as Go does)."""

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<MuxTrunk {state} conns={sorted(self._conns)} dropped={self.frames_dropped}>"

    @property
    def closed(self) -> bool:
        """True once the trunk stopped reading or was closed."""
        return self._closed

    def attach(self, conn_id: int, sink: FrameSink, on_close: CloseCallback) -> None:
        """Deliver frames of ``conn_id`` to ``sink``; ``on_close(exc)`` runs when the trunk ends."""
        if conn_id in self._conns:
            raise ValueError(f"mux connection {conn_id} is already attached")
        self._conns[conn_id] = _Attached(sink, on_close)

    def send_message(self, conn_id: int, message: bytes) -> None:
        """Queue one complete ttrpc message (header included) on ``conn_id``.

        Raises ConnectionResetError when the trunk is closed.
        """
        if self._closed or self._writer.is_closing():
            raise ConnectionResetError("NRI connection is closed")
        self._writer.write(frames_for_message(conn_id, message))

    async def drain(self) -> None:
        """Wait until the write buffer is below the stream's high-water mark."""
        await self._writer.drain()

    async def run(self) -> None:
        """Read until EOF (returns) or a protocol/transport error (raises); then close all."""
        error: BaseException | None = None
        try:
            while True:
                data = await self._reader.read(_READ_SIZE)
                if not data:
                    return
                for frame in self._mux.feed(data):
                    conn = self._conns.get(frame.conn_id)
                    if conn is None:
                        self.frames_dropped += 1
                        continue
                    events = conn.decoder.feed(frame.payload)
                    # the rest of a message comes in one more mux frame (the Go writer's rule):
                    # an oversized one owing more than that can never end; resync at the next
                    if conn.decoder.skipping > MAX_PAYLOAD and conn.decoder.end_skip():
                        log.warning(
                            "NRI: mux connection %d: skipped an oversized ttrpc message",
                            frame.conn_id,
                        )
                    if events:
                        conn.sink(events)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._close_conns(error)

    def _close_conns(self, error: BaseException | None) -> None:
        self._closed = True
        conns, self._conns = self._conns, {}
        for conn in conns.values():
            try:
                conn.on_close(error)
            except Exception:  # a close callback must not hide the trunk's own outcome
                log.exception("mux close callback failed")

    async def aclose(self) -> None:
        """Close the socket (idempotent). The reader, if running, then ends with EOF/error."""
        if not self._closed:
            self._close_conns(None)
        if not self._writer.is_closing():
            self._writer.close()
        with contextlib.suppress(OSError):  # the peer may already have reset the connection
            await self._writer.wait_closed()
