"""Message-level tests: VRF request bytes, ethtool ioctl payloads, names, snapshot JSON.

Byte vectors are written out by hand from the rtnetlink / ethtool layouts, not produced by
the encoders under test.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dranet_backends.netdev import ethtool, rtmsg, sysctl, vrf
from dranet_backends.netdev.attach import plan_routes
from dranet_backends.netdev.mover import NetdevMover, link_attrs, temp_name
from dranet_backends.netdev.snapshot import AddressRecord, HostSnapshot, RouteRecord
from dranet_core.config.model import InterfaceConfig, NetworkConfig, RouteConfig, VRFConfig
from dranet_core.plans import PreparedDevice


def test_vrf_create_request_bytes() -> None:
    mtype, flags, payload = rtmsg.link_new(vrf.create_request("blue", 77))
    data = rtmsg.header(mtype, flags, 1, payload)
    # ifinfomsg: family 0, pad, type 0, index 0, flags 0, change 0
    ifi = b"\x00\x00\x00\x00" + b"\x00" * 12
    ifname = b"\x09\x00\x03\x00blue\x00\x00\x00\x00"  # len 9 (4 + "blue\0"), padded to 12
    kind = b"\x08\x00\x01\x00vrf\x00"  # IFLA_INFO_KIND "vrf\0": len 4 + 4
    table = b"\x08\x00\x01\x00\x4d\x00\x00\x00"  # IFLA_VRF_TABLE u32 77
    data_nla = b"\x0c\x00\x02\x00" + table  # IFLA_INFO_DATA
    linkinfo = struct.pack("=HH", 4 + len(kind) + len(data_nla), 18) + kind + data_nla
    body = ifi + ifname + linkinfo
    assert data[16:] == body
    assert struct.unpack_from("=IHHI", data, 0) == (16 + len(body), 16, 0x0605, 1)


def test_vrf_default_table_is_fnv_in_range() -> None:
    assert vrf.fnv32a(b"") == 0x811C9DC5
    assert vrf.fnv32a(b"a") == 0xE40C292C  # published FNV-1a 32 test vector
    t = vrf.default_table("blue")
    assert 1000 <= t <= 1999
    assert t == vrf.fnv32a(b"blue") % 1000 + 1000


def test_ethtool_sfeatures_payload_by_hand() -> None:
    names = [f"f{i}" for i in range(40)]  # two words
    data = ethtool.encode_sfeatures(names, {"f1": True, "f33": False})
    assert data == struct.pack("=II", 0x3B, 2) + struct.pack("=II", 0b10, 0b10) + struct.pack("=II", 0b10, 0)
    with pytest.raises(KeyError):
        ethtool.encode_sfeatures(names, {"nope": True})


def test_ethtool_decode_features_and_strings() -> None:
    raw = b"rx-gro".ljust(32, b"\0") + b"tx-checksum-ip-generic".ljust(32, b"\0")
    names = ethtool.decode_strings(raw, 2)
    assert names == ("rx-gro", "tx-checksum-ip-generic")
    blocks = struct.pack("=IIII", 0b01, 0, 0b10, 0)  # rx-gro changeable+off, tx-... fixed+on
    f = ethtool.decode_features(names, blocks)
    assert f.changeable == frozenset({"rx-gro"})
    assert f.active == {"rx-gro": False, "tx-checksum-ip-generic": True}


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        ({"gro": True}, {"rx-gro": True}),
        ({"generic-receive-offload": False}, {"rx-gro": False}),
        ({"rx-gro": True}, {"rx-gro": True}),
        ({"tx": False}, {"tx-checksum-ipv4": False, "tx-checksum-ip-generic": False}),
        ({"tso": True}, {"tx-tcp-segmentation": True, "tx-tcp6-segmentation": True}),
    ],
)
def test_feature_names_short_long_kernel(asked: dict[str, bool], expected: dict[str, bool]) -> None:
    names = [
        "rx-gro",
        "tx-checksum-ipv4",
        "tx-checksum-ip-generic",
        "tx-tcp-segmentation",
        "tx-tcp6-segmentation",
        "rx-checksum",
    ]
    assert ethtool.resolve_features(asked, names) == expected


def test_unknown_feature_is_named() -> None:
    with pytest.raises(KeyError, match="lro"):
        ethtool.resolve_features({"lro": True}, ["rx-gro"])


def test_ifreq_layout() -> None:
    req = ethtool.ifreq("eth0", 0x1122334455667788)
    assert len(req) == 40
    assert req[:16] == b"eth0" + b"\0" * 12
    assert struct.unpack_from("=Q", req, 16)[0] == 0x1122334455667788
    with pytest.raises(ValueError):
        ethtool.ifreq("x" * 16, 0)


def test_link_attrs_and_temp_name() -> None:
    iface = InterfaceConfig(mtu=9000, hardware_addr="02:AA:00:00:00:01", gso_max_size=1, gro_ipv4_max_size=2)
    assert link_attrs(iface) == [
        ("IFLA_MTU", 9000),
        ("IFLA_ADDRESS", "02:aa:00:00:00:01"),
        ("IFLA_GSO_MAX_SIZE", 1),
        ("IFLA_GRO_IPV4_MAX_SIZE", 2),
    ]
    assert link_attrs(None) == []
    assert temp_name(0x7FFFFFFF) == "drn7fffffff"
    assert len(temp_name(0x7FFFFFFF)) <= 15


def test_sysctl_paths_are_checked() -> None:
    assert sysctl.device_path("ipv4.arp_ignore", "eth0", "/r") == "/r/ipv4/conf/eth0/arp_ignore"
    for key, name in (("ipv4.arp_ignore", "../x"), ("ipv9.x", "eth0"), ("ipv4.a/b", "eth0")):
        with pytest.raises(ValueError):
            sysctl.device_path(key, name)


def test_sysctl_read_write_on_a_fake_tree(tmp_path: object) -> None:
    import pathlib

    root = pathlib.Path(str(tmp_path))
    d = root / "ipv4" / "conf" / "eth0"
    d.mkdir(parents=True)
    (d / "arp_ignore").write_text("0\n")
    assert sysctl.read_device("eth0", root=str(root)) == {"ipv4.arp_ignore": 0}
    assert sysctl.write_device("eth0", {"ipv4.arp_ignore": 2}, str(root)) == {"ipv4.arp_ignore": 0}
    assert (d / "arp_ignore").read_text() == "2\n"
    assert sysctl.write_device("eth0", {"ipv6.forwarding": 1}, str(root), optional=("ipv6.forwarding",)) == {}
    with pytest.raises(OSError, match="arp_announce"):
        sysctl.write_device("eth0", {"ipv4.arp_announce": 1}, str(root))


def test_snapshot_json_round_trip_and_errors() -> None:
    snap = HostSnapshot(
        ifname="eth1",
        ifindex=7,
        kind="veth",
        mac="02:00:00:00:00:01",
        up=True,
        mtu=1500,
        addresses=(AddressRecord(address="192.0.2.1", prefixlen=24, flags=0x80),),
        routes=(RouteRecord(family=2, dst="198.51.100.0", dst_len=24, gateway="192.0.2.254"),),
        sysctls={"ipv4.arp_ignore": 1},
        features={"rx-gro": True},
    )
    data = json.loads(json.dumps(snap.to_json()))
    assert HostSnapshot.from_json(data) == snap
    with pytest.raises(ValueError, match="version"):
        HostSnapshot.from_json({**data, "version": 2})
    with pytest.raises(ValueError, match="object"):
        HostSnapshot.from_json([1])
    with pytest.raises(ValueError, match="netdev snapshot"):
        HostSnapshot.from_json({**data, "bogus": 1})


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(
    st.dictionaries(
        st.sampled_from(
            ["ifname", "ifindex", "addresses", "routes", "rules", "neighbors", "mtu", "sysctls", "x"]
        ),
        _json,
    )
)
@settings(deadline=None)  # behaviour only: a loaded CI machine must not fail it on time
def test_garbled_snapshot_json_gives_value_error_only(extra: dict[str, object]) -> None:
    data = {"version": 1, "ifname": "eth0", "ifindex": 3, **extra}
    try:
        snap = HostSnapshot.from_json(data)
    except ValueError as exc:
        assert "snapshot" in str(exc)
    else:
        assert HostSnapshot.from_json(json.loads(json.dumps(snap.to_json()))) == snap


# -- the mover's pod-side plans, without a kernel ------------------------------------------


class _FakePod:
    """Records what the mover asks of the pod's rtnetlink (a VRF-less kernel stand-in)."""

    def __init__(self) -> None:
        self.links: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, Any]] = []

    async def link_get(self, *, index: int | None = None, ifname: str | None = None) -> Any:
        return self.links.get(ifname or "")

    async def link_new(self, body: bytes) -> None:
        self.calls.append(("link_new", body))
        # IFLA_IFNAME is the first attribute after the 16-byte ifinfomsg
        length = struct.unpack_from("=H", body, 16)[0]
        name = body[20 : 16 + length].rstrip(b"\0").decode()
        self.links[name] = {"index": 42, "ifname": name}

    async def link_set(self, index: int, attrs: list[tuple[str, Any]], *, up: bool | None = None) -> None:
        self.calls.append(("link_set", (index, attrs, up)))


