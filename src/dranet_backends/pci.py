"""PCI functions as every backend sees them: sysfs facts, pci.ids names, published attributes.

Shared by the netdev, sriov and rdma backends, so a PCI function publishes the same
``dra.net/pci*`` values whichever backend found it.

* :class:`PciIds`: vendor and device names from the pci.ids database (format:
  https://pci-ids.ucw.cz; a vendor line ``vvvv  Name``, device lines ``\\tdddd  Name`` under
  it, subsystem lines ``\\t\\tssss dddd  Name`` under a device; ``#`` starts a comment; the
  device-class section ``C xx  Name`` ends the part read; ``.gz`` files are read too). Found
  on the first lookup, and each vendor's names read when first asked for (discovery does
  that in a worker thread, for the vendors of the functions it found); a missing file means
  "no names".
* :class:`PciFunction` / :func:`pci_function`: what sysfs says about one function
  (``<sysfs>/bus/pci/devices/<bdf>``); :func:`pci_network_functions` lists class 0x02 ones.
* :func:`pci_attributes`: the Go driver's PCI attributes of a function.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import attrs

from dranet_backends.numa import local_numa_nodes
from dranet_backends.sysfs_read import normal_bdf, numa_node, pcie_root, read
from dranet_core.types import STRING_ATTRIBUTE_MAX_LEN, AttributeList, AttributeValue

__all__ = [
    "DEFAULT_PATHS",
    "USERSPACE_DRIVERS",
    "PciFunction",
    "PciIds",
    "pci_attributes",
    "pci_function",
    "pci_network_functions",
]

log = logging.getLogger(__name__)

D = "dra.net/"
STD = "resource.kubernetes.io/"

DEFAULT_PATHS = (
    "/usr/share/misc/pci.ids",
    "/usr/share/hwdata/pci.ids",
    "/usr/share/pci.ids",
    "/usr/share/misc/pci.ids.gz",
    "/usr/share/hwdata/pci.ids.gz",
)
"""Where distributions install pci.ids (Debian: pciutils/hwdata)."""


class PciIds:
    """pci.ids names: ``vendor()`` and ``device()`` lookups.

    The file is found on the first :meth:`load` (or lookup); a vendor's names are read from
    it when first asked for (:meth:`load` with the vendors to come saves a read per
    vendor), so a node's few NIC vendors cost a few string searches, not a parse of the
    whole database, and only their names are kept.
    """

    def __init__(self, paths: Iterable[str | Path] = DEFAULT_PATHS) -> None:
        self._paths = tuple(Path(p) for p in paths)
        self._loaded = False
        self.source: Path | None = None
        self._vendors: dict[str, tuple[str, dict[str, str]] | None] = {}
        """Vendor id -> its name and its devices' names by id (None: not in the file)."""

    def load(self, vendors: Iterable[str] = ()) -> None:
        """Find the first readable file of the search path (once) and read the names of
        ``vendors`` (ids, any case) from it, unless already read. Blocking (file reads)."""
        wanted = {v.lower() for v in vendors} - self._vendors.keys()
        if self._loaded and (not wanted or self.source is None):
            for v in wanted:
                self._vendors[v] = None
            return
        text = self._read() if self._loaded else self._find()
        for v in wanted:
            self._vendors[v] = _vendor_entry(text, v) if text is not None else None

    def _find(self) -> str | None:
        self._loaded = True
        for path in self._paths:
            text = _read_ids(path)
            if text is None:
                continue
            self.source = path
            vendors = len(_VENDOR_LINE.findall(text))
            log.info("pci.ids: %d vendors from %s", vendors, path)
            return text
        log.info("pci.ids: none found in %s; publishing hex ids", ", ".join(map(str, self._paths)))
        return None

    def _read(self) -> str | None:
        return _read_ids(self.source) if self.source is not None else None

    def _entry(self, vendor: str) -> tuple[str, dict[str, str]] | None:
        key = vendor.lower()
        if key not in self._vendors:
            self.load((key,))
        return self._vendors.get(key)

    def vendor(self, vendor: str) -> str | None:
        """The vendor's name, or None."""
        entry = self._entry(vendor)
        return entry[0] if entry is not None else None

    def device(self, vendor: str, device: str) -> str | None:
        """The device's name, or None."""
        entry = self._entry(vendor)
        return entry[1].get(device.lower()) if entry is not None else None


_VENDOR_LINE: Final = re.compile(r"\n[0-9a-fA-F]")


