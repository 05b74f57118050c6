"""DHCPv4 messages (RFC 2131/2132) and option 121 routes (RFC 3442), sans-IO.

Only what a one-shot client needs: build DISCOVER and REQUEST, parse OFFER/ACK/NAK, and wrap
a message in the IPv4 + UDP headers a packet socket sends (the interface has no address
yet, so the kernel's IP stack cannot send it). Every parser raises :class:`ValueError` for
a malformed packet; callers drop such packets.
"""

from __future__ import annotations

import ipaddress
import struct

import attrs

__all__ = [
    "ACK",
    "DISCOVER",
    "NAK",
    "OFFER",
    "REQUEST",
    "Reply",
    "StaticRoute",
    "build_request",
    "classless_routes",
    "ip_udp_packet",
    "parse_reply",
    "udp_payload",
]

DISCOVER, OFFER, REQUEST, ACK, NAK = 1, 2, 3, 5, 6
CLIENT_PORT, SERVER_PORT = 68, 67
MAGIC = b"\x63\x82\x53\x63"
_FIXED = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")  # 236 bytes, then the magic cookie
OPT_SUBNET, OPT_ROUTER, OPT_REQUESTED_IP, OPT_LEASE_TIME = 1, 3, 50, 51
OPT_MSG_TYPE, OPT_SERVER_ID, OPT_PARAMS, OPT_CLASSLESS_ROUTES = 53, 54, 55, 121
BROADCAST_FLAG = 0x8000


@attrs.frozen
class StaticRoute:
    """One classless static route: ``destination`` CIDR via ``router`` (``0.0.0.0``: on-link)."""

    destination: str
    router: str


@attrs.frozen(kw_only=True)
class Reply:
    """A server's reply to this client."""

    kind: int
    xid: int
    your_ip: str
    options: dict[int, bytes]

    @property
    def server_id(self) -> str | None:
        """Option 54, the server identifier."""
        raw = self.options.get(OPT_SERVER_ID)
        return str(ipaddress.IPv4Address(raw)) if raw and len(raw) == 4 else None

    @property
    def prefixlen(self) -> int:
        """The subnet mask (option 1) as a prefix length (32 without one)."""
        raw = self.options.get(OPT_SUBNET)
        if not raw or len(raw) != 4:
            return 32
        return ipaddress.IPv4Network(f"0.0.0.0/{ipaddress.IPv4Address(raw)}").prefixlen

    @property
    def routes(self) -> list[StaticRoute]:
        """Option 121 (classless static routes); empty without it."""
        raw = self.options.get(OPT_CLASSLESS_ROUTES)
        return classless_routes(raw) if raw else []


def _opt(code: int, value: bytes) -> bytes:
    return bytes((code, len(value))) + value


def build_request(
    kind: int, xid: int, mac: bytes, *, requested: str | None = None, server: str | None = None
) -> bytes:
    """A DISCOVER or REQUEST (BOOTREQUEST, broadcast flag set) from hardware address ``mac``."""
    fixed = _FIXED.pack(
        1,
        1,
        6,
        0,
        xid,
        0,
        BROADCAST_FLAG,
        bytes(4),
        bytes(4),
        bytes(4),
        bytes(4),
        mac.ljust(16, b"\0"),
        b"",
        b"",
    )
    opts = _opt(OPT_MSG_TYPE, bytes((kind,)))
    opts += _opt(OPT_PARAMS, bytes((OPT_SUBNET, OPT_ROUTER, OPT_LEASE_TIME, OPT_CLASSLESS_ROUTES)))
    if requested is not None:
        opts += _opt(OPT_REQUESTED_IP, ipaddress.IPv4Address(requested).packed)
    if server is not None:
        opts += _opt(OPT_SERVER_ID, ipaddress.IPv4Address(server).packed)
    return fixed + MAGIC + opts + b"\xff"


def _options(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        code = data[i]
        if code == 255:
            break
        if code == 0:
            i += 1
            continue
        if i + 1 >= len(data) or i + 2 + data[i + 1] > len(data):
            raise ValueError(f"option {code} runs past the end of the message")
        n = data[i + 1]
        out[code] = out.get(code, b"") + data[i + 2 : i + 2 + n]  # RFC 3396: split options concatenate
        i += 2 + n
    return out


def parse_reply(data: bytes, xid: int, mac: bytes) -> Reply | None:
    """The reply in ``data`` if it is a BOOTREPLY for ``xid`` and ``mac``; None if it is not ours."""
    if len(data) < _FIXED.size + 4:
        raise ValueError(f"{len(data)} bytes is too short for a DHCP message")
    op, _, hlen, _, rxid, _, _, _, yiaddr, _, _, chaddr, _, _ = _FIXED.unpack_from(data)
    if op != 2 or rxid != xid or chaddr[: min(hlen, 16)] != mac[: min(hlen, 16)]:
        return None
    if data[_FIXED.size : _FIXED.size + 4] != MAGIC:
        raise ValueError("no DHCP magic cookie")
    options = _options(data[_FIXED.size + 4 :])
    kind = options.get(OPT_MSG_TYPE, b"")
    if len(kind) != 1:
        raise ValueError("no message type option")
    return Reply(kind=kind[0], xid=rxid, your_ip=str(ipaddress.IPv4Address(yiaddr)), options=options)


def classless_routes(raw: bytes) -> list[StaticRoute]:
    """Decode option 121: (width, significant destination octets, 4-octet router) repeated."""
    out: list[StaticRoute] = []
    i = 0
    while i < len(raw):
        width = raw[i]
        if width > 32:
            raise ValueError(f"option 121: prefix length {width} > 32")
        n = (width + 7) // 8
        if i + 1 + n + 4 > len(raw):
            raise ValueError("option 121: truncated route")
        dest = ipaddress.IPv4Address(raw[i + 1 : i + 1 + n].ljust(4, b"\0"))
        router = ipaddress.IPv4Address(raw[i + 1 + n : i + 5 + n])
        net = ipaddress.IPv4Network(f"{dest}/{width}", strict=False)
        out.append(StaticRoute(destination=str(net), router=str(router)))
        i += 5 + n
    return out


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_udp_packet(payload: bytes, src: str = "0.0.0.0", dst: str = "255.255.255.255") -> bytes:
    """``payload`` from client port 68 to server port 67 in IPv4 + UDP headers."""
    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    ulen = 8 + len(payload)
    pseudo = s + d + struct.pack("!BBH", 0, 17, ulen)
    udp = struct.pack("!HHHH", CLIENT_PORT, SERVER_PORT, ulen, 0) + payload
    csum = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0x10, 20 + ulen, 0, 0, 64, 17, 0, s, d)
    hdr = hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:]
    return hdr + udp


def udp_payload(packet: bytes) -> bytes | None:
    """The UDP payload of an IPv4 packet to client port 68; None for anything else."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != 17:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if len(packet) < ihl + 8:
        return None
    _, dport, ulen = struct.unpack_from("!HHH", packet, ihl)
    if dport != CLIENT_PORT or ulen < 8:
        return None
    return packet[ihl + 8 : ihl + ulen]
