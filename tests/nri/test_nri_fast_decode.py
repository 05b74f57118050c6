"""The hot-path decoder agrees with the generated betterproto2 classes, and rejects garbage cleanly."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st
from nri_convert import container_from_nri, linux_device, pod_from_nri

from dranet_core.errors import RemoteProtocolError
from dranet_core.nri import api
from dranet_core.nri._decode import (
    decode_container_request,
    decode_pod_request,
    decode_state_change,
    decode_synchronize,
)
from dranet_core.nri._encode import encode_create_container_response
from dranet_core.testing import nri_wire as nri_pb
from dranet_core.types import DeviceNode

text = st.text(max_size=30)
namespaces = st.lists(
    st.builds(api.LinuxNamespace, type=st.sampled_from(["network", "ipc", "uts", "pid", ""]), path=text),
    max_size=4,
)
pods = st.builds(
    api.PodSandbox,
    id=text,
    name=text,
    uid=text,
    namespace=text,
    ips=st.lists(text, max_size=3),
    linux=st.one_of(st.none(), st.builds(api.LinuxPodSandbox, namespaces=namespaces)),
)
containers = st.builds(api.Container, id=text, name=text, pod_sandbox_id=text)
# unknown fields a real runtime sends: labels (5), runtime_handler (7), pid (9); container args (7)
POD_EXTRA = b"\x2a\x0a\x0a\x03app\x12\x03web" + b"\x3a\x04runc" + b"\x48\xd2\x09"


def with_extra(pod: api.PodSandbox) -> bytes:
    return bytes(pod) + POD_EXTRA


@settings(max_examples=150, deadline=2000)  # ms: a hang fails, a busy CI core does not
@given(pods)
def test_pod_requests_agree(pod: api.PodSandbox) -> None:
    raw = with_extra(pod)
    payload = b"\x0a" + nri_pb.varint(len(raw)) + raw  # the request, unknown fields inside the pod
    assert decode_pod_request(payload) == pod_from_nri(api.RunPodSandboxRequest.parse(payload).pod)


@settings(max_examples=100, deadline=2000)  # ms: a hang fails, a busy CI core does not
@given(st.lists(pods, max_size=5), st.lists(containers, max_size=5), st.booleans())
def test_synchronize_agrees(ps: list[api.PodSandbox], cs: list[api.Container], more: bool) -> None:
    payload = bytes(api.SynchronizeRequest(pods=ps, containers=cs, more=more))
    got_pods, got_ctrs, got_more = decode_synchronize(payload)
    assert got_pods == [pod_from_nri(p) for p in ps]
    assert got_ctrs == [container_from_nri(c) for c in cs]
    assert got_more == more


@settings(max_examples=100, deadline=2000)  # ms: a hang fails, a busy CI core does not
@given(pods, containers, st.integers(min_value=0, max_value=15))
def test_container_and_state_change_agree(pod: api.PodSandbox, ctr: api.Container, event: int) -> None:
    payload = bytes(api.CreateContainerRequest(pod=pod, container=ctr))
    assert decode_container_request(payload) == (pod_from_nri(pod), container_from_nri(ctr))
    sc = bytes(api.StateChangeEvent(event=api.Event(event), pod=pod, container=ctr))
    assert decode_state_change(sc) == (event, pod_from_nri(pod), container_from_nri(ctr))


@settings(max_examples=300, deadline=2000)  # ms: a hang fails, a busy CI core does not
@given(st.binary(max_size=300))
def test_garbage_raises_only_protocol_error(data: bytes) -> None:
    for fn in (decode_pod_request, decode_container_request, decode_synchronize, decode_state_change):
        with contextlib.suppress(RemoteProtocolError):
            fn(data)


def test_hand_written_pod_vector() -> None:
    # RunPodSandboxRequest{pod: {id "s", uid "u", linux {namespaces [{network, /n}]}, ips ["10.0.0.1"]}}
    pod = b"\x0a\x01s\x1a\x01u" + b"\x42\x0f\x2a\x0d\x0a\x07network\x12\x02/n" + b"\x52\x0810.0.0.1"
    got = decode_pod_request(b"\x0a" + bytes([len(pod)]) + pod)
    assert (got.id, got.uid, got.netns, got.ips) == ("s", "u", "/n", ("10.0.0.1",))


node = st.builds(
    DeviceNode,
    path=text,
    type=st.sampled_from(["c", "b", ""]),
    major=st.integers(min_value=0, max_value=2**40),
    minor=st.integers(min_value=0, max_value=2**40),
    file_mode=st.one_of(st.none(), st.integers(min_value=0, max_value=0o7777)),
    uid=st.one_of(st.none(), st.integers(min_value=0, max_value=2**32 - 1)),
    gid=st.one_of(st.none(), st.integers(min_value=0, max_value=2**32 - 1)),
)


@settings(max_examples=150, deadline=2000)  # ms: a hang fails, a busy CI core does not
@given(st.lists(node, max_size=10))
def test_adjustment_encoding_is_byte_identical(nodes: list[DeviceNode]) -> None:
    devices = [linux_device(n) for n in nodes]
    reference = api.CreateContainerResponse(
        adjust=api.ContainerAdjustment(linux=api.LinuxContainerAdjustment(devices=devices))
    )
    assert encode_create_container_response(nodes) == (bytes(reference) if nodes else b"")
