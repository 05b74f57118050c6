"""decode_message: the message betterproto2's ``parse`` returns, for every input.

Compared field by field, types included (an enum member is not its int), and unknown-field
bytes at every level; where betterproto2 raises, the same exception type.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import betterproto2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_codec import CLASSES

from dranet_core._generated.k8s.io.kubelet.pkg.apis.dra import v1, v1beta1
from dranet_core._generated.pluginregistration import InfoRequest, RegistrationStatus
from dranet_core._generated.v1 import DeviceHealth, DeviceIdentifier
from dranet_core.dra.codec import FastProtoCodec, _decode_plan_of, _read, decode_message

B = betterproto2


class Color(betterproto2.Enum):
    NONE = 0
    RED = 1
    BLUE = 2


@dataclasses.dataclass(eq=False, repr=False)
class Inner(betterproto2.Message):
    label: str = B.field(1, B.TYPE_STRING)
    count: int = B.field(2, B.TYPE_UINT64)


@dataclasses.dataclass(eq=False, repr=False)
class Kinds(betterproto2.Message):
    """Every field kind the fast path reads (the generated classes use only some of them)."""

    i32: int = B.field(1, B.TYPE_INT32)
    i64: int = B.field(2, B.TYPE_INT64)
    u32: int = B.field(3, B.TYPE_UINT32)
    u64: int = B.field(4, B.TYPE_UINT64)
    flag: bool = B.field(5, B.TYPE_BOOL)
    color: Color = B.field(6, B.TYPE_ENUM, default_factory=lambda: Color(0))  # noqa: RUF009
    blob: bytes = B.field(7, B.TYPE_BYTES)
    inner: Inner | None = B.field(8, B.TYPE_MESSAGE, optional=True)  # noqa: RUF009
    ints: list[int] = B.field(9, B.TYPE_INT32, repeated=True)  # noqa: RUF009
    colors: list[Color] = B.field(10, B.TYPE_ENUM, repeated=True)  # noqa: RUF009
    flags: list[bool] = B.field(11, B.TYPE_BOOL, repeated=True)  # noqa: RUF009
    blobs: list[bytes] = B.field(12, B.TYPE_BYTES, repeated=True)  # noqa: RUF009
    inners: list[Inner] = B.field(13, B.TYPE_MESSAGE, repeated=True)  # noqa: RUF009
    by_name: dict[str, int] = B.field(14, B.TYPE_MAP, map_meta=B.map_meta(B.TYPE_STRING, B.TYPE_INT32))  # noqa: RUF009
    color_of: dict[str, Color] = B.field(15, B.TYPE_MAP, map_meta=B.map_meta(B.TYPE_STRING, B.TYPE_ENUM))  # noqa: RUF009
    bytes_of: dict[str, bytes] = B.field(16, B.TYPE_MAP, map_meta=B.map_meta(B.TYPE_STRING, B.TYPE_BYTES))  # noqa: RUF009
    inner_of: dict[str, Inner] = B.field(17, B.TYPE_MAP, map_meta=B.map_meta(B.TYPE_STRING, B.TYPE_MESSAGE))  # noqa: RUF009
    text: str | None = B.field(18, B.TYPE_STRING, optional=True)
    pick_a: int | None = B.field(19, B.TYPE_INT32, optional=True, group="pick")
    pick_b: str | None = B.field(20, B.TYPE_STRING, optional=True, group="pick")
    big: int = B.field(300, B.TYPE_INT64)  # a two-byte tag


@dataclasses.dataclass(eq=False, repr=False)
class Zigzag(betterproto2.Message):
    """Field kinds the fast path leaves to betterproto2 (the whole message)."""

    name: str = B.field(1, B.TYPE_STRING)
    delta: int = B.field(2, B.TYPE_SINT32)
    stamp: int = B.field(3, B.TYPE_FIXED64)
    ratio: float = B.field(4, B.TYPE_DOUBLE)


@dataclasses.dataclass(eq=False, repr=False)
class HoldsZigzag(betterproto2.Message):
    """A supported class nesting one that is not."""

    zig: Zigzag | None = B.field(1, B.TYPE_MESSAGE, optional=True)  # noqa: RUF009
    zigs: list[Zigzag] = B.field(2, B.TYPE_MESSAGE, repeated=True)  # noqa: RUF009
    zig_of: dict[str, Zigzag] = B.field(3, B.TYPE_MAP, map_meta=B.map_meta(B.TYPE_STRING, B.TYPE_MESSAGE))  # noqa: RUF009


ALL = [*CLASSES, Inner, Kinds, Zigzag, HoldsZigzag]
IDS = [f"{c.__module__.rsplit('.', 1)[-1]}.{c.__name__}" for c in ALL]


# --- comparing results --------------------------------------------------------------------


def same(a: Any, b: Any, where: str = "") -> None:
    """Assert ``a`` and ``b`` are equal with the same types all the way down, unknown fields too."""
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, betterproto2.Message):
        assert a._unknown_fields == b._unknown_fields, f"{where}: unknown fields"
        for name in a._betterproto.meta_by_field_name:
            same(getattr(a, name), getattr(b, name), f"{where}.{name}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def outcome(cls: type[betterproto2.Message], data: bytes, fast: bool) -> Any:
    """The decoded message, or the type of the exception raised."""
    try:
        return decode_message(data, cls) if fast else cls.parse(data)
    except Exception as e:  # compared, not swallowed
        return type(e)


def agrees(cls: type[betterproto2.Message], data: bytes) -> None:
    want = outcome(cls, data, fast=False)
    got = outcome(cls, data, fast=True)
    if isinstance(want, type):
        assert got is want, f"{data!r}: {got!r} != {want!r}"
    else:
        same(got, want, cls.__name__)


def reads(cls: type[betterproto2.Message], data: bytes) -> None:
    """agrees(), and the fast path reads ``data`` itself (no hand-over to betterproto2)."""
    agrees(cls, data)
    plan = _decode_plan_of(cls)
    assert plan is not None
    same(_read(cls, plan, data, 0, len(data)), cls.parse(data), cls.__name__)


# --- random messages ----------------------------------------------------------------------

_INTS = {
    B.TYPE_INT32: st.integers(-(1 << 31), (1 << 31) - 1),
    B.TYPE_INT64: st.integers(-(1 << 63), (1 << 63) - 1),
    B.TYPE_SINT32: st.integers(-(1 << 31), (1 << 31) - 1),
    B.TYPE_UINT32: st.integers(0, (1 << 32) - 1),
    B.TYPE_UINT64: st.integers(0, (1 << 64) - 1),
    B.TYPE_FIXED64: st.integers(0, (1 << 64) - 1),
}

# unknown fields: numbers none of the classes here use, every wire type betterproto2 reads
_UNKNOWN = st.lists(
    st.one_of(
        st.tuples(st.integers(900, 5000), st.integers(0, (1 << 64) - 1)).map(
            lambda t: B.encode_varint(t[0] << 3) + B.encode_varint(t[1])
        ),
        st.tuples(st.integers(900, 5000), st.binary(max_size=12)).map(
            lambda t: B.encode_varint(t[0] << 3 | 2) + B.encode_varint(len(t[1])) + t[1]
        ),
        st.tuples(st.integers(900, 5000), st.binary(min_size=8, max_size=8)).map(
            lambda t: B.encode_varint(t[0] << 3 | 1) + t[1]
        ),
        st.tuples(st.integers(900, 5000), st.binary(min_size=4, max_size=4)).map(
            lambda t: B.encode_varint(t[0] << 3 | 5) + t[1]
        ),
    ),
    max_size=2,
).map(b"".join)


def values(kind: str, tp: Any, depth: int) -> st.SearchStrategy[Any]:
    """Values of one element of a field of betterproto2 type ``kind`` (class ``tp``)."""
    if kind == B.TYPE_MESSAGE:
        return messages(tp, depth + 1)
    if kind == B.TYPE_STRING:
        return st.text(max_size=8)
    if kind == B.TYPE_BYTES:
        return st.binary(max_size=8)
    if kind == B.TYPE_BOOL:
        return st.booleans()
    if kind == B.TYPE_ENUM:
        return st.sampled_from(list(tp)) | st.integers(-3, 300).map(tp)
    if kind == B.TYPE_DOUBLE:
        return st.floats(allow_nan=False)
    return _INTS[kind]


def messages(cls: type[betterproto2.Message], depth: int = 0) -> st.SearchStrategy[Any]:
    """Random instances of ``cls`` (nested messages to a small depth), with unknown fields."""
    info = cls._betterproto  # type: ignore[attr-defined]
    if depth > 2:
        return st.builds(cls)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for attr, meta in info.meta_by_field_name.items():
        if meta.map_meta is not None:
            vmeta = meta.map_meta[1]
            vtp = info.cls_by_field.get(f"{attr}.value")
            fields[attr] = st.dictionaries(
                st.text(max_size=4), values(vmeta.proto_type, vtp, depth), max_size=3
            )
        elif meta.repeated:
            fields[attr] = st.lists(values(meta.proto_type, info.cls_by_field[attr], depth), max_size=3)
        else:
            value = values(meta.proto_type, info.cls_by_field[attr], depth)
            fields[attr] = st.none() | value if meta.optional else value
    # one member of a oneof at most
    for members in info.oneof_field_by_group.values():
        for name in sorted(f.name for f in members)[1:]:
            fields[name] = st.none()

    def build(kw: dict[str, Any], unknown: bytes) -> Any:
        msg = cls(**kw)
        msg._unknown_fields = unknown
        return msg

    return st.builds(build, st.fixed_dictionaries(fields), _UNKNOWN)


@st.composite
def encodings(draw: st.DrawFn, cls: type[betterproto2.Message]) -> bytes:
    """betterproto2's bytes of one or two random messages (two: every field twice on the wire)."""
    parts = draw(st.lists(messages(cls), min_size=1, max_size=2))
    return b"".join(bytes(m) for m in parts)


