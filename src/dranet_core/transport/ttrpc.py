"""ttrpc unary client and server over any ordered message transport (an NRI mux connection).

Both ends are driven the same way: the transport calls :meth:`receive` with the frames one
read completed, and the end calls ``send(message_bytes)`` (a synchronous append of one whole
ttrpc message, header included) and ``await drain()``.

Server (:class:`TtrpcServer`) rules, as containerd/ttrpc's Go server:

* each Request runs in its own task; the task is tracked and cancelled by :meth:`aclose`;
* stream ids must be odd and strictly increasing, else INVALID_ARGUMENT on that id;
* unknown service → UNIMPLEMENTED ``service <name>``; unknown method → UNIMPLEMENTED
  ``method <name>``; a Data frame (streaming) → INVALID_ARGUMENT; an oversized request →
  RESOURCE_EXHAUSTED; unknown metadata is ignored;
* ``timeout_nano`` becomes the handler's deadline (loop time, passed to the handler): when it
  passes, the handler is cancelled and DEADLINE_EXCEEDED is answered (the deadlines of all
  requests share one loop timer, :class:`~dranet_core.transport.deadlines.Deadlines`);
* a handler raising :class:`~dranet_core.errors.RpcError` answers with its code and message;
  any other exception answers UNKNOWN (2) with the exception text;
* an OK answer leaves ``status`` absent.

Client (:class:`TtrpcClient`): odd stream ids from 1, +2 per call; a call waits for the
Response on its id; a non-OK status raises RpcError; a local timeout raises RpcError
DEADLINE_EXCEEDED and sends ``timeout_nano`` so the server knows it too; a closed connection
fails every pending call with RpcError UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from dranet_core.errors import DranetError, LocalProtocolError, ProtocolError, RpcError
from dranet_core.transport.deadlines import Deadlines
from dranet_core.wire.ttrpc import (
    MAX_MESSAGE_LENGTH,
    MESSAGE_TYPE_DATA,
    MESSAGE_TYPE_REQUEST,
    MESSAGE_TYPE_RESPONSE,
    Frame,
    OversizedFrame,
    Request,
    Response,
    Status,
    decode_request,
    decode_response,
    encode_frame,
    encode_request,
    encode_response,
)

__all__ = [
    "CANCELLED",
    "DEADLINE_EXCEEDED",
    "INTERNAL",
    "INVALID_ARGUMENT",
    "RESOURCE_EXHAUSTED",
    "UNAVAILABLE",
    "UNIMPLEMENTED",
    "UNKNOWN",
    "Handler",
    "TtrpcClient",
    "TtrpcServer",
]

log = logging.getLogger(__name__)

CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
RESOURCE_EXHAUSTED = 8
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14

Handler = Callable[[bytes, float | None], Awaitable[bytes]]
"""A method: (request payload, deadline as loop time or None) -> response payload."""

Send = Callable[[bytes], None]
Drain = Callable[[], Awaitable[None]]


class _Expiry:
    """A request's deadline: cancels the request's task when it is reached."""

    __slots__ = ("fired", "task")

    def __init__(self, task: asyncio.Task[object] | None) -> None:
        self.task = task
        self.fired = False

    def fire(self) -> None:
        if self.task is not None and not self.task.done():
            self.fired = True
            self.task.cancel()

    def uncancel(self) -> int:
        """Withdraw our cancellation; return how many others are still pending on the task."""
        return self.task.uncancel() if self.task is not None else 0


class TtrpcServer:
    """Serves ``services[service][method]`` handlers on one ttrpc connection."""

    def __init__(self, services: Mapping[str, Mapping[str, Handler]], send: Send, drain: Drain) -> None:
        self._services = services
        self._send = send
        self._drain = drain
        self._last_stream = 0
        self._tasks: dict[int, asyncio.Task[None]] = {}
        """Running requests by stream id; each removes itself when it ends."""
        self._loop: asyncio.AbstractEventLoop | None = None
        """The loop of the first request (one connection, one loop; asyncio.get_running_loop
        costs a getpid() system call each time)."""
        self._deadlines = Deadlines()
        self._closed = False
        self.requests = 0
        """Requests received (including rejected ones)."""

    def __repr__(self) -> str:
        return (
            f"<TtrpcServer services={sorted(self._services)} active={len(self._tasks)} seen={self.requests}>"
        )

    def receive(self, frames: list[Frame | OversizedFrame]) -> None:
        """Handle the frames of one read (called by the transport's reader)."""
        for f in frames:
            if self._closed:
                return
            if f.type == MESSAGE_TYPE_REQUEST:
                self.requests += 1
                if not self._check_stream(f.stream_id):
                    continue
                if isinstance(f, OversizedFrame):
                    self._reply(
                        f.stream_id,
                        Status(
                            RESOURCE_EXHAUSTED,
                            f"message length {f.length} exceed maximum message size of {MAX_MESSAGE_LENGTH}",
                        ),
                    )
                    continue
                loop = self._loop
                if loop is None:
                    loop = self._loop = asyncio.get_running_loop()
                self._tasks[f.stream_id] = loop.create_task(
                    self._serve(loop, f.stream_id, f.data), name=f"ttrpc-request-{f.stream_id}"
                )
            elif f.type == MESSAGE_TYPE_DATA:
                self._reply(f.stream_id, Status(INVALID_ARGUMENT, "StreamID is no longer active"))
            else:
                log.debug("ttrpc server: ignoring message type %d on stream %d", f.type, f.stream_id)

    def _check_stream(self, sid: int) -> bool:
        if sid % 2 == 0:
            self._reply(sid, Status(INVALID_ARGUMENT, "StreamID must be odd for client initiated streams"))
            return False
        if sid <= self._last_stream:
            self._reply(sid, Status(INVALID_ARGUMENT, "StreamID cannot be re-used and must increment"))
            return False
        self._last_stream = sid
        return True

    def _reply(self, sid: int, status: Status | None, payload: bytes = b"") -> None:
        if self._closed:
            return
        try:
            body = encode_response(Response(status, payload))
            if len(body) > MAX_MESSAGE_LENGTH:
                body = encode_response(
                    Response(
                        Status(
                            RESOURCE_EXHAUSTED, f"response of {len(body)} bytes exceeds {MAX_MESSAGE_LENGTH}"
                        )
                    )
                )
            self._send(encode_frame(Frame(sid, MESSAGE_TYPE_RESPONSE, 0, body)))
        except (ConnectionError, LocalProtocolError) as exc:
            log.debug("ttrpc server: cannot answer stream %d: %s", sid, exc)

    async def _serve(self, loop: asyncio.AbstractEventLoop, sid: int, data: bytes) -> None:
        try:
            status: Status | None = None
            payload = b""
            try:
                req = decode_request(data)
                payload, status = await self._dispatch(loop, req)
            except ProtocolError as exc:
                status = Status(INVALID_ARGUMENT, f"malformed ttrpc request: {exc}")
            self._reply(sid, status, payload)
            with contextlib.suppress(ConnectionError):
                await self._drain()
        finally:
            # here rather than a done-callback, which would cost the loop one more turn per call
            self._tasks.pop(sid, None)

    async def _dispatch(self, loop: asyncio.AbstractEventLoop, req: Request) -> tuple[bytes, Status | None]:
        methods = self._services.get(req.service)
        if methods is None:
            return b"", Status(UNIMPLEMENTED, f"service {req.service}")
        handler = methods.get(req.method)
        if handler is None:
            return b"", Status(UNIMPLEMENTED, f"method {req.method}")
        deadline: float | None = None
        expiry: _Expiry | None = None
        key = 0
        if req.timeout_nano > 0:
            deadline = loop.time() + req.timeout_nano / 1e9
            expiry = _Expiry(asyncio.current_task(loop))
            key = self._deadlines.add(deadline, expiry.fire, loop)
        try:
            return await handler(req.payload, deadline), None
        except asyncio.CancelledError:
            if expiry is None or not expiry.fired or expiry.uncancel():
                raise  # not (only) our deadline: aclose, or the task was cancelled from outside
            return b"", Status(DEADLINE_EXCEEDED, f"{req.service}/{req.method}: deadline exceeded")
        except TimeoutError:
            return b"", Status(DEADLINE_EXCEEDED, f"{req.service}/{req.method}: deadline exceeded")
        except RpcError as exc:
            return b"", Status(exc.code or UNKNOWN, exc.message)
        except DranetError as exc:
            return b"", Status(UNKNOWN, str(exc))
        except Exception as exc:  # a handler bug must answer, not kill the connection
            log.exception("ttrpc handler %s/%s failed", req.service, req.method)
            return b"", Status(UNKNOWN, f"{type(exc).__name__}: {exc}")
        finally:
            if expiry is not None:
                self._deadlines.cancel(key)

    def close(self) -> None:
        """Stop answering; running handlers are cancelled by :meth:`aclose`."""
        self._closed = True

    async def aclose(self) -> None:
        """Cancel running handlers and wait for them."""
        self._closed = True
        self._deadlines.close()
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class TtrpcClient:
    """Makes unary calls on one ttrpc connection."""

    def __init__(self, send: Send, drain: Drain) -> None:
        self._send = send
        self._drain = drain
        self._next_stream = 1
        self._pending: dict[int, asyncio.Future[Response]] = {}
        self._closed: BaseException | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<TtrpcClient {state} next_stream={self._next_stream} pending={len(self._pending)}>"

    @property
    def closed(self) -> bool:
        """True once the connection under the client is gone."""
        return self._closed is not None

    async def call(
        self,
        service: str,
        method: str,
        payload: bytes,
        *,
        timeout_s: float | None = None,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> bytes:
        """Call ``service/method``; return the response payload or raise RpcError."""
        if self._closed is not None:
            raise RpcError(UNAVAILABLE, f"{service}/{method}: connection closed")
        sid = self._next_stream
        self._next_stream += 2
        tn = int(timeout_s * 1e9) if timeout_s is not None and timeout_s > 0 else 0
        body = encode_request(Request(service, method, payload, tn, metadata))
        message = encode_frame(Frame(sid, MESSAGE_TYPE_REQUEST, 0, body))  # LocalProtocolError if too big
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[sid] = fut
        try:
            try:
                self._send(message)
            except ConnectionError as exc:
                raise RpcError(UNAVAILABLE, f"{service}/{method}: {exc}") from exc
            try:
                async with asyncio.timeout(timeout_s):
                    await self._drain()
                    resp = await fut
            except TimeoutError:
                raise RpcError(DEADLINE_EXCEEDED, f"{service}/{method}: no answer in {timeout_s}s") from None
            except ConnectionError as exc:
                raise RpcError(UNAVAILABLE, f"{service}/{method}: {exc}") from exc
        finally:
            self._pending.pop(sid, None)
        if resp.status is not None and resp.status.code != 0:
            raise RpcError(resp.status.code, resp.status.message)
        return resp.payload

    def receive(self, frames: list[Frame | OversizedFrame]) -> None:
        """Resolve pending calls with the responses of one read."""
        for f in frames:
            if f.type != MESSAGE_TYPE_RESPONSE:
                log.debug("ttrpc client: ignoring message type %d on stream %d", f.type, f.stream_id)
                continue
            fut = self._pending.get(f.stream_id)
            if fut is None or fut.done():
                log.debug("ttrpc client: response for unknown stream %d dropped", f.stream_id)
                continue
            if isinstance(f, OversizedFrame):
                too_big = Status(RESOURCE_EXHAUSTED, f"response of {f.length} bytes too large")
                fut.set_result(Response(too_big))
                continue
            try:
                fut.set_result(decode_response(f.data))
            except ProtocolError as exc:
                fut.set_result(Response(Status(INTERNAL, f"malformed ttrpc response: {exc}")))

    def close(self, exc: BaseException | None = None) -> None:
        """Fail every pending call with UNAVAILABLE; later calls fail at once."""
        reason = f"connection closed: {exc}" if exc else "connection closed"
        self._closed = exc or ConnectionResetError(reason)
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(RpcError(UNAVAILABLE, reason))
