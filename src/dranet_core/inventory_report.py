"""``dranet inventory``: scan this host with the installed backends and report what the driver would publish.

Read-only: nothing is published and nothing is moved; no cluster is needed. The report is one
document (:func:`inventory_document`) whatever the output format::

    node: <node name>
    driver: dra.net
    backends: {<backend>: [<capability>, ...]}
    devices: [{name, backends, attributes}]        # what the driver would publish
    excluded: [{name, backend, reason}]            # seen and left out, and why
    resourceSlices: [<ResourceSlice>]              # the objects it would write (resource.k8s.io/v1)

``-o yaml`` and ``-o json`` print that document; the table prints its devices and excluded
parts. Devices are left out by a backend (loopback, uplink, a PCI function bound to vfio
that the netdev backend does not handle, ...: :class:`~dranet_core.discovery.ReportsExclusions`),
by ``--filter``, or because the API would reject them.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from dranet_core.app import RDMA_ATTRIBUTE, load_backends_for
from dranet_core.capabilities import HandlerTable, handler_table
from dranet_core.discovery import ReportsExclusions
from dranet_core.errors import DranetError
from dranet_core.filter import DeviceFilter
from dranet_core.inventory import Inventory, InventoryView
from dranet_core.settings import Settings
from dranet_core.types import AttributeList, ClaimRef, Device

__all__ = ["format_table", "inventory_document", "print_inventory", "resource_slices"]


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


def _columns(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(widths[i]) for i, v in enumerate(row)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"


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
    return _columns([cols, *rows])


def resource_slices(settings: Settings, devices: Sequence[Device]) -> tuple[list[dict[str, Any]], list[Any]]:
    """The ResourceSlice objects the driver would publish for ``devices`` (resource.k8s.io/v1),
    and the devices the API would reject (each with ``name`` and ``reason``)."""
    from dranet_core.kube.slices import max_devices_per_slice, plan_slices, prepare_devices, slice_object

    driver, node = settings.kube.driver_name, settings.kube.node_name
    desired, skipped = prepare_devices(devices)
    plan = plan_slices(
        desired, [], node=node, driver=driver, max_per_slice=max_devices_per_slice(desired.values())
    )
    slices = [
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
    return slices, list(skipped)


def _plain(value: object) -> Any:
    if isinstance(value, AttributeList):
        return [_plain(v) for v in value.items]
    return value if isinstance(value, str | int | float | bool) else str(value)


def inventory_document(settings: Settings, table: HandlerTable, view: InventoryView) -> dict[str, Any]:
    """The report of one scan, as plain data (the module doc gives its shape)."""
    published = [view.published[k] for k in sorted(view.published)]
    excluded: list[dict[str, str]] = []
    for backend in table.backends:
        if isinstance(backend, ReportsExclusions):
            excluded.extend(
                {"name": e.name, "backend": backend.name, "reason": e.reason}
                for e in backend.excluded()
                if e.name not in view.devices  # another backend offers it (a vfio VF: sriov)
            )
    for name in sorted(view.devices.keys() - view.published.keys()):
        excluded.append({"name": name, "backend": "", "reason": "does not match --filter"})
    slices, rejected = resource_slices(settings, published)
    excluded.extend(
        {"name": r.name, "backend": "", "reason": f"rejected by the API: {r.reason}"} for r in rejected
    )
    return {
        "node": settings.kube.node_name,
        "driver": settings.kube.driver_name,
        "backends": {name: list(caps) for name, caps in table.capabilities.items()},
        "devices": [
            {
                "name": d.name,
                "backends": sorted(d.facets),
                "attributes": {k: _plain(v) for k, v in sorted(d.attributes.items())},
            }
            for d in published
        ],
        "excluded": excluded,
        "resourceSlices": slices,
    }


def _render_table(doc: dict[str, Any], devices: Sequence[Device]) -> str:
    out = format_table(devices)
    if doc["excluded"]:
        rows = [("LEFT OUT", "BACKEND", "REASON")]
        rows += [(e["name"], e["backend"] or "-", e["reason"]) for e in doc["excluded"]]
        out += "\n" + _columns(rows)
    return out


async def print_inventory(settings: Settings, *, output: str = "table", out: TextIO | None = None) -> int:
    """``dranet inventory``: scan with the installed backends and print; changes nothing."""
    stream = out or sys.stdout
    try:
        table = handler_table(load_backends_for(settings))
        inv = Inventory(
            table.discoverers,
            _Collect(),
            filter=DeviceFilter.compile(settings.inventory.filter),
            list_attributes=settings.inventory.list_attributes,
        )
        view = await inv.refresh(publish=False)
        doc = inventory_document(settings, table, view)
    except DranetError as exc:
        print(f"dranet inventory: {exc}", file=sys.stderr)
        return 1
    if output == "table":
        stream.write(_render_table(doc, [view.published[k] for k in sorted(view.published)]))
    elif output == "json":
        stream.write(json.dumps(doc, indent=2) + "\n")
    else:
        import yaml

        stream.write(yaml.safe_dump(doc, sort_keys=False))
    return 0