@pytest.mark.parametrize("cls", ALL, ids=IDS)
@settings(max_examples=25, deadline=2000, suppress_health_check=[HealthCheck.too_slow])  # ms: a hang fails
@given(data=st.data())
def test_random_messages_decode_like_betterproto2(
    cls: type[betterproto2.Message], data: st.DataObject
) -> None:
    raw = data.draw(encodings(cls))
    if _decode_plan_of(cls) is None:
        agrees(cls, raw)
    else:
        reads(cls, raw)


@st.composite
def mutated(draw: st.DrawFn, cls: type[betterproto2.Message]) -> bytes:
    """An encoding cut short, with a byte changed, or with random bytes put in."""
    raw = bytearray(draw(encodings(cls)))
    how = draw(st.sampled_from(["cut", "flip", "insert"]))
    at = draw(st.integers(0, len(raw)))
    if how == "cut":
        return bytes(raw[:at])
    if how == "flip" and raw:
        raw[min(at, len(raw) - 1)] = draw(st.integers(0, 255))
        return bytes(raw)
    return bytes(raw[:at] + draw(st.binary(min_size=1, max_size=12)) + raw[at:])


@pytest.mark.parametrize("cls", [v1.NodePrepareResourcesRequest, v1.NodeUnprepareResourcesRequest, Kinds])
@settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])  # ms: a hang fails
@given(data=st.data())
def test_damaged_inputs_decode_like_betterproto2(
    cls: type[betterproto2.Message], data: st.DataObject
) -> None:
    agrees(cls, data.draw(mutated(cls)))


