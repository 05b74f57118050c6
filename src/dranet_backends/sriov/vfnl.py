"""PF-side VF settings over rtnetlink: the messages, sans I/O.

What ``ip link set <pf> vf <n> mac|vlan|spoofchk|trust|state|min_tx_rate|max_tx_rate`` and
``ip -d link show <pf>`` send, built and parsed by hand from ``linux/netlink.h``,
``linux/rtnetlink.h`` and ``linux/if_link.h``:

* :func:`get_request`: ``RTM_GETLINK`` for the PF by name (``IFLA_IFNAME``) with
  ``IFLA_EXT_MASK`` = ``RTEXT_FILTER_VF | RTEXT_FILTER_SKIP_STATS``, so the reply carries
  ``IFLA_VFINFO_LIST`` without per-VF counters;
* :func:`set_request`: ``RTM_SETLINK`` (``NLM_F_ACK``) for the PF by name carrying
  ``IFLA_VFINFO_LIST`` -> ``IFLA_VF_INFO`` -> one VF attribute (:class:`VfSetting`): one
  setting per message, so a failure names the setting and everything before it is known
  to be applied (what the rollback undoes);
* :func:`parse_reply`: the PF's VFs (:class:`VfState` by VF number) from an
  ``RTM_NEWLINK``, or :class:`OSError` from an ``NLMSG_ERROR``.

Layouts (all host byte order except ``vlan_proto``, big endian)::

    struct ifla_vf_mac        { __u32 vf; __u8 mac[32]; }                    IFLA_VF_MAC 1
    struct ifla_vf_vlan       { __u32 vf; __u32 vlan; __u32 qos; }          IFLA_VF_VLAN 2
    struct ifla_vf_tx_rate    { __u32 vf; __u32 rate; }                     IFLA_VF_TX_RATE 3
    struct ifla_vf_spoofchk   { __u32 vf; __u32 setting; }                  IFLA_VF_SPOOFCHK 4
    struct ifla_vf_link_state { __u32 vf; __u32 link_state; }               IFLA_VF_LINK_STATE 5
    struct ifla_vf_rate       { __u32 vf; __u32 min_tx_rate; __u32 max_tx_rate; } IFLA_VF_RATE 6
    struct ifla_vf_trust      { __u32 vf; __u32 setting; }                  IFLA_VF_TRUST 9
    IFLA_VF_VLAN_LIST 12 { IFLA_VF_VLAN_INFO 1: struct ifla_vf_vlan_info
                           { __u32 vf; __u32 vlan; __u32 qos; __be16 vlan_proto; } (16 bytes) }

A setting the driver does not support is reported by the kernel as ``(__u32)-1``
(spoof check, trust); :class:`VfState` keeps it as ``None``.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator, Mapping
from typing import Any, Final

import attrs

__all__ = [
    "LINK_STATES",
    "VLAN_PROTOS",
    "VfSetting",
    "VfState",
    "get_request",
    "no_such_vf",
    "parse_reply",
    "set_request",
]

# linux/netlink.h, linux/rtnetlink.h
_NLMSG: Final = struct.Struct("=IHHII")
_IFINFO: Final = struct.Struct("=BxHiII")
_NLA: Final = struct.Struct("=HH")
NLMSG_ERROR: Final = 2
NLM_F_REQUEST: Final = 0x1
NLM_F_ACK: Final = 0x4
RTM_NEWLINK: Final = 16
RTM_GETLINK: Final = 18
RTM_SETLINK: Final = 19
NLA_TYPE_MASK: Final = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER

# linux/if_link.h
IFLA_IFNAME: Final = 3
IFLA_VFINFO_LIST: Final = 22
IFLA_EXT_MASK: Final = 29
IFLA_VF_INFO: Final = 1
IFLA_VF_MAC: Final = 1
IFLA_VF_VLAN: Final = 2
IFLA_VF_TX_RATE: Final = 3
IFLA_VF_SPOOFCHK: Final = 4
IFLA_VF_LINK_STATE: Final = 5
IFLA_VF_RATE: Final = 6
IFLA_VF_TRUST: Final = 9
IFLA_VF_VLAN_LIST: Final = 12
IFLA_VF_VLAN_INFO: Final = 1
RTEXT_FILTER_VF: Final = 1 << 0
RTEXT_FILTER_SKIP_STATS: Final = 1 << 3

_MAC: Final = struct.Struct("=I32s")
_U32X2: Final = struct.Struct("=II")
_U32X3: Final = struct.Struct("=III")
_VLAN_INFO: Final = struct.Struct("=III")  # followed by __be16 vlan_proto and 2 bytes of padding
_BE16: Final = struct.Struct(">H")
_UNSUPPORTED: Final = 0xFFFFFFFF

VLAN_PROTOS: Final[Mapping[str, int]] = {"802.1Q": 0x8100, "802.1ad": 0x88A8}
"""VLAN protocol name -> ethertype (``ETH_P_8021Q``, ``ETH_P_8021AD``)."""

LINK_STATES: Final[Mapping[str, int]] = {"auto": 0, "enable": 1, "disable": 2}
"""``IFLA_VF_LINK_STATE_AUTO``/``_ENABLE``/``_DISABLE``."""


def _mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw[:6])


@attrs.frozen(kw_only=True)
class VfState:
    """What the PF reports about one VF (``ip link show <pf>``, line ``vf <n> ...``)."""

    vf: int
    mac: str = "00:00:00:00:00:00"
    vlan: int = 0
    qos: int = 0
    vlan_proto: str = "802.1Q"
    spoof_chk: bool | None = None
    trust: bool | None = None
    link_state: str = "auto"
    min_tx_rate: int = 0
    max_tx_rate: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON object (the snapshot stored in the journal)."""
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: object) -> VfState:
        """Read :meth:`to_json`'s output; ValueError naming the key on a wrong shape."""
        if not isinstance(data, Mapping):
            raise ValueError(f"VF state: expected an object, got {type(data).__name__}")
        kwargs: dict[str, Any] = {}
        for field in attrs.fields(cls):
            if field.name not in data:
                continue
            value = data[field.name]
            ok = {
                "mac": isinstance(value, str),
                "vlan_proto": value in VLAN_PROTOS,
                "link_state": value in LINK_STATES,
                "spoof_chk": value is None or isinstance(value, bool),
                "trust": value is None or isinstance(value, bool),
            }.get(field.name, isinstance(value, int) and not isinstance(value, bool))
            if not ok:
                raise ValueError(f"VF state: bad value for {field.name!r}: {value!r}")
            kwargs[field.name] = value
        if "vf" not in kwargs:
            raise ValueError("VF state: missing key 'vf'")
        return cls(**kwargs)


