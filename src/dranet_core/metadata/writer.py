"""The device metadata writer: one object the driver calls at prepare, attach, detach,
unprepare and start-up (KEP-5304, "DRA device attributes in the downward API").

Life of one request's file (paths in :class:`~dranet_core.metadata.document.MetadataLayout`):

* **prepare** (:meth:`MetadataWriter.prepared`, after the claim is in the checkpoint): write
  the metadata file (``generation`` 1, the devices' published attributes), then the CDI spec
  that mounts it, and hand back the CDI device ID for the request's first device. A repeated
  prepare keeps a file that is already there (and its generation). If writing fails the claim
  is prepared without metadata (one warning line), as the Kubernetes plugin library does.
* **attach** (:meth:`attached`, after the journal says ``attached``; still inside
  RunPodSandbox, so before any container starts): rewrite the file with ``generation + 1``
  and the device's ``networkData``, read back from the kernel by the mover: the same value
  the claim status gets. :meth:`released` (the device came home) drops it again.
* **unprepare** (:meth:`forget`, after the devices are home, before the claim leaves the
  checkpoint): remove the claim's files and CDI specs; a failure is the claim's unprepare
  error, so the kubelet retries and the claim stays in the checkpoint meanwhile.
* **start-up** (:meth:`recover`, after the checkpoint is loaded): remove every file of a
  claim the checkpoint does not hold, and bring ``networkData`` in line with the journal.

Crash safety follows from the order: a file exists only after its claim is in the checkpoint
(else the start-up sweep removes it), a claim leaves the checkpoint only after its files are
gone, and a claim in the checkpoint whose files are missing never got its prepare reply, so
the kubelet's retry writes them.

With ``enabled`` false nothing is written and no CDI ID is returned; removal still runs, so
files from a run with metadata on are cleaned up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from dranet_core.checkpoint import PreparedClaim
from dranet_core.errors import ClaimError
from dranet_core.metadata import files
from dranet_core.metadata.document import (
    MetadataLayout,
    RequestDevices,
    base_request,
    cdi_spec,
    device_entry,
    encode_stream,
    metadata_object,
    network_json,
    requests_of,
)
from dranet_core.plans import ClaimPlan, PreparedDevice
from dranet_core.types import Claim, ClaimRef, Device, NetworkData

__all__ = ["MetadataWriter"]

log = logging.getLogger(__name__)

ClaimFetcher = Callable[[ClaimRef], Awaitable[Claim]]
"""Reads a claim from the API server (a ClaimSource's ``get``)."""


class MetadataWriter:
    """Writes and removes the device metadata files and CDI specs of one driver (module doc).

    ``inventory`` returns the current devices by name (their attributes go into the file);
    ``fetch`` reads a claim when a repeated prepare finds its file missing.
    """

    def __init__(
        self,
        layout: MetadataLayout,
        *,
        enabled: bool,
        inventory: Callable[[], Mapping[str, Device]],
        fetch: ClaimFetcher | None = None,
    ) -> None:
        self.layout = layout
        self.enabled = enabled
        self.inventory = inventory
        self.fetch = fetch
        self._locks: dict[Path, asyncio.Lock] = {}

    def __repr__(self) -> str:
        state = "on" if self.enabled else "off"
        return (
            f"MetadataWriter({state}, data={str(self.layout.data_dir)!r}, cdi={str(self.layout.cdi_dir)!r})"
        )

    def _lock(self, path: Path) -> asyncio.Lock:
        return self._locks.setdefault(path, asyncio.Lock())

    # --- prepare ---

    async def prepared(self, plan: ClaimPlan, claim: Claim | None) -> Mapping[str, tuple[str, ...]]:
        """Write the claim's files; returns CDI device IDs by device name (never raises).

        ``claim`` is the claim just read from the API server, or None when the plan was
        already in the checkpoint (a repeated prepare).
        """
        if not self.enabled or not plan.devices:
            return {}
        ids: dict[str, tuple[str, ...]] = {}
        for req in requests_of(plan):
            try:
                claim = await self._prepare_request(plan, req, claim)
            except Exception as exc:
                log.warning(
                    "claim %s: device metadata for request %s not written (%s: %s); prepared without it",
                    plan.claim,
                    req.base,
                    type(exc).__name__,
                    exc,
                )
                continue
            first = req.devices[0].device
            ids[first] = (*ids.get(first, ()), self.layout.cdi_device_id(plan.claim.uid, req.base))
        return ids

    async def _prepare_request(
        self, plan: ClaimPlan, req: RequestDevices, claim: Claim | None
    ) -> Claim | None:
        """Write one request's file and spec (keep a file that is already there when ``claim``
        is None); returns the claim, read from the API server if it had to be."""
        ref = plan.claim
        path = self.layout.metadata_file(ref, req.base)
        async with self._lock(path):
            if claim is None:
                current = await asyncio.to_thread(files.read_current, path)
                if current is not None and files.owner_uid(current) == ref.uid:
                    pod_claim = current.get("podClaimName")
                    await self._write_spec(ref, req.base, pod_claim if isinstance(pod_claim, str) else None)
                    return None
                if self.fetch is None:
                    raise ClaimError(
                        str(ref), "the claim is needed to rebuild its metadata and cannot be read"
                    )
                claim = await self.fetch(ref)
            devices = self.inventory()
            entries = [
                device_entry(
                    driver=self.layout.driver,
                    pool=d.pool,
                    name=d.device,
                    attributes=devices[d.device].attributes if d.device in devices else {},
                )
                for d in req.devices
            ]
            doc = metadata_object(
                ref,
                generation=1,
                requests=[(name, entries) for name in req.names],
                pod_claim_name=claim.pod_claim_name,
            )
            data = encode_stream(doc, self.layout.versions)
            await asyncio.to_thread(files.write_atomic, path, data)
            await self._write_spec(ref, req.base, claim.pod_claim_name)
            return claim

    async def _write_spec(self, ref: ClaimRef, request: str, pod_claim_name: str | None) -> None:
        spec = cdi_spec(self.layout, ref, request, pod_claim_name)
        target = self.layout.cdi_spec_file(ref.uid, request)
        if await asyncio.to_thread(files.read_json, target) != spec:
            await asyncio.to_thread(files.write_json_atomic, target, spec)

    # --- attach observer ---

    async def attached(
        self, plan: ClaimPlan, device: PreparedDevice, network_data: NetworkData | None
    ) -> None:
        """``device`` is in its pod with ``network_data``: put it into the file (never raises)."""
        await self._set_network(plan, device, network_data)

    async def released(self, plan: ClaimPlan, device: PreparedDevice) -> None:
        """``device`` is back home: drop its ``networkData`` from the file (never raises)."""
        await self._set_network(plan, device, None)

    async def _set_network(self, plan: ClaimPlan, device: PreparedDevice, nd: NetworkData | None) -> None:
        if not self.enabled:
            return
        net = network_json(nd) if nd is not None else None
        for base in dict.fromkeys(base_request(r) for r in device.request_names):
            path = self.layout.metadata_file(plan.claim, base)
            try:
                async with self._lock(path):
                    await asyncio.to_thread(
                        _update_network, self.layout, path, plan.claim.uid, device.device, net
                    )
            except Exception as exc:
                log.error(
                    "claim %s: device metadata of %s (request %s) not updated: %s: %s",
                    plan.claim,
                    device.device,
                    base,
                    type(exc).__name__,
                    exc,
                )

    # --- unprepare and start-up ---

    async def forget(self, ref: ClaimRef, plan: ClaimPlan | None) -> None:
        """Remove the claim's files and CDI specs (an unprepare hook).

        Raises :class:`~dranet_core.errors.ClaimError` naming the path when removal fails.
        """
        requests = {r.base for r in requests_of(plan)} if plan else None
        paths = [self.layout.metadata_file(ref, r) for r in sorted(requests or ())]
        locks = [self._lock(p) for p in paths]
        for lock in locks:
            await lock.acquire()
        try:
            removed = await asyncio.to_thread(files.remove_claim, self.layout, ref, requests)
        except OSError as exc:
            where = exc.filename or self.layout.claim_dir(ref)
            raise ClaimError(str(ref), f"removing device metadata {where}: {exc.strerror or exc}") from exc
        finally:
            for lock in locks:
                lock.release()
        for p in paths:
            self._locks.pop(p, None)
        if removed:
            log.info("claim %s: device metadata removed (%d path(s))", ref, len(removed))

    async def recover(self, claims: Mapping[str, PreparedClaim]) -> int:
        """Start-up: remove files of claims not in ``claims``, sync ``networkData`` with the journal.

        Returns how many stale paths were removed. Errors are logged, never raised.
        """
        keep = {uid: (pc.plan.claim, {r.base for r in requests_of(pc.plan)}) for uid, pc in claims.items()}
        try:
            removed = await asyncio.to_thread(files.sweep, self.layout, keep)
        except OSError as exc:
            log.error("device metadata: start-up cleanup failed: %s", exc)
            removed = []
        for path in removed:
            log.info("device metadata: removed stale %s", path)
        for pc in claims.values():
            for dev in pc.plan.devices:
                st = pc.devices.get(dev.device)
                attached = st is not None and st.phase == "attached"
                await self._set_network(pc.plan, dev, st.network_data if attached and st else None)
        return len(removed)


def _update_network(
    layout: MetadataLayout, path: Path, uid: str, device: str, net: Mapping[str, Any] | None
) -> bool:
    """Set (or with None drop) ``networkData`` of ``device`` in the file; True if rewritten.

    A missing file, or one of another claim, is left alone (metadata was off at prepare).
    """
    doc = files.read_current(path)
    if doc is None or files.owner_uid(doc) != uid:
        return False
    changed = False
    for req in doc["requests"]:
        for dev in req.get("devices") or []:
            if dev.get("name") != device:
                continue
            if net:
                if dev.get("networkData") != net:
                    dev["networkData"] = dict(net)
                    changed = True
            elif "networkData" in dev:
                del dev["networkData"]
                changed = True
    if not changed:
        return False
    meta = doc["metadata"]
    generation = meta.get("generation")
    meta["generation"] = (generation if isinstance(generation, int) else 0) + 1
    files.write_atomic(path, encode_stream(doc, layout.versions))
    return True