@settings(max_examples=300, deadline=2000)  # ms: a hang fails
@given(raw=st.binary(max_size=40))
def test_arbitrary_bytes_decode_like_betterproto2(raw: bytes) -> None:
    for cls in (Kinds, v1.NodePrepareResourcesRequest, RegistrationStatus):
        agrees(cls, raw)


# --- hand-built wire ----------------------------------------------------------------------


def tag(number: int, wire: int) -> bytes:
    return B.encode_varint(number << 3 | wire)


def ld(number: int, payload: bytes) -> bytes:
    return tag(number, 2) + B.encode_varint(len(payload)) + payload


def vi(number: int, value: int) -> bytes:
    return tag(number, 0) + B.encode_varint(value)


CLAIM = ld(1, b"default") + ld(2, b"uid-1") + ld(3, b"c1")


def test_the_prepare_request() -> None:
    for mod in (v1, v1beta1):
        req = mod.NodePrepareResourcesRequest(
            claims=[
                mod.Claim(namespace="default", uid="3f1b2c4d-0000-4000-8000-123456789abc", name="c"),
                mod.Claim(),
            ]
        )
        got = decode_message(bytes(req), mod.NodePrepareResourcesRequest)
        same(got, req)
        assert got.claims[1] == mod.Claim()


def test_a_scalar_twice_keeps_the_last() -> None:
    data = ld(1, ld(1, b"a") + ld(2, b"u") + ld(1, b"b"))
    reads(v1.NodePrepareResourcesRequest, data)
    assert decode_message(data, v1.NodePrepareResourcesRequest).claims[0].namespace == "b"
    reads(Kinds, vi(1, 5) + vi(1, 7) + vi(5, 1) + vi(5, 0))


