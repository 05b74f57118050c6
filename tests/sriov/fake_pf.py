"""A fake kernel answering PF-side rtnetlink requests, keeping VF state: the test endpoint.

Written from ``include/uapi/linux/if_link.h`` and ``linux/netlink.h`` independently of the
production codec: it decodes ``RTM_GETLINK``/``RTM_SETLINK`` byte by byte, keeps each VF's
settings, answers ``RTM_NEWLINK`` with ``IFLA_VFINFO_LIST`` laid out as
``rtnl_fill_vfinfo`` does (including attributes a reader must skip), and acks or fails a
set with ``NLMSG_ERROR``. ``fail`` injects an errno for a given VF attribute; ``log``
records every set, shared with other fakes to check ordering.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass, field

# linux/netlink.h, linux/rtnetlink.h
NLMSG_ERROR = 2
RTM_NEWLINK, RTM_GETLINK, RTM_SETLINK = 16, 18, 19
# linux/if_link.h
IFLA_IFNAME, IFLA_NUM_VF, IFLA_VFINFO_LIST, IFLA_EXT_MASK = 3, 21, 22, 29
IFLA_VF_INFO = 1
VF_MAC, VF_VLAN, VF_TX_RATE, VF_SPOOFCHK, VF_LINK_STATE, VF_RATE = 1, 2, 3, 4, 5, 6
VF_RSS_QUERY_EN, VF_TRUST, VF_VLAN_LIST, VF_BROADCAST = 7, 9, 12, 13
VF_VLAN_INFO = 1
NAMES = {
    VF_MAC: "mac",
    VF_VLAN_LIST: "vlan",
    VF_SPOOFCHK: "spoofchk",
    VF_TRUST: "trust",
    VF_LINK_STATE: "state",
    VF_RATE: "rate",
}


@dataclass
class Vf:
    mac: bytes = b"\0" * 6
    vlan: int = 0
    qos: int = 0
    proto: int = 0x8100
    spoofchk: int = 1
    trust: int = 0
    state: int = 0
    min_tx: int = 0
    max_tx: int = 0


def nla(atype: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return struct.pack("=HH", n, atype) + payload + b"\0" * ((4 - n % 4) % 4)


def walk(data: bytes) -> list[tuple[int, bytes]]:
    out, off = [], 0
    while off + 4 <= len(data):
        n, t = struct.unpack_from("=HH", data, off)
        assert n >= 4 and off + n <= len(data), "malformed attribute"
        out.append((t & 0x3FFF, data[off + 4 : off + n]))
        off += (n + 3) & ~3
    return out


@dataclass
class FakePfKernel:
    pfs: dict[str, dict[int, Vf]] = field(default_factory=dict)
    fail: dict[str, int] = field(default_factory=dict)  # setting name -> errno
    log: list[str] = field(default_factory=list)
    requests: list[bytes] = field(default_factory=list)

    def add_pf(self, name: str, vfs: int) -> None:
        self.pfs[name] = {i: Vf(mac=bytes([2, 0, 0, 0, 0, 0x10 + i])) for i in range(vfs)}

    # -- the Transport protocol ---------------------------------------------------------

    def exchange(self, request: bytes) -> bytes:
        self.requests.append(request)
        length, mtype, flags, seq, _pid = struct.unpack_from("=IHHII", request)
        assert length == len(request)
        family, _ifitype, index, _fl, _change = struct.unpack_from("=BxHiII", request, 16)
        assert (family, index) == (0, 0), "the PF is addressed by name"
        attrs = dict(walk(request[32:]))
        name = attrs[IFLA_IFNAME].rstrip(b"\0").decode()
        pf = self.pfs.get(name)
        if pf is None:
            return self._error(seq, request, errno.ENODEV)
        if mtype == RTM_GETLINK:
            assert struct.unpack("=I", attrs[IFLA_EXT_MASK]) == (1 | 8,)  # VF, skip stats
            return self._newlink(seq, pf)
        assert mtype == RTM_SETLINK and flags & 0x4, "sets are acknowledged"
        ((t, info),) = walk(attrs[IFLA_VFINFO_LIST])
        assert t == IFLA_VF_INFO
        ((vt, payload),) = walk(info)  # exactly one setting per message
        what = NAMES[vt]
        vf_no = struct.unpack_from("=I", payload if vt != VF_VLAN_LIST else walk(payload)[0][1])[0]
        if vf_no not in pf:
            return self._error(seq, request, errno.EINVAL)
        if what in self.fail:
            return self._error(seq, request, self.fail[what])
        vf = pf[vf_no]
        if vt == VF_MAC:
            vf.mac = struct.unpack("=I32s", payload)[1][:6]
        elif vt == VF_VLAN_LIST:
            ((it, vinfo),) = walk(payload)
            assert it == VF_VLAN_INFO and len(vinfo) == 16
            _, vf.vlan, vf.qos = struct.unpack_from("=III", vinfo)
            (vf.proto,) = struct.unpack_from(">H", vinfo, 12)
            if vf.vlan > 4095 or vf.qos > 7:
                return self._error(seq, request, errno.EINVAL)
        elif vt == VF_SPOOFCHK:
            vf.spoofchk = struct.unpack("=II", payload)[1]
        elif vt == VF_TRUST:
            vf.trust = struct.unpack("=II", payload)[1]
        elif vt == VF_LINK_STATE:
            vf.state = struct.unpack("=II", payload)[1]
        elif vt == VF_RATE:
            _, vf.min_tx, vf.max_tx = struct.unpack("=III", payload)
        self.log.append(f"{name} vf {vf_no} {what}")
        return self._error(seq, request, 0)

    # -- replies ------------------------------------------------------------------------

    @staticmethod
    def _error(seq: int, request: bytes, code: int) -> bytes:
        body = struct.pack("=i", -code) + request[:16]
        return struct.pack("=IHHII", 16 + len(body), NLMSG_ERROR, 0, seq, 0) + body

    @staticmethod
    def _newlink(seq: int, pf: dict[int, Vf]) -> bytes:
        infos = b""
        for n, vf in sorted(pf.items()):
            vlan_info = struct.pack("=III", n, vf.vlan, vf.qos) + struct.pack(">H", vf.proto) + b"\0\0"
            infos += nla(
                IFLA_VF_INFO,
                nla(VF_MAC, struct.pack("=I32s", n, vf.mac))
                + nla(VF_BROADCAST, b"\xff" * 32)
                + nla(VF_VLAN, struct.pack("=III", n, vf.vlan, vf.qos))
                + nla(VF_VLAN_LIST, nla(VF_VLAN_INFO, vlan_info))
                + nla(VF_TX_RATE, struct.pack("=II", n, vf.max_tx))
                + nla(VF_RATE, struct.pack("=III", n, vf.min_tx, vf.max_tx))
                + nla(VF_SPOOFCHK, struct.pack("=II", n, vf.spoofchk))
                + nla(VF_LINK_STATE, struct.pack("=II", n, vf.state))
                + nla(VF_RSS_QUERY_EN, struct.pack("=II", n, 0xFFFFFFFF))
                + nla(VF_TRUST, struct.pack("=II", n, vf.trust)),
            )
        body = (
            struct.pack("=BxHiII", 0, 1, 7, 0x1003, 0)
            + nla(IFLA_IFNAME, b"pf\0")
            + nla(IFLA_NUM_VF, struct.pack("=I", len(pf)))
            + nla(IFLA_VFINFO_LIST | 0x8000, infos)  # NLA_F_NESTED may be set
        )
        return struct.pack("=IHHII", 16 + len(body), RTM_NEWLINK, 0, seq, 0) + body
