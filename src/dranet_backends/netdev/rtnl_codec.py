"""The rtnetlink message codec: the records discovery keeps, their decoders and the requests it sends.

Sans-IO: bytes in, records out (and request bytes out). Byte layouts are those of
``linux/netlink.h``, ``linux/rtnetlink.h``, ``linux/if_link.h``, ``linux/if_addr.h`` and
``linux/pkt_sched.h``; attributes discovery does not use are skipped, not decoded. The
sockets that carry these messages are in :mod:`dranet_backends.netdev.rtnl`, which also
re-exports every public name here.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections.abc import Iterator

# linux/netlink.h
NLMSG_HDR = struct.Struct("=IHHII")
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 1, 2, 3, 4
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
SOL_NETLINK = 270
NETLINK_ROUTE = 0

# linux/rtnetlink.h message types
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWQDISC, RTM_DELQDISC, RTM_GETQDISC = 36, 37, 38
RTM_NEWTFILTER, RTM_DELTFILTER, RTM_GETTFILTER = 44, 45, 46

# multicast groups (bit masks for bind, RTMGRP_*)
RTMGRP_LINK = 0x1
RTMGRP_TC = 0x8
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400

# linux/if_link.h
IFINFOMSG = struct.Struct("=BxHiII")
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK = 1, 3, 4, 5
IFLA_MASTER, IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_IFALIAS = 10, 16, 18, 20
IFLA_EXT_MASK, IFLA_LINK_NETNSID, IFLA_PERM_ADDRESS = 29, 37, 54
IFLA_PARENT_DEV_NAME, IFLA_PARENT_DEV_BUS_NAME = 56, 57
IFLA_INFO_KIND = 1
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFF_LOOPBACK = 0x8

# linux/if_addr.h
IFADDRMSG = struct.Struct("=BBBBI")
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8

# linux/rtnetlink.h routes
RTMSG = struct.Struct("=BBBBBBBBI")
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_MULTIPATH, RTA_TABLE = 1, 4, 5, 6, 9, 15
RTNEXTHOP = struct.Struct("=HBBi")
RT_TABLE_MAIN = 254

# linux/rtnetlink.h tc
TCMSG = struct.Struct("=BxxxiIII")
TCA_KIND, TCA_OPTIONS = 1, 2
TCA_BPF_NAME = 7
TC_H_MIN_INGRESS = 0xFFFFFFF2
TC_H_MIN_EGRESS = 0xFFFFFFF3

RTA = struct.Struct("=HH")
U32 = struct.Struct("=I")

OPERSTATES = ("unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up")
"""IF_OPER_* in order, as the Go driver (and iproute2, lower-cased) print them."""

ENCAPS: dict[int, str] = {
    0: "netrom",
    1: "ether",
    2: "eether",
    3: "ax25",
    4: "pronet",
    5: "chaos",
    6: "ieee802",
    7: "arcnet",
    8: "appletlk",
    15: "dlci",
    19: "atm",
    23: "metricom",
    24: "ieee1394",
    27: "eui64",
    32: "infiniband",
    256: "slip",
    257: "cslip",
    258: "slip6",
    259: "cslip6",
    260: "rsrvd",
    264: "adapt",
    270: "rose",
    271: "x25",
    272: "hwx25",
    280: "can",
    512: "ppp",
    513: "hdlc",
    516: "lapb",
    517: "ddcmp",
    518: "rawhdlc",
    519: "rawip",
    768: "ipip",
    769: "tunnel6",
    770: "frad",
    771: "skip",
    772: "loopback",
    773: "localtlk",
    774: "fddi",
    775: "bif",
    776: "sit",
    777: "ip/ddp",
    778: "gre",
    779: "pimreg",
    780: "hippi",
    781: "aset",
    782: "econet",
    783: "irda",
    784: "fcpp",
    785: "fcal",
    786: "fcpl",
    787: "fcfb",
    800: "tr",
    801: "tr+",
    802: "prism2",
    803: "ieee80211/radiotap",
    804: "ieee802.15.4",
    805: "ieee802.15.4/monitor",
    820: "phonet",
    821: "phonet_pipe",
    822: "caif",
    823: "ip6gre",
    824: "netlink",
    825: "6lowpan",
    826: "vsockmon",
    0xFFFE: "none",
    0xFFFF: "void",
}
"""ARPHRD_* -> the link type name iproute2 prints (``link/ether``); the Go driver's encapsulation."""


