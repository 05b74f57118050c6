"""The last known form of the devices in pods, kept on disk across a driver restart.

A device attached to a pod leaves its backend's view (its netdev lives in the pod's netns),
so the inventory keeps publishing its last known attributes (pinning). Those attributes are
only in memory; a restarted driver would stop publishing the device until it comes home,
and the scheduler would see an allocated device vanish. :class:`PinStore` writes the pinned
devices (name, attributes, capacity, facets) to one small JSON file whenever the set
changes and reads it back at start.

Contract: :meth:`PinStore.save` replaces the file atomically (write to a temporary file, then
rename), so a kill leaves the old or the new content, never a mix; it is not fsynced, as
the pods it describes do not survive a node reboot either. :meth:`PinStore.load` never
raises: a missing file is an empty map, an unreadable or malformed one is logged in one line
naming the file and the problem and treated as empty (the devices are then published again
once they come home). No path means nothing is kept.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
from collections.abc import Mapping
from typing import Any

from dranet_core.types import JSON, Device, attribute_from_json, attribute_json

__all__ = ["PinStore"]

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 64 << 20
"""A pin file larger than this is not read (it is not one the driver wrote)."""


def _device_out(dev: Device) -> dict[str, JSON]:
    return {
        "attributes": {k: attribute_json(v) for k, v in dev.attributes.items()},
        "capacity": dict(dev.capacity),
        "facets": dict(dev.facets),
        **({"allowMultipleAllocations": True} if dev.allow_multiple_allocations else {}),
    }


def _device_in(name: str, raw: Any) -> Device:
    if not isinstance(raw, dict):
        raise ValueError(f"device {name!r} is not an object")
    attributes = {k: attribute_from_json(v) for k, v in dict(raw.get("attributes", {})).items()}
    return Device(
        name=name,
        attributes=attributes,
        capacity=dict(raw.get("capacity", {})),
        facets=dict(raw.get("facets", {})),
        allow_multiple_allocations=raw.get("allowMultipleAllocations") is True,
    )


class PinStore:
    """One JSON file of pinned devices (see the module docstring)."""

    def __init__(self, path: pathlib.Path | None) -> None:
        self.path = path
        self._saved: dict[str, Device] = {}

    def load(self) -> dict[str, Device]:
        """The devices saved by the last run; empty when there are none or the file is bad."""
        if self.path is None:
            return {}
        try:
            if self.path.stat().st_size > MAX_FILE_BYTES:
                raise ValueError(f"larger than {MAX_FILE_BYTES} bytes")
            doc = json.loads(self.path.read_bytes())
            if not isinstance(doc, dict) or not isinstance(doc.get("devices"), dict):
                raise ValueError('expected an object with a "devices" object')
            devices = {name: _device_in(name, raw) for name, raw in doc["devices"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError) as exc:
            log.warning("pinned devices file %s ignored: %s", self.path, exc)
            return {}
        self._saved = dict(devices)
        return devices

    def save(self, devices: Mapping[str, Device]) -> None:
        """Write ``devices`` if they differ from what was last written. Logs, never raises."""
        if self.path is None or _same(self._saved, devices):
            return
        doc = {"devices": {name: _device_out(devices[name]) for name in sorted(devices)}}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(doc, separators=(",", ":")))
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("pinned devices file %s not written: %s", self.path, exc)
            return
        self._saved = dict(devices)


def _same(a: Mapping[str, Device], b: Mapping[str, Device]) -> bool:
    return a.keys() == b.keys() and all(a[k] is b[k] or a[k] == b[k] for k in a)
