"""ttrpc frames and envelopes against byte vectors written out by hand from PROTOCOL.md."""

from __future__ import annotations

import pytest
from wire_feed import feed_three_ways

from dranet_core._generated import ttrpc as pb_ttrpc
from dranet_core.errors import LocalProtocolError, RemoteProtocolError
from dranet_core.wire.ttrpc import (
    MAX_MESSAGE_LENGTH,
    Frame,
    FrameDecoder,
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

SERVICE = b"nri.pkg.api.v1alpha1.Plugin"  # 27 = 0x1b bytes
# ttrpc.Request{service, method "Configure", payload ConfigureRequest{runtime_name "containerd"},
#               timeout_nano 2e9, metadata [{k: v}]}
REQUEST_ENVELOPE = (
    b"\x0a\x1b"
    + SERVICE
    + b"\x12\x09Configure"
    + b"\x1a\x0c"
    + b"\x12\x0acontainerd"
    + b"\x20\x80\xa8\xd6\xb9\x07"  # varint 2_000_000_000
    + b"\x2a\x06\x0a\x01k\x12\x01v"
)
REQUEST = Request(
    service=SERVICE.decode(),
    method="Configure",
    payload=b"\x12\x0acontainerd",
    timeout_nano=2_000_000_000,
    metadata=(("k", "v"),),
)
# header: length, stream id 1, type 1 (request), flags 0
REQUEST_FRAME = bytes([0, 0, 0, len(REQUEST_ENVELOPE), 0, 0, 0, 1, 1, 0]) + REQUEST_ENVELOPE


def test_header_example_from_the_fact_sheet() -> None:
    data = bytes(range(37))
    assert encode_frame(Frame(1, 1, 0, data))[:10] == bytes.fromhex("00000025000000010100")


def test_request_frame_vector() -> None:
    feed_three_ways(FrameDecoder, REQUEST_FRAME, [Frame(1, 1, 0, REQUEST_ENVELOPE)])
    assert decode_request(REQUEST_ENVELOPE) == REQUEST
    assert encode_request(REQUEST) == REQUEST_ENVELOPE
    assert encode_frame(Frame(1, 1, 0, REQUEST_ENVELOPE)) == REQUEST_FRAME


def test_two_frames_in_one_read() -> None:
    ok = bytes.fromhex("00000000 00000003 02 00".replace(" ", ""))  # empty OK response on stream 3
    frames = FrameDecoder().feed(REQUEST_FRAME + ok)
    assert frames == [Frame(1, 1, 0, REQUEST_ENVELOPE), Frame(3, 2, 0, b"")]


@pytest.mark.parametrize(
    ("wire", "response"),
    [
        (b"", Response()),  # OK: status absent, empty payload
        (b"\x12\x02\x10\x0f", Response(None, b"\x10\x0f")),  # ConfigureResponse{events: 15}
        (b"\x0a\x0c\x08\x0c\x12\x08method X", Response(Status(12, "method X"))),
    ],
)
def test_response_vectors(wire: bytes, response: Response) -> None:
    assert decode_response(wire) == response
    assert encode_response(response) == wire


def test_ok_status_is_left_absent_and_code_zero_is_ok() -> None:
    assert encode_response(Response(Status(0, "fine"), b"x")) == b"\x12\x01x"
    assert decode_response(b"\x0a\x00").ok
    assert not decode_response(b"\x0a\x02\x08\x02").ok


def test_unknown_fields_and_status_details_are_skipped() -> None:
    # Response{status{code 5, message "nf", details [Any{type_url "t", value "v"}]}, payload "p", field 9: 1}
    wire = b"\x0a\x0e\x08\x05\x12\x02nf\x1a\x06\x0a\x01t\x12\x01v" + b"\x12\x01p\x48\x01"
    assert decode_response(wire) == Response(Status(5, "nf"), b"p")
    req = REQUEST_ENVELOPE + b"\x35\x01\x02\x03\x04" + b"\x39" + bytes(8)  # fixed32 + fixed64 unknowns
    assert decode_request(req) == REQUEST


def test_negative_status_code_round_trips() -> None:
    # int32 -1 is sent as a 10-byte varint
    wire = b"\x0a\x0b\x08" + b"\xff" * 9 + b"\x01"
    assert decode_response(wire).status == Status(-1, "")


def test_oversized_frame_is_skipped_not_buffered() -> None:
    length = MAX_MESSAGE_LENGTH + 1
    header = length.to_bytes(4, "big") + (5).to_bytes(4, "big") + b"\x01\x00"
    dec = FrameDecoder()
    assert dec.feed(header) == [OversizedFrame(5, 1, 0, length)]
    chunk = b"\x00" * 65536
    for _ in range(length // len(chunk)):
        assert dec.feed(chunk) == []
        assert dec.buffered == 0
    rest = length % len(chunk)
    nxt = bytes.fromhex("00000000000000070200")
    assert dec.feed(b"\x00" * rest + nxt) == [Frame(7, 2, 0, b"")]


def test_unknown_message_type_is_a_protocol_error() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        FrameDecoder().feed(bytes.fromhex("00000000000000010900"))
    assert info.value.limit == "ttrpc message type 1..3"


def test_encode_limits() -> None:
    with pytest.raises(LocalProtocolError) as info:
        encode_frame(Frame(1, 1, 0, bytes(MAX_MESSAGE_LENGTH + 1)))
    assert info.value.limit == f"ttrpc max message size {MAX_MESSAGE_LENGTH}"
    assert len(encode_frame(Frame(1, 1, 0, bytes(MAX_MESSAGE_LENGTH)))) == MAX_MESSAGE_LENGTH + 10
    with pytest.raises(LocalProtocolError):
        encode_frame(Frame(1, 7, 0, b""))


@pytest.mark.parametrize(
    "wire",
    [
        b"\x0a\x05abc",  # length runs past the end
        b"\x20\xff",  # truncated varint
        b"\x0a\x02\xff\xfe",  # service not UTF-8
        b"\x0b",  # wire type 3 (group) unsupported
        b"\x00\x01",  # field number 0
        b"\x20" + b"\xff" * 11,  # varint longer than 10 bytes
    ],
)
def test_malformed_request_envelopes(wire: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_request(wire)


def test_envelopes_agree_with_betterproto2() -> None:
    """Cross-check against the independently generated ttrpc classes (proto/ttrpc/request.proto)."""
    theirs = pb_ttrpc.Request.parse(REQUEST_ENVELOPE)
    assert (theirs.service, theirs.method) == (REQUEST.service, "Configure")
    assert theirs.timeout_nano == 2_000_000_000
    assert [(kv.key, kv.value) for kv in theirs.metadata] == [("k", "v")]
    resp = pb_ttrpc.Response(status=pb_ttrpc.Status(code=13, message="internal"), payload=b"abc")
    assert decode_response(bytes(resp)) == Response(Status(13, "internal"), b"abc")


def test_exactly_4_mib_is_accepted() -> None:
    data = bytes(MAX_MESSAGE_LENGTH)
    header = MAX_MESSAGE_LENGTH.to_bytes(4, "big") + (9).to_bytes(4, "big") + b"\x02\x00"
    dec = FrameDecoder()
    assert dec.feed(header + data[:1000]) == []
    assert dec.buffered == 1000  # the header is consumed, the data kept
    [frame] = dec.feed(data[1000:])
    assert frame == Frame(9, 2, 0, data)
