"""A read-only reader of bbolt database files (the Go driver's checkpoint format), pure Python.

The layout (go.etcd.io/bbolt, little-endian):

* the file is an array of pages of ``page_size`` bytes; every page starts with a 16-byte
  header: ``id u64, flags u16, count u16, overflow u32`` (a page spans ``overflow + 1``
  pages); flags: branch 0x01, leaf 0x02, meta 0x04, freelist 0x10;
* pages 0 and 1 are meta pages: after the header, ``magic u32 (0xED0CDAED), version u32
  (2), page_size u32, flags u32, root {root pgid u64, sequence u64}, freelist u64,
  pgid u64, txid u64, checksum u64`` (FNV-1a 64 of the meta bytes before the checksum);
  the valid meta with the higher txid is the current one;
* a branch page holds ``count`` 16-byte elements ``pos u32, ksize u32, pgid u64``; a leaf
  page ``count`` elements ``flags u32, pos u32, ksize u32, vsize u32`` (``pos`` is relative
  to the element; flag 0x01 marks a nested bucket);
* a bucket value is ``root pgid u64, sequence u64``; root 0 means an *inline* bucket whose
  page (header and elements) follows in the value itself.

:func:`read_bbolt` returns the whole key space as nested dicts: a bucket is a ``dict``, a
value ``bytes``. Every malformed structure raises :class:`BboltError`; nothing is written.
"""

from __future__ import annotations

import struct
from typing import Final, TypeAlias

__all__ = ["MAGIC", "BboltError", "Tree", "is_bbolt", "read_bbolt"]

MAGIC: Final = 0xED0CDAED
_PAGE = struct.Struct("<QHHI")
_META = struct.Struct("<IIII QQ QQQ Q")
_BRANCH = struct.Struct("<IIQ")
_LEAF = struct.Struct("<IIII")
_BUCKET = struct.Struct("<QQ")
BRANCH, LEAF, META = 0x01, 0x02, 0x04
BUCKET_LEAF = 0x01
_MAX_DEPTH = 64

Tree: TypeAlias = "dict[bytes, bytes | Tree]"


class BboltError(ValueError):
    """The bytes are not a bbolt file this reader understands (the reason names the place)."""


def is_bbolt(raw: bytes) -> bool:
    """Whether ``raw`` starts with a bbolt meta page (the magic at offset 16)."""
    return len(raw) >= 20 and struct.unpack_from("<I", raw, 16)[0] == MAGIC


def _fnv64a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def _meta(raw: bytes, offset: int) -> tuple[int, int, int] | None:
    """(page_size, root pgid, txid) of the meta page at ``offset``, None if invalid."""
    if len(raw) < offset + _PAGE.size + _META.size:
        return None
    _, flags, _, _ = _PAGE.unpack_from(raw, offset)
    body = offset + _PAGE.size
    magic, version, page_size, _, root, _, _, _, txid, checksum = _META.unpack_from(raw, body)
    if not flags & META or magic != MAGIC or version != 2:
        return None
    if _fnv64a(raw[body : body + _META.size - 8]) != checksum:
        return None
    return page_size, root, txid


class _Reader:
    def __init__(self, raw: bytes, page_size: int) -> None:
        self.raw = raw
        self.page_size = page_size

    def page(self, pgid: int) -> bytes:
        start = pgid * self.page_size
        if pgid < 2 or start + _PAGE.size > len(self.raw):
            raise BboltError(f"page {pgid} is outside the file ({len(self.raw)} bytes)")
        _, _, _, overflow = _PAGE.unpack_from(self.raw, start)
        end = start + (overflow + 1) * self.page_size
        if end > len(self.raw):
            raise BboltError(f"page {pgid} (+{overflow} overflow) runs past the end of the file")
        return self.raw[start:end]

    def walk(self, page: bytes, depth: int, where: str) -> Tree:
        if depth > _MAX_DEPTH:
            raise BboltError(f"{where}: nested deeper than {_MAX_DEPTH}")
        if len(page) < _PAGE.size:
            raise BboltError(f"{where}: page shorter than its header")
        _, flags, count, _ = _PAGE.unpack_from(page, 0)
        out: Tree = {}
        if flags & BRANCH:
            for i in range(count):
                at = _PAGE.size + i * _BRANCH.size
                if at + _BRANCH.size > len(page):
                    raise BboltError(f"{where}: branch element {i} past the page")
                _, _, child = _BRANCH.unpack_from(page, at)
                out.update(self.walk(self.page(child), depth + 1, f"{where}/page {child}"))
            return out
        if not flags & LEAF:
            raise BboltError(f"{where}: page flags {flags:#x} are neither branch nor leaf")
        for i in range(count):
            at = _PAGE.size + i * _LEAF.size
            if at + _LEAF.size > len(page):
                raise BboltError(f"{where}: leaf element {i} past the page")
            eflags, pos, ksize, vsize = _LEAF.unpack_from(page, at)
            kstart = at + pos
            if kstart + ksize + vsize > len(page):
                raise BboltError(f"{where}: leaf element {i} key/value past the page")
            key = page[kstart : kstart + ksize]
            value = page[kstart + ksize : kstart + ksize + vsize]
            out[key] = self.bucket(value, depth, f"{where}/{key!r}") if eflags & BUCKET_LEAF else value
        return out

    def bucket(self, value: bytes, depth: int, where: str) -> Tree:
        if len(value) < _BUCKET.size:
            raise BboltError(f"{where}: bucket header shorter than {_BUCKET.size} bytes")
        root, _ = _BUCKET.unpack_from(value, 0)
        if root == 0:
            return self.walk(value[_BUCKET.size :], depth + 1, where)  # inline bucket
        return self.walk(self.page(root), depth + 1, where)


def read_bbolt(raw: bytes) -> Tree:
    """Every bucket and value of the bbolt file ``raw`` (the current meta's root bucket)."""
    if not is_bbolt(raw):
        raise BboltError("not a bbolt file (no magic 0xED0CDAED at offset 16)")
    first = _meta(raw, 0)
    if first is None:
        raise BboltError("meta page 0 is invalid")
    page_size = first[0]
    if page_size < 512 or page_size & (page_size - 1):
        raise BboltError(f"page size {page_size} is not a power of two >= 512")
    metas = [m for m in (first, _meta(raw, page_size)) if m is not None]
    _, root, _ = max(metas, key=lambda m: m[2])
    reader = _Reader(raw, page_size)
    return reader.walk(reader.page(root), 0, "root")
