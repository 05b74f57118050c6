"""The rtnetlink decoder against hand-written byte vectors (layout from the kernel uapi headers).

Each vector is written out byte by byte from linux/netlink.h (nlmsghdr: len u32, type u16,
flags u16, seq u32, pid u32), linux/rtnetlink.h (rtattr: len u16, type u16, 4-byte
aligned; rtmsg; tcmsg; rtnexthop) and linux/if_link.h / if_addr.h. Little-endian host.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dranet_backends.netdev import rtnl
from dranet_backends.netdev.attributes import join_capped, link_type, netdev_attributes
from dranet_backends.netdev.facet import NetdevFacet
from dranet_backends.netdev.state import KernelView, uplinks
from dranet_backends.netdev.sysfs import NetdevSysfs
from dranet_core.names import device_name_for_interface, device_name_for_pci

NEWLINK = bytes.fromhex(
    "80000000"
    "1000"
    "0200"
    "07000000"
    "00000000"  # nlmsghdr: len 128, RTM_NEWLINK, MULTI, seq 7
    "00"
    "00"
    "0100"
    "05000000"
    "43100000"
    "00000000"  # ifinfomsg: ether, index 5, flags, change
    "09000300"
    "65746837"
    "00000000"  # IFLA_IFNAME "eth7"
    "08000400"
    "28230000"  # IFLA_MTU 9000
    "0a000100"
    "020000aabbcc"
    "0000"  # IFLA_ADDRESS
    "05001000"
    "06000000"  # IFLA_OPERSTATE up
    "08000a00"
    "03000000"  # IFLA_MASTER 3
    "10001280"
    "09000100"
    "76657468"
    "00000000"  # IFLA_LINKINFO { IFLA_INFO_KIND "veth" }
    "07001400"
    "75700000"  # IFLA_IFALIAS "up"
    "0a003600"
    "020000aabbcc"
    "0000"  # IFLA_PERM_ADDRESS
    "0c001700"
    "0000000000000000"  # IFLA_STATS64 (ignored)
)

NEWROUTE_MULTIPATH = bytes.fromhex(
    "50000000"
    "1800"
    "0200"
    "01000000"
    "00000000"  # len 80, RTM_NEWROUTE
    "02"
    "00"
    "00"
    "00"
    "fe"
    "03"
    "00"
    "01"
    "00000000"  # rtmsg: inet, dst_len 0, table main, unicast
    "08000f00"
    "fe000000"  # RTA_TABLE 254
    "08000600"
    "64000000"  # RTA_PRIORITY 100
    "24000900"  # RTA_MULTIPATH, two rtnexthops
    "1000"
    "00"
    "00"
    "04000000"
    "08000500"
    "0a000001"
    "1000"
    "00"
    "00"
    "06000000"
    "08000500"
    "0a000002"
)

NEWADDR6 = bytes.fromhex(
    "2c000000"
    "1400"
    "0000"
    "02000000"
    "00000000"  # len 44, RTM_NEWADDR
    "0a"
    "40"
    "80"
    "00"
    "05000000"  # ifaddrmsg: inet6, /64, permanent, universe, index 5
    "14000100"
    "20010db8000000000000000000000010"  # IFA_ADDRESS 2001:db8::10
)

NEWTFILTER_BPF = bytes.fromhex(
    "40000000"
    "2c00"
    "0200"
    "03000000"
    "00000000"  # len 64, RTM_NEWTFILTER
    "00"
    "000000"
    "05000000"
    "01000000"
    "f2ffffff"
    "00030100"  # tcmsg: ifindex 5, parent ffff:fff2
    "08000100"
    "62706600"  # TCA_KIND "bpf"
    "14000280"
    "10000700"
    "70726f672e6f3a5b74635d00"  # TCA_OPTIONS { TCA_BPF_NAME "prog.o:[tc]" }
)

ERROR_ENODEV = bytes.fromhex(
    "24000000"
    "0200"
    "0000"
    "09000000"
    "00000000"  # len 36, NLMSG_ERROR
    "edffffff"  # error -19
    "28000000"
    "1200"
    "0103"
    "09000000"
    "00000000"  # the request's header
)


def test_decode_newlink() -> None:
    ((mtype, flags, seq, link),) = list(rtnl.decode(NEWLINK))
    assert (mtype, flags, seq) == (rtnl.RTM_NEWLINK, rtnl.NLM_F_MULTI, 7)
    assert isinstance(link, rtnl.Link)
    assert (link.index, link.name, link.mtu, link.mac) == (5, "eth7", 9000, "02:00:00:aa:bb:cc")
    assert (link.state, link.kind, link.master, link.alias) == ("up", "veth", 3, "up")
    assert link.perm_mac == "02:00:00:aa:bb:cc"
    assert link.encapsulation == "ether"


def test_decode_multipath_default_route() -> None:
    ((mtype, _, _, route),) = list(rtnl.decode(NEWROUTE_MULTIPATH))
    assert mtype == rtnl.RTM_NEWROUTE and isinstance(route, rtnl.Route)
    assert route.is_default and route.table == 254 and route.priority == 100
    assert route.oifs == (4, 6)


def test_decode_address_and_filter() -> None:
    ((_, _, _, addr),) = list(rtnl.decode(NEWADDR6))
    assert isinstance(addr, rtnl.Addr) and addr.cidr == "2001:db8::10/64" and addr.index == 5
    ((_, _, _, flt),) = list(rtnl.decode(NEWTFILTER_BPF))
    assert isinstance(flt, rtnl.TcFilter)
    assert (flt.index, flt.parent, flt.kind, flt.bpf_name) == (5, rtnl.TC_H_MIN_INGRESS, "bpf", "prog.o:[tc]")


def test_several_messages_in_one_datagram() -> None:
    recs = [r for _, _, _, r in rtnl.decode(NEWLINK + NEWADDR6 + NEWROUTE_MULTIPATH)]
    assert [type(r).__name__ for r in recs] == ["Link", "Addr", "Route"]


def test_error_reply_raises_with_errno() -> None:
    with pytest.raises(OSError) as ei:
        list(rtnl.decode(ERROR_ENODEV))
    assert ei.value.errno == 19


@pytest.mark.parametrize("cut", [1, 15, 17, 40, 127])
def test_truncated_input_stops_cleanly(cut: int) -> None:
    out = list(rtnl.decode(NEWLINK[:cut]))
    assert out == []  # a message longer than the data is not decoded


def test_garbled_attribute_length_is_contained() -> None:
    bad = bytearray(NEWLINK)
    bad[32:34] = (0xFFFF).to_bytes(2, "little")  # first rtattr claims 65535 bytes
    ((_, _, _, link),) = list(rtnl.decode(bytes(bad)))
    assert isinstance(link, rtnl.Link) and link.index == 5 and link.name == ""


def test_link_dump_request_bytes() -> None:
    expected = bytes.fromhex(
        "28000000"
        "1200"
        "0103"
        "01000000"
        "00000000"  # len 40, RTM_GETLINK, REQUEST|DUMP, seq 1
        "00"
        "00"
        "0000"
        "00000000"
        "00000000"
        "00000000"  # ifinfomsg all zero
        "08001d00"
        "08000000"  # IFLA_EXT_MASK RTEXT_FILTER_SKIP_STATS
    )
    assert rtnl.link_dump_request(1) == expected


def test_filter_dump_request_bytes() -> None:
    expected = bytes.fromhex(
        "24000000"
        "2e00"
        "0103"
        "02000000"
        "00000000"  # len 36, RTM_GETTFILTER, REQUEST|DUMP
        "00"
        "000000"
        "07000000"
        "00000000"
        "f3ffffff"
        "00000000"  # ifindex 7, parent ffff:fff3
    )
    assert rtnl.filter_dump_request(2, 7, rtnl.TC_H_MIN_EGRESS) == expected


def _link(index: int, name: str, master: int = 0) -> rtnl.Link:
    link = rtnl.Link(index, 1, 0)
    link.name, link.master = name, master
    return link


def _route(
    family: int, oifs: tuple[int, ...], prio: int = 0, table: int = 254, dst_len: int = 0
) -> rtnl.Route:
    r = rtnl.Route(family, dst_len, table, 1)
    r.oifs, r.priority = oifs, prio
    return r


def test_uplinks_rules() -> None:
    links = {i: _link(i, f"l{i}") for i in range(1, 10)}
    links[5] = _link(5, "slave", master=2)  # bond slave of the uplink
    links[6] = _link(6, "vf", master=5)  # below the slave
    routes = [
        _route(2, (2,), prio=10),
        _route(2, (3,), prio=10),  # ECMP tie: kept
        _route(2, (4,), prio=20),  # higher metric: not an uplink
        _route(2, (7,), prio=0, table=100),  # other table
        _route(2, (8,), prio=0, dst_len=8),  # not a default route
        _route(10, (9,), prio=1024),  # v6 on its own
    ]
    assert uplinks(routes, links) == {2, 3, 5, 6, 9}
    assert uplinks([], links) == frozenset()


def test_kernel_view_events() -> None:
    v = KernelView()
    v.load_links([_link(1, "a"), _link(2, "b")])
    assert v.apply(rtnl.RTM_NEWLINK, _link(2, "b")) is False  # unchanged
    assert v.apply(rtnl.RTM_NEWLINK, _link(2, "b2")) is True and 2 in v.dirty
    assert v.apply(rtnl.RTM_DELLINK, _link(1, "a")) is True and 1 not in v.links
    assert v.apply(rtnl.RTM_NEWROUTE, _route(2, (2,), dst_len=24)) is False
    assert v.apply(rtnl.RTM_NEWROUTE, _route(2, (2,))) is True and v.routes_dirty


def test_join_capped_and_type() -> None:
    assert join_capped(["a" * 30, "b" * 30, "c"]) == "a" * 30 + "," + "b" * 30 + ",c"
    assert join_capped(["a" * 40, "b" * 30]) == "a" * 40
    assert join_capped([]) == ""
    t = _link(1, "x")
    assert link_type(t) == "device"
    t.kind = "tun"
    assert link_type(t) == "tuntap"


def test_alias_cut_to_64_bytes() -> None:
    link = _link(1, "x")
    link.alias = "é" * 40  # 80 bytes
    a = netdev_attributes(link, [], NetdevSysfs())
    assert isinstance(a["dra.net/alias"], str) and len(a["dra.net/alias"].encode()) <= 64


def test_facet_round_trip_and_errors() -> None:
    f = NetdevFacet(
        ifname="eth1",
        ifindex=4,
        mac="02:00:00:00:00:01",
        perm_mac=None,
        pci_address="0000:00:03.0",
        kind="device",
        virtual=False,
    )
    j = f.to_json()
    assert set(j) >= {"ifname", "ifindex", "mac", "perm_mac", "pci_address", "kind", "virtual"}
    assert NetdevFacet.from_json({**j, "future": 1}) == f
    with pytest.raises(ValueError, match="ifindex"):
        NetdevFacet.from_json({"ifname": "x"})
    with pytest.raises(ValueError, match="bad"):
        NetdevFacet.from_json({"ifname": "x", "ifindex": True})


def test_names() -> None:
    assert device_name_for_pci("0000:8a:00.0") == "pci-0000-8a-00-0"
    assert device_name_for_interface("eth0") == "eth0"
    assert device_name_for_interface("eth:0") == "net-mv2gqorq"
    assert device_name_for_interface("ETH0") == "net-ivkeqma"
    assert device_name_for_interface("eth_int") == "net-mv2gqx3jnz2a"


def test_short_fixed_header_is_not_decoded() -> None:
    # a RTM_NEWLINK whose body is shorter than an ifinfomsg: yielded as an unknown record
    short = bytes.fromhex("180000001000000001000000000000000000000000000000")
    assert list(rtnl.decode(short)) == [(rtnl.RTM_NEWLINK, 0, 1, None)]


def test_ipoib_left_out_unless_moving_ib_interfaces(tmp_path: Path) -> None:
    from dranet_backends.netdev import NetdevBackend

    link = _link(3, "ib0")
    link.kind = "ipoib"
    assert NetdevBackend(sysfs=tmp_path, move_ib_interfaces=False)._build(link) is None
    built = NetdevBackend(sysfs=tmp_path)._build(link)
    assert built is not None and built[1].attributes["dra.net/type"] == "ipoib"


_VECTORS = (NEWLINK, NEWROUTE_MULTIPATH, NEWADDR6, NEWTFILTER_BPF)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_decode_arbitrary_bytes_only_raises_oserror(data: bytes) -> None:
    try:
        for _, _, _, rec in rtnl.decode(data):
            assert rec is None or isinstance(
                rec, rtnl.Link | rtnl.Addr | rtnl.Route | rtnl.Qdisc | rtnl.TcFilter
            )
    except OSError:
        pass  # an NLMSG_ERROR with an errno


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_VECTORS), st.data())
def test_decode_mutated_vectors_is_contained(vector: bytes, data: st.DataObject) -> None:
    buf = bytearray(vector)
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(OSError):
        list(rtnl.decode(bytes(buf)))


async def test_missing_netns_is_a_clear_backend_error(tmp_path: Path) -> None:
    from dranet_backends.netdev import NetdevBackend
    from dranet_core.errors import BackendError

    b = NetdevBackend(sysfs=tmp_path, netns=str(tmp_path / "no-such-netns"))
    with pytest.raises(BackendError) as ei:
        await b.scan()
    assert "no-such-netns" in str(ei.value)
    b.close()


def test_event_stream_error_marks_view_stale(tmp_path: Path) -> None:
    from dranet_backends.netdev import NetdevBackend

    b = NetdevBackend(sysfs=tmp_path)
    b._watching, b._stale, b._synced_at = True, False, 0.0
    b._full_resync = 1e9
    assert b._needs_full_sync() is False
    assert b._handle_events(NEWLINK) is True  # a new link: notify
    assert b._view.links[5].name == "eth7"
    assert b._handle_events(NEWLINK) is False  # the same state again: nothing to publish
    assert b._handle_events(ERROR_ENODEV) is True
    assert b._needs_full_sync() is True  # the next scan re-dumps


def test_events_during_a_full_dump_are_replayed(tmp_path: Path) -> None:
    from dranet_backends.netdev import NetdevBackend

    b = NetdevBackend(sysfs=tmp_path)
    b._syncing = True
    assert b._handle_events(NEWLINK + NEWADDR6) is True
    assert [type(r).__name__ for _, r in b._replay] == ["Link", "Addr"]
    assert b._view.links == {}  # not applied to the view being replaced


async def test_kernel_read_failure_is_a_backend_error_and_socket_reopens(tmp_path: Path) -> None:
    from dranet_backends.netdev import NetdevBackend
    from dranet_core.errors import BackendError

    class Broken:
        closed = False

        async def request(self, *args: object, **kw: object) -> list[object]:
            raise OSError(9, "Bad file descriptor")

        def close(self) -> None:
            self.closed = True

    b = NetdevBackend(sysfs=tmp_path)
    broken = Broken()
    b._req = broken  # type: ignore[assignment]
    with pytest.raises(BackendError, match="Bad file descriptor"):
        await b.scan()
    assert broken.closed and b._req is None
    devices = await b.scan()  # reopens a socket in the own netns and works again
    assert all(d.name for d in devices)
    b.close()