def _ctx(cfg: NetworkConfig, snap: HostSnapshot, pod: Any = None) -> Any:
    from dranet_backends.netdev.attach import AttachJob

    dev = PreparedDevice(pool="p", device="d", request_names=("r",), config=cfg)
    return AttachJob(device=dev, snap=snap, cfg=cfg, name="net1", pod_fd=-1, pod=pod, index=7)


_SNAP = HostSnapshot(
    ifname="eth1",
    ifindex=3,
    addresses=(AddressRecord(address="192.0.2.5", prefixlen=24, flags=0x80),),
    routes=(
        RouteRecord(family=2, dst="198.51.100.0", dst_len=24, gateway="192.0.2.1", prefsrc="192.0.2.5"),
        RouteRecord(family=2, dst="203.0.113.0", dst_len=24, gateway="10.0.0.1"),  # off-subnet gateway
        RouteRecord(family=2, dst=None, dst_len=0, gateway="192.0.2.1"),  # default: not copied
        RouteRecord(family=10, dst="fe80::", dst_len=64),  # link-local: not copied
        RouteRecord(family=2, dst="192.0.2.1", dst_len=32, scope=253),
    ),
)


def test_pod_routes_follow_go_rules_and_put_link_scope_first() -> None:
    cfg = NetworkConfig(routes=(RouteConfig(destination="10.9.0.0/16", gateway="192.0.2.254", table=7),))
    routes = plan_routes(cfg, _SNAP)
    assert [(r["dst"], r["dst_len"], r["table"]) for r in routes] == [
        ("192.0.2.1", 32, 254),
        ("10.9.0.0", 16, 7),
        ("198.51.100.0", 24, 254),
    ]
    assert routes[2]["prefsrc"] == "192.0.2.5"  # a source the pod has is kept
    other = NetworkConfig(interface=InterfaceConfig(addresses=("192.0.2.9/24",)))
    assert "prefsrc" not in plan_routes(other, _SNAP)[1]  # ... one it lacks is dropped


