"""``dranet inventory``: scan this host with the installed backends and print what the driver would publish.

Read-only: nothing is published and nothing is moved. The table lists the devices; ``-o
yaml`` and ``-o json`` print the ResourceSlice objects the driver would write.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from dranet_core.app import RDMA_ATTRIBUTE, load_backends_for
from dranet_core.capabilities import handler_table
from dranet_core.errors import DranetError
from dranet_core.filter import DeviceFilter
from dranet_core.inventory import Inventory
from dranet_core.settings import Settings
from dranet_core.types import ClaimRef, Device

__all__ = ["format_table", "print_inventory", "resource_slices"]

log = logging.getLogger(__name__)


class _Collect:
    """A StatusPublisher that only remembers the last device list (read-only inventory)."""

    def __init__(self) -> None:
        self.devices: tuple[Device, ...] = ()

    async def publish_devices(self, devices: Sequence[Device]) -> None:
        self.devices = tuple(devices)

    async def set_claim_status(self, claim: ClaimRef, devices: Sequence[Any]) -> None:
        return None

    async def clear_claim_status(self, claim: ClaimRef) -> None:
        return None

    async def record_event(self, event: Any) -> None:
        return None

    async def run(self) -> None:
        await asyncio.Event().wait()


def _attr_text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def format_table(devices: Sequence[Device]) -> str:
    """Devices as a fixed-width table: name, ifName, type, pci, mac, rdma, published attrs."""
    cols = ("NAME", "IFNAME", "TYPE", "PCI", "MAC", "RDMA", "ATTRS")
    rows = [
        (
            d.name,
            _attr_text(d.attributes.get("dra.net/ifName", "")),
            _attr_text(d.attributes.get("dra.net/type", "")),
            _attr_text(d.attributes.get("dra.net/pciAddress", "")),
            _attr_text(d.attributes.get("dra.net/mac", "")),
            _attr_text(d.attributes.get(RDMA_ATTRIBUTE, "")),
            str(len(d.attributes)),
        )
        for d in devices
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(v.ljust(widths[i]) for i, v in enumerate(row)).rstrip() for row in (cols, *rows)]
    return "\n".join(lines) + "\n"


def resource_slices(settings: Settings, devices: Sequence[Device]) -> list[dict[str, Any]]:
    """The ResourceSlice objects the driver would publish for ``devices`` (resource.k8s.io/v1)."""
    from dranet_core.kube.slices import plan_slices, prepare_devices, slice_object

    driver, node = settings.kube.driver_name, settings.kube.node_name
    desired, skipped = prepare_devices(devices)
    for sk in skipped:
        log.warning("device left out of the slice: %s", sk)
    plan = plan_slices(desired, [], node=node, driver=driver)
    return [
        slice_object(
            name=w.name,
            driver=driver,
            node=node,
            generation=plan.generation,
            slice_count=plan.slice_count,
            devices=w.devices,
        )
        for w in plan.writes
    ]


async def print_inventory(settings: Settings, *, output: str = "table", out: TextIO | None = None) -> int:
    """``dranet inventory``: scan with the installed backends and print; changes nothing."""
    stream = out or sys.stdout
    try:
        table = handler_table(load_backends_for(settings))
        inv = Inventory(table.discoverers, _Collect(), filter=DeviceFilter.compile(settings.inventory.filter))
        view = await inv.refresh(publish=False)
    except DranetError as exc:
        print(f"dranet inventory: {exc}", file=sys.stderr)
        return 1
    devices = [view.published[k] for k in sorted(view.published)]
    if output == "table":
        stream.write(format_table(devices))
        hidden = len(view.devices) - len(view.published)
        if hidden:
            stream.write(f"({hidden} more device(s) hidden by --filter)\n")
        return 0
    slices = resource_slices(settings, devices)
    if output == "json":
        doc: Mapping[str, Any] = {"apiVersion": "v1", "kind": "List", "items": slices}
        stream.write(json.dumps(doc, indent=2) + "\n")
    else:
        import yaml

        stream.write(yaml.safe_dump_all(slices, sort_keys=False))
    return 0
