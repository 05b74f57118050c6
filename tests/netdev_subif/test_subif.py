"""Subinterfaces for real: macvlan children of a veth parent, made in throwaway pod netns.

ipvlan is checked at message level (byte layout from linux/if_link.h) and for real only where
the kernel has it (probe: creating one in a throwaway netns; this kernel may lack it).
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import struct
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

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


async def attach(lab: Lab, ns: dict[str, Ns], pod: str, name: str, **kw: Any) -> int:
    host = ns[lab.host].rtnl
    parent = kw.pop("parent", "up0")
    link = await host.link_get(ifname=parent)
    if link is None:
        raise OSError(f"no parent {parent!r}")
    args: dict[str, Any] = {"kind": "macvlan", "mode": "bridge", "name": name, **kw}
    child = await subif.create_child(
        host, ns[pod].rtnl, parent_index=int(link["index"]), pod_netns_fd=ns[pod].fd, **args
    )
    await ns[pod].rtnl.link_set(int(child["index"]), [], up=True)
    return int(child["index"])


def ours(kind: str = "macvlan") -> Any:
    return lambda link: link.get(("linkinfo", "kind")) == kind


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


async def test_child_is_born_with_the_given_mac(lab: Lab, ns: dict[str, Ns]) -> None:
    await attach(lab, ns, lab.pods[0], "net1", mac="02:00:00:12:34:56")
    assert links(lab.pods[0])["net1"]["address"] == "02:00:00:12:34:56"


async def test_delete_removes_only_our_child_and_keeps_the_parent(lab: Lab, ns: dict[str, Ns]) -> None:
    a, b = lab.pods
    await attach(lab, ns, a, "net1")
    await attach(lab, ns, b, "net1")
    assert await subif.delete_child(ns[a].rtnl, "net1", ours("ipvlan")) is False  # not ours: kept
    assert "net1" in links(a)
    assert await subif.delete_child(ns[a].rtnl, "net1", ours()) is True
    assert "net1" not in links(a)
    assert "net1" in links(b)  # the other claim's child is untouched
    assert "up0" in links(lab.host)
    assert await subif.delete_child(ns[a].rtnl, "net1", ours()) is False  # already gone: success


async def test_name_taken_in_the_pod_is_refused_with_nothing_created(lab: Lab, ns: dict[str, Ns]) -> None:
    a = lab.pods[0]
    sh("ip", "-n", a, "link", "add", "net1", "type", "veth", "peer", "name", "net1p")
    with pytest.raises(OSError) as err:
        await attach(lab, ns, a, "net1")
    assert err.value.errno == errno.EEXIST
    assert links(a)["net1"]["linkinfo"]["info_kind"] == "veth"  # type: ignore[index]
    assert set(links(lab.host)) == {"lo", "up0", "up0p"}


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
    try:
        index = await attach(lab, ns, lab.pods[0], "net2", kind="ipvlan", mode="l2")
    except OSError as exc:
        if exc.errno == errno.EOPNOTSUPP:
            assert "no ipvlan support" in str(exc)  # the error names the missing type
            pytest.skip("probe: this kernel has no ipvlan (RTM_NEWLINK answers EOPNOTSUPP)")
        raise
    assert links(lab.pods[0])["net2"]["ifindex"] == index
    assert links(lab.pods[0])["net2"]["linkinfo"]["info_kind"] == "ipvlan"  # type: ignore[index]


def test_bad_kind_mode_flag_or_name_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="mode 'wide' is not a macvlan mode"):
        subif.child_body(kind="macvlan", mode="wide", parent_index=1, name="n", netns_fd=3)
    with pytest.raises(ValueError, match="mode 'bridge' is not an ipvlan mode"):
        subif.child_body(kind="ipvlan", mode="bridge", parent_index=1, name="n", netns_fd=3)
    with pytest.raises(ValueError, match="flag 'loud' is not an ipvlan flag"):
        subif.child_body(kind="ipvlan", mode="l2", parent_index=1, name="n", netns_fd=3, flags="loud")
    with pytest.raises(ValueError, match="kind 'vlan'"):
        subif.child_body(kind="vlan", mode="l2", parent_index=1, name="n", netns_fd=3)
    with pytest.raises(ValueError, match="name"):
        subif.child_body(kind="macvlan", mode="bridge", parent_index=1, name="x" * 16, netns_fd=3)


def test_macvlan_message_layout_with_mac() -> None:
    body = subif.child_body(
        kind="macvlan", mode="vepa", parent_index=4, name="net1", netns_fd=5, mac="02:00:00:aa:bb:cc"
    )
    top = _rtas(body[16:])
    assert top[1] == bytes.fromhex("020000aabbcc")  # IFLA_ADDRESS
    assert struct.unpack("=I", top[5]) == (4,)
    info = _rtas(top[18])
    assert info[1] == b"macvlan\0"
    assert struct.unpack("=I", _rtas(info[2])[1]) == (2,)  # MACVLAN_MODE_VEPA
    assert 1 not in _rtas(
        subif.child_body(kind="macvlan", mode="bridge", parent_index=4, name="n", netns_fd=5)[16:]
    )
