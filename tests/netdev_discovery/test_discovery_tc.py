"""tc BPF filters: dra.net/ebpf and dra.net/tcFilterNames, seen through netlink, with events.

A minimal eBPF program (``r0 = 0; exit``) is loaded with the bpf(2) syscall, pinned in a
private bpffs mounted in tmp_path, and attached by iproute2's ``tc ... bpf object-pinned``.
Results are checked against ``tc -j filter show``. Skipped (probe named) where the kernel
refuses BPF program loading.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import secrets
import struct
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from dranet_backends.netdev import NetdevBackend
from dranet_core.types import Device

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CAP_NET_ADMIN, CAP_BPF)"),
]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_NR_BPF = 321 if os.uname().machine == "x86_64" else 280  # aarch64: 280
_BPF_PROG_LOAD, _BPF_OBJ_PIN = 5, 6
_SCHED_CLS = 3


def _bpf(cmd: int, attr: bytearray) -> int:
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    return int(_libc.syscall(_NR_BPF, cmd, buf, len(attr)))


def load_and_pin(path: Path, name: bytes) -> None:
    insns = ctypes.create_string_buffer(bytes.fromhex("b7000000000000009500000000000000"), 16)
    lic = ctypes.create_string_buffer(b"GPL")
    attr = bytearray(128)
    struct.pack_into(
        "=IIQQIIQII16s",
        attr,
        0,
        _SCHED_CLS,
        2,
        ctypes.addressof(insns),
        ctypes.addressof(lic),
        0,
        0,
        0,
        0,
        0,
        name,
    )
    fd = _bpf(_BPF_PROG_LOAD, attr)
    if fd < 0:
        pytest.skip(f"probe bpf(BPF_PROG_LOAD): kernel refused ({os.strerror(ctypes.get_errno())})")
    try:
        p = ctypes.create_string_buffer(str(path).encode())
        pin = bytearray(128)
        struct.pack_into("=QII", pin, 0, ctypes.addressof(p), fd, 0)
        if _bpf(_BPF_OBJ_PIN, pin) != 0:
            raise AssertionError(f"BPF_OBJ_PIN failed: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)


def sh(*args: str, check: bool = True) -> str:
    res = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {res.stderr.strip()}")
    return res.stdout


@pytest.fixture
def bpffs(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "bpffs"
    d.mkdir()
    res = subprocess.run(["mount", "-t", "bpf", "bpf", str(d)], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        pytest.skip(f"probe mount -t bpf: {res.stderr.strip()}")
    try:
        yield d
    finally:
        sh("umount", str(d), check=False)


@pytest.fixture
def ns() -> Iterator[str]:
    name = f"dnt-disc-{secrets.token_hex(4)}"
    sh("ip", "netns", "add", name)
    try:
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


def tc(ns: str, *args: str) -> str:
    return sh("ip", "netns", "exec", ns, "tc", *args)


def tc_names(ns: str, dev: str) -> list[str]:
    names: list[str] = []
    for direction in ("ingress", "egress"):
        for f in json.loads(tc(ns, "-j", "filter", "show", "dev", dev, direction) or "[]"):
            name = f.get("options", {}).get("bpf_name")
            if f.get("kind") == "bpf" and name:
                names.append(name)
    return names


def attrs_of(devs: Sequence[Device], ifname: str) -> dict[str, object]:
    (d,) = [d for d in devs if d.attributes.get("dra.net/ifName") == ifname]
    return dict(d.attributes)


async def test_bpf_filters_reported_and_followed_by_events(ns: str, bpffs: Path, tmp_path: Path) -> None:
    load_and_pin(bpffs / "ing", b"dnt_ing")
    load_and_pin(bpffs / "egr", b"dnt_egr")
    sh("ip", "-n", ns, "link", "add", "dtc0", "type", "veth", "peer", "name", "dtc1")
    (tmp_path / "sys").mkdir()
    b = NetdevBackend(sysfs=tmp_path / "sys", netns=f"/run/netns/{ns}")
    notified = asyncio.Event()
    watch = asyncio.ensure_future(b.watch(notified.set))
    try:
        await asyncio.wait_for(notified.wait(), 5)  # the watch is subscribed
        a = attrs_of(await b.scan(), "dtc0")
        assert a["dra.net/ebpf"] is False and "dra.net/tcFilterNames" not in a
        syncs = b.full_syncs
        tc(ns, "qdisc", "add", "dev", "dtc0", "clsact")
        # classic BPF (no program name) is not an eBPF program
        tc(ns, "filter", "add", "dev", "dtc0", "ingress", "bpf", "bytecode", "1,6 0 0 0")
        tc(
            ns,
            "filter",
            "add",
            "dev",
            "dtc0",
            "ingress",
            "pref",
            "10",
            "bpf",
            "da",
            "object-pinned",
            str(bpffs / "ing"),
        )
        tc(ns, "filter", "add", "dev", "dtc0", "egress", "bpf", "da", "object-pinned", str(bpffs / "egr"))
        notified.clear()
        await asyncio.wait_for(notified.wait(), 5)  # no link bounce needed (unlike the Go driver)
        await asyncio.sleep(0.1)
        a = attrs_of(await b.scan(), "dtc0")
        expected = tc_names(ns, "dtc0")
        assert expected == ["ing:[*fsobj]", "egr:[*fsobj]"]
        assert a["dra.net/ebpf"] is True
        assert a["dra.net/tcFilterNames"] == ",".join(expected)
        assert attrs_of(await b.scan(), "dtc1")["dra.net/ebpf"] is False
        tc(ns, "qdisc", "del", "dev", "dtc0", "clsact")
        await asyncio.sleep(0.3)
        a = attrs_of(await b.scan(), "dtc0")
        assert a["dra.net/ebpf"] is False and "dra.net/tcFilterNames" not in a
        assert b.full_syncs == syncs  # followed incrementally
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
        b.close()


_BPF_LINK_CREATE = 28
_BPF_TCX_INGRESS = 46


def _load_prog(name: bytes) -> int:
    insns = ctypes.create_string_buffer(bytes.fromhex("b7000000000000009500000000000000"), 16)
    lic = ctypes.create_string_buffer(b"GPL")
    attr = bytearray(128)
    struct.pack_into(
        "=IIQQIIQII16s",
        attr,
        0,
        _SCHED_CLS,
        2,
        ctypes.addressof(insns),
        ctypes.addressof(lic),
        0,
        0,
        0,
        0,
        0,
        name,
    )
    fd = _bpf(_BPF_PROG_LOAD, attr)
    if fd < 0:
        pytest.skip(f"probe bpf(BPF_PROG_LOAD): kernel refused ({os.strerror(ctypes.get_errno())})")
    return fd


def _tcx_attach_in(ns: str, ifindex: int, prog_fd: int) -> int:
    """BPF_LINK_CREATE for TCX ingress, from a thread inside ``ns``; returns the link fd."""
    from dranet_backends.netdev.rtnl import setns_net

    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    tgt = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        setns_net(tgt)
        try:
            attr = bytearray(64)
            struct.pack_into("=IIII", attr, 0, prog_fd, ifindex, _BPF_TCX_INGRESS, 0)
            return _bpf(_BPF_LINK_CREATE, attr)
        finally:
            setns_net(own)
    finally:
        os.close(tgt)
        os.close(own)


async def test_tcx_program_names_read_at_resync(ns: str, tmp_path: Path) -> None:
    sh("ip", "-n", ns, "link", "add", "dtx0", "type", "veth", "peer", "name", "dtx1")
    ifindex = int(sh("ip", "-n", ns, "-o", "link", "show", "dtx0").split(":", 1)[0])
    prog = _load_prog(b"dnt_tcx")
    link_fd = -1
    (tmp_path / "sys").mkdir()
    b = NetdevBackend(sysfs=tmp_path / "sys", netns=f"/run/netns/{ns}")
    try:
        link_fd = await asyncio.to_thread(_tcx_attach_in, ns, ifindex, prog)
        if link_fd < 0:
            pytest.skip(f"probe bpf(BPF_LINK_CREATE, TCX): {os.strerror(ctypes.get_errno())} (kernel < 6.6?)")
        a = attrs_of(await b.scan(), "dtx0")  # no watch: every scan is a full read
        assert a["dra.net/tcxProgramNames"] == "dnt_tcx"
        assert a["dra.net/ebpf"] is True
        assert "dra.net/tcFilterNames" not in a
        assert "dra.net/tcxProgramNames" not in attrs_of(await b.scan(), "dtx1")
        os.close(link_fd)  # detaches
        link_fd = -1
        a = attrs_of(await b.scan(), "dtx0")
        assert "dra.net/tcxProgramNames" not in a and a["dra.net/ebpf"] is False
    finally:
        if link_fd >= 0:
            os.close(link_fd)
        os.close(prog)
        b.close()
