"""ttrpc client and server (dranet_core.transport.ttrpc) over an in-memory frame pipe."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dranet_core.errors import RpcError
from dranet_core.transport.ttrpc import TtrpcClient, TtrpcServer
from dranet_core.wire.ttrpc import (
    Frame,
    FrameDecoder,
    Request,
    Response,
    Status,
    decode_response,
    encode_frame,
    encode_request,
)


class Echo:
    def __init__(self) -> None:
        self.deadlines: list[float | None] = []
        self.cancelled = 0

    async def echo(self, payload: bytes, deadline: float | None) -> bytes:
        self.deadlines.append(deadline)
        return payload[::-1]

    async def fail(self, payload: bytes, deadline: float | None) -> bytes:
        raise RpcError(5, "no such pod")

    async def crash(self, payload: bytes, deadline: float | None) -> bytes:
        raise KeyError("x")

    async def slow(self, payload: bytes, deadline: float | None) -> bytes:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return b""


class ServerUnderTest:
    """A server whose replies are captured and decoded."""

    def __init__(self) -> None:
        self.impl = Echo()
        methods = {
            "Echo": self.impl.echo,
            "Fail": self.impl.fail,
            "Crash": self.impl.crash,
            "Slow": self.impl.slow,
        }
        self.out = FrameDecoder()
        self.replies: dict[int, Response] = {}
        self.got = asyncio.Event()
        self.server = TtrpcServer({"test.Svc": methods}, send=self._send, drain=self._drain)

    def _send(self, msg: bytes) -> None:
        for f in self.out.feed(msg):
            assert isinstance(f, Frame) and f.type == 2 and f.flags == 0
            self.replies[f.stream_id] = decode_response(f.data)
        self.got.set()

    async def _drain(self) -> None:
        return None

    def request(self, sid: int, req: Request) -> None:
        self.server.receive(FrameDecoder().feed(encode_frame(Frame(sid, 1, 0, encode_request(req)))))

    async def reply(self, sid: int) -> Response:
        async with asyncio.timeout(5):
            while sid not in self.replies:
                self.got.clear()
                await self.got.wait()
        return self.replies[sid]


@pytest.fixture
async def srv() -> AsyncIterator[ServerUnderTest]:
    s = ServerUnderTest()
    try:
        yield s
    finally:
        await s.server.aclose()


async def test_unary_call_and_ok_status_absent(srv: ServerUnderTest) -> None:
    srv.request(1, Request("test.Svc", "Echo", b"abc"))
    assert await srv.reply(1) == Response(None, b"cba")


async def test_unknown_service_and_method(srv: ServerUnderTest) -> None:
    srv.request(1, Request("other.Svc", "Echo"))
    srv.request(3, Request("test.Svc", "Nope"))
    assert (await srv.reply(1)).status == Status(12, "service other.Svc")
    assert (await srv.reply(3)).status == Status(12, "method Nope")


async def test_stream_id_rules(srv: ServerUnderTest) -> None:
    srv.request(2, Request("test.Svc", "Echo", b"x"))
    assert (await srv.reply(2)).status == Status(3, "StreamID must be odd for client initiated streams")
    srv.request(5, Request("test.Svc", "Echo", b"x"))
    assert (await srv.reply(5)).ok
    del srv.replies[5]
    srv.request(5, Request("test.Svc", "Echo", b"x"))
    assert (await srv.reply(5)).status == Status(3, "StreamID cannot be re-used and must increment")
    srv.request(3, Request("test.Svc", "Echo", b"x"))
    assert (await srv.reply(3)).status == Status(3, "StreamID cannot be re-used and must increment")


async def test_data_frame_is_rejected(srv: ServerUnderTest) -> None:
    srv.server.receive([Frame(9, 3, 0, b"zz")])
    assert (await srv.reply(9)).status == Status(3, "StreamID is no longer active")


async def test_handler_errors(srv: ServerUnderTest) -> None:
    srv.request(1, Request("test.Svc", "Fail"))
    srv.request(3, Request("test.Svc", "Crash"))
    assert (await srv.reply(1)).status == Status(5, "no such pod")
    assert (await srv.reply(3)).status == Status(2, "KeyError: 'x'")


async def test_deadline_from_timeout_nano(srv: ServerUnderTest) -> None:
    loop = asyncio.get_running_loop()
    before = loop.time()
    srv.request(1, Request("test.Svc", "Echo", b"", timeout_nano=3_000_000_000))
    srv.request(3, Request("test.Svc", "Echo", b"", timeout_nano=0))
    await srv.reply(1)
    await srv.reply(3)
    d1, d3 = srv.impl.deadlines
    assert d1 is not None and before + 2.9 < d1 < loop.time() + 3.1
    assert d3 is None
    srv.request(5, Request("test.Svc", "Slow", b"", timeout_nano=50_000_000))
    resp = await srv.reply(5)
    assert resp.status is not None and resp.status.code == 4
    assert srv.impl.cancelled == 1


async def test_each_request_gets_its_own_deadline(srv: ServerUnderTest) -> None:
    # the deadlines share one loop timer: a short one added after a long one still fires first,
    # and only for its own request
    srv.request(1, Request("test.Svc", "Slow", b"", timeout_nano=60_000_000_000))
    srv.request(3, Request("test.Svc", "Slow", b"", timeout_nano=30_000_000))
    srv.request(5, Request("test.Svc", "Echo", b"x", timeout_nano=20_000_000))
    assert (await srv.reply(5)) == Response(None, b"x")  # answered before its deadline
    resp = await srv.reply(3)
    assert resp.status is not None and resp.status.code == 4
    assert srv.impl.cancelled == 1
    assert 1 not in srv.replies  # the long one still runs


async def test_a_handler_cancelled_from_outside_is_not_a_deadline(srv: ServerUnderTest) -> None:
    srv.request(1, Request("test.Svc", "Slow", b"", timeout_nano=60_000_000_000))
    await asyncio.sleep(0.01)
    (task,) = srv.server._tasks.values()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled() and 1 not in srv.replies


async def test_unknown_metadata_is_ignored(srv: ServerUnderTest) -> None:
    srv.request(1, Request("test.Svc", "Echo", b"ab", metadata=(("traceparent", "00-x"), ("x-foo", ""))))
    assert await srv.reply(1) == Response(None, b"ba")


async def test_malformed_envelope(srv: ServerUnderTest) -> None:
    srv.server.receive([Frame(1, 1, 0, b"\x0a\x09ab")])
    resp = await srv.reply(1)
    assert resp.status is not None and resp.status.code == 3
    assert "malformed ttrpc request" in resp.status.message


async def test_aclose_cancels_running_handlers(srv: ServerUnderTest) -> None:
    srv.request(1, Request("test.Svc", "Slow"))
    await asyncio.sleep(0.01)
    assert "active=1" in repr(srv.server)
    await srv.server.aclose()
    assert srv.impl.cancelled == 1


# --- client ----------------------------------------------------------------------------------


class ClientUnderTest:
    def __init__(self) -> None:
        self.sent: list[Frame] = []
        self.dec = FrameDecoder()
        self.client = TtrpcClient(send=self._send, drain=self._drain)

    def _send(self, msg: bytes) -> None:
        for f in self.dec.feed(msg):
            assert isinstance(f, Frame)
            self.sent.append(f)

    async def _drain(self) -> None:
        await asyncio.sleep(0)


async def test_client_stream_ids_and_status() -> None:
    c = ClientUnderTest()
    t1 = asyncio.create_task(c.client.call("s.S", "A", b"1", timeout_s=2))
    t2 = asyncio.create_task(c.client.call("s.S", "B", b"2"))
    await asyncio.sleep(0.01)
    assert [f.stream_id for f in c.sent] == [1, 3]
    assert c.sent[0].data == encode_request(Request("s.S", "A", b"1", 2_000_000_000))
    # answer out of order: 3 with an error, then 1 OK
    c.client.receive([Frame(3, 2, 0, b"\x0a\x05\x08\x09\x12\x01e")])
    c.client.receive([Frame(1, 2, 0, b"\x12\x02ok")])
    assert await t1 == b"ok"
    with pytest.raises(RpcError) as info:
        await t2
    assert (info.value.code, info.value.message) == (9, "e")


async def test_client_timeout_and_close() -> None:
    c = ClientUnderTest()
    with pytest.raises(RpcError) as info:
        await c.client.call("s.S", "A", b"", timeout_s=0.05)
    assert info.value.code == 4
    pending = asyncio.create_task(c.client.call("s.S", "B", b""))
    await asyncio.sleep(0.01)
    c.client.close(ConnectionResetError("peer gone"))
    with pytest.raises(RpcError) as info:
        await pending
    assert info.value.code == 14 and "peer gone" in info.value.message
    with pytest.raises(RpcError):
        await c.client.call("s.S", "C", b"")
    assert c.client.closed and "closed" in repr(c.client)
