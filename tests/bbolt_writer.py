"""A tiny bbolt file writer for tests, byte by byte from the published page format.

It writes what the Go driver's bbolt checkpoint looks like: two meta pages (FNV-1a 64
checksums, the higher txid current), a freelist page, then leaf/branch pages; nested
buckets either on their own page or *inline* in their parent's value; a value too large for
one page spills into overflow pages. Independent of the reader under test (no shared code).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any, Union

PAGE = 4096
MAGIC = 0xED0CDAED
BRANCH, LEAF, META, FREELIST = 0x01, 0x02, 0x04, 0x10

Node = Union[bytes, "Bucket"]


class Bucket:
    """A bucket's items; ``inline`` buckets live in their parent's value."""

    def __init__(self, items: Mapping[bytes, Node], *, inline: bool = True, branch_split: int = 0) -> None:
        self.items = dict(items)
        self.inline = inline
        self.branch_split = branch_split  # > 0: a branch page over leaves of this many items


def fnv64a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) % (1 << 64)
    return h


class Writer:
    def __init__(self) -> None:
        self.pages: dict[int, bytes] = {}
        self.next = 3  # 0, 1: meta; 2: freelist

    def _alloc(self, body: bytes) -> int:
        pgid = self.next
        n = max(1, -(-len(body) // PAGE))
        self.next += n
        hdr = struct.pack("<QHHI", pgid, *struct.unpack_from("<HHI", body, 8))
        full = hdr + body[16:]
        full = full[:8] + full[8:12] + struct.pack("<I", n - 1) + full[16:]
        self.pages[pgid] = full.ljust(n * PAGE, b"\0")
        return pgid

    def _leaf(self, items: Mapping[bytes, Node]) -> bytes:
        elems, data = b"", b""
        count = len(items)
        base = 16 + 16 * count
        for i, (key, node) in enumerate(sorted(items.items())):
            value = self._value(node)
            flags = 1 if isinstance(node, Bucket) else 0
            pos = base + len(data) - (16 + 16 * i)
            elems += struct.pack("<IIII", flags, pos, len(key), len(value))
            data += key + value
        return struct.pack("<QHHI", 0, LEAF, count, 0) + elems + data

    def _value(self, node: Node) -> bytes:
        if isinstance(node, bytes):
            return node
        if node.inline:
            return struct.pack("<QQ", 0, 0) + self._leaf(node.items)
        return struct.pack("<QQ", self._bucket_page(node), 0)

    def _bucket_page(self, bucket: Bucket) -> int:
        keys = sorted(bucket.items)
        if not bucket.branch_split or len(keys) <= bucket.branch_split:
            return self._alloc(self._leaf(bucket.items))
        chunks = [keys[i : i + bucket.branch_split] for i in range(0, len(keys), bucket.branch_split)]
        children = [(c[0], self._alloc(self._leaf({k: bucket.items[k] for k in c}))) for c in chunks]
        elems, data = b"", b""
        base = 16 + 16 * len(children)
        for i, (key, pgid) in enumerate(children):
            elems += struct.pack("<IIQ", base + len(data) - (16 + 16 * i), len(key), pgid)
            data += key
        return self._alloc(struct.pack("<QHHI", 0, BRANCH, len(children), 0) + elems + data)

    def file(self, root: Bucket, *, corrupt_meta: int | None = None) -> bytes:
        root_pgid = self._bucket_page(root)
        out = bytearray(self.next * PAGE)
        for pgid, page in self.pages.items():
            out[pgid * PAGE : pgid * PAGE + len(page)] = page
        out[2 * PAGE : 2 * PAGE + 16] = struct.pack("<QHHI", 2, FREELIST, 0, 0)
        for pgid, txid in ((0, 1), (1, 2)):
            meta = struct.pack("<IIII", MAGIC, 2, PAGE, 0) + struct.pack("<QQ", root_pgid, 0)
            meta += struct.pack("<QQQ", 2, self.next, txid)
            checksum = fnv64a(meta) ^ (1 if corrupt_meta == pgid else 0)
            page = struct.pack("<QHHI", pgid, META, 0, 0) + meta + struct.pack("<Q", checksum)
            out[pgid * PAGE : pgid * PAGE + len(page)] = page
        return bytes(out)


def go_checkpoint(pods: Mapping[str, Mapping[str, dict[str, Any]]], **kw: Any) -> bytes:
    """The Go driver's file: pod_configs/<pod>/device_configs/<device> = JSON record."""
    root_items: dict[bytes, Node] = {
        pod.encode(): Bucket(
            {b"device_configs": Bucket({d.encode(): json.dumps(r).encode() for d, r in devs.items()})}
        )
        for pod, devs in pods.items()
    }
    pod_configs = Bucket(root_items, inline=False, branch_split=kw.pop("branch_split", 0))
    return Writer().file(Bucket({b"pod_configs": pod_configs}, inline=False), **kw)


def go_record(namespace: str, claim: str, host_ifname: str, pod_ifname: str, **attrs: Any) -> dict[str, Any]:
    """A DeviceConfig as the Go driver stores it (``attrs``: deviceSnapshot attributes)."""
    snapshot = {"name": host_ifname, "attributes": {f"dra.net/{k}": v for k, v in attrs.items()}}
    return {
        "claim": {"Namespace": namespace, "Name": claim},
        "deviceSnapshot": snapshot,
        "networkInterfaceConfigInHost": {"interface": {"name": host_ifname}},
        "networkInterfaceConfigInPod": {"interface": {"name": pod_ifname}},
        "rdmaDevice": {},
        "ready": True,
    }
