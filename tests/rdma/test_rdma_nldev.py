"""RDMA netlink codec against byte vectors written by hand from the uapi layout, and the socket.

Layout (little-endian host, as CI): nlmsghdr = len u32 | type u16 | flags u16 | seq u32 |
pid u32; type = RDMA_NL_NLDEV (5) << 10 | cmd; NLA = len u16 | type u16 | payload | pad to 4.
"""

from __future__ import annotations

import errno
import socket
import struct
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rdma_helpers import FakeRdmaKernel

from dranet_backends.rdma import nldev
from dranet_backends.rdma.nldev import NldevError, NldevSocket, RdmaLink

pytestmark = pytest.mark.skipif(sys.byteorder != "little", reason="vectors are little-endian")

# CMD_SET (type 0x1402), flags REQUEST|ACK (0x0005), seq 1, DEV_INDEX=3, NET_NS_FD=7
SET_VECTOR = bytes.fromhex(
    "20000000"
    "0214"
    "0500"
    "01000000"
    "00000000"  # nlmsghdr: len 32
    "0800"
    "0100"
    "03000000"  # DEV_INDEX (1) u32 3
    "0800"
    "4400"
    "07000000"  # NET_NS_FD (68) u32 7
)
# CMD_SYS_GET (0x1406), REQUEST|ACK, seq 9, no attributes
SYS_GET_VECTOR = bytes.fromhex("10000000061405000900000000000000")
# CMD_GET (0x1401) dump: REQUEST|DUMP (0x0301), seq 2
DUMP_VECTOR = bytes.fromhex("10000000011401030200000000000000")

# kernel reply to SYS_GET seq 9: NETNS_MODE (66) u8 = 0 (exclusive), then an ACK
SYS_GET_REPLY = bytes.fromhex(
    "18000000"
    "0614"
    "0000"
    "09000000"
    "d2040000"  # len 24, pid 1234
    "0500"
    "4200"
    "00"
    "000000"  # NETNS_MODE u8 0 + 3 pad
    "24000000"
    "0200"
    "0000"
    "09000000"
    "d2040000"  # NLMSG_ERROR, len 36
    "00000000"  # error 0 = ACK
    "10000000"
    "0614"
    "0500"
    "09000000"
    "00000000"  # the original request header
)
# one device of a dump (seq 2): DEV_INDEX 1, DEV_NAME "mlx5_0\0", an unknown nested attr
# with NLA_F_NESTED (0x8000 | 0x50); then NLMSG_DONE
DUMP_REPLY = bytes.fromhex(
    "2c000000"
    "0114"
    "0200"
    "02000000"
    "00000000"  # len 44, NLM_F_MULTI
    "0800"
    "0100"
    "01000000"  # DEV_INDEX 1
    "0b00"
    "0200"
    "6d6c78355f3000"
    "00"  # DEV_NAME "mlx5_0\0" (len 11) + 1 pad
    "0800"
    "5080"
    "0400"
    "0000"  # nested unknown attr 0x50 holding an empty attr
    "14000000"
    "0300"
    "0200"
    "02000000"
    "00000000"
    "00000000"  # NLMSG_DONE, 0
)
EPERM_REPLY = bytes.fromhex(
    "24000000"
    "0200"
    "0000"
    "01000000"
    "00000000"
    "ffffffff"  # error -1 (EPERM)
    "10000000"
    "0214"
    "0500"
    "01000000"
    "00000000"
)


def test_message_type_is_client_shifted_by_10() -> None:
    assert nldev.msg_type(nldev.CMD_GET) == 0x1401
    assert nldev.msg_type(nldev.CMD_SET) == 0x1402
    assert nldev.msg_type(nldev.CMD_SYS_GET) == 0x1406


def test_set_netns_request_bytes() -> None:
    assert nldev.dev_set_netns_request(1, 3, 7) == SET_VECTOR


def test_sys_get_and_dump_request_bytes() -> None:
    assert nldev.sys_get_request(9) == SYS_GET_VECTOR
    assert nldev.dev_dump_request(2) == DUMP_VECTOR


def test_decode_sys_get_reply() -> None:
    data, ack = nldev.decode(SYS_GET_REPLY)
    assert (data.type, data.cmd, data.seq, data.pid) == (0x1406, nldev.CMD_SYS_GET, 9, 1234)
    assert data.u8(nldev.SYS_ATTR_NETNS_MODE) == nldev.NETNS_EXCLUSIVE
    assert data.error is None
    assert (ack.type, ack.error, ack.seq) == (nldev.NLMSG_ERROR, 0, 9)


