"""The container runtime, as a test peer: the runtime's side of NRI (containerd's adaptation).

It plays containerd toward an NRI plugin: it listens on a unix socket (the runtime's
``nri.sock``), accepts one plugin connection at a time and speaks NRI over ttrpc over the
connection multiplexer: it waits for ``RegisterPlugin`` (checking the plugin's name and
index), sends ``Configure`` (checking the event mask the plugin returns against the runtime
era's valid events; 0 means all), then ``Synchronize`` (optionally split in several messages,
checking the ``more`` rule), after which the plugin is ready and a test drives pod and
container events through :class:`PeerSession` (``run_pod_sandbox``, ``stop_pod_sandbox``,
``remove_pod_sandbox``, ``create_container``; each returns a :class:`Result`). It also serves
the runtime service the plugin may call (``UpdateContainers`` is recorded in ``updates``).

It is written from the wire facts of NRI and shares no code with the driver's NRI plugin: its
own protobuf codec (:mod:`dranet_core.testing.nri_wire`, field numbers only), its own ttrpc
and mux framing. It reads each logical connection the way containerd's Go code does (a queue of
at most 256 frames per connection, read through a 4096-byte buffered reader, where a mux frame
larger than the buffer it is read into is ENOMEM and that connection never answers again), so
a plugin that breaks the sender rule fails here as it would on a node; ``violations`` lists
each protocol rule the plugin broke.

:class:`Era` says which runtime it pretends to be (:data:`ERA_V0_9`: containerd 2.0 with NRI
before v0.12, no dedicated pod RPCs; :data:`ERA_V0_12`: containerd 2.3 with NRI v0.12).
:class:`FakePod` and :class:`FakeContainer` are the pods and containers it reports.

Usage (in an async test)::

    peer = RuntimePeer(socket_path, era=ERA_V0_12)
    await peer.start()
    ...  # start the driver with --nri-socket-path=socket_path
    session = await peer.wait_ready()
    result = await session.run_pod_sandbox(FakePod(id="sb1", name="p", uid="u1", netns=path))
    assert result.code == 0, result.message
    await peer.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
from collections import deque
from dataclasses import dataclass, field

from dranet_core.testing import nri_wire as pb

PLUGIN = "nri.pkg.api.v1alpha1.Plugin"
RUNTIME = "nri.pkg.api.v1alpha1.Runtime"
MAX_MSG = 4 << 20
UNIMPLEMENTED = 12


class Enomem(Exception):
    """A mux frame larger than the buffer Go reads it into: that connection is dead."""


@dataclass
class Era:
    """What kind of runtime the peer pretends to be."""

    runtime_name: str
    runtime_version: str
    nri_version: str  # "" for runtimes before NRI v0.12 (field absent)
    valid_events: int
    dedicated_rpcs: bool


ERA_V0_9 = Era("containerd", "v2.0.5", "", 0x7FF, dedicated_rpcs=False)
ERA_V0_12 = Era("containerd", "v2.3.1", "v0.12.2", 0x3FFF, dedicated_rpcs=True)


_TRACE_HEADER: pb.Value = [(1, "traceparent"), (2, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
"""The metadata entry every call carries (containerd propagates a W3C trace context)."""


def _expire(fut: asyncio.Future[tuple[int, str, bytes]]) -> None:
    """A call's timeout: its reply did not come in time."""
    if not fut.done():
        fut.set_exception(TimeoutError())


@dataclass
class FakePod:
    """A pod sandbox as the runtime reports it (``netns`` is its network namespace path)."""

    id: str
    name: str
    uid: str
    namespace: str = "default"
    netns: str | None = None
    ips: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=lambda: {"app": "demo", "io.kubernetes.pod.name": "x"})

    def fields(self) -> list[tuple[int, pb.Value]]:
        linux: list[tuple[int, pb.Value]] = [(3, "/kubepods/besteffort"), (4, "/kubepods/besteffort/pod")]
        linux.append((5, [(1, "ipc"), (2, "/proc/1/ns/ipc")]))
        if self.netns is not None:
            linux.append((5, [(1, "network"), (2, self.netns)]))
        out: list[tuple[int, pb.Value]] = [(1, self.id), (2, self.name), (3, self.uid), (4, self.namespace)]
        for k, v in self.labels.items():
            out.append((5, [(1, k), (2, v)]))
        out += [(6, [(1, "kubernetes.io/config.seen"), (2, "2026-01-01")]), (7, "runc"), (8, linux)]
        out.append((9, 4242))
        out += [(10, ip) for ip in self.ips]
        return out


