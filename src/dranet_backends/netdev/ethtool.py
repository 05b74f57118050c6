"""ethtool offload features and private flags over the ``SIOCETHTOOL`` ioctl.

Features (``ethtool -k``/``-K``) are not in pyroute2's ethtool netlink, so this module speaks
the ioctl directly, with ``struct`` and ``ctypes`` buffers:

=========================  ======  =====================================================
command                    value   payload (all u32 native-endian unless said)
=========================  ======  =====================================================
``ETHTOOL_GSSET_INFO``     0x37    cmd, reserved, u64 sset_mask, then one u32 per set
``ETHTOOL_GSTRINGS``       0x1b    cmd, string_set, len, then len x 32-byte names
``ETHTOOL_GFEATURES``      0x3a    cmd, size, size x {available, requested, active,
                                   never_changed}
``ETHTOOL_SFEATURES``      0x3b    cmd, size, size x {valid, requested}; returns flags
``ETHTOOL_GPFLAGS``        0x27    cmd, data (bit i = private flag i)
``ETHTOOL_SPFLAGS``        0x28    cmd, data
=========================  ======  =====================================================

The ioctl acts on the netns of the socket it is issued on: open an ``AF_INET`` socket inside
the target netns (the functions here take that socket; run them under
:func:`~dranet_backends.netdev.nsutil.run_in_netns`).

Feature names are resolved as the Go driver does: a kernel name (``rx-gro``), an
``ethtool -k`` long name (``generic-receive-offload``) or a short name (``gro``); a long or
short name may stand for several kernel features (``tx`` is every ``tx-checksum-*``). A name
matching nothing the device has is an error naming it.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import fnmatch
import socket
import struct
from collections.abc import Mapping, Sequence
from typing import Final

import attrs

__all__ = [
    "FEATURE_ALIASES",
    "Features",
    "decode_features",
    "decode_strings",
    "encode_sfeatures",
    "get_features",
    "get_private_flags",
    "ifreq",
    "resolve_features",
    "set_features",
    "set_private_flags",
]

SIOCETHTOOL: Final = 0x8946
ETHTOOL_GSTRINGS: Final = 0x1B
ETHTOOL_GPFLAGS: Final = 0x27
ETHTOOL_SPFLAGS: Final = 0x28
ETHTOOL_GSSET_INFO: Final = 0x37
ETHTOOL_GFEATURES: Final = 0x3A
ETHTOOL_SFEATURES: Final = 0x3B
ETH_SS_PRIV_FLAGS: Final = 2
ETH_SS_FEATURES: Final = 4
ETH_GSTRING_LEN: Final = 32
ETHTOOL_F_UNSUPPORTED: Final = 1
ETHTOOL_F_WISH: Final = 2

FEATURE_ALIASES: Final[Mapping[str, tuple[str, str]]] = {
    # short: (long, kernel-name pattern)
    "rx": ("rx-checksumming", "rx-checksum"),
    "tx": ("tx-checksumming", "tx-checksum-*"),
    "sg": ("scatter-gather", "tx-scatter-gather*"),
    "tso": ("tcp-segmentation-offload", "tx-tcp*-segmentation"),
    "ufo": ("udp-fragmentation-offload", "tx-udp-fragmentation"),
    "gso": ("generic-segmentation-offload", "tx-generic-segmentation"),
    "gro": ("generic-receive-offload", "rx-gro"),
    "lro": ("large-receive-offload", "rx-lro"),
    "rxvlan": ("rx-vlan-offload", "rx-vlan-hw-parse"),
    "txvlan": ("tx-vlan-offload", "tx-vlan-hw-insert"),
    "ntuple": ("ntuple-filters", "rx-ntuple-filter"),
    "rxhash": ("receive-hashing", "rx-hashing"),
}
"""Short and long ``ethtool -k`` names and the kernel feature names they stand for."""

_BY_LONG: Final = dict(FEATURE_ALIASES.values())


@attrs.frozen(kw_only=True)
class Features:
    """A device's offload features: kernel names, which can change, which are on."""

    names: tuple[str, ...]
    changeable: frozenset[str]
    active: Mapping[str, bool]