def test_pod_routes_go_into_the_vrf_table() -> None:
    assert {r["table"] for r in plan_routes(NetworkConfig(), _SNAP, vrf_table=1234)} == {1234}


@pytest.mark.skipif(os.geteuid() != 0, reason="probe: setns into this process's own netns needs root")
async def test_vrf_step_creates_enslaves_and_sets_l3mdev(tmp_path: Path) -> None:
    pod = _FakePod()
    (tmp_path / "ipv4").mkdir()
    async with NetdevMover(proc_sys=str(tmp_path)) as mover:
        cfg = NetworkConfig(interface=InterfaceConfig(vrf=VRFConfig(name="blue")))
        ctx = _ctx(cfg, _SNAP, pod)
        fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        try:
            ctx.pod_fd = fd
            await mover._attacher._vrf(ctx)
        finally:
            os.close(fd)
    assert ctx.vrf_created == 42
    assert ctx.vrf_table == vrf.default_table("blue")
    kind, body = pod.calls[0]
    assert kind == "link_new" and body == vrf.create_request("blue", vrf.default_table("blue"))
    assert "blue" in pod.links
    assert ("link_set", (42, [], True)) in pod.calls  # VRF up
    assert ("link_set", (7, [("IFLA_MASTER", 42)], None)) in pod.calls  # enslaved
    assert (tmp_path / "ipv4" / "tcp_l3mdev_accept").read_text() == "1\n"
    assert (tmp_path / "ipv4" / "udp_l3mdev_accept").read_text() == "1\n"


