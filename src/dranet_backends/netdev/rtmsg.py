"""The rtnetlink messages the netdev mover sends and reads, built and decoded by hand (sans-IO).

Byte layouts from the kernel uapi: ``linux/netlink.h`` (nlmsghdr, nlmsgerr and its extended
ack TLVs), ``linux/rtnetlink.h`` (rtmsg, tcmsg, RTA_*), ``linux/if_link.h`` (ifinfomsg,
IFLA_*), ``linux/if_addr.h`` (ifaddrmsg, IFA_*), ``linux/neighbour.h`` (ndmsg, NDA_*),
``linux/fib_rules.h`` (fib_rule_hdr, FRA_*). Requests are ``(type, flags, body)``; the I/O
layer (:class:`.nsutil.Rtnl`) adds the header. Replies decode to plain dicts keyed by the
names pyroute2 uses (``ifname``, ``address``, ``dst_len``, ...), nested link info under tuple
keys (``("linkinfo", "kind")``), so records read the same whichever client made them.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterator
from typing import Any, Final

__all__ = [
    "NLMSG_HDR",
    "Reply",
    "addr_add",
    "addr_dump",
    "decode",
    "header",
    "link_del",
    "link_dump",
    "link_get",
    "link_set",
    "neigh_add",
    "neigh_dump",
    "route_add",
    "route_dump",
    "rule",
    "rule_dump",
    "tc_filter_del",
    "tc_filter_dump",
]

NLMSG_HDR: Final = struct.Struct("=IHHII")
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200
NLMSGERR_ATTR_MSG = 1

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
RTM_NEWNEIGH, RTM_GETNEIGH = 28, 30
RTM_NEWRULE, RTM_DELRULE, RTM_GETRULE = 32, 33, 34
RTM_DELTFILTER, RTM_GETTFILTER = 45, 46

IFINFOMSG: Final = struct.Struct("=BxHiII")
IFADDRMSG: Final = struct.Struct("=BBBBI")
RTMSG: Final = struct.Struct("=BBBBBBBBI")
NDMSG: Final = struct.Struct("=BxxxiHBB")
FIB_RULE_HDR: Final = struct.Struct("=BBBBBBBBI")
TCMSG: Final = struct.Struct("=BxxxiIII")
RTA: Final = struct.Struct("=HH")
U32: Final = struct.Struct("=I")
S32: Final = struct.Struct("=i")

IFLA: Final = {
    "IFLA_ADDRESS": 1,
    "IFLA_IFNAME": 3,
    "IFLA_MTU": 4,
    "IFLA_MASTER": 10,
    "IFLA_LINKINFO": 18,
    "IFLA_NET_NS_FD": 28,
    "IFLA_EXT_MASK": 29,
    "IFLA_GSO_MAX_SIZE": 41,
    "IFLA_NEW_IFINDEX": 49,
    "IFLA_GRO_MAX_SIZE": 58,
    "IFLA_GSO_IPV4_MAX_SIZE": 63,
    "IFLA_GRO_IPV4_MAX_SIZE": 64,
}
"""The link attributes a request may carry, by the names the mover uses."""

_LINK_U32: Final = {
    4: "mtu",
    10: "master",
    41: "gso_max_size",
    50: "min_mtu",
    51: "max_mtu",
    58: "gro_max_size",
    63: "gso_ipv4_max_size",
    64: "gro_ipv4_max_size",
}
_LINK_STR: Final = {3: "ifname", 56: "parent_dev_name", 57: "parent_dev_bus_name"}
_LINK_MAC: Final = {1: "address", 54: "perm_address"}
IFLA_LINKINFO, IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_VRF_TABLE = 18, 1, 2, 1
RTEXT_FILTER_SKIP_STATS: Final = 1 << 3

IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST, IFA_FLAGS = 1, 2, 4, 8
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 6, 7, 15
NDA_DST, NDA_LLADDR, NDA_IFINDEX = 1, 2, 8
FRA_DST, FRA_SRC, FRA_IIFNAME, FRA_PRIORITY, FRA_TABLE, FRA_OIFNAME = 1, 2, 3, 6, 15, 17
FR_ACT_TO_TBL: Final = 1
DEFAULT_RULE_PRIORITY: Final = 32000
"""The priority a rule gets when none is given (as pyroute2 and the Go driver's netlink)."""
TCA_KIND: Final = 1
RTPROT_STATIC, RTN_UNICAST = 4, 1

Request = tuple[int, int, bytes]
Reply = dict[Any, Any]

_ACK = NLM_F_REQUEST | NLM_F_ACK
_CREATE = _ACK | NLM_F_CREATE | NLM_F_EXCL
_DUMP = NLM_F_REQUEST | NLM_F_DUMP


def header(mtype: int, flags: int, seq: int, body: bytes) -> bytes:
    """A complete netlink message: header + body."""
    return NLMSG_HDR.pack(16 + len(body), mtype, flags, seq, 0) + body


def _rta(atype: int, payload: bytes) -> bytes:
    raw = RTA.pack(4 + len(payload), atype) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _str(text: str) -> bytes:
    return text.encode() + b"\0"


def _ip(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def _family(addr: str) -> int:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", "").replace("-", ""))


def _link_attr(name: str, value: Any) -> bytes:
    code = IFLA.get(name)
    if code is None:
        raise ValueError(f"unknown link attribute {name}")
    if name == "IFLA_IFNAME":
        return _rta(code, _str(str(value)))
    if name == "IFLA_ADDRESS":
        return _rta(code, _mac(str(value)))
    if name == "IFLA_NEW_IFINDEX":
        return _rta(code, S32.pack(int(value)))
    return _rta(code, U32.pack(int(value)))


# -- requests ------------------------------------------------------------------------------


def link_get(index: int | None = None, ifname: str | None = None) -> Request:
    """RTM_GETLINK of one link by index or name, without statistics."""
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, index or 0, 0, 0)
    body += _rta(IFLA["IFLA_EXT_MASK"], U32.pack(RTEXT_FILTER_SKIP_STATS))
    if not index and ifname is not None:
        body += _rta(IFLA["IFLA_IFNAME"], _str(ifname))
    return RTM_GETLINK, NLM_F_REQUEST, body


def link_dump() -> Request:
    """RTM_GETLINK dump of every link, without statistics."""
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _rta(
        IFLA["IFLA_EXT_MASK"], U32.pack(RTEXT_FILTER_SKIP_STATS)
    )
    return RTM_GETLINK, _DUMP, body


def link_set(index: int, attrs: list[tuple[str, Any]], up: bool | None = None) -> Request:
    """One RTM_NEWLINK on ``index`` with ``IFLA_*`` attributes (and IFF_UP when ``up`` is given)."""
    flags, change = (1 if up else 0, 1) if up is not None else (0, 0)
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, flags, change)
    body += b"".join(_link_attr(name, value) for name, value in attrs)
    return RTM_NEWLINK, _ACK, body


