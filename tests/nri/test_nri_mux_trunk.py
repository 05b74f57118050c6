"""MuxTrunk over a real socketpair: reassembly, routing, dropping, close semantics."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest

from dranet_core.errors import RemoteProtocolError, RpcError
from dranet_core.transport.mux import MuxTrunk
from dranet_core.transport.ttrpc import TtrpcClient
from dranet_core.wire.ttrpc import Frame, OversizedFrame

pytestmark = pytest.mark.socket


def mux(conn_id: int, payload: bytes) -> bytes:
    return struct.pack(">II", conn_id, len(payload)) + payload


class Pair:
    def __init__(self) -> None:
        self.got: dict[int, list[Frame | OversizedFrame]] = {1: [], 2: []}
        self.closed: dict[int, BaseException | None] = {}
        self.arrived = asyncio.Event()

    def sink(self, conn_id: int) -> object:
        def _sink(frames: list[Frame | OversizedFrame]) -> None:
            self.got[conn_id] += frames
            self.arrived.set()

        return _sink

    def on_close(self, conn_id: int) -> object:
        def _close(exc: BaseException | None) -> None:
            self.closed[conn_id] = exc

        return _close


@pytest.fixture
async def setup() -> AsyncIterator[tuple[MuxTrunk, Pair, asyncio.StreamReader, asyncio.StreamWriter]]:
    a, b = socket.socketpair()
    r1, w1 = await asyncio.open_unix_connection(sock=a)
    r2, w2 = await asyncio.open_unix_connection(sock=b)
    trunk = MuxTrunk(r1, w1)
    pair = Pair()
    trunk.attach(1, pair.sink(1), pair.on_close(1))  # type: ignore[arg-type]
    trunk.attach(2, pair.sink(2), pair.on_close(2))  # type: ignore[arg-type]
    try:
        yield trunk, pair, r2, w2
    finally:
        await trunk.aclose()
        w2.close()
        await w2.wait_closed()


async def test_reassembly_routing_and_dropping(
    setup: tuple[MuxTrunk, Pair, asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    trunk, pair, _, peer = setup
    reader = asyncio.create_task(trunk.run())
    msg = bytes([0, 0, 0, 3, 0, 0, 0, 5, 2, 0]) + b"abc"  # response on stream 5, 3 bytes
    # conn 1 gets it split in three frames, interleaved with conn 2 and an unknown conn 7
    peer.write(mux(1, msg[:4]) + mux(2, msg) + mux(7, b"zz") + mux(1, msg[4:11]) + mux(1, msg[11:]))
    async with asyncio.timeout(5):
        while len(pair.got[1]) < 1 or len(pair.got[2]) < 1:
            pair.arrived.clear()
            await pair.arrived.wait()
    assert pair.got[1] == pair.got[2] == [Frame(5, 2, 0, b"abc")]
    assert trunk.frames_dropped == 1 and "dropped=1" in repr(trunk)
    peer.close()  # EOF: run() returns and closes both connections
    await asyncio.wait_for(reader, 5)
    assert pair.closed == {1: None, 2: None}
    assert trunk.closed
    with pytest.raises(ConnectionResetError):
        trunk.send_message(1, b"x")


async def test_protocol_error_closes_with_the_error(
    setup: tuple[MuxTrunk, Pair, asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    trunk, pair, _, peer = setup
    reader = asyncio.create_task(trunk.run())
    peer.write(mux(1, bytes([0, 0, 0, 0, 0, 0, 0, 1, 7, 0])))  # ttrpc type 7
    with pytest.raises(RemoteProtocolError):
        await asyncio.wait_for(reader, 5)
    assert isinstance(pair.closed[1], RemoteProtocolError)


async def test_sent_messages_follow_the_go_reader_rule(
    setup: tuple[MuxTrunk, Pair, asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    trunk, _, peer_reader, _ = setup
    trunk.send_message(2, b"s" * 10)
    trunk.send_message(2, b"b" * 9000)
    await trunk.drain()
    sizes = []
    for _ in range(3):
        conn_id, n = struct.unpack(">II", await peer_reader.readexactly(8))
        await peer_reader.readexactly(n)
        sizes.append((conn_id, n))
    assert sizes == [(2, 10), (2, 4096), (2, 9000 - 4096)]


async def test_cancelled_call_leaves_nothing_pending() -> None:
    sent: list[bytes] = []

    async def drain() -> None:
        return None

    client = TtrpcClient(send=sent.append, drain=drain)
    call = asyncio.create_task(client.call("s.S", "M", b""))
    await asyncio.sleep(0.01)
    assert "pending=1" in repr(client)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert "pending=0" in repr(client)
    client.close()
    with pytest.raises(RpcError):
        await client.call("s.S", "M", b"")


async def test_an_oversized_message_ends_with_its_mux_frame(
    setup: tuple[MuxTrunk, Pair, asyncio.StreamReader, asyncio.StreamWriter],
) -> None:
    trunk, pair, _, peer = setup
    reader = asyncio.create_task(trunk.run())
    huge = struct.pack(">IIBB", 0x7FFFFFFF, 3, 1, 0) + b"\0" * 20  # claims 2 GiB, 20 bytes sent
    msg = bytes([0, 0, 0, 3, 0, 0, 0, 5, 1, 0]) + b"abc"
    peer.write(mux(1, huge) + mux(1, msg))
    async with asyncio.timeout(5):
        while len(pair.got[1]) < 2:
            pair.arrived.clear()
            await pair.arrived.wait()
    # the next request is read as a frame, not swallowed as data of the oversized one
    assert pair.got[1] == [OversizedFrame(3, 1, 0, 0x7FFFFFFF), Frame(5, 1, 0, b"abc")]
    assert not trunk.closed
    peer.close()
    await asyncio.wait_for(reader, 5)
