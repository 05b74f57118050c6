"""``LocalStatusPublisher``: the same objects as the API publisher, written locally.

For running without a cluster (``dranet demo``, ``dranet inventory``): every object the
:class:`~.publisher.KubeStatusPublisher` would send is written instead, built by the same
code (:mod:`.slices`, :mod:`.claimstatus`, :mod:`.events`) and with the same diff rules, so
publishing an unchanged device set writes nothing and one changed device rewrites one slice.

``out`` is a text stream or a directory:

* stream, ``fmt="yaml"``: one YAML document per object (``---`` separated);
  ``fmt="json"``: one JSON object per line. Deleted slices are written as a
  ``{"kind": "Status", "details": {"kind": "resourceslices", "name": ...}, "reason": "Deleted"}`` line
  so a reader can follow the whole history.
* directory: ``resourceslices/<name>.<fmt>`` (removed when the slice is deleted),
  ``resourceclaims/<namespace>/<name>.status.<fmt>`` (the latest apply body) and
  ``events/<namespace>/<event name>.<fmt>``.

Slices have no owner reference (there is no Node uid without a cluster). Events go through the
same rate limiter as in the cluster. Writes happen inside the calls (they are local and
small; directory writes run in a worker thread); :meth:`run` only waits to be cancelled.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TextIO

import yaml

from dranet_core.kube.claimstatus import TransitionTimes, claim_status_body
from dranet_core.kube.events import EventLimiter, event_object
from dranet_core.kube.slices import (
    MAX_DEVICES_PER_SLICE,
    ExistingSlice,
    SkippedDevice,
    max_devices_per_slice,
    plan_slices,
    prepare_devices,
    slice_object,
)
from dranet_core.status import EventRecord, PublishListener
from dranet_core.types import DRIVER_DOMAIN, ClaimRef, Device, DeviceStatus

__all__ = ["LocalStatusPublisher"]


class LocalStatusPublisher:
    """A StatusPublisher writing ResourceSlices, claim status applies and Events locally."""

    def __init__(
        self,
        out: TextIO | Path,
        *,
        fmt: Literal["yaml", "json"] = "yaml",
        driver_name: str = DRIVER_DOMAIN,
        node_name: str,
        api_version: str = "v1",
        max_devices_per_slice: int = MAX_DEVICES_PER_SLICE,
    ) -> None:
        if fmt not in ("yaml", "json"):
            raise ValueError(f"fmt must be 'yaml' or 'json', got {fmt!r}")
        self.out = out
        self.fmt = fmt
        self.driver_name = driver_name
        self.node_name = node_name
        self.api_version = api_version
        self.max_devices_per_slice = max_devices_per_slice
        self.skipped: tuple[SkippedDevice, ...] = ()
        self.objects_written = 0
        self._existing: dict[str, ExistingSlice] = {}
        self._rv = 0
        self._times = TransitionTimes()
        self._limiter = EventLimiter()
        self._listeners: list[PublishListener] = []

    def __repr__(self) -> str:
        return (
            f"LocalStatusPublisher(out={self.out!r}, fmt={self.fmt!r}, node={self.node_name!r}, "
            f"slices={len(self._existing)}, written={self.objects_written})"
        )

    # ------------------------------------------------------------------ StatusPublisher API

    async def publish_devices(self, devices: Sequence[Device]) -> None:
        """Write the slices that change for ``devices`` (none if nothing changed)."""
        bodies, skipped = prepare_devices(devices)
        self.skipped = tuple(skipped)
        plan = plan_slices(
            bodies,
            self._existing.values(),
            node=self.node_name,
            driver=self.driver_name,
            max_per_slice=max_devices_per_slice(bodies.values(), self.max_devices_per_slice),
        )
        for w in plan.writes:
            obj = slice_object(
                name=w.name,
                driver=self.driver_name,
                node=self.node_name,
                generation=plan.generation,
                slice_count=plan.slice_count,
                devices=w.devices,
                api_version=self.api_version,
            )
            self._rv += 1
            self._existing[w.name] = ExistingSlice(
                name=w.name,
                index=w.index,
                uid=f"local-{w.name}",
                resource_version=str(self._rv),
                generation=plan.generation,
                slice_count=plan.slice_count,
                pool=self.node_name,
                devices=w.devices,
            )
            await self._emit(obj, Path("resourceslices") / w.name)
        for d in plan.deletes:
            del self._existing[d.name]
            await self._remove(Path("resourceslices") / d.name, d.name)
        left_out = {s.name for s in skipped}
        accepted = [d for d in devices if d.name not in left_out]
        for listener in self._listeners:
            listener.published(accepted)

    def add_listener(self, listener: PublishListener) -> None:
        """Tell ``listener`` what was written (a local write always succeeds)."""
        self._listeners.append(listener)

    async def set_claim_status(self, claim: ClaimRef, devices: Sequence[DeviceStatus]) -> None:
        """Write the apply body for ``claim``'s ``status.devices``."""
        body, _ = claim_status_body(claim, devices, times=self._times, api_version=self.api_version)
        await self._emit(body, Path("resourceclaims") / claim.namespace / f"{claim.name}.status")

    async def clear_claim_status(self, claim: ClaimRef) -> None:
        """Write the apply body that removes this driver's entries (empty ``devices``)."""
        body, _ = claim_status_body(claim, (), times=self._times, api_version=self.api_version)
        self._times.forget(claim.uid)
        await self._emit(body, Path("resourceclaims") / claim.namespace / f"{claim.name}.status")

    async def record_event(self, event: EventRecord) -> None:
        """Write the Event (unless rate limiting drops it)."""
        if not self._limiter.allow(event):
            return
        obj = event_object(event, driver=self.driver_name, node=self.node_name)
        await self._emit(obj, Path("events") / event.namespace / obj["metadata"]["name"])

    async def run(self) -> None:
        """Nothing is queued; wait until cancelled."""
        await asyncio.Event().wait()

    # ------------------------------------------------------------------ output

    def _render(self, obj: Any) -> str:
        if self.fmt == "json":
            return json.dumps(obj, sort_keys=False) + "\n"
        return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)

    async def _emit(self, obj: dict[str, Any], rel: Path) -> None:
        self.objects_written += 1
        text = self._render(obj)
        if isinstance(self.out, Path):
            path = self.out / rel.parent / f"{rel.name}.{self.fmt}"
            await asyncio.to_thread(_write_file, path, text)
            return
        if self.fmt == "yaml":
            self.out.write("---\n")
        self.out.write(text)
        self.out.flush()

    async def _remove(self, rel: Path, name: str) -> None:
        if isinstance(self.out, Path):
            path = self.out / rel.parent / f"{rel.name}.{self.fmt}"
            await asyncio.to_thread(path.unlink, True)
            return
        note = {
            "apiVersion": "v1",
            "kind": "Status",
            "status": "Success",
            "reason": "Deleted",
            "details": {"group": "resource.k8s.io", "kind": "resourceslices", "name": name},
        }
        await self._emit(note, rel)


def _write_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
