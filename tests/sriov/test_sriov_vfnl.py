"""PF-side VF messages at the byte level, against layouts written by hand from linux/if_link.h."""

from __future__ import annotations

import errno
import struct

import pytest

from dranet_backends.sriov.vfnl import VfSetting, VfState, get_request, parse_reply, set_request

# struct nlmsghdr {u32 len; u16 type; u16 flags; u32 seq; u32 pid}; struct ifinfomsg (16 bytes)
IFINFO_ANY = bytes(16)
IFNAME_PF1 = struct.pack("=HH", 8, 3) + b"pf1\0"  # IFLA_IFNAME


def setlink(seq: int, vf_attr: bytes) -> bytes:
    vf_info = struct.pack("=HH", 4 + len(vf_attr), 1) + vf_attr  # IFLA_VF_INFO
    vfinfo_list = struct.pack("=HH", 4 + len(vf_info), 22) + vf_info  # IFLA_VFINFO_LIST
    body = IFINFO_ANY + IFNAME_PF1 + vfinfo_list
    # RTM_SETLINK 19, NLM_F_REQUEST|NLM_F_ACK
    return struct.pack("=IHHII", 16 + len(body), 19, 0x5, seq, 0) + body


def test_get_request_asks_for_the_vf_list_without_stats() -> None:
    ext_mask = struct.pack("=HHI", 8, 29, 1 | 8)  # IFLA_EXT_MASK RTEXT_FILTER_VF|SKIP_STATS
    body = IFINFO_ANY + IFNAME_PF1 + ext_mask
    assert get_request(7, "pf1") == struct.pack("=IHHII", 16 + len(body), 18, 0x1, 7, 0) + body


@pytest.mark.parametrize(
    ("setting", "vf_attr"),
    [
        # IFLA_VF_MAC: struct ifla_vf_mac {u32 vf; u8 mac[32]}
        (
            VfSetting.mac(3, "02:aa:bb:cc:dd:ee"),
            struct.pack("=HHI32s", 40, 1, 3, bytes.fromhex("02aabbccddee")),
        ),
        # IFLA_VF_VLAN_LIST { IFLA_VF_VLAN_INFO: {u32 vf; u32 vlan; u32 qos; __be16 proto} padded to 16 }
        (
            VfSetting.vlan(3, 100, 5, "802.1ad"),
            struct.pack("=HH", 24, 12) + struct.pack("=HHIII", 20, 1, 3, 100, 5) + b"\x88\xa8\0\0",
        ),
        (
            VfSetting.vlan(0, 0, 0, "802.1Q"),
            struct.pack("=HH", 24, 12) + struct.pack("=HHIII", 20, 1, 0, 0, 0) + b"\x81\x00\0\0",
        ),
        (VfSetting.spoof_chk(3, False), struct.pack("=HHII", 12, 4, 3, 0)),  # IFLA_VF_SPOOFCHK
        (VfSetting.trust(3, True), struct.pack("=HHII", 12, 9, 3, 1)),  # IFLA_VF_TRUST
        (VfSetting.link_state(3, "disable"), struct.pack("=HHII", 12, 5, 3, 2)),  # IFLA_VF_LINK_STATE
        (VfSetting.link_state(3, "enable"), struct.pack("=HHII", 12, 5, 3, 1)),
        (VfSetting.rate(3, 100, 2500), struct.pack("=HHIII", 16, 6, 3, 100, 2500)),  # IFLA_VF_RATE
    ],
)
def test_set_request_carries_exactly_one_vf_attribute(setting: VfSetting, vf_attr: bytes) -> None:
    assert set_request(9, "pf1", setting) == setlink(9, vf_attr)


def vf_info(vf: int, spoof: int, trust: int, vlan_list: bool = True) -> bytes:
    parts = [
        struct.pack("=HHI32s", 40, 1, vf, bytes.fromhex("020000000001") + bytes(26)),
        struct.pack("=HH", 36, 13) + b"\xff" * 32,  # IFLA_VF_BROADCAST: skipped
        struct.pack("=HHIII", 16, 2, vf, 10, 1),  # IFLA_VF_VLAN
        struct.pack("=HHII", 12, 3, vf, 900),  # IFLA_VF_TX_RATE (deprecated): skipped
        struct.pack("=HHIII", 16, 6, vf, 50, 900),
        struct.pack("=HHII", 12, 4, vf, spoof),
        struct.pack("=HHII", 12, 5, vf, 2),
        struct.pack("=HHII", 12, 9, vf, trust),
    ]
    if vlan_list:
        parts.append(struct.pack("=HH", 24, 12) + struct.pack("=HHIII", 20, 1, vf, 10, 1) + b"\x88\xa8\0\0")
    inner = b"".join(parts)
    return struct.pack("=HH", 4 + len(inner), 1) + inner


def newlink(seq: int, infos: bytes) -> bytes:
    body = IFINFO_ANY + IFNAME_PF1 + struct.pack("=HH", 4 + len(infos), 22 | 0x8000) + infos
    return struct.pack("=IHHII", 16 + len(body), 16, 0, seq, 0) + body


def test_parse_reply_reads_every_vf_and_skips_what_it_does_not_use() -> None:
    other = struct.pack("=IHHII", 20, 2, 0, 99, 0) + struct.pack("=i", 0)  # another seq: skipped
    data = other + newlink(4, vf_info(0, 1, 0) + vf_info(1, 0xFFFFFFFF, 0xFFFFFFFF, vlan_list=False))
    vfs = parse_reply(data, 4)
    assert vfs == {
        0: VfState(
            vf=0,
            mac="02:00:00:00:00:01",
            vlan=10,
            qos=1,
            vlan_proto="802.1ad",
            spoof_chk=True,
            trust=False,
            link_state="disable",
            min_tx_rate=50,
            max_tx_rate=900,
        ),
        1: VfState(
            vf=1,
            mac="02:00:00:00:00:01",
            vlan=10,
            qos=1,
            spoof_chk=None,  # (u32)-1: the driver does not support it
            trust=None,
            link_state="disable",
            min_tx_rate=50,
            max_tx_rate=900,
        ),
    }


def test_parse_reply_raises_the_kernels_errno_and_reads_an_ack() -> None:
    err = struct.pack("=IHHII", 20, 2, 0, 5, 0) + struct.pack("=i", -errno.EOPNOTSUPP)
    with pytest.raises(OSError) as exc:
        parse_reply(err, 5)
    assert exc.value.errno == errno.EOPNOTSUPP
    assert parse_reply(struct.pack("=IHHII", 20, 2, 0, 6, 0) + struct.pack("=i", 0), 6) is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        struct.pack("=IHHII", 400, 16, 0, 1, 0),  # length overruns the datagram
        newlink(1, struct.pack("=HH", 200, 1)),  # attribute overruns its container
    ],
)
def test_parse_reply_rejects_malformed_data(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_reply(data, 1)


def test_snapshot_state_round_trips_and_rejects_bad_values() -> None:
    state = VfState(vf=2, mac="02:00:00:00:00:09", vlan=7, spoof_chk=None, link_state="enable")
    assert VfState.from_json(state.to_json()) == state
    with pytest.raises(ValueError, match="link_state"):
        VfState.from_json({"vf": 1, "link_state": "up"})
    with pytest.raises(ValueError, match="'vf'"):
        VfState.from_json({"mac": "02:00:00:00:00:01"})


def test_interface_names_are_checked() -> None:
    with pytest.raises(ValueError, match="not an interface name"):
        get_request(1, "x" * 16)
