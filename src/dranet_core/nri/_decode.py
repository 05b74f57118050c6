"""Fast decoding of the NRI requests on the hot path, straight into core types.

betterproto2 materialises every message it meets and walks every field, known or not; a
4 MiB Synchronize of 13,000 pods then takes over a second on a small node, which is most of the
runtime's 2 s budget. The few fields a network driver reads are pulled out here with a
hand-rolled scan that skips unknown fields by length (labels, annotations, cgroup data,
container args, ...) without looking inside them. Field numbers are those of
``proto/nri/api.proto`` (upstream ``api.proto``); the generated classes stay the reference and
the tests check both decoders agree on random messages.

Malformed input raises :class:`~dranet_core.errors.RemoteProtocolError`.
"""

from __future__ import annotations

from typing import Final

from dranet_core.errors import RemoteProtocolError
from dranet_core.nri.handlers import ContainerInfo
from dranet_core.types import PodSandbox
from dranet_core.wire._protobuf import read_varint

__all__ = ["decode_container_request", "decode_pod_request", "decode_state_change", "decode_synchronize"]


# the field numbers each message is read for (the rest are skipped)
_POD_REQUEST: Final = frozenset({1})
_ONE_TWO_THREE: Final = frozenset({1, 2, 3})
_POD: Final = frozenset({1, 2, 3, 4, 8, 10})
_LINUX: Final = frozenset({5})
_NAMESPACE: Final = frozenset({1, 2})
_CONTAINER: Final = frozenset({1, 2, 3})


def _fields(
    buf: bytes, pos: int, end: int, what: str, keep: frozenset[int]
) -> list[tuple[int, int, int, int]]:
    """(field number, wire type, start, end-or-value) for each field of ``buf[pos:end]`` whose
    number is in ``keep``; the others (labels, annotations, ...) are checked and skipped.

    For wire type 2 ``start:end`` is the value's slice of ``buf``; for varints ``end`` is the
    value. Tags, lengths and varints below 128 (nearly all of them) are read inline; longer
    ones go through :func:`~dranet_core.wire._protobuf.read_varint`.
    """
    out: list[tuple[int, int, int, int]] = []
    append = out.append
    while pos < end:
        key = buf[pos]
        if key < 0x80:  # one-byte tag: every field number below 16
            pos += 1
        else:
            key, pos = read_varint(buf, pos, end, what)
        num = key >> 3
        wt = key & 7
        if num == 0:
            raise RemoteProtocolError(f"{what}: field number 0")
        if wt == 2 or wt == 0:  # the value of a varint, the length of a length-delimited field
            if pos < end and buf[pos] < 0x80:
                val = buf[pos]
                pos += 1
            else:
                val, pos = read_varint(buf, pos, end, what)
            if wt == 0:
                if num in keep:
                    append((num, 0, pos, val))
                continue
            if val > end - pos:
                raise RemoteProtocolError(f"{what}: field {num} length {val} runs past the end")
            if num in keep:
                append((num, 2, pos, pos + val))
            pos += val
        elif wt == 1 or wt == 5:
            pos += 8 if wt == 1 else 4
            if pos > end:
                raise RemoteProtocolError(f"{what}: field {num} truncated")
        else:
            raise RemoteProtocolError(f"{what}: field {num} has unsupported wire type {wt}")
    return out


def _str(buf: bytes, start: int, end: int, what: str) -> str:
    try:
        return buf[start:end].decode()
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"{what}: not UTF-8") from exc


def _netns(buf: bytes, start: int, end: int) -> str | None:
    """Path of the ``network`` entry of LinuxPodSandbox.namespaces (field 5) in ``buf[start:end]``."""
    for num, wt, s, e in _fields(buf, start, end, "LinuxPodSandbox", _LINUX):
        if num != 5 or wt != 2:
            continue
        typ = path = ""
        for n2, w2, s2, e2 in _fields(buf, s, e, "LinuxNamespace", _NAMESPACE):
            if w2 == 2 and n2 == 1:
                typ = _str(buf, s2, e2, "LinuxNamespace.type")
            elif w2 == 2 and n2 == 2:
                path = _str(buf, s2, e2, "LinuxNamespace.path")
        if typ == "network":
            return path or None
    return None


