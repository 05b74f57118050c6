"""Random and mutated input to the decoders: only our protocol error, bounded memory, no hang."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from dranet_core.errors import ProtocolError
from dranet_core.wire.mux import HEADER_LENGTH as MUX_HEADER
from dranet_core.wire.mux import MAX_PAYLOAD, MuxDecoder, frames_for_message
from dranet_core.wire.ttrpc import (
    HEADER_LENGTH,
    MAX_MESSAGE_LENGTH,
    Frame,
    FrameDecoder,
    Request,
    Response,
    Status,
    decode_request,
    decode_response,
    encode_frame,
    encode_request,
    encode_response,
)

VALID = encode_frame(Frame(3, 1, 0, encode_request(Request("svc", "M", b"payload", 5, (("a", "b"),)))))


def chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in [*points, len(data)]:
        out.append(data[prev:p])
        prev = p
    return out


def run_ttrpc(data: bytes, cuts: list[int]) -> None:
    dec = FrameDecoder()
    try:
        for c in chunks(data, cuts):
            for f in dec.feed(c):
                if isinstance(f, Frame):
                    for fn in (decode_request, decode_response):
                        with contextlib.suppress(ProtocolError):
                            fn(f.data)
            assert dec.buffered <= HEADER_LENGTH + MAX_MESSAGE_LENGTH
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=2000)  # ms: a hang fails, a busy CI core does not
@given(st.binary(max_size=2048), st.lists(st.integers(min_value=0), max_size=8))
def test_random_bytes_to_ttrpc(data: bytes, cuts: list[int]) -> None:
    run_ttrpc(data, cuts)


@settings(max_examples=300, deadline=2000)  # ms: a hang fails, a busy CI core does not
@given(st.binary(max_size=2048), st.lists(st.integers(min_value=0), max_size=8))
def test_random_bytes_to_mux(data: bytes, cuts: list[int]) -> None:
    dec = MuxDecoder()
    try:
        for c in chunks(data, cuts):
            dec.feed(c)
            assert dec.buffered <= MUX_HEADER + MAX_PAYLOAD
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=2000)  # ms: a hang fails, a busy CI core does not
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=len(VALID) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.integers(min_value=0), max_size=4),
)
def test_mutated_frames(mutations: list[tuple[int, int]], cuts: list[int]) -> None:
    data = bytearray(VALID * 2)
    for pos, val in mutations:
        data[pos] = val
    run_ttrpc(bytes(data), cuts)
    with contextlib.suppress(ProtocolError):
        MuxDecoder().feed(frames_for_message(1, bytes(data)))


@settings(max_examples=200, deadline=2000)  # ms: a hang fails, a busy CI core does not
@given(st.binary(max_size=512))
def test_random_envelopes(data: bytes) -> None:
    for fn in (decode_request, decode_response):
        with contextlib.suppress(ProtocolError):
            fn(data)


text = st.text(max_size=40)


@settings(max_examples=200, deadline=2000)  # ms: a hang fails, a busy CI core does not
@given(
    text,
    text,
    st.binary(max_size=100),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.lists(st.tuples(text, text), max_size=3),
)
def test_request_round_trip(
    service: str, method: str, payload: bytes, timeout: int, meta: list[tuple[str, str]]
) -> None:
    req = Request(service, method, payload, timeout, tuple(meta))
    assert decode_request(encode_request(req)) == req


@settings(max_examples=200, deadline=2000)  # ms: a hang fails, a busy CI core does not
@given(st.integers(min_value=-(2**31), max_value=2**31 - 1), text, st.binary(max_size=100))
def test_response_round_trip(code: int, message: str, payload: bytes) -> None:
    resp = Response(Status(code, message) if code else None, payload)
    assert decode_response(encode_response(resp)) == resp
