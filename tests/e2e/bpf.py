"""Tiny eBPF programs for the BPF scenarios, loaded with the bpf(2) syscall (no clang here).

The program is ``r0 = 0; exit`` (SCHED_CLS). :func:`tc_filter` attaches it as a named tc
filter through a pinned object in a private bpffs; :func:`tcx_attach` attaches it at TCX
ingress inside a namespace (a helper process: the attachment outlives the fd).
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from e2e.nodenet import in_ns

# Loads the program named argv[1] and either pins it at argv[2] ("pin") or attaches it at
# TCX ingress of ifindex argv[2] ("tcx"), in the namespace it runs in.
_SCRIPT = r"""
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
NR = 321 if os.uname().machine == "x86_64" else 280
def bpf(cmd, attr):
    r = libc.syscall(ctypes.c_long(NR), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr)))
    if r < 0:
        raise OSError(ctypes.get_errno(), "bpf(%d)" % cmd)
    return r
mode, name, where = sys.argv[1], sys.argv[2].encode(), sys.argv[3]
insns = ctypes.create_string_buffer(bytes.fromhex("b7000000000000009500000000000000"), 16)
lic = ctypes.create_string_buffer(b"GPL")
attr = ctypes.create_string_buffer(144)
struct.pack_into("=IIQQ", attr, 0, 3, 2, ctypes.addressof(insns), ctypes.addressof(lic))
struct.pack_into("=16s", attr, 48, name)
fd = bpf(5, attr)
attr = ctypes.create_string_buffer(144)
if mode == "pin":
    path = ctypes.create_string_buffer(where.encode())
    struct.pack_into("=QI", attr, 0, ctypes.addressof(path), fd)
    bpf(6, attr)
else:
    struct.pack_into("=III", attr, 0, int(where), fd, 46)
    bpf(8, attr)
print("ok")
"""


def _load(ns: str, mode: str, name: str, where: str) -> None:
    out = in_ns(ns, "python3", "-c", _SCRIPT, mode, name, where)
    assert out.strip() == "ok", out


@contextlib.contextmanager
def bpffs() -> Iterator[Path]:
    """A private bpffs mount (unmounted after)."""
    d = Path(tempfile.mkdtemp(prefix="dnt-e2e-bpf-"))
    subprocess.run(["mount", "-t", "bpf", "bpf", str(d)], check=True, capture_output=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], check=False, capture_output=True)
        d.rmdir()


def tc_filter(ns: str, dev: str, pin_dir: Path, name: str) -> None:
    """A clsact qdisc on ``dev`` with the program ``name`` as an ingress bpf filter."""
    pin = pin_dir / name
    _load(ns, "pin", name, str(pin))
    in_ns(ns, "tc", "qdisc", "add", "dev", dev, "clsact")
    in_ns(ns, "tc", "filter", "add", "dev", dev, "ingress", "bpf", "da", "object-pinned", str(pin))


def tcx_attach(ns: str, ifindex: int, name: str) -> None:
    """The program ``name`` at TCX ingress of ``ifindex`` in ``ns``."""
    _load(ns, "tcx", name, str(ifindex))


def tc_filter_names(ns: str, dev: str) -> list[str]:
    """The bpf filter names tc shows on ``dev`` (ingress and egress)."""
    import json

    names: list[str] = []
    for direction in ("ingress", "egress"):
        out = in_ns(ns, "tc", "-j", "filter", "show", "dev", dev, direction, check=False)
        for f in json.loads(out or "[]"):
            if f.get("kind") == "bpf" and f.get("options", {}).get("bpf_name"):
                names.append(f["options"]["bpf_name"])
    return names