def link_new(body: bytes) -> Request:
    """Create a link from a prepared RTM_NEWLINK body (``NLM_F_CREATE|NLM_F_EXCL``)."""
    return RTM_NEWLINK, _CREATE, body


def link_del(index: int) -> Request:
    """RTM_DELLINK of ``index``."""
    return RTM_DELLINK, _ACK, IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0)


def addr_add(
    index: int, address: str, prefixlen: int, *, scope: int = 0, broadcast: str | None = None, flags: int = 0
) -> Request:
    """RTM_NEWADDR (create, exclusive)."""
    fam = _family(address)
    body = IFADDRMSG.pack(fam, prefixlen, flags & 0xFF, scope, index)
    body += _rta(IFA_LOCAL, _ip(address)) + _rta(IFA_ADDRESS, _ip(address))
    if broadcast:
        body += _rta(IFA_BROADCAST, _ip(broadcast))
    if flags:
        body += _rta(IFA_FLAGS, U32.pack(flags))
    return RTM_NEWADDR, _CREATE, body


def addr_dump(index: int) -> Request:
    """RTM_GETADDR dump of link ``index``'s addresses (filtered by a strict-checking kernel)."""
    return RTM_GETADDR, _DUMP, IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, index)


def route_add(
    *,
    family: int,
    dst: str | None = None,
    dst_len: int = 0,
    gateway: str | None = None,
    prefsrc: str | None = None,
    oif: int | None = None,
    scope: int = 0,
    table: int = 254,
    proto: int = RTPROT_STATIC,
    priority: int | None = None,
) -> Request:
    """RTM_NEWROUTE (create, exclusive), unicast."""
    body = RTMSG.pack(family, dst_len, 0, 0, table if table < 256 else 252, proto, scope, RTN_UNICAST, 0)
    if dst is not None:
        body += _rta(RTA_DST, _ip(dst))
    if gateway:
        body += _rta(RTA_GATEWAY, _ip(gateway))
    if prefsrc:
        body += _rta(RTA_PREFSRC, _ip(prefsrc))
    if oif is not None:
        body += _rta(RTA_OIF, U32.pack(oif))
    if priority is not None:
        body += _rta(RTA_PRIORITY, U32.pack(priority))
    body += _rta(RTA_TABLE, U32.pack(table))
    return RTM_NEWROUTE, _CREATE, body