def ifreq(ifname: str, data_addr: int) -> bytearray:
    """A ``struct ifreq`` (40 bytes on 64-bit): 16-byte name, then a pointer to the payload."""
    raw = ifname.encode()
    if not raw or len(raw) > 15:
        raise ValueError(f"bad interface name {ifname!r}")
    return bytearray(raw.ljust(16, b"\0") + struct.pack("P", data_addr).ljust(24, b"\0"))


def _ioctl(sock: socket.socket, ifname: str, buf: ctypes.Array[ctypes.c_char]) -> int:
    req = ifreq(ifname, ctypes.addressof(buf))
    return int(fcntl.ioctl(sock.fileno(), SIOCETHTOOL, req, True))


def _sset_count(sock: socket.socket, ifname: str, sset: int) -> int:
    buf = ctypes.create_string_buffer(struct.pack("=IIQI", ETHTOOL_GSSET_INFO, 0, 1 << sset, 0))
    _ioctl(sock, ifname, buf)
    _, _, mask, count = struct.unpack("=IIQI", buf.raw[:20])
    return int(count) if mask & (1 << sset) else 0


def decode_strings(raw: bytes, count: int) -> tuple[str, ...]:
    """Names from an ``ETHTOOL_GSTRINGS`` payload (after its 12-byte header)."""
    out = []
    for i in range(count):
        chunk = raw[i * ETH_GSTRING_LEN : (i + 1) * ETH_GSTRING_LEN]
        out.append(chunk.split(b"\0", 1)[0].decode("ascii", "replace"))
    return tuple(out)


def _strings(sock: socket.socket, ifname: str, sset: int) -> tuple[str, ...]:
    count = _sset_count(sock, ifname, sset)
    if not count:
        return ()
    buf = ctypes.create_string_buffer(12 + count * ETH_GSTRING_LEN)
    struct.pack_into("=III", buf, 0, ETHTOOL_GSTRINGS, sset, count)
    _ioctl(sock, ifname, buf)
    n = struct.unpack_from("=I", buf, 8)[0]
    return decode_strings(buf.raw[12:], min(int(n), count))


def decode_features(names: Sequence[str], blocks: bytes) -> Features:
    """Build :class:`Features` from ``ETHTOOL_GFEATURES`` blocks (16 bytes per 32 features)."""
    changeable: set[str] = set()
    active: dict[str, bool] = {}
    for i, name in enumerate(names):
        word, bit = divmod(i, 32)
        available, _requested, act, _never = struct.unpack_from("=IIII", blocks, word * 16)
        if available & (1 << bit):
            changeable.add(name)
        active[name] = bool(act & (1 << bit))
    return Features(names=tuple(names), changeable=frozenset(changeable), active=active)


def get_features(sock: socket.socket, ifname: str) -> Features:
    """The offload features of ``ifname`` (``ethtool -k``)."""
    names = _strings(sock, ifname, ETH_SS_FEATURES)
    words = (len(names) + 31) // 32
    buf = ctypes.create_string_buffer(8 + words * 16)
    struct.pack_into("=II", buf, 0, ETHTOOL_GFEATURES, words)
    _ioctl(sock, ifname, buf)
    return decode_features(names, buf.raw[8:])


def encode_sfeatures(names: Sequence[str], wanted: Mapping[str, bool]) -> bytes:
    """An ``ETHTOOL_SFEATURES`` payload setting ``wanted`` (kernel names) and nothing else."""
    words = (len(names) + 31) // 32
    valid = [0] * words
    req = [0] * words
    index = {n: i for i, n in enumerate(names)}
    for name, on in wanted.items():
        if name not in index:
            raise KeyError(name)
        word, bit = divmod(index[name], 32)
        valid[word] |= 1 << bit
        if on:
            req[word] |= 1 << bit
    out = struct.pack("=II", ETHTOOL_SFEATURES, words)
    for v, r in zip(valid, req, strict=True):
        out += struct.pack("=II", v, r)
    return out