def _pod(buf: bytes, start: int, end: int) -> PodSandbox:
    """The PodSandbox in ``buf[start:end]``."""
    pid = name = uid = namespace = ""
    netns: str | None = None
    ips: list[str] = []
    for num, wt, s, e in _fields(buf, start, end, "PodSandbox", _POD):
        if wt != 2:
            continue
        if num == 1:
            pid = _str(buf, s, e, "PodSandbox.id")
        elif num == 2:
            name = _str(buf, s, e, "PodSandbox.name")
        elif num == 3:
            uid = _str(buf, s, e, "PodSandbox.uid")
        elif num == 4:
            namespace = _str(buf, s, e, "PodSandbox.namespace")
        elif num == 8:
            netns = _netns(buf, s, e)
        elif num == 10:
            ips.append(_str(buf, s, e, "PodSandbox.ips"))
    return PodSandbox(uid=uid, name=name, namespace=namespace, id=pid, netns=netns, ips=tuple(ips))


def _container(buf: bytes, start: int, end: int) -> ContainerInfo:
    """The Container in ``buf[start:end]``."""
    cid = sandbox = name = ""
    for num, wt, s, e in _fields(buf, start, end, "Container", _CONTAINER):
        if wt != 2:
            continue
        if num == 1:
            cid = _str(buf, s, e, "Container.id")
        elif num == 2:
            sandbox = _str(buf, s, e, "Container.pod_sandbox_id")
        elif num == 3:
            name = _str(buf, s, e, "Container.name")
    return ContainerInfo(id=cid, name=name, pod_sandbox_id=sandbox)


_EMPTY_POD = PodSandbox(uid="", name="", namespace="")
_EMPTY_CONTAINER = ContainerInfo(id="", name="", pod_sandbox_id="")


def decode_pod_request(payload: bytes) -> PodSandbox:
    """``pod`` (field 1) of Run/Stop/RemovePodSandboxRequest."""
    pod = _EMPTY_POD
    for num, wt, s, e in _fields(payload, 0, len(payload), "PodSandbox request", _POD_REQUEST):
        if num == 1 and wt == 2:
            pod = _pod(payload, s, e)
    return pod


def decode_container_request(payload: bytes) -> tuple[PodSandbox, ContainerInfo]:
    """``pod`` (1) and ``container`` (2) of CreateContainerRequest."""
    pod, ctr = _EMPTY_POD, _EMPTY_CONTAINER
    for num, wt, s, e in _fields(payload, 0, len(payload), "CreateContainerRequest", _ONE_TWO_THREE):
        if num == 1 and wt == 2:
            pod = _pod(payload, s, e)
        elif num == 2 and wt == 2:
            ctr = _container(payload, s, e)
    return pod, ctr


def decode_synchronize(payload: bytes) -> tuple[list[PodSandbox], list[ContainerInfo], bool]:
    """``pods`` (1), ``containers`` (2) and ``more`` (3) of SynchronizeRequest."""
    pods: list[PodSandbox] = []
    ctrs: list[ContainerInfo] = []
    more = False
    for num, wt, s, e in _fields(payload, 0, len(payload), "SynchronizeRequest", _ONE_TWO_THREE):
        if num == 1 and wt == 2:
            pods.append(_pod(payload, s, e))
        elif num == 2 and wt == 2:
            ctrs.append(_container(payload, s, e))
        elif num == 3 and wt == 0:
            more = e != 0
    return pods, ctrs, more


def decode_state_change(payload: bytes) -> tuple[int, PodSandbox, ContainerInfo]:
    """``event`` (1), ``pod`` (2) and ``container`` (3) of StateChangeEvent."""
    event, pod, ctr = 0, _EMPTY_POD, _EMPTY_CONTAINER
    for num, wt, s, e in _fields(payload, 0, len(payload), "StateChangeEvent", _ONE_TWO_THREE):
        if num == 1 and wt == 0:
            event = e
        elif num == 2 and wt == 2:
            pod = _pod(payload, s, e)
        elif num == 3 and wt == 2:
            ctr = _container(payload, s, e)
    return event, pod, ctr
