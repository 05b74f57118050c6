"""Feed a sans-IO decoder three ways: whole, byte by byte, and with trailing data (h11's tr())."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Decoder(Protocol):
    @property
    def buffered(self) -> int: ...

    def feed(self, data: bytes) -> list[Any]: ...


def feed_three_ways(make: Callable[[], Decoder], data: bytes, expected: list[Any]) -> None:
    d = make()
    assert d.feed(data) == expected
    assert d.buffered == 0

    d = make()
    got: list[Any] = []
    for i in range(len(data)):
        got += d.feed(data[i : i + 1])
    assert got == expected
    assert d.buffered == 0

    trailing = data[:5]  # the start of another frame
    d = make()
    assert d.feed(data + trailing) == expected
    assert d.buffered == len(trailing)
    assert d.feed(data[5:]) == expected  # the trailing bytes started a second copy
    assert d.buffered == 0
