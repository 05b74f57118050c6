"""String formats of the config: interface names, IP addresses and prefixes, MAC addresses.

Each checker is a pure function. ``parse_*`` return the parsed value or raise
:class:`ValueError` with a message fit to follow a JSON path (``must be ...``).

``parse_ip`` and ``parse_prefix`` are memoised (the same addresses are checked at decode,
validation, merge and again per device); their results are immutable.

Compatibility notes (Go ``net``/``netip`` parity):

* IP addresses: dotted-quad IPv4 (no leading zeros) or IPv6 text; IPv6 zones (``%eth0``)
  are rejected. The family follows the text: ``::ffff:192.0.2.1`` is IPv6.
* Prefixes: ``address/length`` with a decimal length in range; host bits are allowed
  (``192.0.2.10/24`` is an interface address, as ``netip.ParsePrefix``).
* MAC addresses: what Go's ``net.ParseMAC`` accepts: 6, 8 or 20 octets written as
  ``xx:xx:..`` or ``xx-xx-..`` (two hex digits per octet, one separator throughout) or
  ``xxxx.xxxx...`` (four hex digits per group).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from typing import Final

__all__ = [
    "IFNAMSIZ_MAX",
    "MAC_PATTERN",
    "ifname_problems",
    "parse_ip",
    "parse_mac",
    "parse_prefix",
]

IFNAMSIZ_MAX: Final = 15
"""Longest Linux interface name in bytes (IFNAMSIZ - 1)."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_H2 = "[0-9A-Fa-f]{2}"
_H4 = "[0-9A-Fa-f]{4}"


def _mac_alternatives() -> list[str]:
    alts = []
    for octets in (6, 8, 20):
        for sep in (":", "-"):
            alts.append(f"{_H2}(?:{re.escape(sep)}{_H2}){{{octets - 1}}}")
        alts.append(f"{_H4}(?:\\.{_H4}){{{octets // 2 - 1}}}")
    return alts


MAC_PATTERN: Final = "^(?:" + "|".join(_mac_alternatives()) + ")$"
"""A regular expression (ECMA-262 and Python compatible) for the accepted MAC forms."""

_MAC_RE: Final = re.compile(MAC_PATTERN)
_PREFIX_LEN_RE: Final = re.compile(r"^(0|[1-9][0-9]{0,2})$")


@functools.lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddress:
    """An IPv4 or IPv6 address (no zone)."""
    if "%" in text:
        raise ValueError(f"must be an IP address without zone, got {text!r}")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"must be an IP address, got {text!r}") from None


@functools.lru_cache(maxsize=4096)
def parse_prefix(text: str) -> tuple[IPAddress, int]:
    """An address with a prefix length, host bits allowed: ``(address, length)``."""
    addr_text, sep, len_text = text.rpartition("/")
    problem = f"must be an IP prefix in CIDR form (e.g. 192.0.2.10/24), got {text!r}"
    if not sep or "%" in addr_text or not _PREFIX_LEN_RE.match(len_text):
        raise ValueError(problem)
    try:
        addr = ipaddress.ip_address(addr_text)
    except ValueError:
        raise ValueError(problem) from None
    length = int(len_text)
    if length > addr.max_prefixlen:
        raise ValueError(f"prefix length must be <= {addr.max_prefixlen}, got {text!r}")
    return addr, length


def parse_mac(text: str) -> bytes:
    """A hardware address as Go's ``net.ParseMAC`` accepts it; returns the octets."""
    if not _MAC_RE.match(text):
        raise ValueError(f"must be a MAC address (e.g. 02:00:5e:10:00:01), got {text!r}")
    return bytes.fromhex(re.sub(r"[:.\-]", "", text))


def _allowed_ifname_char(ch: str) -> bool:
    return ch in "-_." or ch.isalpha() or unicodedata.category(ch) == "Nd"


def ifname_problems(name: str) -> list[str]:
    """Every reason ``name`` is not a valid interface name (empty list: valid).

    At most 15 bytes of UTF-8, no ``/``, no whitespace, not ``.`` or ``..``, and only
    Unicode letters, decimal digits, ``-``, ``_`` and ``.``.
    """
    problems = []
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > IFNAMSIZ_MAX:
        problems.append(f"must be at most {IFNAMSIZ_MAX} bytes, got {size} ({name!r})")
    if "/" in name:
        problems.append(f"must not contain '/', got {name!r}")
    if any(ch.isspace() for ch in name):
        problems.append(f"must not contain whitespace, got {name!r}")
    if name in (".", ".."):
        problems.append(f"must not be '.' or '..', got {name!r}")
    bad = sorted({ch for ch in name if ch != "/" and not ch.isspace() and not _allowed_ifname_char(ch)})
    if bad:
        shown = ", ".join(repr(ch) for ch in bad)
        problems.append(f"invalid character {shown} in {name!r} (allowed: letters, digits, '-', '_', '.')")
    return problems