async def test_vrf_name_taken_by_another_kind_is_refused() -> None:
    pod = _FakePod()
    pod.links["blue"] = {"index": 5, "ifname": "blue"}
    async with NetdevMover() as mover:
        ctx = _ctx(NetworkConfig(interface=InterfaceConfig(vrf=VRFConfig(name="blue", table=9))), _SNAP, pod)
        with pytest.raises(OSError, match="not a VRF"):
            await mover._attacher._vrf(ctx)


def test_route_add_request_bytes_by_hand() -> None:
    mtype, flags, body = rtmsg.route_add(
        family=2, dst="10.2.0.0", dst_len=16, gateway="10.1.0.1", oif=7, scope=0, table=1000
    )
    assert (mtype, flags) == (24, 0x1 | 0x4 | 0x400 | 0x200)  # RTM_NEWROUTE, request+ack+create+excl
    # rtmsg: AF_INET, /16, src 0, tos 0, table 252 (RT_TABLE_COMPAT: > 255), static, universe, unicast
    head = bytes([2, 16, 0, 0, 252, 4, 0, 1]) + b"\0\0\0\0"
    dst = b"\x08\x00\x01\x00" + bytes([10, 2, 0, 0])
    gw = b"\x08\x00\x05\x00" + bytes([10, 1, 0, 1])
    oif = b"\x08\x00\x04\x00" + struct.pack("=I", 7)
    table = b"\x08\x00\x0f\x00" + struct.pack("=I", 1000)
    assert body == head + dst + gw + oif + table


def test_error_reply_carries_errno_and_the_kernels_message() -> None:
    inner = struct.pack("=IHHII", 16, 24, 0x605, 9, 0)  # the request's header (capped)
    msg = b"Nexthop has invalid gateway\0"
    tlv = struct.pack("=HH", 4 + len(msg), 1) + msg + b"\0" * (-len(msg) % 4)
    payload = struct.pack("=i", -101) + inner + tlv  # -ENETUNREACH
    data = struct.pack("=IHHII", 16 + len(payload), 2, 0x100 | 0x200, 9, 0) + payload
    [(kind, _, seq, rec, code, text)] = list(rtmsg.decode(data))
    assert (kind, seq, rec, code, text) == (2, 9, None, 101, "Nexthop has invalid gateway")


def test_link_reply_decodes_what_the_mover_reads() -> None:
    def rta(t: int, p: bytes) -> bytes:
        raw = struct.pack("=HH", 4 + len(p), t) + p
        return raw + b"\0" * (-len(raw) % 4)

    body = struct.pack("=BxHiII", 0, 1, 5, 0x1003, 0)
    body += rta(3, b"eth1\0") + rta(1, bytes.fromhex("02aabbccddee")) + rta(4, struct.pack("=I", 1500))
    body += rta(51, struct.pack("=I", 9000)) + rta(54, bytes.fromhex("02aabbccdd01"))
    body += rta(18, rta(1, b"vrf\0") + rta(2, rta(1, struct.pack("=I", 77))))
    data = struct.pack("=IHHII", 16 + len(body), 16, 0, 1, 0) + body
    [(_, _, _, rec, code, _)] = list(rtmsg.decode(data))
    assert code == 0 and rec is not None
    assert rec["index"] == 5 and rec["flags"] & 1
    assert (rec["ifname"], rec["address"], rec["mtu"], rec["max_mtu"]) == (
        "eth1",
        "02:aa:bb:cc:dd:ee",
        1500,
        9000,
    )
    assert rec["perm_address"] == "02:aa:bb:cc:dd:01"
    assert rec[("linkinfo", "kind")] == "vrf" and rec[("linkinfo", "data", "vrf_table")] == 77