def resolve_features(wanted: Mapping[str, bool], names: Sequence[str]) -> dict[str, bool]:
    """Map user feature names (kernel, long or short) to kernel names the device has.

    Raises ``KeyError`` naming the first name that matches none of ``names``.
    """
    known = set(names)
    out: dict[str, bool] = {}
    for name, on in wanted.items():
        if name in known:
            out[name] = on
            continue
        pattern = FEATURE_ALIASES[name][1] if name in FEATURE_ALIASES else _BY_LONG.get(name)
        hits = [n for n in names if pattern and fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise KeyError(f"feature {name} not supported by interface")
        for n in hits:
            out[n] = on
    return out


def set_features(sock: socket.socket, ifname: str, wanted: Mapping[str, bool]) -> dict[str, bool]:
    """Set features (any accepted names); returns the kernel names changed with their old values.

    Raises ``OSError`` when a feature cannot be changed or did not take effect.
    """
    cur = get_features(sock, ifname)
    try:
        kernel = resolve_features(wanted, cur.names)
    except KeyError as exc:
        raise OSError(errno.EOPNOTSUPP, str(exc.args[0])) from None
    todo = {n: on for n, on in kernel.items() if cur.active.get(n) != on}
    if not todo:
        return {}
    fixed = sorted(n for n in todo if n not in cur.changeable)
    if fixed:
        raise OSError(errno.EOPNOTSUPP, f"feature(s) {', '.join(fixed)} cannot be changed on {ifname}")
    buf = ctypes.create_string_buffer(encode_sfeatures(cur.names, todo))
    _ioctl(sock, ifname, buf)
    after = get_features(sock, ifname)
    wrong = sorted(n for n, on in todo.items() if after.active.get(n) != on)
    if wrong:
        raise OSError(errno.EOPNOTSUPP, f"could not set feature(s) {', '.join(wrong)} on {ifname}")
    return {n: bool(cur.active.get(n)) for n in todo}


def get_private_flags(sock: socket.socket, ifname: str) -> dict[str, bool]:
    """The private flags of ``ifname`` (``ethtool --show-priv-flags``); empty when none."""
    names = _strings(sock, ifname, ETH_SS_PRIV_FLAGS)
    if not names:
        return {}
    buf = ctypes.create_string_buffer(struct.pack("=II", ETHTOOL_GPFLAGS, 0))
    _ioctl(sock, ifname, buf)
    data = struct.unpack_from("=I", buf, 4)[0]
    return {n: bool(data & (1 << i)) for i, n in enumerate(names)}


def set_private_flags(sock: socket.socket, ifname: str, wanted: Mapping[str, bool]) -> dict[str, bool]:
    """Set private flags by name; returns the flags changed with their old values."""
    names = _strings(sock, ifname, ETH_SS_PRIV_FLAGS)
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise OSError(errno.EOPNOTSUPP, f"private flag(s) {', '.join(unknown)} not supported by {ifname}")
    cur = get_private_flags(sock, ifname)
    todo = {n: on for n, on in wanted.items() if cur.get(n) != on}
    if not todo:
        return {}
    data = 0
    for i, n in enumerate(names):
        if todo.get(n, cur.get(n, False)):
            data |= 1 << i
    buf = ctypes.create_string_buffer(struct.pack("=II", ETHTOOL_SPFLAGS, data))
    _ioctl(sock, ifname, buf)
    return {n: bool(cur.get(n)) for n in todo}


def inet_socket() -> socket.socket:
    """An ``AF_INET`` datagram socket for ethtool ioctls (in the calling thread's netns)."""
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
