"""Vendor, device and subsystem names from the pci.ids database, when the system has one.

The file format (https://pci-ids.ucw.cz): a vendor line ``vvvv  Name``, device lines
``\\tdddd  Name`` under it, subsystem lines ``\\t\\tssss dddd  Name`` under a device; ``#``
starts a comment; the device-class section (``C xx  Name``) ends the part we read.
Gzipped files (``pci.ids.gz``) are read too.

The database is loaded once, lazily, on the first lookup (discovery does that in a worker
thread); a missing or unreadable file simply means "no names", and callers fall back to the
hex ids.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterable
from pathlib import Path

__all__ = ["DEFAULT_PATHS", "PciIds"]

log = logging.getLogger(__name__)

DEFAULT_PATHS = (
    "/usr/share/misc/pci.ids",
    "/usr/share/hwdata/pci.ids",
    "/usr/share/pci.ids",
    "/usr/share/misc/pci.ids.gz",
    "/usr/share/hwdata/pci.ids.gz",
)
"""Where distributions install pci.ids (Debian: pciutils/hwdata)."""


class PciIds:
    """A loaded pci.ids: ``vendor()``, ``device()``, ``subsystem()`` name lookups."""

    def __init__(self, paths: Iterable[str | Path] = DEFAULT_PATHS) -> None:
        self._paths = tuple(Path(p) for p in paths)
        self._loaded = False
        self.source: Path | None = None
        self._vendors: dict[str, str] = {}
        self._devices: dict[tuple[str, str], str] = {}
        self._subsystems: dict[tuple[str, str, str, str], str] = {}

    def load(self) -> None:
        """Load the first readable file of the search path (once; later calls do nothing)."""
        if self._loaded:
            return
        self._loaded = True
        for path in self._paths:
            try:
                if path.suffix == ".gz":
                    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
                        self._parse(fh)
                else:
                    with path.open(encoding="utf-8", errors="replace") as fh:
                        self._parse(fh)
            except OSError:
                continue
            self.source = path
            log.info("pci.ids: %d vendors from %s", len(self._vendors), path)
            return
        log.info("pci.ids: none found in %s; publishing hex ids", ", ".join(map(str, self._paths)))

    def _parse(self, lines: Iterable[str]) -> None:
        vendor = device = None
        for line in lines:
            if not line.strip() or line.startswith("#"):
                continue
            if line.startswith("C "):
                break
            if line.startswith("\t\t"):
                if vendor and device:
                    ids, _, name = line.strip().partition("  ")
                    sv, _, sd = ids.partition(" ")
                    self._subsystems[(vendor, device, sv.lower(), sd.lower())] = name.strip()
            elif line.startswith("\t"):
                if vendor:
                    did, _, name = line.strip().partition("  ")
                    device = did.lower()
                    self._devices[(vendor, device)] = name.strip()
            else:
                vid, _, name = line.strip().partition("  ")
                vendor, device = vid.lower(), None
                self._vendors[vendor] = name.strip()

    def vendor(self, vendor: str) -> str | None:
        """The vendor's name, or None."""
        self.load()
        return self._vendors.get(vendor.lower())

    def device(self, vendor: str, device: str) -> str | None:
        """The device's name, or None."""
        self.load()
        return self._devices.get((vendor.lower(), device.lower()))

    def subsystem(self, vendor: str, device: str, sub_vendor: str, sub_device: str) -> str | None:
        """The subsystem's name, or None."""
        self.load()
        return self._subsystems.get((vendor.lower(), device.lower(), sub_vendor.lower(), sub_device.lower()))
