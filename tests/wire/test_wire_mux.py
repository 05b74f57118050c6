"""NRI mux frames against byte vectors written out by hand from pkg/net/multiplex."""

from __future__ import annotations

import pytest
from wire_feed import feed_three_ways

from dranet_core.errors import LocalProtocolError, RemoteProtocolError
from dranet_core.wire.mux import MAX_PAYLOAD, MuxDecoder, MuxFrame, encode_mux_frame, frames_for_message

# conn 1, 3 bytes "abc"
VECTOR = bytes([0, 0, 0, 1, 0, 0, 0, 3]) + b"abc"
# conn 2, empty payload
EMPTY = bytes([0, 0, 0, 2, 0, 0, 0, 0])


def test_vector() -> None:
    feed_three_ways(MuxDecoder, VECTOR, [MuxFrame(1, b"abc")])
    assert encode_mux_frame(1, b"abc") == VECTOR


def test_interleaved_connections() -> None:
    feed_three_ways(
        MuxDecoder, VECTOR + EMPTY + VECTOR, [MuxFrame(1, b"abc"), MuxFrame(2, b""), MuxFrame(1, b"abc")]
    )


def test_connection_id_zero_is_reserved() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        MuxDecoder().feed(bytes(8))
    assert info.value.limit == "mux connection id 0 is reserved"
    with pytest.raises(LocalProtocolError):
        encode_mux_frame(0, b"")


def test_payload_limit_is_checked_before_allocating() -> None:
    header = bytes([0, 0, 0, 1]) + (MAX_PAYLOAD + 1).to_bytes(4, "big")
    with pytest.raises(RemoteProtocolError) as info:
        MuxDecoder().feed(header)
    assert info.value.limit == f"mux max payload {MAX_PAYLOAD}"
    assert MAX_PAYLOAD == 4194314
    with pytest.raises(LocalProtocolError):
        encode_mux_frame(1, bytes(MAX_PAYLOAD + 1))


def test_go_reader_rule_small_message_is_one_frame() -> None:
    msg = bytes(range(200))
    assert frames_for_message(2, msg) == bytes([0, 0, 0, 2, 0, 0, 0, 200]) + msg


@pytest.mark.parametrize("size", [4096, 4097, 6073, 300_000])
def test_go_reader_rule_big_message_is_4096_plus_rest(size: int) -> None:
    msg = bytes(i % 251 for i in range(size))
    frames = MuxDecoder().feed(frames_for_message(1, msg))
    expected = [len(msg)] if size <= 4096 else [4096, size - 4096]
    assert [len(f.payload) for f in frames] == expected
    assert b"".join(f.payload for f in frames) == msg
    assert {f.conn_id for f in frames} == {1}


def test_exactly_max_payload_is_accepted() -> None:
    payload = bytes(MAX_PAYLOAD)
    frames = MuxDecoder().feed(bytes([0, 0, 0, 2]) + MAX_PAYLOAD.to_bytes(4, "big") + payload)
    assert frames == [MuxFrame(2, payload)]
    assert len(encode_mux_frame(2, payload)) == MAX_PAYLOAD + 8