def test_a_nested_message_twice_is_replaced_as_betterproto2_does() -> None:
    """Protobuf merges a singular message that occurs twice; betterproto2 keeps the last one
    whole, and so must we (the same message as betterproto2, whatever the wire)."""
    data = ld(1, ld(1, b"pool")) + ld(1, ld(2, b"dev"))
    want = DeviceHealth.parse(data)
    assert want.device == DeviceIdentifier(device_name="dev")  # not merged
    reads(DeviceHealth, data)
    reads(Kinds, ld(8, ld(1, b"x")) + ld(8, vi(2, 3)))


def test_repeated_fields_and_maps_accumulate() -> None:
    reads(v1.NodePrepareResourcesRequest, ld(1, CLAIM) + ld(1, b"") + ld(1, CLAIM))
    entry = ld(1, b"k") + ld(2, ld(2, b"e"))
    reads(v1.NodePrepareResourcesResponse, ld(1, entry) + ld(1, ld(1, b"j")) + ld(1, ld(1, b"k")))
    # an entry without a value: the value type's default (None for a message), without a key: ""
    got = decode_message(ld(1, ld(1, b"k")) + ld(1, ld(2, b"")), v1.NodePrepareResourcesResponse)
    assert got.claims == {"k": None, "": v1.NodePrepareResourceResponse()}
    reads(Kinds, ld(14, ld(1, b"a")) + ld(15, ld(1, b"c") + vi(2, 2)) + ld(16, ld(1, b"b")))


def test_packed_and_unpacked_repeated_varints() -> None:
    packed = B.encode_varint(1) + B.encode_varint((1 << 64) - 5) + B.encode_varint(300)
    data = vi(9, 4) + ld(9, packed) + vi(9, 2) + ld(10, b"\x01\x02\x07") + ld(11, b"\x00\x05")
    reads(Kinds, data)
    got = decode_message(data, Kinds)
    assert got.ints == [4, 1, -5, 300, 2]
    assert got.colors == [Color.RED, Color.BLUE, Color(7)] and got.flags == [False, True]
    agrees(Kinds, ld(9, b"\x80"))  # a packed run cut inside a varint


def test_negative_and_oversized_varints() -> None:
    ten = B.encode_varint(-2)
    assert len(ten) == 10
    for number in (1, 2, 3, 4, 5, 6):
        reads(Kinds, vi(number, (1 << 64) - 2))
        reads(Kinds, tag(number, 0) + b"\xff" * 9 + b"\x7f")  # 70 bits: betterproto2 masks
    assert decode_message(vi(1, (1 << 64) - 2), Kinds).i32 == -2
    assert decode_message(vi(3, (1 << 64) - 2), Kinds).u32 == (1 << 32) - 2
    agrees(Kinds, tag(1, 0) + b"\xff" * 10 + b"\x01")  # 11 bytes: ValueError
    agrees(Kinds, b"\xff" * 10 + b"\x01")  # an 11-byte tag


def test_unknown_fields_are_kept() -> None:
    extra = vi(900, 7) + ld(901, b"xyz") + tag(902, 1) + b"8bytes!!" + tag(903, 5) + b"4byt"
    for cls in (v1.NodePrepareResourcesRequest, InfoRequest):
        reads(cls, extra + ld(1, CLAIM) + extra)
    reads(Kinds, extra + ld(7, b"blob") + extra + ld(8, extra))
    got = decode_message(ld(1, CLAIM + extra), v1.NodePrepareResourcesRequest)
    assert got.claims[0]._unknown_fields == extra
    reads(v1.NodePrepareResourcesRequest, vi(0, 1))  # field number 0
    # groups and the invalid wire types: betterproto2 keeps the tag alone
    for wire in (3, 4, 6, 7):
        agrees(v1.NodePrepareResourcesRequest, tag(5, wire) + ld(1, CLAIM))


