"""Detaching eBPF programs from a device in a pod netns (``disableEbpfPrograms``).

Two attachment points are cleared, as the Go driver does:

* **TC (clsact)**: ``bpf`` filters under the ingress (``ffff:fff2``) and egress
  (``ffff:fff3``) pseudo-parents, deleted over rtnetlink by parent and priority/protocol
  (:func:`detach_tc_programs`). Other filter kinds are left alone.
* **TCX** (kernel >= 6.6): programs attached with ``BPF_PROG_ATTACH`` or through a
  ``bpf_link`` at ``BPF_TCX_INGRESS``/``BPF_TCX_EGRESS`` (:func:`detach_tcx_programs`), found
  with ``BPF_PROG_QUERY`` and detached with ``BPF_LINK_DETACH`` (links) or
  ``BPF_PROG_DETACH`` (plain attachments). The ``bpf(2)`` calls take an ifindex resolved in
  the *calling thread's* netns, so :func:`detach_tcx_programs` runs under
  :func:`~dranet_backends.netdev.nsutil.run_in_netns`.

``union bpf_attr`` layouts used (offsets in bytes, from ``include/uapi/linux/bpf.h``)::

    PROG_QUERY (16)      0 target_ifindex u32, 4 attach_type, 8 query_flags, 12 attach_flags,
                         16 prog_ids u64 ptr, 24 count u32, 32 prog_attach_flags ptr,
                         40 link_ids ptr, 48 link_attach_flags ptr, 56 revision u64
    PROG_DETACH (9)      0 target_ifindex, 4 attach_bpf_fd, 8 attach_type, 12 attach_flags,
                         16 replace_bpf_fd, 20 relative_fd/id, 24 expected_revision u64
    *_GET_FD_BY_ID       0 id u32, 4 next_id, 8 open_flags          (prog 13, link 30)
    LINK_DETACH (34)     0 link_fd u32

Not done here: host-side pinned links in ``/sys/fs/bpf`` (the Go driver unpins them at
prepare time) and XDP programs.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from typing import Final

from dranet_backends.netdev.nsutil import Rtnl

__all__ = [
    "BPF_TCX_EGRESS",
    "BPF_TCX_INGRESS",
    "CLSACT_EGRESS",
    "CLSACT_INGRESS",
    "bpf",
    "detach_tc_programs",
    "detach_tcx_programs",
    "query_tcx",
]

CLSACT_INGRESS: Final = 0xFFFFFFF2
CLSACT_EGRESS: Final = 0xFFFFFFF3

BPF_PROG_DETACH: Final = 9
BPF_PROG_GET_FD_BY_ID: Final = 13
BPF_PROG_QUERY: Final = 16
BPF_LINK_GET_FD_BY_ID: Final = 30
BPF_LINK_DETACH: Final = 34
BPF_TCX_INGRESS: Final = 46
BPF_TCX_EGRESS: Final = 47
_ATTR_SIZE: Final = 144
_SYS_BPF: Final = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351, "riscv64": 280}
_MAX_PROGS: Final = 64

_libc = ctypes.CDLL(None, use_errno=True)


def bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    """The ``bpf(2)`` system call; raises ``OSError`` with the kernel's errno."""
    nr = _SYS_BPF.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"bpf(2): unknown syscall number on {platform.machine()}")
    ret = int(_libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr))))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf({cmd}): {os.strerror(err)}")
    return ret


def query_tcx(ifindex: int, attach_type: int) -> list[tuple[int, int]]:
    """``(prog_id, link_id)`` of the programs at TCX ``attach_type`` of ``ifindex`` (link 0 =
    attached without a link). Empty when TCX has nothing (or the kernel has no TCX)."""
    prog_ids = (ctypes.c_uint32 * _MAX_PROGS)()
    link_ids = (ctypes.c_uint32 * _MAX_PROGS)()
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("=III", attr, 0, ifindex, attach_type, 0)
    struct.pack_into("=Q", attr, 16, ctypes.addressof(prog_ids))
    struct.pack_into("=I", attr, 24, _MAX_PROGS)
    struct.pack_into("=Q", attr, 40, ctypes.addressof(link_ids))
    try:
        bpf(BPF_PROG_QUERY, attr)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOENT, errno.EOPNOTSUPP):
            return []
        raise
    count = struct.unpack_from("=I", attr, 24)[0]
    return [(int(prog_ids[i]), int(link_ids[i])) for i in range(min(count, _MAX_PROGS))]


def _fd_by_id(cmd: int, ident: int) -> int:
    attr = ctypes.create_string_buffer(_ATTR_SIZE)
    struct.pack_into("=I", attr, 0, ident)
    return bpf(cmd, attr)


def detach_tcx_programs(ifindex: int) -> int:
    """Detach every TCX program (ingress and egress) of ``ifindex`` in the calling thread's
    netns; returns how many. Programs that vanish meanwhile are skipped."""
    removed = 0
    for attach_type in (BPF_TCX_INGRESS, BPF_TCX_EGRESS):
        for prog_id, link_id in query_tcx(ifindex, attach_type):
            try:
                if link_id:
                    fd = _fd_by_id(BPF_LINK_GET_FD_BY_ID, link_id)
                    try:
                        attr = ctypes.create_string_buffer(_ATTR_SIZE)
                        struct.pack_into("=I", attr, 0, fd)
                        bpf(BPF_LINK_DETACH, attr)
                    finally:
                        os.close(fd)
                else:
                    fd = _fd_by_id(BPF_PROG_GET_FD_BY_ID, prog_id)
                    try:
                        attr = ctypes.create_string_buffer(_ATTR_SIZE)
                        struct.pack_into("=IIII", attr, 0, ifindex, fd, attach_type, 0)
                        bpf(BPF_PROG_DETACH, attr)
                    finally:
                        os.close(fd)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    continue
                raise
            removed += 1
    return removed


async def detach_tc_programs(rtnl: Rtnl, index: int) -> int:
    """Delete every ``bpf`` TC filter on clsact ingress and egress of ``index``; returns how many."""
    removed = 0
    for parent in (CLSACT_INGRESS, CLSACT_EGRESS):
        prios: set[int] = set()
        for f in await rtnl.tc_filters(index, parent):
            if f.get("kind") == "bpf":
                prios.add(int(f["info"]))
        for info in sorted(prios):
            # deleting by (parent, prio/protocol) with handle 0 removes that priority's whole
            # chain, which is what one `tc filter add ... bpf` attachment is
            await rtnl.tc_filter_del(index, parent, 0, info)
            removed += 1
    return removed
