"""Subinterfaces for real: macvlan children of a veth parent, made in throwaway pod netns.

ipvlan is checked at message level (byte layout from linux/if_link.h) and for real only where
the kernel has it (probe).
"""

from __future__ import annotations

import json
import os
import secrets
import struct
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from dranet_backends.netdev import subif
from dranet_backends.netdev.nsutil import Rtnl


def sh(*cmd: str, check: bool = True) -> str:
    return subprocess.run(cmd, check=check, capture_output=True, text=True).stdout


def links(ns: str) -> dict[str, dict[str, object]]:
    return {rec["ifname"]: rec for rec in json.loads(sh("ip", "-n", ns, "-d", "-j", "link", "show"))}


@dataclass
class Lab:
    host: str
    pods: list[str]


@pytest.fixture
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("netns tests need root (probe: geteuid() != 0)")
    prefix = f"dnt-sub-{secrets.token_hex(3)}"
    lab = Lab(host=f"{prefix}-host", pods=[f"{prefix}-pod{i}" for i in range(2)])
    try:
        for ns in (lab.host, *lab.pods):
            sh("ip", "netns", "add", ns)
        sh("ip", "-n", lab.host, "link", "add", "up0", "type", "veth", "peer", "name", "up0p")
        sh("ip", "-n", lab.host, "link", "set", "up0", "up")
        yield lab
    finally:
        for ns in (*lab.pods, lab.host):
            sh("ip", "netns", "del", ns, check=False)


@dataclass
class Ns:
    fd: int
    rtnl: Rtnl


@pytest.fixture
async def ns(lab: Lab) -> AsyncIterator[dict[str, Ns]]:
    out: dict[str, Ns] = {}
    try:
        for name in (lab.host, *lab.pods):
            fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
            out[name] = Ns(fd, await Rtnl.open(fd))
        yield out
    finally:
        for n in out.values():
            await n.rtnl.aclose()
            os.close(n.fd)


async def attach(lab: Lab, ns: dict[str, Ns], pod: str, name: str, **kw: object) -> int:
    args: dict[str, object] = {"kind": "macvlan", "mode": "bridge", "parent": "up0", "name": name, **kw}
    return await subif.attach_child(ns[lab.host].rtnl, ns[pod].rtnl, pod_netns_fd=ns[pod].fd, **args)  # type: ignore[arg-type]


async def test_two_claims_share_one_parent(lab: Lab, ns: dict[str, Ns]) -> None:
    a, b = lab.pods
    ia = await attach(lab, ns, a, "net1")
    ib = await attach(lab, ns, b, "net1")
    for pod, index in ((a, ia), (b, ib)):
        child = links(pod)["net1"]
        assert child["ifindex"] == index
        assert child["linkinfo"]["info_kind"] == "macvlan"  # type: ignore[index]
        assert child["linkinfo"]["info_data"]["mode"] == "bridge"  # type: ignore[index]
        assert "UP" in child["flags"]  # type: ignore[operator]
    host = links(lab.host)
    assert "net1" not in host and "UP" in host["up0"]["flags"]  # type: ignore[operator]
    assert links(a)["net1"]["address"] != links(b)["net1"]["address"]


async def test_detach_deletes_the_child_and_keeps_the_parent(lab: Lab, ns: dict[str, Ns]) -> None:
    a, b = lab.pods
    await attach(lab, ns, a, "net1")
    await attach(lab, ns, b, "net1")
    assert await subif.detach_child(ns[a].rtnl, "net1") is True
    assert "net1" not in links(a)
    assert "net1" in links(b)  # the other claim's child is untouched
    assert "up0" in links(lab.host)
    assert await subif.detach_child(ns[a].rtnl, "net1") is False  # already gone: success


async def test_failed_attach_rolls_the_child_back(lab: Lab, ns: dict[str, Ns]) -> None:
    a = lab.pods[0]
    with pytest.raises(OSError):
        await attach(lab, ns, a, "net1", mtu=10)  # below the kernel's minimum: refused after create
    assert "net1" not in links(a)
    assert set(links(lab.host)) == {"lo", "up0", "up0p"}


async def test_missing_parent_is_one_clear_error(lab: Lab, ns: dict[str, Ns]) -> None:
    with pytest.raises(OSError, match="parent 'nope'"):
        await attach(lab, ns, lab.pods[0], "net1", parent="nope")


def test_bad_mode_names_the_field() -> None:
    with pytest.raises(ValueError, match="mode 'wide' is not a macvlan mode"):
        subif.child_body(kind="macvlan", mode="wide", parent_index=1, name="n", netns_fd=3)
    with pytest.raises(ValueError, match="kind 'vlan'"):
        subif.child_body(kind="vlan", mode="l2", parent_index=1, name="n", netns_fd=3)
    with pytest.raises(ValueError, match="name"):
        subif.child_body(kind="macvlan", mode="bridge", parent_index=1, name="x" * 16, netns_fd=3)


def _rtas(data: bytes) -> dict[int, bytes]:
    out, off = {}, 0
    while off + 4 <= len(data):
        length, atype = struct.unpack_from("=HH", data, off)
        out[atype] = data[off + 4 : off + length]
        off += (length + 3) & ~3
    return out


def test_ipvlan_message_layout() -> None:
    body = subif.child_body(
        kind="ipvlan", mode="l3", parent_index=7, name="net2", netns_fd=9, flags="private"
    )
    assert body[:16] == struct.pack("=BxHiII", 0, 0, 0, 0, 0)
    top = _rtas(body[16:])
    assert top[3] == b"net2\0"
    assert struct.unpack("=I", top[5]) == (7,)  # IFLA_LINK
    assert struct.unpack("=I", top[28]) == (9,)  # IFLA_NET_NS_FD
    info = _rtas(top[18])
    assert info[1] == b"ipvlan\0"
    data = _rtas(info[2])
    assert struct.unpack("=H", data[1]) == (1,)  # IPVLAN_MODE_L3
    assert struct.unpack("=H", data[2]) == (1,)  # IPVLAN_F_PRIVATE


async def test_ipvlan_for_real_where_the_kernel_has_it(lab: Lab, ns: dict[str, Ns]) -> None:
    if not subif.kernel_supports("ipvlan"):
        pytest.skip("probe: this kernel has no ipvlan (/sys/module/ipvlan, /proc/modules)")
    index = await attach(lab, ns, lab.pods[0], "net2", kind="ipvlan", mode="l2")
    assert links(lab.pods[0])["net2"]["ifindex"] == index


def test_probe_reads_sys_module_and_proc_modules(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    (root / "sys" / "macvlan").mkdir(parents=True)
    (root / "modules").write_text("ipvlan 45056 0 - Live 0x0\n")
    assert subif.kernel_supports("macvlan", sys_module=root / "sys", proc_modules=root / "modules")
    assert subif.kernel_supports("ipvlan", sys_module=root / "sys", proc_modules=root / "modules")
    assert not subif.kernel_supports("bond", sys_module=root / "sys", proc_modules=root / "modules")