class Link:
    """One RTM_NEWLINK, decoded: the attributes discovery uses."""

    __slots__ = (
        "alias",
        "arphrd",
        "flags",
        "index",
        "kind",
        "link",
        "link_netnsid",
        "mac",
        "master",
        "mtu",
        "name",
        "operstate",
        "parent_bus",
        "parent_dev",
        "perm_mac",
    )

    def __init__(self, index: int, arphrd: int, flags: int) -> None:
        self.index = index
        self.arphrd = arphrd
        self.flags = flags
        self.name = ""
        self.mtu = 0
        self.mac = ""
        self.perm_mac: str | None = None
        self.operstate = 0
        self.kind: str | None = None
        self.master = 0
        self.link = 0
        self.link_netnsid: int | None = None
        self.alias = ""
        self.parent_bus: str | None = None
        self.parent_dev: str | None = None

    @property
    def encapsulation(self) -> str:
        """The link type name (``ether``, ``loopback``, ``none``, ...)."""
        return ENCAPS.get(self.arphrd, f"[{self.arphrd}]")

    @property
    def state(self) -> str:
        """The operational state name (``up``, ``down``, ``unknown``, ...)."""
        return OPERSTATES[self.operstate] if self.operstate < len(OPERSTATES) else "unknown"

    def same(self, other: Link) -> bool:
        """Whether every decoded field equals ``other``'s."""
        return all(getattr(self, f) == getattr(other, f) for f in self.__slots__)

    def __repr__(self) -> str:
        return f"Link({self.index}, {self.name!r}, kind={self.kind!r}, master={self.master})"


class Addr:
    """One RTM_NEWADDR/DELADDR: an address on an interface."""

    __slots__ = ("address", "family", "index", "prefixlen", "scope")

    def __init__(self, index: int, family: int, prefixlen: int, scope: int, address: str) -> None:
        self.index = index
        self.family = family
        self.prefixlen = prefixlen
        self.scope = scope
        self.address = address

    @property
    def cidr(self) -> str:
        """``address/prefixlen``."""
        return f"{self.address}/{self.prefixlen}"

    def __repr__(self) -> str:
        return f"Addr({self.index}, {self.cidr})"


class Route:
    """One RTM_NEWROUTE/DELROUTE, reduced to what uplink detection needs."""

    __slots__ = ("dst", "dst_len", "family", "oifs", "priority", "table", "type")

    def __init__(self, family: int, dst_len: int, table: int, rtype: int) -> None:
        self.family = family
        self.dst_len = dst_len
        self.table = table
        self.type = rtype
        self.dst: str | None = None
        self.priority = 0
        self.oifs: tuple[int, ...] = ()

    @property
    def is_default(self) -> bool:
        """A route to ``0.0.0.0/0`` or ``::/0`` (no destination at all counts too)."""
        return self.dst_len == 0

    def __repr__(self) -> str:
        return f"Route(af={self.family}, dst={self.dst}/{self.dst_len}, table={self.table}, oifs={self.oifs})"


class Qdisc:
    """One RTM_NEWQDISC: which qdisc kind is on which interface."""

    __slots__ = ("index", "kind", "parent")

    def __init__(self, index: int, parent: int, kind: str) -> None:
        self.index = index
        self.parent = parent
        self.kind = kind


class TcFilter:
    """One RTM_NEWTFILTER: the filter kind and, for ``bpf``, the program name."""

    __slots__ = ("bpf_name", "index", "kind", "parent")

    def __init__(self, index: int, parent: int, kind: str, bpf_name: str | None) -> None:
        self.index = index
        self.parent = parent
        self.kind = kind
        self.bpf_name = bpf_name


Message = Link | Addr | Route | Qdisc | TcFilter | None


def _cstr(data: bytes, start: int, end: int) -> str:
    nul = data.find(b"\0", start, end)
    return data[start : end if nul < 0 else nul].decode("utf-8", "replace")


def _u32(data: bytes, s: int, e: int) -> int:
    """A u32 attribute payload; 0 if the payload is too short (never reads past it)."""
    return int(U32.unpack_from(data, s)[0]) if e - s >= 4 else 0