def route_dump(family: int, oif: int | None = None) -> Request:
    """RTM_GETROUTE dump of one family, all tables (only via ``oif`` when given)."""
    body = RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    if oif is not None:
        body += _rta(RTA_OIF, U32.pack(oif))
    return RTM_GETROUTE, _DUMP, body


def rule(
    add: bool,
    *,
    family: int = socket.AF_INET,
    table: int = 254,
    priority: int | None = None,
    src: str | None = None,
    src_len: int | None = None,
    dst: str | None = None,
    dst_len: int | None = None,
    iifname: str | None = None,
    oifname: str | None = None,
) -> Request:
    """RTM_NEWRULE (create, exclusive) or RTM_DELRULE: to ``table``."""
    full = 128 if family == socket.AF_INET6 else 32
    slen = (src_len if src_len is not None else full) if src else 0
    dlen = (dst_len if dst_len is not None else full) if dst else 0
    body = FIB_RULE_HDR.pack(family, dlen, slen, 0, table if table < 256 else 252, 0, 0, FR_ACT_TO_TBL, 0)
    body += _rta(FRA_PRIORITY, U32.pack(priority if priority is not None else DEFAULT_RULE_PRIORITY))
    body += _rta(FRA_TABLE, U32.pack(table))
    if src:
        body += _rta(FRA_SRC, _ip(src))
    if dst:
        body += _rta(FRA_DST, _ip(dst))
    if iifname:
        body += _rta(FRA_IIFNAME, _str(iifname))
    if oifname:
        body += _rta(FRA_OIFNAME, _str(oifname))
    return (RTM_NEWRULE, _CREATE, body) if add else (RTM_DELRULE, _ACK, body)


def rule_dump(family: int) -> Request:
    """RTM_GETRULE dump of one family."""
    return RTM_GETRULE, _DUMP, FIB_RULE_HDR.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)


def neigh_add(*, dst: str, lladdr: str, ifindex: int, state: int, family: int | None = None) -> Request:
    """RTM_NEWNEIGH (create, exclusive)."""
    body = NDMSG.pack(family or _family(dst), ifindex, state, 0, 0)
    body += _rta(NDA_DST, _ip(dst)) + _rta(NDA_LLADDR, _mac(lladdr))
    return RTM_NEWNEIGH, _CREATE, body


def neigh_dump(index: int) -> Request:
    """RTM_GETNEIGH dump of link ``index``'s entries (``NDA_IFINDEX`` filter)."""
    return RTM_GETNEIGH, _DUMP, NDMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _rta(NDA_IFINDEX, U32.pack(index))


def tc_filter_dump(index: int, parent: int) -> Request:
    """RTM_GETTFILTER dump of link ``index``'s filters under ``parent``."""
    return RTM_GETTFILTER, _DUMP, TCMSG.pack(socket.AF_UNSPEC, index, 0, parent, 0)