@attrs.frozen
class VfSetting:
    """One VF attribute to set through the PF: its name (for messages) and ``IFLA_VF_*`` bytes."""

    name: str
    attr_type: int
    payload: bytes

    @classmethod
    def mac(cls, vf: int, mac: str) -> VfSetting:
        raw = bytes.fromhex(mac.replace(":", "").replace("-", "").replace(".", ""))
        return cls("mac", IFLA_VF_MAC, _MAC.pack(vf, raw))

    @classmethod
    def vlan(cls, vf: int, vlan: int, qos: int, proto: str) -> VfSetting:
        info = _VLAN_INFO.pack(vf, vlan, qos) + _BE16.pack(VLAN_PROTOS[proto]) + b"\0\0"
        return cls("vlan", IFLA_VF_VLAN_LIST, _nla(IFLA_VF_VLAN_INFO, info))

    @classmethod
    def spoof_chk(cls, vf: int, on: bool) -> VfSetting:
        return cls("spoofChk", IFLA_VF_SPOOFCHK, _U32X2.pack(vf, int(on)))

    @classmethod
    def trust(cls, vf: int, on: bool) -> VfSetting:
        return cls("trust", IFLA_VF_TRUST, _U32X2.pack(vf, int(on)))

    @classmethod
    def link_state(cls, vf: int, state: str) -> VfSetting:
        return cls("linkState", IFLA_VF_LINK_STATE, _U32X2.pack(vf, LINK_STATES[state]))

    @classmethod
    def rate(cls, vf: int, min_tx: int, max_tx: int) -> VfSetting:
        return cls("txRate", IFLA_VF_RATE, _U32X3.pack(vf, min_tx, max_tx))


def _nla(atype: int, payload: bytes) -> bytes:
    length = _NLA.size + len(payload)
    return _NLA.pack(length, atype) + payload + b"\0" * (-length % 4)


def _message(mtype: int, flags: int, seq: int, attrs_: bytes) -> bytes:
    body = _IFINFO.pack(0, 0, 0, 0, 0) + attrs_
    return _NLMSG.pack(_NLMSG.size + len(body), mtype, flags, seq, 0) + body


def _ifname(pf: str) -> bytes:
    raw = pf.encode()
    if not raw or len(raw) > 15 or b"\0" in raw or b"/" in raw:
        raise ValueError(f"not an interface name: {pf!r}")
    return _nla(IFLA_IFNAME, raw + b"\0")


def get_request(seq: int, pf: str) -> bytes:
    """``RTM_GETLINK`` of PF ``pf`` with its VF list (no statistics)."""
    mask = struct.pack("=I", RTEXT_FILTER_VF | RTEXT_FILTER_SKIP_STATS)
    return _message(RTM_GETLINK, NLM_F_REQUEST, seq, _ifname(pf) + _nla(IFLA_EXT_MASK, mask))