def _attrs(data: bytes, off: int, end: int) -> Iterator[tuple[int, int, int]]:
    """Yield (type, payload start, payload end) for each rtattr in data[off:end]."""
    unpack = RTA.unpack_from
    while off + 4 <= end:
        alen, atype = unpack(data, off)
        if alen < 4 or off + alen > end:
            return
        yield atype & 0x3FFF, off + 4, off + alen
        off += (alen + 3) & ~3


def decode_link(data: bytes, off: int, end: int) -> Link:  # noqa: C901 - one flat dispatch, hot path
    """Decode an ifinfomsg and its attributes."""
    _, arphrd, index, flags, _ = IFINFOMSG.unpack_from(data, off)
    link = Link(index, arphrd, flags)
    for atype, s, e in _attrs(data, off + IFINFOMSG.size, end):
        if atype == IFLA_IFNAME:
            link.name = _cstr(data, s, e)
        elif atype == IFLA_MTU:
            link.mtu = _u32(data, s, e)
        elif atype == IFLA_ADDRESS:
            link.mac = data[s:e].hex(":")
        elif atype == IFLA_OPERSTATE:
            link.operstate = data[s] if e > s else 0
        elif atype == IFLA_MASTER:
            link.master = _u32(data, s, e)
        elif atype == IFLA_LINK:
            link.link = _u32(data, s, e)
        elif atype == IFLA_LINKINFO:
            for itype, ks, ke in _attrs(data, s, e):
                if itype == IFLA_INFO_KIND:
                    link.kind = _cstr(data, ks, ke)
        elif atype == IFLA_IFALIAS:
            link.alias = _cstr(data, s, e)
        elif atype == IFLA_PERM_ADDRESS:
            link.perm_mac = data[s:e].hex(":")
        elif atype == IFLA_LINK_NETNSID:
            link.link_netnsid = struct.unpack_from("=i", data, s)[0] if e - s >= 4 else None
        elif atype == IFLA_PARENT_DEV_NAME:
            link.parent_dev = _cstr(data, s, e)
        elif atype == IFLA_PARENT_DEV_BUS_NAME:
            link.parent_bus = _cstr(data, s, e)
    return link


def _ip(family: int, raw: bytes) -> str | None:
    if family == socket.AF_INET and len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    if family == socket.AF_INET6 and len(raw) == 16:
        return str(ipaddress.IPv6Address(raw))
    return None


def decode_addr(data: bytes, off: int, end: int) -> Addr | None:
    """Decode an ifaddrmsg; IFA_LOCAL wins over IFA_ADDRESS (the peer on point-to-point)."""
    family, prefixlen, _, scope, index = IFADDRMSG.unpack_from(data, off)
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None
    local = address = None
    for atype, s, e in _attrs(data, off + IFADDRMSG.size, end):
        if atype == IFA_LOCAL:
            local = data[s:e]
        elif atype == IFA_ADDRESS:
            address = data[s:e]
    raw = local or address
    ip = _ip(family, raw) if raw is not None else None
    if ip is None:
        return None
    return Addr(index, family, prefixlen, scope, ip)


def decode_route(data: bytes, off: int, end: int) -> Route | None:
    """Decode an rtmsg: destination, table, metric and the output interfaces (multipath expanded)."""
    family, dst_len, _, _, table, _, _, rtype, _ = RTMSG.unpack_from(data, off)
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None
    route = Route(family, dst_len, table, rtype)
    oifs: list[int] = []
    for atype, s, e in _attrs(data, off + RTMSG.size, end):
        if atype == RTA_TABLE:
            route.table = _u32(data, s, e)
        elif atype == RTA_OIF:
            oifs.append(_u32(data, s, e))
        elif atype == RTA_PRIORITY:
            route.priority = _u32(data, s, e)
        elif atype == RTA_DST:
            route.dst = _ip(family, data[s:e])
        elif atype == RTA_MULTIPATH:
            p = s
            while p + RTNEXTHOP.size <= e:
                nh_len, _, _, ifindex = RTNEXTHOP.unpack_from(data, p)
                if nh_len < RTNEXTHOP.size:
                    break
                oifs.append(ifindex)
                p += (nh_len + 3) & ~3
    route.oifs = tuple(oifs)
    return route