def tc_filter_del(index: int, parent: int, handle: int, info: int) -> Request:
    """RTM_DELTFILTER of one filter (or one priority's chain with handle 0)."""
    return RTM_DELTFILTER, _ACK, TCMSG.pack(socket.AF_UNSPEC, index, handle, parent, info)


# -- replies -------------------------------------------------------------------------------


def _attrs(data: bytes, off: int, end: int) -> Iterator[tuple[int, int, int]]:
    while off + 4 <= end:
        alen, atype = RTA.unpack_from(data, off)
        if alen < 4 or off + alen > end:
            return
        yield atype & 0x3FFF, off + 4, off + alen
        off += (alen + 3) & ~3


def _cstr(data: bytes, s: int, e: int) -> str:
    nul = data.find(b"\0", s, e)
    return data[s : e if nul < 0 else nul].decode("utf-8", "replace")


def _u32(data: bytes, s: int, e: int) -> int:
    return int(U32.unpack_from(data, s)[0]) if e - s >= 4 else 0


def _addr(family: int, raw: bytes) -> str | None:
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    if len(raw) == 16:
        return str(ipaddress.IPv6Address(raw))
    return None


def _link(data: bytes, off: int, end: int) -> Reply:
    _, _, index, flags, _ = IFINFOMSG.unpack_from(data, off)
    rec: Reply = {"index": index, "flags": flags}
    for atype, s, e in _attrs(data, off + IFINFOMSG.size, end):
        if atype in _LINK_U32:
            rec[_LINK_U32[atype]] = _u32(data, s, e)
        elif atype in _LINK_STR:
            rec[_LINK_STR[atype]] = _cstr(data, s, e)
        elif atype in _LINK_MAC:
            rec[_LINK_MAC[atype]] = data[s:e].hex(":")
        elif atype == IFLA_LINKINFO:
            for itype, ks, ke in _attrs(data, s, e):
                if itype == IFLA_INFO_KIND:
                    rec[("linkinfo", "kind")] = _cstr(data, ks, ke)
                elif itype == IFLA_INFO_DATA:
                    for dtype, ds, de in _attrs(data, ks, ke):
                        if dtype == IFLA_VRF_TABLE:
                            rec[("linkinfo", "data", "vrf_table")] = _u32(data, ds, de)
    if rec.get(("linkinfo", "kind")) != "vrf":
        rec.pop(("linkinfo", "data", "vrf_table"), None)
    return rec


def _address(data: bytes, off: int, end: int) -> Reply:
    family, prefixlen, flags, scope, index = IFADDRMSG.unpack_from(data, off)
    rec: Reply = {"family": family, "prefixlen": prefixlen, "flags": flags, "scope": scope, "index": index}
    for atype, s, e in _attrs(data, off + IFADDRMSG.size, end):
        if atype == IFA_ADDRESS:
            rec["address"] = _addr(family, data[s:e])
        elif atype == IFA_LOCAL:
            rec["local"] = _addr(family, data[s:e])
        elif atype == IFA_BROADCAST:
            rec["broadcast"] = _addr(family, data[s:e])
        elif atype == IFA_FLAGS:
            rec["flags"] = _u32(data, s, e)
    return rec


def _route(data: bytes, off: int, end: int) -> Reply:
    family, dst_len, _, _, table, proto, scope, rtype, _ = RTMSG.unpack_from(data, off)
    rec: Reply = {
        "family": family,
        "dst_len": dst_len,
        "table": table,
        "proto": proto,
        "scope": scope,
        "type": rtype,
    }
    for atype, s, e in _attrs(data, off + RTMSG.size, end):
        if atype == RTA_DST:
            rec["dst"] = _addr(family, data[s:e])
        elif atype == RTA_GATEWAY:
            rec["gateway"] = _addr(family, data[s:e])
        elif atype == RTA_PREFSRC:
            rec["prefsrc"] = _addr(family, data[s:e])
        elif atype == RTA_OIF:
            rec["oif"] = _u32(data, s, e)
        elif atype == RTA_PRIORITY:
            rec["priority"] = _u32(data, s, e)
        elif atype == RTA_TABLE:
            rec["table"] = _u32(data, s, e)
    return rec


