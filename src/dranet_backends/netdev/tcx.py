"""TCX BPF programs attached to links (kernel >= 6.6), read with the bpf(2) syscall.

TCX attachments send no rtnetlink event, so discovery reads them on full dumps (first scan,
periodic resync) and for links an event made dirty. ``BPF_PROG_QUERY`` resolves
``target_ifindex`` in the calling thread's network namespace, so the query runs in a
worker thread that ``setns()``s into the scanned namespace and back.

Layouts (``include/uapi/linux/bpf.h``): the ``query`` member of ``union bpf_attr``
(target_ifindex u32 @0, attach_type u32 @4, query_flags u32 @8, attach_flags u32 @12,
prog_ids u64 @16, prog_cnt u32 @24); ``BPF_PROG_GET_FD_BY_ID`` (prog_id u32 @0);
``BPF_OBJ_GET_INFO_BY_FD`` (bpf_fd u32 @0, info_len u32 @4, info u64 @8), and
``struct bpf_prog_info`` whose ``name[16]`` is at byte 64.

On a kernel without TCX (``EINVAL``), without the bpf syscall (``ENOSYS``) or without the
privilege (``EPERM``) the reader reports itself unsupported and discovery stops asking.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from collections.abc import Iterable

from dranet_backends.netns import call_in_netns_at

__all__ = ["TcxReader"]

_NR_BPF = {"x86_64": 321, "aarch64": 280, "arm64": 280, "ppc64le": 361, "s390x": 351, "riscv64": 280}.get(
    platform.machine()
)
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16
BPF_TCX_INGRESS = 46
BPF_TCX_EGRESS = 47
_MAX_PROGS = 64
_UNSUPPORTED = (errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP)


class _Unsupported(Exception):
    pass


class TcxReader:
    """Reads the names of the TCX programs on links of one network namespace.

    :meth:`read` is blocking (syscalls, and ``setns`` for another namespace): call it
    through ``asyncio.to_thread``. Names are cached by program id (ids are not reused
    while a program exists).
    """

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self.supported = _NR_BPF is not None
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.syscall.restype = ctypes.c_long
        self._names: dict[int, str] = {}

    def read(self, ifindexes: Iterable[int]) -> dict[int, tuple[str, ...]]:
        """Program names per link (ingress first, then egress); links without any are absent."""
        if not self.supported:
            return {}
        try:
            if self.netns is None:
                return self._read_all(ifindexes)
            return call_in_netns_at(self.netns, lambda: self._read_all(ifindexes))
        except _Unsupported:
            self.supported = False
            return {}

    def _read_all(self, ifindexes: Iterable[int]) -> dict[int, tuple[str, ...]]:
        out: dict[int, tuple[str, ...]] = {}
        for idx in ifindexes:
            names = [
                self._name(pid) for at in (BPF_TCX_INGRESS, BPF_TCX_EGRESS) for pid in self._query(idx, at)
            ]
            found = tuple(n for n in names if n)
            if found:
                out[idx] = found
        return out

    def _bpf(self, cmd: int, attr: bytearray) -> int:
        assert _NR_BPF is not None
        buf = (ctypes.c_char * len(attr)).from_buffer(attr)
        return int(self._libc.syscall(_NR_BPF, cmd, buf, len(attr)))

    def _query(self, ifindex: int, attach_type: int) -> list[int]:
        ids = (ctypes.c_uint32 * _MAX_PROGS)()
        attr = bytearray(64)
        struct.pack_into("=IIIIQI", attr, 0, ifindex, attach_type, 0, 0, ctypes.addressof(ids), _MAX_PROGS)
        if self._bpf(BPF_PROG_QUERY, attr) < 0:
            err = ctypes.get_errno()
            if err in _UNSUPPORTED:
                raise _Unsupported(os.strerror(err))
            return []  # ENODEV (link gone), ENOSPC: nothing we can read
        count = min(struct.unpack_from("=I", attr, 24)[0], _MAX_PROGS)
        return [ids[i] for i in range(count)]

    def _name(self, prog_id: int) -> str:
        if prog_id in self._names:
            return self._names[prog_id]
        attr = bytearray(16)
        struct.pack_into("=I", attr, 0, prog_id)
        fd = self._bpf(BPF_PROG_GET_FD_BY_ID, attr)
        if fd < 0:
            return ""
        try:
            info = (ctypes.c_char * 256)()
            req = bytearray(16)
            struct.pack_into("=IIQ", req, 0, fd, 256, ctypes.addressof(info))
            if self._bpf(BPF_OBJ_GET_INFO_BY_FD, req) < 0:
                return ""
            raw = ctypes.string_at(ctypes.addressof(info) + 64, 16)  # bpf_prog_info.name
            name = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        finally:
            os.close(fd)
        self._names[prog_id] = name
        return name