def decode_tc(data: bytes, off: int, end: int, filter_: bool) -> Qdisc | TcFilter:
    """Decode a tcmsg (qdisc or filter)."""
    _, index, _, parent, _ = TCMSG.unpack_from(data, off)
    kind = ""
    bpf_name: str | None = None
    for atype, s, e in _attrs(data, off + TCMSG.size, end):
        if atype == TCA_KIND:
            kind = _cstr(data, s, e)
        elif atype == TCA_OPTIONS and filter_:
            for otype, os_, oe in _attrs(data, s, e):
                if otype == TCA_BPF_NAME:
                    bpf_name = _cstr(data, os_, oe)
    if filter_:
        return TcFilter(index, parent, kind, bpf_name if kind == "bpf" else None)
    return Qdisc(index, parent, kind)


def _decode_one(mtype: int, data: bytes, body: int, end: int) -> Message:
    size = end - body
    if mtype in (RTM_NEWLINK, RTM_DELLINK):
        return decode_link(data, body, end) if size >= IFINFOMSG.size else None
    if mtype in (RTM_NEWADDR, RTM_DELADDR):
        return decode_addr(data, body, end) if size >= IFADDRMSG.size else None
    if mtype in (RTM_NEWROUTE, RTM_DELROUTE):
        return decode_route(data, body, end) if size >= RTMSG.size else None
    if mtype in (RTM_NEWQDISC, RTM_DELQDISC, RTM_NEWTFILTER, RTM_DELTFILTER):
        if size < TCMSG.size:
            return None
        return decode_tc(data, body, end, mtype in (RTM_NEWTFILTER, RTM_DELTFILTER))
    if mtype == NLMSG_ERROR and size >= 4:
        code = struct.unpack_from("=i", data, body)[0]
        if code:
            raise OSError(-code, os.strerror(-code))
    return None


def decode(data: bytes) -> Iterator[tuple[int, int, int, Message]]:
    """Decode every netlink message in a datagram: (type, flags, seq, record or None).

    An NLMSG_ERROR carrying an errno raises :class:`OSError`; an ACK (errno 0) yields
    ``(NLMSG_ERROR, flags, seq, None)``. Unknown types decode to ``None``.
    """
    off = 0
    n = len(data)
    unpack = NLMSG_HDR.unpack_from
    while off + 16 <= n:
        mlen, mtype, flags, seq, _ = unpack(data, off)
        if mlen < 16 or off + mlen > n:
            return
        body, end = off + 16, off + mlen
        rec = _decode_one(mtype, data, body, end)
        yield mtype, flags, seq, rec
        off += (mlen + 3) & ~3


# -- requests ------------------------------------------------------------------------------


def _nlmsg(mtype: int, flags: int, seq: int, body: bytes) -> bytes:
    return NLMSG_HDR.pack(16 + len(body), mtype, flags, seq, 0) + body


def _rta(atype: int, payload: bytes) -> bytes:
    raw = RTA.pack(4 + len(payload), atype) + payload
    return raw + b"\0" * (-len(raw) % 4)


def link_dump_request(seq: int) -> bytes:
    """RTM_GETLINK dump of every link, without statistics."""
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _rta(
        IFLA_EXT_MASK, U32.pack(RTEXT_FILTER_SKIP_STATS)
    )
    return _nlmsg(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, body)


def link_get_request(seq: int, index: int) -> bytes:
    """RTM_GETLINK of one link by index, without statistics."""
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0) + _rta(
        IFLA_EXT_MASK, U32.pack(RTEXT_FILTER_SKIP_STATS)
    )
    return _nlmsg(RTM_GETLINK, NLM_F_REQUEST, seq, body)


def addr_dump_request(seq: int) -> bytes:
    """RTM_GETADDR dump of every address of both families."""
    return _nlmsg(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq, IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0))


def route_dump_request(seq: int, family: int) -> bytes:
    """RTM_GETROUTE dump of one family (the caller keeps the main-table default routes)."""
    return _nlmsg(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq, RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0))


def qdisc_dump_request(seq: int) -> bytes:
    """RTM_GETQDISC dump of every qdisc of every link."""
    return _nlmsg(RTM_GETQDISC, NLM_F_REQUEST | NLM_F_DUMP, seq, TCMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0))


def filter_dump_request(seq: int, index: int, parent: int) -> bytes:
    """RTM_GETTFILTER dump of one link's filters under ``parent`` (clsact ingress/egress)."""
    return _nlmsg(
        RTM_GETTFILTER, NLM_F_REQUEST | NLM_F_DUMP, seq, TCMSG.pack(socket.AF_UNSPEC, index, 0, parent, 0)
    )


# -- sockets -------------------------------------------------------------------------------