@dataclass
class FakeContainer:
    """A container of pod sandbox ``pod_sandbox_id``, as the runtime reports it."""

    id: str
    pod_sandbox_id: str
    name: str

    def fields(self) -> list[tuple[int, pb.Value]]:
        return [
            (1, self.id),
            (2, self.pod_sandbox_id),
            (3, self.name),
            (4, 3),
            (7, "sleep"),
            (7, "inf"),
            (8, "PATH=/bin"),
            (12, 4343),
        ]


@dataclass
class Result:
    """The plugin's answer to one call: ttrpc status ``code`` (0 = OK) and ``message``, the
    reply ``payload``, and ``via`` (which RPC carried it)."""

    via: str
    code: int
    message: str = ""
    payload: bytes = b""
    timed_out: bool = False


class GoConnReader:
    """containerd's read path of one logical connection: queue(256) + bufio.Reader(4096)."""

    def __init__(self) -> None:
        self.frames: deque[bytes] = deque()
        self.buf = b""
        self.cond = asyncio.Event()
        self.closed = False

    def push(self, payload: bytes) -> None:
        if len(self.frames) >= 256:
            raise OverflowError("failed to queue payload for reading (256 frames)")
        self.frames.append(payload)
        self.cond.set()

    async def _conn_read(self, cap: int) -> bytes:
        while not self.frames:
            if self.closed:
                raise EOFError
            self.cond.clear()
            await self.cond.wait()
        frame = self.frames.popleft()
        if len(frame) > cap:
            raise Enomem(f"mux frame of {len(frame)} bytes read into a {cap}-byte buffer")
        return frame

    async def read(self, n: int) -> bytes:
        if self.buf:
            out, self.buf = self.buf[:n], self.buf[n:]
            return out
        if n >= 4096:
            return await self._conn_read(n)
        data = await self._conn_read(4096)
        out, self.buf = data[:n], data[n:]
        return out

    async def read_full(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += await self.read(n - len(out))
        return out


def go_frames(conn_id: int, msg: bytes) -> bytes:
    """What Go's bufio.Writer(4096) over the mux emits for one message: 4096 + rest."""
    chunks = [msg[:4096]] + ([msg[4096:]] if len(msg) > 4096 else [])
    return b"".join(struct.pack(">II", conn_id, len(c)) + c for c in chunks)


def ttrpc_msg(sid: int, mtype: int, data: bytes) -> bytes:
    return struct.pack(">IIBB", len(data), sid, mtype, 0) + data


class PeerSession:
    """One plugin connection as the runtime sees it."""

    def __init__(self, peer: RuntimePeer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peer = peer
        self.reader = reader
        self.writer = writer
        self.conns = {1: GoConnReader(), 2: GoConnReader()}
        self.next_sid = 1
        self.pending: dict[int, asyncio.Future[tuple[int, str, bytes]]] = {}
        self.registered = asyncio.Event()
        self.ready = asyncio.Event()
        self.closed = asyncio.Event()
        self.plugin_name = ""
        self.plugin_idx = ""
        self.events = -1
        self.violations: list[str] = []
        self.updates: list[dict[int, list[int | bytes]]] = []
        self.max_frame_sizes: dict[int, int] = {1: 0, 2: 0}
        self.tasks: list[asyncio.Task[None]] = []
        self.sync_replies: list[dict[int, list[int | bytes]]] = []
        self.last_runtime_sid = 0
        self.deferred_register_reply: int | None = None

    # ---- plumbing
    def write_msg(self, conn_id: int, msg: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(go_frames(conn_id, msg))

    async def trunk_reader(self) -> None:
        try:
            while True:
                hdr = await self.reader.readexactly(8)
                conn_id, n = struct.unpack(">II", hdr)
                payload = await self.reader.readexactly(n)
                conn = self.conns.get(conn_id)
                if conn is None:
                    continue  # not open: dropped, as Go does
                self.max_frame_sizes[conn_id] = max(self.max_frame_sizes[conn_id], n)
                conn.push(payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except OverflowError as exc:
            self.violations.append(str(exc))
        finally:
            for c in self.conns.values():
                c.closed = True
                c.cond.set()
            self.close()

    async def ttrpc_reader(self, conn_id: int) -> None:
        conn = self.conns[conn_id]
        try:
            while True:
                hdr = await conn.read_full(10)
                length, sid, mtype, _flags = struct.unpack(">IIBB", hdr)
                if length > MAX_MSG:
                    await conn.read_full(length)  # Go discards it
                    self.violations.append(f"oversized ttrpc message {length}")
                    continue
                data = await conn.read_full(length)
                if conn_id == 1 and mtype == 2:
                    fut = self.pending.pop(sid, None)
                    if fut is not None and not fut.done():
                        resp = pb.decode(data)
                        st = pb.decode(pb.first(resp, 1, b""))  # type: ignore[arg-type]
                        code = int(pb.first(st, 1, 0))
                        message = pb.text(st, 2) if 2 in st else ""
                        fut.set_result((code, message, bytes(pb.first(resp, 2, b""))))
                elif conn_id == 2 and mtype == 1:
                    if sid % 2 == 0 or sid <= self.last_runtime_sid:  # Go: InvalidArgument
                        self.violations.append(f"bad stream id {sid} after {self.last_runtime_sid}")
                    self.last_runtime_sid = sid
                    self.serve_runtime(sid, pb.decode(data))
                else:
                    self.violations.append(f"unexpected ttrpc type {mtype} on conn {conn_id}")
        except Enomem as exc:
            self.violations.append(f"ENOMEM on conn {conn_id}: {exc}")  # this conn is dead now
        except EOFError:
            pass

    def reply(self, sid: int, code: int = 0, message: str = "", payload: bytes = b"") -> None:
        fields: list[tuple[int, pb.Value]] = []
        if code:
            fields.append((1, [(1, code), (2, message)]))
        if payload:
            fields.append((2, payload))
        self.write_msg(2, ttrpc_msg(sid, 2, pb.encode(fields)))

    def serve_runtime(self, sid: int, req: dict[int, list[int | bytes]]) -> None:
        service, method = pb.text(req, 1), pb.text(req, 2)
        payload = bytes(pb.first(req, 3, b""))
        if service != RUNTIME:
            self.reply(sid, UNIMPLEMENTED, f"service {service}")
        elif method == "RegisterPlugin":
            r = pb.decode(payload)
            name = pb.text(r, 1) if 1 in r else ""
            idx = pb.text(r, 2) if 2 in r else ""
            if not name or not re.fullmatch(r"[a-zA-Z0-9_.+-]+", name):
                self.reply(sid, 2, f"invalid plugin name {name!r}")
                return
            if not re.fullmatch(r"[0-9]{2}", idx):
                self.reply(sid, 2, f"invalid plugin index {idx!r}")
                return
            self.plugin_name, self.plugin_idx = name, idx
            if self.peer.configure_before_register_reply:
                self.deferred_register_reply = sid  # answered only after Configure (trap 3)
            else:
                self.reply(sid)
            self.registered.set()
        elif method == "UpdateContainers":
            self.updates.append(pb.decode(payload))
            self.reply(sid)
        else:
            self.reply(sid, UNIMPLEMENTED, f"method {method}")

    async def call(self, method: str, payload: bytes) -> Result:
        """Call the plugin; on timeout close it, as the runtime does (a fatal error)."""
        timeout = self.peer.request_timeout
        sid = self.next_sid
        self.next_sid += 2
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[int, str, bytes]] = loop.create_future()
        self.pending[sid] = fut
        req = pb.encode(
            [
                (1, PLUGIN),
                (2, method),
                (3, payload),
                (4, int(timeout * 1e9)),
                (5, _TRACE_HEADER),
            ]
        )
        self.write_msg(1, ttrpc_msg(sid, 1, req))
        timer = loop.call_later(timeout, _expire, fut)  # one timer, no wrapping task (wait_for's)
        try:
            code, message, data = await fut
        except TimeoutError:
            self.pending.pop(sid, None)
            self.close()
            return Result(method, -1, "timeout", timed_out=True)
        finally:
            timer.cancel()
        return Result(method, code, message, data)

    def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        self.closed.set()
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionResetError("closed"))
        self.pending.clear()

    # ---- the runtime's side of the protocol
    def fail(self, violation: str) -> bool:
        """Record a violation and drop the plugin, as the runtime does; returns False."""
        self.violations.append(violation)
        self.close()
        return False

    async def handshake(self) -> None:
        try:
            await asyncio.wait_for(self.registered.wait(), self.peer.registration_timeout)
        except TimeoutError:
            self.fail("no RegisterPlugin")
            return
        if self.peer.stall_after_register:
            return  # a runtime that never configures the plugin
        if await self.configure() and await self.synchronize():
            self.ready.set()

    async def configure(self) -> bool:
        era = self.peer.era
        cfg: list[tuple[int, pb.Value]] = [
            (2, era.runtime_name),
            (3, era.runtime_version),
            (4, int(self.peer.registration_timeout * 1000)),
            (5, int(self.peer.request_timeout * 1000)),
        ]
        if era.nri_version:
            cfg.append((6, era.nri_version))
        res = await self.call("Configure", pb.encode(cfg))
        if res.code != 0:
            return self.fail(f"Configure failed: {res.code} {res.message}")
        if self.deferred_register_reply is not None:
            self.reply(self.deferred_register_reply)
            self.deferred_register_reply = None
        events = int(pb.first(pb.decode(res.payload), 2, 0))
        if events & ~era.valid_events:
            return self.fail(f"invalid plugin events: {events:#x}")
        self.events = era.valid_events if events == 0 else events
        return True

    async def synchronize(self) -> bool:
        pods, ctrs = self.peer.sync_pods, self.peer.sync_containers
        chunk = self.peer.sync_chunk
        parts: list[tuple[list[FakePod], list[FakeContainer]]] = []
        if chunk is None:
            parts.append((pods, ctrs))
        else:
            for i in range(0, max(len(pods), 1), chunk):
                parts.append((pods[i : i + chunk], []))
            parts.append(([], ctrs))
        for n, (ps, cs) in enumerate(parts):
            more = n < len(parts) - 1
            fields: list[tuple[int, pb.Value]] = [(1, p.fields()) for p in ps]
            fields += [(2, c.fields()) for c in cs]
            if more:
                fields.append((3, 1))
            res = await self.call("Synchronize", pb.encode(fields))
            if res.code != 0:
                return self.fail(f"Synchronize failed: {res.code} {res.message}")
            reply = pb.decode(res.payload)
            self.sync_replies.append(reply)
            if more and (not pb.first(reply, 2, 0) or 1 in reply):
                return self.fail("plugin does not handle split sync requests")
        return True

    async def pod_event(self, event: int, method: str, pod: FakePod) -> Result:
        era = self.peer.era
        if era.dedicated_rpcs:
            res = await self.call(method, pb.encode([(1, pod.fields())]))
            if res.code != UNIMPLEMENTED:
                return res
        res = await self.call("StateChange", pb.encode([(1, event), (2, pod.fields())]))
        res.via = "StateChange"
        return res

    async def run_pod_sandbox(self, pod: FakePod) -> Result:
        return await self.pod_event(1, "RunPodSandbox", pod)

    async def stop_pod_sandbox(self, pod: FakePod) -> Result:
        return await self.pod_event(2, "StopPodSandbox", pod)

    async def remove_pod_sandbox(self, pod: FakePod) -> Result:
        return await self.pod_event(3, "RemovePodSandbox", pod)

    async def create_container(self, pod: FakePod, ctr: FakeContainer) -> Result:
        return await self.call("CreateContainer", pb.encode([(1, pod.fields()), (2, ctr.fields())]))

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)


def adjustment_devices(payload: bytes) -> list[dict[str, object]]:
    """LinuxDevices of CreateContainerResponse.adjust.linux.devices, decoded by field number."""
    resp = pb.decode(payload)
    if 1 not in resp:
        return []
    adjust = pb.decode(resp[1][0])  # type: ignore[arg-type]
    if 6 not in adjust:
        return []
    linux = pb.decode(adjust[6][0])  # type: ignore[arg-type]
    out = []
    for raw in linux.get(1, []):
        d = pb.decode(raw)  # type: ignore[arg-type]

        def opt(num: int, d: dict[int, list[int | bytes]] = d) -> int | None:
            return int(pb.first(pb.decode(d[num][0]), 1, 0)) if num in d else None  # type: ignore[arg-type]

        out.append(
            {
                "path": pb.text(d, 1),
                "type": pb.text(d, 2),
                "major": int(pb.first(d, 3, 0)),
                "minor": int(pb.first(d, 4, 0)),
                "file_mode": opt(5),
                "uid": opt(6),
                "gid": opt(7),
            }
        )
    return out


class RuntimePeer:
    """Listens on a unix socket like containerd's NRI; one plugin connection at a time."""

    def __init__(
        self,
        socket_path: str,
        *,
        era: Era = ERA_V0_12,
        request_timeout: float = 2.0,
        registration_timeout: float = 5.0,
    ) -> None:
        self.socket_path = socket_path
        self.era = era
        self.request_timeout = request_timeout
        self.registration_timeout = registration_timeout
        self.sync_pods: list[FakePod] = []
        self.sync_containers: list[FakeContainer] = []
        self.sync_chunk: int | None = None
        self.stall_after_register = False
        self.configure_before_register_reply = False
        self.sessions: list[PeerSession] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._new_session = asyncio.Condition()

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._accept, path=self.socket_path)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        if me is not None:
            self._handlers.add(me)
        s = PeerSession(self, reader, writer)
        self.sessions.append(s)
        s.tasks = [
            asyncio.create_task(s.trunk_reader()),
            asyncio.create_task(s.ttrpc_reader(1)),
            asyncio.create_task(s.ttrpc_reader(2)),
        ]
        async with self._new_session:
            self._new_session.notify_all()
        try:
            await s.handshake()
            await s.closed.wait()
        finally:
            s.close()
            for t in s.tasks:
                t.cancel()
            await asyncio.gather(*s.tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if me is not None:
                self._handlers.discard(me)

    async def wait_sessions(self, count: int) -> None:
        """Wait (10 s at most) until ``count`` plugin connections were accepted."""
        async with asyncio.timeout(10), self._new_session:
            await self._new_session.wait_for(lambda: len(self.sessions) >= count)

    async def wait_ready(self, count: int = 1) -> PeerSession:
        """Wait (10 s at most) until the ``count``-th session (1-based) has completed Synchronize."""
        async with asyncio.timeout(10):
            async with self._new_session:
                await self._new_session.wait_for(lambda: len(self.sessions) >= count)
            s = self.sessions[count - 1]
            ready = asyncio.ensure_future(s.ready.wait())
            closed = asyncio.ensure_future(s.closed.wait())
            try:
                await asyncio.wait({ready, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ready.cancel()
                closed.cancel()
                await asyncio.gather(ready, closed, return_exceptions=True)
            return s

    async def stop_listening(self) -> None:
        """Runtime goes away: stop accepting and drop every plugin connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for s in self.sessions:
            s.close()

    async def aclose(self) -> None:
        await self.stop_listening()
        for s in self.sessions:
            for t in s.tasks:
                t.cancel()
            await asyncio.gather(*s.tasks, return_exceptions=True)
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5)
