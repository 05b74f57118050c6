"""The test runtime peer: its protobuf encoder writes the bytes the encoding spec gives, and a
call the plugin never answers times out as the runtime's does."""

from __future__ import annotations

import asyncio
import pathlib
import socket
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dranet_core.testing import nri_wire as pb
from dranet_core.testing.nri_runtime import PeerSession, RuntimePeer


def reference_varint(n: int) -> bytes:
    """A varint, one 7-bit group at a time, least significant first (the spec, spelled out)."""
    n &= (1 << 64) - 1
    groups = [n & 0x7F]
    n >>= 7
    while n:
        groups.append(n & 0x7F)
        n >>= 7
    return bytes([g | 0x80 for g in groups[:-1]] + [groups[-1]])


def reference_encode(fields: list[tuple[int, Any]]) -> bytes:
    out = b""
    for num, value in fields:
        if isinstance(value, bool | int):
            out += reference_varint(num << 3) + reference_varint(int(value))
        else:
            raw = (
                value.encode()
                if isinstance(value, str)
                else value
                if isinstance(value, bytes)
                else reference_encode(value)
            )
            out += reference_varint(num << 3 | 2) + reference_varint(len(raw)) + raw
    return out


scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1),
    st.text(max_size=200),
    st.binary(max_size=300),
)
messages = st.recursive(
    st.lists(st.tuples(st.integers(1, 1 << 20), scalars), max_size=8),
    lambda inner: st.lists(st.tuples(st.integers(1, 1 << 20), st.one_of(scalars, inner)), max_size=6),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(messages)
def test_encode_writes_the_spec_bytes(fields: list[tuple[int, Any]]) -> None:
    assert pb.encode(fields) == reference_encode(fields)


def test_varint_edges() -> None:
    for n in (0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, (1 << 63) - 1, (1 << 64) - 1, -1, -(1 << 63)):
        assert pb.varint(n) == reference_varint(n), n
    assert pb.varint(-1) == b"\xff" * 9 + b"\x01"


def test_encode_then_decode_gives_the_fields_back() -> None:
    msg = pb.encode([(1, "pod"), (2, 4242), (3, [(1, "k"), (2, "v")]), (1, b"\x00\xff"), (4, True)])
    got = pb.decode(msg)
    assert got[1] == [b"pod", b"\x00\xff"] and got[2] == [4242] and got[4] == [1]
    assert pb.decode(got[3][0]) == {1: [b"k"], 2: [b"v"]}  # type: ignore[arg-type]


async def test_a_call_the_plugin_never_answers_times_out_and_closes_the_connection(
    tmp_path: pathlib.Path,
) -> None:
    """As the runtime does: a plugin that misses the request timeout is dropped."""
    a, b = socket.socketpair()
    try:
        reader, writer = await asyncio.open_connection(sock=a)
        session = PeerSession(RuntimePeer(str(tmp_path / "nri.sock"), request_timeout=0.05), reader, writer)
        result = await session.call("RunPodSandbox", b"")
        assert result.timed_out and result.code == -1
        assert session.closed.is_set() and session.pending == {}
        b.setblocking(False)
        assert b.recv(1 << 16)  # the request was written before the wait began
    finally:
        b.close()
        a.close()
