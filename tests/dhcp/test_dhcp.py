"""DHCP for ``interface.dhcp: true``: the codec from RFC bytes, the client against a real
dnsmasq over a veth in throwaway namespaces, and the netdev backend's prepare-time hook."""

from __future__ import annotations

import ipaddress
import os
import secrets
import struct
from collections.abc import Iterator

import pytest
from dnsmasq_server import ip, serve_dhcp

from dranet_backends.dhcp import DhcpError, dhcp_config, obtain_lease, wire
from dranet_backends.netdev import NetdevBackend
from dranet_core.config.model import InterfaceConfig, NetworkConfig, RouteConfig
from dranet_core.errors import DeviceError

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="probe euid==0 failed: needs root for netns")

# -- codec ---------------------------------------------------------------------------------


def test_option_121_routes_decode_as_rfc_3442_writes_them() -> None:
    raw = bytes(
        [
            *(24, 192, 168, 50, 10, 0, 0, 254),  # 192.168.50.0/24 via 10.0.0.254
            *(0, 10, 0, 0, 1),  # default via 10.0.0.1 (width 0: no destination octets)
            *(32, 10, 1, 2, 3, 0, 0, 0, 0),  # host route, on-link
            *(9, 129, 255, 10, 0, 0, 2),  # two significant octets; bits past /9 are dropped
        ]
    )
    assert [(r.destination, r.router) for r in wire.classless_routes(raw)] == [
        ("192.168.50.0/24", "10.0.0.254"),
        ("0.0.0.0/0", "10.0.0.1"),
        ("10.1.2.3/32", "0.0.0.0"),
        ("129.128.0.0/9", "10.0.0.2"),
    ]


@pytest.mark.parametrize("raw", [bytes([33, 1, 2, 3, 4, 5, 0, 0, 0, 0]), bytes([24, 192, 168, 50, 10, 0])])
def test_bad_option_121_is_an_error(raw: bytes) -> None:
    with pytest.raises(ValueError, match="option 121"):
        wire.classless_routes(raw)


def _reply(xid: int, mac: bytes, options: bytes, op: int = 2) -> bytes:
    fixed = struct.pack("!BBBBIHH", op, 1, 6, 0, xid, 0, 0) + bytes(4) + bytes([10, 0, 0, 7]) + bytes(8)
    return fixed + mac.ljust(16, b"\0") + bytes(192) + wire.MAGIC + options


def test_an_ack_is_parsed_from_its_bytes() -> None:
    mac = bytes.fromhex("020000000001")
    opts = bytes([53, 1, 5, 54, 4, 10, 0, 0, 1, 1, 4, 255, 255, 255, 0, 51, 4, 0, 0, 14, 16])
    opts += bytes([121, 8, 24, 192, 168, 50, 10, 0, 0, 254, 0, 255])  # a pad, then the end
    reply = wire.parse_reply(_reply(0x1234, mac, opts), 0x1234, mac)
    assert reply is not None
    assert (reply.kind, reply.your_ip, reply.prefixlen, reply.server_id) == (
        wire.ACK,
        "10.0.0.7",
        24,
        "10.0.0.1",
    )
    assert reply.routes == [wire.StaticRoute("192.168.50.0/24", "10.0.0.254")]
    assert wire.parse_reply(_reply(0x9999, mac, opts), 0x1234, mac) is None  # another exchange
    assert wire.parse_reply(_reply(0x1234, mac, opts, op=1), 0x1234, mac) is None  # a request
    with pytest.raises(ValueError, match="runs past"):
        wire.parse_reply(_reply(0x1234, mac, bytes([53, 9, 5])), 0x1234, mac)


def test_requests_go_out_in_valid_ip_and_udp_headers() -> None:
    payload = wire.build_request(wire.REQUEST, 7, b"\x02" * 6, requested="10.0.0.7", server="10.0.0.1")
    packet = wire.ip_udp_packet(payload)
    assert packet[0] == 0x45 and packet[9] == 17 and packet[16:20] == b"\xff" * 4
    words = struct.unpack("!10H", packet[:20])
    assert sum(words) % 0xFFFF == 0  # the IPv4 header checksum verifies
    sport, dport, ulen = struct.unpack_from("!HHH", packet, 20)
    assert (sport, dport, ulen) == (68, 67, 8 + len(payload))
    options = payload[240:]
    assert bytes([53, 1, 3]) in options and bytes([50, 4, 10, 0, 0, 7]) in options
    assert bytes([54, 4, 10, 0, 0, 1]) in options and options.endswith(b"\xff")
    assert wire.udp_payload(packet[:20] + struct.pack("!HHHH", 67, 68, ulen, 0) + payload) == payload
    assert wire.udp_payload(packet) is None  # to the server's port, not ours