def test_decode_dump_reply_ignores_unknown_and_masks_flags() -> None:
    dev, done = nldev.decode(DUMP_REPLY)
    assert dev.u32(nldev.ATTR_DEV_INDEX) == 1
    assert dev.string(nldev.ATTR_DEV_NAME) == "mlx5_0"
    assert dev.flags == nldev.NLM_F_MULTI
    assert 0x50 in dev.attrs  # NLA_F_NESTED masked off the type
    assert dev.string(nldev.ATTR_NDEV_NAME) is None
    assert (done.type, done.error) == (nldev.NLMSG_DONE, 0)


def test_decode_error_reply() -> None:
    (err,) = nldev.decode(EPERM_REPLY)
    assert err.error == -errno.EPERM


@pytest.mark.parametrize(
    "garbled",
    [
        bytes.fromhex("40000000061400000100000000000000"),  # len beyond the datagram
        bytes.fromhex("08000000061400000100000000000000"),  # len below the header
        bytes.fromhex("180000000614000001000000000000000900420000000000"),  # NLA
    ],
)
def test_decode_rejects_garbled_messages(garbled: bytes) -> None:
    with pytest.raises(NldevError) as info:
        nldev.decode(garbled)
    assert info.value.errno == errno.EBADMSG


def test_short_attributes_read_as_absent() -> None:
    msg = nldev.NldevMessage(type=0x1401, flags=0, seq=1, pid=0, attrs={1: b"\x01\x00", 6: b"\x00" * 4})
    assert msg.u32(1) is None
    assert msg.u8(66) is None


# -- the socket against a peer ---------------------------------------------------------------


@pytest.fixture
async def kernel(tmp_path: Path) -> AsyncIterator[FakeRdmaKernel]:
    host = tmp_path / "host-ns"
    host.write_text("")
    k = FakeRdmaKernel(host=str(host))
    try:
        yield k
    finally:
        k.close()


async def test_socket_queries_mode_and_links(kernel: FakeRdmaKernel) -> None:
    kernel.add(1, "mlx5_0")
    kernel.add(4, "mlx5_1")
    async with NldevSocket(await kernel.open(None)) as sock:
        assert await sock.links() == [RdmaLink(index=1, name="mlx5_0"), RdmaLink(index=4, name="mlx5_1")]
        assert await sock.link("mlx5_1") == RdmaLink(index=4, name="mlx5_1")
        assert await sock.link("nope") is None
    assert [(c, f) for _, c, f in kernel.requests][:1] == [(1, 0x301)]  # DEV_GET, a dump


async def test_socket_raises_the_kernel_errno(kernel: FakeRdmaKernel) -> None:
    kernel.add(1, "mlx5_0")
    kernel.fail[nldev.CMD_SET] = errno.EPERM
    async with NldevSocket(await kernel.open(None)) as sock:
        with pytest.raises(NldevError) as info:
            await sock.set_netns(1, 0)
        assert info.value.errno == errno.EPERM
        # the socket stays usable after an error
        assert await sock.link("mlx5_0") == RdmaLink(index=1, name="mlx5_0")


async def test_socket_times_out_on_silence(kernel: FakeRdmaKernel) -> None:
    kernel.silent = True
    async with NldevSocket(await kernel.open(None), timeout=0.05) as sock:
        with pytest.raises(NldevError) as info:
            await sock.links()
    assert info.value.errno == errno.ETIMEDOUT


def _ack(seq: int, error: int) -> bytes:
    """An NLMSG_ERROR reply to request ``seq`` (``error`` 0: an ack), as the kernel writes it:
    the negative errno, then the request's 16-byte header."""
    request_header = struct.pack("=IHHII", 16, 0x1402, 0x5, seq, 0)  # an RDMA_NLDEV_CMD_SET request
    body = struct.pack("=i", -error) + request_header
    return struct.pack("=IHHII", 16 + len(body), 2, 0, seq, 1234) + body


async def test_socket_skips_replies_of_other_requests() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    try:
        b.send(_ack(7, errno.EPERM))  # the late answer of an earlier, timed-out request
        b.send(_ack(1, 0))
        await NldevSocket(a).set_netns(3, 42)  # seq 1: acked; the stale EPERM is not ours
        assert b.recv(100) == nldev.dev_set_netns_request(1, 3, 42)
    finally:
        a.close()
        b.close()


def test_probe_without_rdma_netlink_raises_oserror() -> None:
    """On a kernel without CONFIG_INFINIBAND the socket cannot be created (EPROTONOSUPPORT)."""
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, nldev.NETLINK_RDMA).close()
    except OSError:
        with pytest.raises(OSError):
            nldev.probe_netns_mode()
        return
    pytest.skip("probe NETLINK_RDMA socket succeeded: this kernel has RDMA netlink (see test_rdma_kernel)")