def set_request(seq: int, pf: str, setting: VfSetting) -> bytes:
    """``RTM_SETLINK`` of PF ``pf`` applying one VF ``setting``, acknowledged."""
    vfinfo = _nla(IFLA_VF_INFO, _nla(setting.attr_type, setting.payload))
    return _message(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, _ifname(pf) + _nla(IFLA_VFINFO_LIST, vfinfo))


def _attrs(data: bytes, off: int, end: int) -> Iterator[tuple[int, bytes]]:
    while off + _NLA.size <= end:
        length, atype = _NLA.unpack_from(data, off)
        if length < _NLA.size or off + length > end:
            raise ValueError(f"netlink attribute of length {length} overruns its container")
        yield atype & NLA_TYPE_MASK, data[off + _NLA.size : off + length]
        off += (length + 3) & ~3


def _vf_info(raw: bytes) -> VfState:
    fields: dict[str, Any] = {}
    vf: int | None = None
    for atype, payload in _attrs(raw, 0, len(raw)):
        if atype == IFLA_VF_MAC and len(payload) >= _MAC.size:
            vf, mac = _MAC.unpack_from(payload)
            fields["mac"] = _mac_text(mac)
        elif atype == IFLA_VF_VLAN and len(payload) >= _U32X3.size:
            vf, fields["vlan"], fields["qos"] = _U32X3.unpack_from(payload)
        elif atype == IFLA_VF_VLAN_LIST:
            for itype, info in _attrs(payload, 0, len(payload)):
                if itype == IFLA_VF_VLAN_INFO and len(info) >= _VLAN_INFO.size + 2:
                    vf, fields["vlan"], fields["qos"] = _VLAN_INFO.unpack_from(info)
                    (proto,) = _BE16.unpack_from(info, _VLAN_INFO.size)
                    names = {v: k for k, v in VLAN_PROTOS.items()}
                    fields["vlan_proto"] = names.get(proto, "802.1Q")
                    break
        elif atype in (IFLA_VF_SPOOFCHK, IFLA_VF_TRUST) and len(payload) >= _U32X2.size:
            vf, setting = _U32X2.unpack_from(payload)
            key = "spoof_chk" if atype == IFLA_VF_SPOOFCHK else "trust"
            fields[key] = None if setting == _UNSUPPORTED else bool(setting)
        elif atype == IFLA_VF_LINK_STATE and len(payload) >= _U32X2.size:
            vf, state = _U32X2.unpack_from(payload)
            names = {v: k for k, v in LINK_STATES.items()}
            fields["link_state"] = names.get(state, "auto")
        elif atype == IFLA_VF_RATE and len(payload) >= _U32X3.size:
            vf, fields["min_tx_rate"], fields["max_tx_rate"] = _U32X3.unpack_from(payload)
    if vf is None:
        raise ValueError("IFLA_VF_INFO without a VF number")
    return VfState(vf=vf, **fields)


def _error(data: bytes, off: int, end: int) -> OSError | None:
    """None for an ack (error 0), else the OSError the kernel reported."""
    if off + 4 > end:
        raise ValueError("truncated NLMSG_ERROR")
    (code,) = struct.unpack_from("=i", data, off)
    if code == 0:
        return None
    return OSError(-code, os.strerror(-code))


def parse_reply(data: bytes, seq: int) -> dict[int, VfState] | None:
    """The VFs in the reply to request ``seq``: VF number -> state; None for a plain ack.

    Raises the kernel's :class:`OSError` for an error reply, ValueError for a malformed or
    missing reply. Messages of other sequence numbers are skipped.
    """
    off = 0
    while off + _NLMSG.size <= len(data):
        length, mtype, _flags, mseq, _pid = _NLMSG.unpack_from(data, off)
        if length < _NLMSG.size or off + length > len(data):
            raise ValueError(f"netlink message of length {length} overruns the datagram")
        body, end = off + _NLMSG.size, off + length
        off += (length + 3) & ~3
        if mseq != seq:
            continue
        if mtype == NLMSG_ERROR:
            err = _error(data, body, end)
            if err is not None:
                raise err
            return None
        if mtype == RTM_NEWLINK:
            out: dict[int, VfState] = {}
            for atype, payload in _attrs(data, body + _IFINFO.size, end):
                if atype == IFLA_VFINFO_LIST:
                    for itype, info in _attrs(payload, 0, len(payload)):
                        if itype == IFLA_VF_INFO:
                            state = _vf_info(info)
                            out[state.vf] = state
            return out
    raise ValueError(f"no reply to netlink request {seq}")


def no_such_vf(pf: str, vf: int) -> OSError:
    """The error for a VF number the PF does not report."""
    return OSError(errno.ENODEV, f"{pf} has no VF {vf}")