def _read_ids(path: Path) -> str | None:
    """The vendor part of a pci.ids file (before the device-class section), each line
    preceded by a newline; None when it cannot be read."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
                text = "\n" + fh.read()
        else:
            text = "\n" + path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    cut = text.find("\nC ")
    return text if cut < 0 else text[:cut]


def _vendor_entry(text: str, vendor: str) -> tuple[str, dict[str, str]] | None:
    """``vendor``'s name and its devices' names by id from :func:`_read_ids` text (a vendor
    line ``vvvv  Name``, then device lines ``\tdddd  Name``; subsystem lines, comments and
    blank lines are skipped). None: the vendor is not listed."""
    start = text.find(f"\n{vendor}  ")
    if start < 0:
        start = text.find(f"\n{vendor.upper()}  ")
        if start < 0:
            return None
    end = len(text)
    eol = text.find("\n", start + 1)
    pos = end if eol < 0 else eol + 1
    name = text[start + 1 : pos].partition("  ")[2].strip()
    devices: dict[str, str] = {}
    while pos < end:
        eol = text.find("\n", pos)
        line = text[pos : end if eol < 0 else eol]
        pos = end if eol < 0 else eol + 1
        if line.startswith("\t\t"):
            continue  # subsystem names: the Go driver publishes the subsystem id instead
        if line.startswith("\t"):
            did, _, dname = line.strip().partition("  ")
            devices[did.lower()] = dname.strip()
        elif line.strip() and not line.startswith("#"):
            break  # the next vendor
    return name, devices


USERSPACE_DRIVERS = frozenset({"vfio-pci", "uio_pci_generic", "igb_uio", "pci-stub"})
"""PCI drivers that give no netdev: such NICs belong to the SR-IOV/userspace backends."""


@attrs.frozen(kw_only=True)
class PciFunction:
    """Sysfs facts of one PCI function (ids are lower-case hex without ``0x``)."""

    address: str
    vendor: str | None = None
    device: str | None = None
    subsystem_vendor: str | None = None
    subsystem_device: str | None = None
    pci_class: str | None = None
    numa_node: int | None = None
    numa_nodes: tuple[int, ...] = ()
    """``numa_node`` then the nodes equally close to it (:func:`~dranet_backends.numa.local_numa_nodes`)."""
    pcie_root: str | None = None
    driver: str | None = None


def _hex_id(path: Path) -> str | None:
    text = read(path)
    if text is None:
        return None
    return text.lower().removeprefix("0x")


def pci_function(sysfs: Path, address: str) -> PciFunction:
    """Facts about PCI function ``address`` (``0000:8a:00.0``) under ``sysfs``."""
    base = sysfs / "bus" / "pci" / "devices" / address
    driver_link = base / "driver"
    driver = os.path.basename(os.readlink(driver_link)) if os.path.islink(driver_link) else None
    root = pcie_root(Path(os.path.realpath(base))) if os.path.lexists(base) else None
    numa = numa_node(base / "numa_node")
    return PciFunction(
        address=address,
        vendor=_hex_id(base / "vendor"),
        device=_hex_id(base / "device"),
        subsystem_vendor=_hex_id(base / "subsystem_vendor"),
        subsystem_device=_hex_id(base / "subsystem_device"),
        pci_class=_hex_id(base / "class"),
        numa_node=numa,
        numa_nodes=local_numa_nodes(sysfs, numa) if numa is not None else (),
        pcie_root=root,
        driver=driver,
    )


def pci_network_functions(sysfs: Path) -> list[PciFunction]:
    """Every PCI network controller (class 0x02) under ``sysfs``, whatever its driver.

    The caller decides what to do with unbound or userspace-bound ones.
    """
    base = sysfs / "bus" / "pci" / "devices"
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    out: list[PciFunction] = []
    for name in names:
        cls = _hex_id(base / name / "class")
        if cls is None or not cls.startswith("02"):
            continue
        out.append(pci_function(sysfs, normal_bdf(name)))
    return out


def _cut(text: str, limit: int = STRING_ATTRIBUTE_MAX_LEN) -> str:
    raw = text.encode()
    return text if len(raw) <= limit else raw[:limit].decode("utf-8", "ignore")


def pci_attributes(fn: PciFunction, ids: PciIds | None) -> dict[str, AttributeValue]:
    """The Go driver's PCI attributes of ``fn``.

    ``pciVendor`` and ``pciDevice`` are pci.ids names (``Mellanox Technologies``,
    ``Elastic Fabric Adapter (EFA)``), or the hex id when no pci.ids knows it;
    ``pciSubsystem`` is always the subsystem device id (``0009``, ``efa0``), never a name,
    as the Go driver publishes it. ``resource.kubernetes.io/numaNode`` is a list, the
    function's node first, then the nodes equally close to it; the driver publishes it as a
    list only with the ``DRAListTypeAttributes`` feature gate, else its first item (the node),
    as ``dra.net/numaNode`` always is.
    """
    attrs: dict[str, AttributeValue] = {D + "pciAddress": fn.address, D + "rdma": False}
    if fn.vendor:
        attrs[D + "pciVendor"] = _cut((ids.vendor(fn.vendor) if ids else None) or fn.vendor)
        if fn.device:
            attrs[D + "pciDevice"] = _cut((ids.device(fn.vendor, fn.device) if ids else None) or fn.device)
    if fn.subsystem_device:
        attrs[D + "pciSubsystem"] = fn.subsystem_device
    if fn.numa_node is not None:
        attrs[D + "numaNode"] = fn.numa_node
        attrs[STD + "numaNode"] = AttributeList(fn.numa_nodes or (fn.numa_node,))
    if fn.pcie_root:
        attrs[STD + "pcieRoot"] = fn.pcie_root
    return attrs
