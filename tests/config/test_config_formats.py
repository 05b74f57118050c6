"""String formats: MAC forms accepted by Go's net.ParseMAC, IP prefixes, interface names."""

from __future__ import annotations

import ipaddress

import pytest

from dranet_core.config.formats import ifname_problems, parse_ip, parse_mac, parse_prefix

# The examples of Go's net.ParseMAC documentation, written out by hand, with their octets.
GOOD_MACS = [
    ("00:00:5e:00:53:01", "00005e005301"),
    ("02:00:5e:10:00:00:00:01", "02005e1000000001"),
    (
        "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01",
        "00000000fe8000000000000002005e1000000001",
    ),
    ("00-00-5e-00-53-01", "00005e005301"),
    ("02-00-5e-10-00-00-00-01", "02005e1000000001"),
    (
        "00-00-00-00-fe-80-00-00-00-00-00-00-02-00-5e-10-00-00-00-01",
        "00000000fe8000000000000002005e1000000001",
    ),
    ("0000.5e00.5301", "00005e005301"),
    ("0200.5e10.0000.0001", "02005e1000000001"),
    ("0000.0000.fe80.0000.0000.0000.0200.5e10.0000.0001", "00000000fe8000000000000002005e1000000001"),
    ("AB:CD:EF:01:23:45", "abcdef012345"),
]

BAD_MACS = [
    "",
    "00:00:5e:00:53",  # 5 octets
    "00:00:5e:00:53:01:02",  # 7 octets
    "00:00:5e-00:53:01",  # mixed separators
    "0:00:5e:00:53:01",  # one digit
    "000:00:5e:00:53:01",
    "00005e005301",  # no separator
    "0000.5e00.530",
    "0000:5e00:5301",  # groups of 4 with ':'
    "00:00:5e:00:53:0g",
    "00:00:5e:00:53:01 ",
]


@pytest.mark.parametrize(("text", "octets"), GOOD_MACS)
def test_mac_accepted(text: str, octets: str) -> None:
    assert parse_mac(text) == bytes.fromhex(octets)


@pytest.mark.parametrize("text", BAD_MACS)
def test_mac_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="must be a MAC address"):
        parse_mac(text)


@pytest.mark.parametrize(
    ("text", "addr", "length"),
    [
        ("192.0.2.10/24", "192.0.2.10", 24),
        ("0.0.0.0/0", "0.0.0.0", 0),
        ("2001:db8::1/64", "2001:db8::1", 64),
        ("::ffff:192.0.2.1/128", "::ffff:192.0.2.1", 128),
    ],
)
def test_prefix_accepted(text: str, addr: str, length: int) -> None:
    assert parse_prefix(text) == (ipaddress.ip_address(addr), length)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "192.0.2.10",
        "192.0.2.10/",
        "/24",
        "192.0.2.10/33",
        "192.0.2.10/-1",
        "192.0.2.10/+8",
        "192.0.2.10/08",
        "192.0.2.10/2 4",
        "010.0.0.1/8",
        "fe80::1%eth0/64",
        "2001:db8::1/129",
        "host/8",
    ],
)
def test_prefix_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_prefix(text)


def test_ip() -> None:
    assert parse_ip("192.0.2.1") == ipaddress.ip_address("192.0.2.1")
    for bad in ("192.0.2.1/32", "fe80::1%eth0", "256.0.0.1", ""):
        with pytest.raises(ValueError):
            parse_ip(bad)


@pytest.mark.parametrize("name", ["eth0", "net_1", "a.b-c", "ñet0", "网卡0", "a" * 15])
def test_ifname_ok(name: str) -> None:
    assert ifname_problems(name) == []


def test_ifname_reports_every_problem() -> None:
    problems = ifname_problems("a /b:c@xxxxxxxxxxx")
    assert len(problems) == 4
    assert any("at most 15 bytes, got 18" in p for p in problems)
    assert any("'/'" in p for p in problems)
    assert any("whitespace" in p for p in problems)
    assert any("':', '@'" in p for p in problems)


def test_ifname_superscript_digit_is_not_a_decimal_digit() -> None:
    # Go's unicode.IsDigit is category Nd only; '²' is No.
    assert any("invalid character" in p for p in ifname_problems("eth²"))
