"""encode_message: byte for byte betterproto2's encoding, for every generated message."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any

import betterproto2
import pytest

from dranet_core._generated.k8s.io.kubelet.pkg.apis.dra import v1, v1beta1
from dranet_core.dra.codec import FastProtoCodec, _plan_of, encode_message

MODULES = [
    "dranet_core._generated.k8s.io.kubelet.pkg.apis.dra.v1",
    "dranet_core._generated.k8s.io.kubelet.pkg.apis.dra.v1beta1",
    "dranet_core._generated.pluginregistration",
    "dranet_core._generated.v1",
    "dranet_core._generated.v1alpha1",
    "dranet_core._generated.nri.pkg.api.v1alpha1",
    "dranet_core._generated.ttrpc",
]


def message_classes() -> list[type[betterproto2.Message]]:
    out: list[type[betterproto2.Message]] = []
    for name in MODULES:
        mod = importlib.import_module(name)
        for _, obj in inspect.getmembers(mod, inspect.isclass):
            if issubclass(obj, betterproto2.Message) and obj.__module__ == name:
                out.append(obj)
    return out


def sample(kind: str, tp: Any, depth: int, salt: int) -> Any:
    """A non-default value of one element of a field."""
    if kind == betterproto2.TYPE_MESSAGE:
        return filled(tp, depth + 1, salt)
    if kind == betterproto2.TYPE_STRING:
        return ["x", "é\u2603", "", "a" * 200][salt % 4]
    if kind == betterproto2.TYPE_BYTES:
        return [b"\x00\x01", b"", b"z" * 300][salt % 3]
    if kind == betterproto2.TYPE_BOOL:
        return salt % 2 == 0
    if kind == betterproto2.TYPE_ENUM:
        members = list(tp)
        return members[(salt + 1) % len(members)]
    if kind in (
        betterproto2.TYPE_INT32,
        betterproto2.TYPE_INT64,
        betterproto2.TYPE_SINT32,
        betterproto2.TYPE_SINT64,
    ):
        return [300, -5, 1 << 30, 0][salt % 4]
    if kind in (betterproto2.TYPE_FLOAT, betterproto2.TYPE_DOUBLE):
        return 1.5
    return [300, 1, 1 << 31, 0][salt % 4]  # unsigned and fixed


def filled(cls: type[betterproto2.Message], depth: int = 0, salt: int = 0) -> betterproto2.Message:
    """An instance of ``cls`` with every field set (nested messages to a small depth)."""
    msg = cls()
    if depth > 2:
        return msg
    info = cls._betterproto  # type: ignore[attr-defined]
    for i, (attr, meta) in enumerate(info.meta_by_field_name.items()):
        s = salt + i
        if meta.unwrap is not None:
            continue
        if meta.map_meta is not None:
            vkind = meta.map_meta[1].proto_type
            vt = info.cls_by_field.get(f"{attr}.value")
            value = {f"k{s}": sample(vkind, vt, depth, s), "": sample(vkind, vt, depth, s + 1)}
        elif meta.repeated:
            tp = info.cls_by_field[attr]
            value = [sample(meta.proto_type, tp, depth, s), sample(meta.proto_type, tp, depth, s + 3)]
        else:
            value = sample(meta.proto_type, info.cls_by_field[attr], depth, s)
        setattr(msg, attr, value)
    return msg


CLASSES = message_classes()


@pytest.mark.parametrize(
    "cls", CLASSES, ids=[f"{c.__module__.rsplit('.', 1)[-1]}.{c.__name__}" for c in CLASSES]
)
def test_same_bytes_as_betterproto2(cls: type[betterproto2.Message]) -> None:
    for msg in (cls(), filled(cls), filled(cls, salt=1), filled(cls, salt=2)):
        assert encode_message(msg) == bytes(msg)


def test_most_classes_take_the_fast_path() -> None:
    fast = [c for c in CLASSES if _plan_of(c) is not None]
    assert len(fast) > len(CLASSES) // 2
    for m in (v1, v1beta1):
        for name in ("NodePrepareResourcesResponse", "NodePrepareResourceResponse", "Device"):
            assert _plan_of(getattr(m, name)) is not None, name


def test_the_kubelet_responses() -> None:
    dev = v1.Device(
        request_names=["nic", "b"], pool_name="node-a", device_name="eth1", cdi_device_ids=["x=y"]
    )
    shared = v1.Device(request_names=["nic"], pool_name="node-a", device_name="eth2", share_id="s-1")
    cases: list[betterproto2.Message] = [
        v1.NodePrepareResourcesResponse(),
        v1.NodePrepareResourcesResponse(claims={"u1": v1.NodePrepareResourceResponse()}),
        v1.NodePrepareResourcesResponse(
            claims={
                "u1": v1.NodePrepareResourceResponse(devices=[dev, shared]),
                "u2": v1.NodePrepareResourceResponse(
                    error="claim default/c: device eth9 is not on this node"
                ),
            }
        ),
        v1.NodeUnprepareResourcesResponse(
            claims={
                "u1": v1.NodeUnprepareResourceResponse(),
                "u2": v1.NodeUnprepareResourceResponse(error="e"),
            }
        ),
        v1beta1.NodePrepareResourcesResponse(
            claims={
                "u1": v1beta1.NodePrepareResourceResponse(
                    devices=[v1beta1.Device(request_names=["nic"], pool_name="p", device_name="d")]
                )
            }
        ),
    ]
    for msg in cases:
        assert encode_message(msg) == bytes(msg)


def test_the_codec_encodes_with_it_and_checks_the_type() -> None:
    codec = FastProtoCodec()
    msg = v1.NodePrepareResourcesResponse(claims={"u": v1.NodePrepareResourceResponse(error="e")})
    assert codec.encode(msg, v1.NodePrepareResourcesResponse) == bytes(msg)
    assert codec.decode(bytes(msg), v1.NodePrepareResourcesResponse) == msg
    with pytest.raises(TypeError):
        codec.encode(msg, v1.NodeUnprepareResourcesResponse)


@dataclasses.dataclass(eq=False, repr=False)
class Packed(betterproto2.Message):
    """A message with a packed repeated scalar (no generated message of ours has one)."""

    name: str = betterproto2.field(1, betterproto2.TYPE_STRING)
    values: list[int] = betterproto2.field(2, betterproto2.TYPE_INT32, repeated=True)  # noqa: RUF009


def test_an_unsupported_field_hands_the_message_to_betterproto2() -> None:
    assert _plan_of(Packed) is None
    msg = Packed(name="a", values=[1, 300, -2])
    assert encode_message(msg) == bytes(msg) and Packed.FromString(encode_message(msg)) == msg


def test_an_integer_below_int64_is_refused_like_betterproto2() -> None:
    from dranet_core._generated.nri.pkg.api.v1alpha1 import LinuxDevice

    msg = LinuxDevice(path="/dev/x", major=-(1 << 64))
    with pytest.raises(ValueError):
        bytes(msg)
    with pytest.raises(ValueError):
        encode_message(msg)


@dataclasses.dataclass(eq=False, repr=False)
class OneOf(betterproto2.Message):
    """A message with a oneof (no generated message of ours has one): a member set to its
    type's default is still on the wire, which a skip-the-defaults encoder would drop."""

    count: int | None = betterproto2.field(1, betterproto2.TYPE_INT32, optional=True, group="pick")
    label: str | None = betterproto2.field(2, betterproto2.TYPE_STRING, optional=True, group="pick")


def test_a_oneof_hands_the_message_to_betterproto2() -> None:
    assert _plan_of(OneOf) is None
    for msg in (OneOf(count=0), OneOf(label=""), OneOf(count=7), OneOf()):
        assert encode_message(msg) == bytes(msg)