def test_a_known_field_with_another_wire_type_is_betterproto2s_business() -> None:
    for data in (vi(1, 3), tag(1, 5) + b"abcd", tag(1, 1) + b"12345678", ld(5, b"\x01")):
        agrees(RegistrationStatus, data)
        agrees(Kinds, data)
    agrees(Kinds, ld(1, b"\x01\x02"))  # a packed run in a singular int32: a list, for betterproto2
    agrees(Kinds, ld(14, ld(1, b"k") + ld(2, b"not an int")))
    agrees(Kinds, ld(14, ld(1, b"k") + vi(3, 1)))  # an unknown field in a map entry


def test_truncated_inputs() -> None:
    req = v1.NodePrepareResourcesRequest(claims=[v1.Claim(namespace="ns", uid="u" * 200, name="n")])
    data = bytes(req)
    for cut in range(len(data) + 1):
        agrees(v1.NodePrepareResourcesRequest, data[:cut])
    full = bytes(Kinds(i64=-1, inner=Inner(label="l", count=1 << 40), by_name={"a": 1}, big=5))
    for cut in range(len(full) + 1):
        agrees(Kinds, full[:cut])


def test_invalid_utf8_raises_like_betterproto2() -> None:
    data = ld(1, ld(1, b"\xff\xfe"))
    with pytest.raises(UnicodeDecodeError):
        v1.NodePrepareResourcesRequest.parse(data)
    with pytest.raises(UnicodeDecodeError):
        decode_message(data, v1.NodePrepareResourcesRequest)
    agrees(Kinds, ld(14, ld(1, b"\xc3")))


def test_unsupported_kinds_go_to_betterproto2() -> None:
    assert _decode_plan_of(Zigzag) is None
    assert _decode_plan_of(HoldsZigzag) is not None
    msg = HoldsZigzag(zig=Zigzag(name="z", delta=-3, stamp=9, ratio=0.5), zigs=[Zigzag(delta=1)])
    same(decode_message(bytes(msg), HoldsZigzag), msg)
    same(decode_message(bytes(msg.zig), Zigzag), msg.zig)


def test_every_kubelet_message_has_a_plan() -> None:
    assert all(_decode_plan_of(c) is not None for c in CLASSES)
    assert _decode_plan_of(Kinds) is not None


def test_memoryview_input() -> None:
    agrees(v1.NodePrepareResourcesRequest, ld(1, CLAIM))
    same(
        decode_message(memoryview(ld(1, CLAIM)), v1.NodePrepareResourcesRequest),  # type: ignore[arg-type]
        v1.NodePrepareResourcesRequest.parse(ld(1, CLAIM)),
    )


# --- the codec uses it --------------------------------------------------------------------


def test_the_codec_decodes_without_betterproto2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails if FastProtoCodec.decode goes to betterproto2's parser (grpclib's default)."""

    def refuse(cls: type, data: bytes) -> Any:
        raise AssertionError(f"betterproto2 parsed a {cls.__name__}")

    for mod in (v1, v1beta1):
        for name in ("NodePrepareResourcesRequest", "NodeUnprepareResourcesRequest", "Claim"):
            monkeypatch.setattr(getattr(mod, name), "parse", classmethod(refuse))
    for cls in (InfoRequest, RegistrationStatus):
        monkeypatch.setattr(cls, "parse", classmethod(refuse))
    codec_ = FastProtoCodec()
    for mod in (v1, v1beta1):
        req = mod.NodePrepareResourcesRequest(claims=[mod.Claim(namespace="default", uid="u", name="c")])
        assert codec_.decode(codec_.encode(req, type(req)), type(req)) == req
        ureq = mod.NodeUnprepareResourcesRequest(claims=[mod.Claim(uid="u")])
        assert codec_.decode(codec_.encode(ureq, type(ureq)), type(ureq)) == ureq
    status = RegistrationStatus(plugin_registered=True, error="e")
    assert codec_.decode(bytes(status), RegistrationStatus) == status
    assert codec_.decode(b"", InfoRequest) == InfoRequest()


def test_betterproto2_decides_when_the_fast_path_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = Kinds.parse.__func__  # type: ignore[attr-defined]

    def counting(cls: type, data: bytes) -> Any:
        calls.append(data)
        return real(cls, data)

    monkeypatch.setattr(Kinds, "parse", classmethod(counting))
    decode_message(vi(1, 1), Kinds)
    assert calls == []
    decode_message(ld(1, b"\x01"), Kinds)
    assert calls == [ld(1, b"\x01")]