def _rule(data: bytes, off: int, end: int) -> Reply:
    family, dst_len, src_len, _, table, _, _, action, _ = FIB_RULE_HDR.unpack_from(data, off)
    rec: Reply = {"family": family, "dst_len": dst_len, "src_len": src_len, "table": table, "action": action}
    for atype, s, e in _attrs(data, off + FIB_RULE_HDR.size, end):
        if atype == FRA_TABLE:
            rec["table"] = _u32(data, s, e)
        elif atype == FRA_PRIORITY:
            rec["priority"] = _u32(data, s, e)
        elif atype == FRA_SRC:
            rec["src"] = _addr(family, data[s:e])
        elif atype == FRA_DST:
            rec["dst"] = _addr(family, data[s:e])
        elif atype == FRA_IIFNAME:
            rec["iifname"] = _cstr(data, s, e)
        elif atype == FRA_OIFNAME:
            rec["oifname"] = _cstr(data, s, e)
    return rec


def _neigh(data: bytes, off: int, end: int) -> Reply:
    family, ifindex, state, _, _ = NDMSG.unpack_from(data, off)
    rec: Reply = {"family": family, "ifindex": ifindex, "state": state}
    for atype, s, e in _attrs(data, off + NDMSG.size, end):
        if atype == NDA_DST:
            rec["dst"] = _addr(family, data[s:e])
        elif atype == NDA_LLADDR:
            rec["lladdr"] = data[s:e].hex(":")
    return rec


def _tc(data: bytes, off: int, end: int) -> Reply:
    _, index, handle, parent, info = TCMSG.unpack_from(data, off)
    rec: Reply = {"index": index, "handle": handle, "parent": parent, "info": info}
    for atype, s, e in _attrs(data, off + TCMSG.size, end):
        if atype == TCA_KIND:
            rec["kind"] = _cstr(data, s, e)
    return rec


_DECODERS: Final = {
    RTM_NEWLINK: (IFINFOMSG.size, _link),
    RTM_NEWADDR: (IFADDRMSG.size, _address),
    RTM_NEWROUTE: (RTMSG.size, _route),
    RTM_NEWRULE: (FIB_RULE_HDR.size, _rule),
    RTM_NEWNEIGH: (NDMSG.size, _neigh),
    44: (TCMSG.size, _tc),  # RTM_NEWTFILTER
}


def _error(data: bytes, off: int, end: int, flags: int) -> tuple[int, str]:
    """(errno, extended-ack text) of an NLMSG_ERROR payload."""
    code = -S32.unpack_from(data, off)[0] if end - off >= 4 else 0
    text = ""
    if flags & NLM_F_ACK_TLVS and end - off >= 20:
        inner_len = NLMSG_HDR.unpack_from(data, off + 4)[0]
        tlv = off + 4 + (16 if flags & NLM_F_CAPPED else (inner_len + 3) & ~3)
        for atype, s, e in _attrs(data, tlv, end):
            if atype == NLMSGERR_ATTR_MSG:
                text = _cstr(data, s, e)
    return code, text


def decode(data: bytes) -> Iterator[tuple[int, int, int, Reply | None, int, str]]:
    """Every message of a datagram: ``(type, flags, seq, record or None, errno, ext-ack text)``.

    ``errno`` is set (positive) for an NLMSG_ERROR carrying one, 0 for an ACK or a record.
    """
    off, n = 0, len(data)
    while off + 16 <= n:
        mlen, mtype, flags, seq, _ = NLMSG_HDR.unpack_from(data, off)
        if mlen < 16 or off + mlen > n:
            return
        body, end = off + 16, off + mlen
        if mtype == NLMSG_ERROR:
            code, text = _error(data, body, end, flags)
            yield mtype, flags, seq, None, code, text
        else:
            dec = _DECODERS.get(mtype)
            rec = dec[1](data, body, end) if dec is not None and end - body >= dec[0] else None
            yield mtype, flags, seq, rec, 0, ""
        off += (mlen + 3) & ~3