# -- against dnsmasq -----------------------------------------------------------------------


@pytest.fixture
def client_ns() -> Iterator[str]:
    """A namespace with veth ``dhc0`` (the interface under test) and its peer ``dhc0p``."""
    ns = f"dnt-dhcp-{secrets.token_hex(3)}"
    ip("netns", "add", ns)
    try:
        ip("-n", ns, "link", "add", "dhc0", "type", "veth", "peer", "name", "dhc0p")
        yield ns
    finally:
        ip("netns", "del", ns, check=False)


@root_only
@pytest.mark.netns
async def test_lease_with_classless_routes_from_dnsmasq(client_ns: str) -> None:
    with serve_dhcp(client_ns, "dhc0p") as server:
        lease = await obtain_lease("dhc0", netns=f"/run/netns/{client_ns}")
        # the link was set up; the lease is not applied on the host interface
        link = ip("-j", "-n", client_ns, "link", "show", "dhc0").replace(" ", "")
        addrs = ip("-n", client_ns, "addr", "show", "dhc0")
    addr = ipaddress.ip_interface(lease.address)
    assert str(addr.ip).startswith(server.prefix) and addr.network.prefixlen == 24
    assert 50 <= int(str(addr.ip).rsplit(".", 1)[1]) <= 60
    assert lease.server_id == server.prefix + "1"
    assert lease.lease_seconds == 3600
    assert [(r.destination, r.router) for r in lease.routes] == [
        ("192.168.50.0/24", server.router),
        ("10.200.0.0/16", "0.0.0.0"),
    ]
    assert '"operstate":"UP"' in link
    assert "inet " not in addrs


@root_only
@pytest.mark.netns
async def test_no_server_means_no_lease(client_ns: str) -> None:
    ip("-n", client_ns, "link", "set", "dhc0p", "up")
    with pytest.raises(DhcpError, match=r"DHCP on dhc0: no lease within 1.5s"):
        await obtain_lease("dhc0", netns=f"/run/netns/{client_ns}", give_up_after=1.5)


async def test_a_missing_interface_is_a_clear_error() -> None:
    with pytest.raises(DhcpError, match="DHCP on nosuch0: cannot use the interface"):
        await obtain_lease("nosuch0", give_up_after=0.5)


@root_only
@pytest.mark.netns
async def test_netdev_backend_puts_the_lease_into_the_claim_config(client_ns: str) -> None:
    backend = NetdevBackend(netns=f"/run/netns/{client_ns}")
    try:
        (dev,) = [d for d in await backend.scan() if d.attributes.get("dra.net/ifName") == "dhc0"]
        assert backend.owns(dev)
        user = NetworkConfig(
            interface=InterfaceConfig(name="net1", dhcp=True),
            routes=(RouteConfig(destination="172.16.0.0/12", gateway="10.1.1.1"),),
        )
        plain = NetworkConfig(interface=InterfaceConfig(name="net1"))
        assert await backend.resolve_config(dev, plain) is plain  # no dhcp: untouched, no traffic
        # without a server the claim fails, naming the device and the field
        ip("-n", client_ns, "link", "set", "dhc0p", "up")
        with pytest.raises(DeviceError, match=r"device dhc0: interface.dhcp: DHCP on dhc0: no lease") as err:
            await dhcp_config(user, dev.name, "dhc0", netns=backend.netns, give_up_after=1.0)
        assert err.value.temporary
        with serve_dhcp(client_ns, "dhc0p") as server:
            got = await backend.resolve_config(dev, user)
        assert got.interface is not None and got.interface.name == "net1"
        (address,) = got.interface.addresses or ()
        assert address.startswith(server.prefix) and address.endswith("/24")
        assert got.routes == (
            RouteConfig(destination="172.16.0.0/12", gateway="10.1.1.1"),
            RouteConfig(destination="192.168.50.0/24", gateway=server.router),
            RouteConfig(destination="10.200.0.0/16", scope=253),
        )
    finally:
        backend.close()
