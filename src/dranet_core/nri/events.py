"""NRI events, subscription masks, and which masks a runtime accepts.

The mask bit of event ``e`` is ``1 << (e - 1)``. A runtime rejects a Configure reply with any
bit outside its ``ValidEvents`` ("invalid plugin events", plugin dropped): NRI <= v0.9 (containerd
1.7-2.1, CRI-O <= 1.32) accepts ``0x7FF``; CRI-O 1.33's pre-release NRI ``0x1FFF``; NRI >= v0.10
``0x3FFF`` (fact sheet §C.3). And a reply of 0 means *everything*, so an empty mask must never
be sent. :func:`valid_events` works out the runtime's set from ``ConfigureRequest``: the
``NRI_version`` field when the runtime sends it (>= v0.12), else the runtime name and
version, else the safe old set.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from typing import Final

__all__ = [
    "VALID_EVENTS_V0_9",
    "VALID_EVENTS_V0_10",
    "VALID_EVENTS_CRIO_1_33",
    "EventType",
    "event_mask",
    "parse_version",
    "valid_events",
]


class EventType(enum.IntEnum):
    """NRI ``Event`` values (api.proto)."""

    RUN_POD_SANDBOX = 1
    STOP_POD_SANDBOX = 2
    REMOVE_POD_SANDBOX = 3
    CREATE_CONTAINER = 4
    POST_CREATE_CONTAINER = 5
    START_CONTAINER = 6
    POST_START_CONTAINER = 7
    UPDATE_CONTAINER = 8
    POST_UPDATE_CONTAINER = 9
    STOP_CONTAINER = 10
    REMOVE_CONTAINER = 11
    UPDATE_POD_SANDBOX = 12
    POST_UPDATE_POD_SANDBOX = 13
    VALIDATE_CONTAINER_ADJUSTMENT = 14

    @property
    def bit(self) -> int:
        """This event's bit in a subscription mask."""
        return 1 << (self.value - 1)


VALID_EVENTS_V0_9: Final = 0x07FF
VALID_EVENTS_CRIO_1_33: Final = 0x1FFF
VALID_EVENTS_V0_10: Final = 0x3FFF


def event_mask(events: Iterable[EventType]) -> int:
    """The subscription mask for ``events``."""
    mask = 0
    for e in events:
        mask |= e.bit
    return mask


_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """``"v0.12.2"``, ``"2.1.4"``, ``"1.33.0-dev"`` -> (major, minor, patch); None if unparseable."""
    m = _VERSION.match(text.strip())
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def valid_events(runtime_name: str, runtime_version: str, nri_version: str = "") -> int:
    """The event mask the runtime accepts (see the module docstring); unknown -> 0x7FF."""
    if nri_version:
        v = parse_version(nri_version)
        if v is not None:
            return VALID_EVENTS_V0_10 if v >= (0, 10, 0) else VALID_EVENTS_V0_9
    rv = parse_version(runtime_version)
    if rv is None:
        return VALID_EVENTS_V0_9
    name = runtime_name.lower()
    if name == "containerd":
        return VALID_EVENTS_V0_10 if rv >= (2, 2, 0) else VALID_EVENTS_V0_9
    if name in ("cri-o", "crio"):
        if rv >= (1, 34, 0):
            return VALID_EVENTS_V0_10
        if rv >= (1, 33, 0):
            return VALID_EVENTS_CRIO_1_33
    return VALID_EVENTS_V0_9
