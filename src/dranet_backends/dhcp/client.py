"""A one-shot DHCPv4 client on one interface: DISCOVER, OFFER, REQUEST, ACK, then done.

It talks through a packet socket (``AF_PACKET``, cooked, IPv4 only) bound to the interface,
made inside the interface's network namespace, so it needs no address on the interface, no
route and no UDP port, and reverse-path filtering cannot drop the server's reply. The link
is set up first when it is down. The lease is not renewed nor applied on the host: the
caller gives its address and routes to the pod (as the Go driver does).

:func:`obtain_lease` gives up with :class:`DhcpError` after ``give_up_after`` seconds (5, the Go
driver's) or on a NAK it got twice.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import secrets
import socket
import struct
import time

import attrs

from dranet_backends.netns import call_in_netns_at

from . import wire

__all__ = ["DhcpError", "Lease", "obtain_lease"]

log = logging.getLogger(__name__)

ETH_P_IP = 0x0800
SIOCGIFFLAGS, SIOCSIFFLAGS, SIOCGIFHWADDR = 0x8913, 0x8914, 0x8927
IFF_UP = 0x1
RETRANSMIT = 1.0
"""Seconds between retransmissions of an unanswered DISCOVER or REQUEST."""


class DhcpError(Exception):
    """No lease: nobody answered in time, the server refused, or the interface is unusable."""


@attrs.frozen(kw_only=True)
class Lease:
    """An acknowledged lease: ``address`` in CIDR form, option 121 ``routes``, the server."""

    address: str
    routes: tuple[wire.StaticRoute, ...]
    server_id: str | None
    lease_seconds: int | None


def _open(ifname: str) -> tuple[socket.socket, bytes]:
    """A packet socket on ``ifname`` (link set up if needed) and the interface's MAC."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    try:
        name = ifname.encode()[:15].ljust(16, b"\0")
        flags = struct.unpack_from("H", fcntl.ioctl(sock, SIOCGIFFLAGS, name + bytes(24)), 16)[0]
        if not flags & IFF_UP:
            fcntl.ioctl(sock, SIOCSIFFLAGS, name + struct.pack("H", flags | IFF_UP) + bytes(22))
        hw = fcntl.ioctl(sock, SIOCGIFHWADDR, name + bytes(24))
        mac = hw[18:24]
        sock.bind((ifname, ETH_P_IP))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock, mac


class _Exchange:
    def __init__(self, sock: socket.socket, ifname: str, mac: bytes) -> None:
        self.sock, self.ifname, self.mac = sock, ifname, mac
        self.xid = secrets.randbits(32)

    def send(self, kind: int, **kw: str | None) -> None:
        payload = wire.build_request(kind, self.xid, self.mac, **kw)
        self.sock.sendto(wire.ip_udp_packet(payload), (self.ifname, ETH_P_IP, 0, 0, b"\xff" * 6))

    async def reply(self, kinds: tuple[int, ...], deadline: float) -> wire.Reply | None:
        """The next reply of one of ``kinds`` before ``deadline`` (monotonic); None at it."""
        loop = asyncio.get_running_loop()
        while (left := deadline - time.monotonic()) > 0:
            try:
                packet = await asyncio.wait_for(loop.sock_recv(self.sock, 65535), left)
            except TimeoutError:
                return None
            payload = wire.udp_payload(packet)
            if payload is None:
                continue
            try:
                reply = wire.parse_reply(payload, self.xid, self.mac)
            except ValueError as exc:
                log.debug("dhcp %s: dropping a malformed reply: %s", self.ifname, exc)
                continue
            if reply is not None and reply.kind in kinds:
                return reply
        return None

    async def ask(self, kind: int, want: tuple[int, ...], end: float, **kw: str | None) -> wire.Reply | None:
        """Send ``kind`` every RETRANSMIT seconds until a reply of ``want`` comes or ``end``."""
        while time.monotonic() < end:
            self.send(kind, **kw)
            got = await self.reply(want, min(end, time.monotonic() + RETRANSMIT))
            if got is not None:
                return got
        return None


async def obtain_lease(ifname: str, *, netns: str | None = None, give_up_after: float = 5.0) -> Lease:
    """A lease for ``ifname`` (in ``netns``, a path; default: this process's netns).

    Raises :class:`DhcpError` naming the interface when none is acknowledged in ``give_up_after`` seconds.
    """
    try:
        sock, mac = call_in_netns_at(netns, lambda: _open(ifname)) if netns else _open(ifname)
    except OSError as exc:
        raise DhcpError(f"DHCP on {ifname}: cannot use the interface: {os.strerror(exc.errno or 0)}") from exc
    end = time.monotonic() + give_up_after
    try:
        ex = _Exchange(sock, ifname, mac)
        for _ in range(2):
            offer = await ex.ask(wire.DISCOVER, (wire.OFFER,), end)
            if offer is None:
                break
            ack = await ex.ask(
                wire.REQUEST, (wire.ACK, wire.NAK), end, requested=offer.your_ip, server=offer.server_id
            )
            if ack is None:
                break
            if ack.kind == wire.ACK:
                raw = ack.options.get(wire.OPT_LEASE_TIME)
                seconds = int.from_bytes(raw, "big") if raw and len(raw) == 4 else None
                lease = Lease(
                    address=f"{ack.your_ip}/{ack.prefixlen}",
                    routes=tuple(ack.routes),
                    server_id=ack.server_id,
                    lease_seconds=seconds,
                )
                log.info(
                    "dhcp %s: leased %s from %s for %ss",
                    ifname,
                    lease.address,
                    lease.server_id,
                    lease.lease_seconds,
                )
                return lease
            log.info("dhcp %s: server %s refused %s; starting over", ifname, ack.server_id, offer.your_ip)
            ex.xid = secrets.randbits(32)
        raise DhcpError(f"DHCP on {ifname}: no lease within {give_up_after:g}s")
    except OSError as exc:
        raise DhcpError(f"DHCP on {ifname}: the interface failed: {os.strerror(exc.errno or 0)}") from exc
    finally:
        sock.close()
