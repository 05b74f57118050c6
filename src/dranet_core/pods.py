"""Pod networking: what the driver does on NRI pod events, with the checkpoint journal.

This is the glue between the runtime's pod life (NRI) and the backends' movers. It knows
which devices a pod gets (claims in the :class:`~dranet_core.checkpoint.ClaimStore` whose
plan lists the pod UID) and keeps a per-device journal so that a crash at any point leaves
enough on disk to finish or undo the work:

* **attach** (RunPodSandbox): ``snapshot`` every mover that owns the device (a facet of that
  backend) -> journal ``attaching`` (pod, netns, snapshot) -> ``attach`` in backend order ->
  journal ``attached`` (with the network data read back) -> one claim status per claim. If a
  device fails, the devices of this pod already attached in this call are taken back home
  (virtual devices would otherwise die with the failed sandbox's netns), the journal returns
  to ``prepared`` and the error goes back to the runtime, which fails the sandbox so the
  kubelet retries.
* **detach** (StopPodSandbox, while the netns still exists): journal ``detaching`` ->
  ``detach`` in reverse backend order with the stored snapshot -> journal ``prepared``.
  Errors are logged and reported as events; the journal stays ``detaching`` and the next
  reconciliation or the claim's unprepare finishes it.
* **reconcile** (Synchronize on every NRI (re)connect, i.e. after a restart): bring every
  journalled device to a consistent state — attached to its running pod (a half-done attach
  is resumed, a prepared device of a running pod is attached), or home with its snapshot
  restored (its pod is gone). Claims are never removed here, even when their pods are gone:
  only the kubelet's unprepare forgets a claim (the Go driver's race #232).
* **unprepare** (before the allocator forgets a claim): any device of the claim not at home
  is brought home first.

Two operations on the same device never run at once (one lock per device name).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

import attrs

from dranet_core.checkpoint import ClaimStore, DeviceState, PreparedClaim
from dranet_core.errors import DeviceError, DranetError
from dranet_core.mover import AttachResult, NamespaceMover
from dranet_core.plans import PreparedDevice
from dranet_core.ports import AttachObserver, DevicePins, EventSink
from dranet_core.status import EventRecord
from dranet_core.types import JSON, ClaimRef, Condition, DeviceNode, DeviceStatus, PodSandbox

__all__ = ["DeviceNodeSource", "PodNetworking", "default_conditions"]

log = logging.getLogger(__name__)

DeviceNodeSource = Callable[[PreparedDevice], Sequence[DeviceNode]]
"""A backend's ``device_nodes`` (AdjustsContainers)."""


def default_conditions() -> tuple[Condition, ...]:
    """The Go driver's netdev conditions: Ready/NetworkDeviceReady then NetworkReady/NetworkReady."""
    return (
        Condition(type="Ready", status="True", reason="NetworkDeviceReady"),
        Condition(type="NetworkReady", status="True", reason="NetworkReady"),
    )


@attrs.frozen
class _Item:
    claim: PreparedClaim
    device: PreparedDevice

    @property
    def uid(self) -> str:
        return self.claim.uid

    def fields(self, pod: PodSandbox | None = None) -> dict[str, str]:
        out = {"claim": str(self.claim.plan.claim), "device": self.device.device}
        if pod is not None:
            out["pod"] = str(pod)
        return out


class PodNetworking:
    """Attaches and detaches a pod's prepared devices, journalled in the ClaimStore.

    ``movers`` are ``(backend name, mover)`` in attach order; a mover handles a device when
    the device has a facet of that backend. The ports (:mod:`dranet_core.ports`): ``pins``
    keeps the devices not at home published and is asked for a rescan after devices came
    home; ``observer`` learns every mover call, journal change, attach and failed attach
    (metrics and claim status); ``events`` takes the Warning events of failed detaches.
    ``hold(phase)`` is awaited after each ``attaching``/``detaching`` journal write (a test
    seam, see :class:`~dranet_core.settings.DebugSettings`).
    """

    def __init__(
        self,
        *,
        store: ClaimStore,
        movers: Sequence[tuple[str, NamespaceMover]],
        driver_name: str,
        pool: str,
        device_nodes: Sequence[DeviceNodeSource] = (),
        observer: AttachObserver | None = None,
        pins: DevicePins | None = None,
        events: EventSink | None = None,
        hold: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.movers = tuple(movers)
        self.driver_name = driver_name
        self.pool = pool
        self.device_nodes = tuple(device_nodes)
        self._observer = observer
        self._pins = pins
        self._events = events
        self._hold = hold
        self._locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        names = [n for n, _ in self.movers]
        return f"PodNetworking(pool={self.pool!r}, movers={names}, states={self.states()})"

    # --- queries ---

    def items_for_pod(self, pod_uid: str) -> list[_Item]:
        """The prepared devices reserved for ``pod_uid``, in claim then allocation order."""
        out: list[_Item] = []
        for pc in self.store.claims().values():
            if pod_uid in pc.plan.pods:
                out.extend(_Item(pc, d) for d in pc.plan.devices)
        return out

    def held_by(self, pod_uid: str) -> list[tuple[_Item, DeviceState]]:
        """Devices not at home whose journal names ``pod_uid``, with their journal entries."""
        out: list[tuple[_Item, DeviceState]] = []
        for pc in self.store.claims().values():
            for d in pc.plan.devices:
                st = pc.devices.get(d.device) or DeviceState()
                if st.phase != "prepared" and st.pod_uid == pod_uid:
                    out.append((_Item(pc, d), st))
        return out

    def states(self) -> dict[str, int]:
        """Devices per journal phase."""
        c: Counter[str] = Counter()
        for pc in self.store.claims().values():
            for d in pc.plan.devices:
                c[(pc.devices.get(d.device) or DeviceState()).phase] += 1
        return dict(c)

    def held_devices(self) -> set[str]:
        """Names of the devices not at home (attaching, attached or detaching)."""
        return {
            d.device
            for pc in self.store.claims().values()
            for d in pc.plan.devices
            if (pc.devices.get(d.device) or DeviceState()).phase != "prepared"
        }

    def has_devices(self, pod_uid: str) -> bool:
        """Whether any prepared claim is reserved for ``pod_uid``."""
        return any(pod_uid in pc.plan.pods for pc in self.store.claims().values())

    def container_devices(self, pod: PodSandbox) -> list[DeviceNode]:
        """Device nodes for every container of ``pod`` (CreateContainer), deduplicated by path."""
        seen: dict[str, DeviceNode] = {}
        for item in self.items_for_pod(pod.uid):
            for source in self.device_nodes:
                for node in source(item.device):
                    seen.setdefault(node.path, node)
        return list(seen.values())

    # --- attach ---

    async def attach_pod(self, pod: PodSandbox) -> None:
        """Attach every device reserved for ``pod`` (NRI RunPodSandbox).

        Raises :class:`DeviceError` (after rolling back this call's attaches) if one fails,
        or if the pod has devices but no network namespace (host-network pod).
        """
        items = self.items_for_pod(pod.uid)
        if not items:
            return
        if not pod.netns:
            raise DeviceError(
                items[0].device.device, "attach", f"pod {pod} has no network namespace (hostNetwork?)"
            )
        done: list[_Item] = []
        results: dict[str, list[DeviceStatus]] = {}
        for item in items:
            try:
                result = await self._attach_one(item, pod)
            except DranetError as exc:
                log.error("attach failed: %s", exc, extra=item.fields(pod))
                for prev in reversed(done):
                    await self._detach_one(prev, pod, reason="rollback")
                if self._observer is not None:
                    await self._observer.attach_failed(pod, item.claim.plan.claim, item.device, exc)
                raise
            done.append(item)
            results.setdefault(item.uid, []).append(self._status(item.device, result))
        for item_uid, statuses in results.items():
            pc = self.store.get(item_uid)
            if pc is not None and self._observer is not None:
                await self._observer.attached(pc.plan.claim, statuses)

    def _status(self, dev: PreparedDevice, result: AttachResult) -> DeviceStatus:
        return DeviceStatus(
            driver=self.driver_name,
            pool=dev.pool or self.pool,
            device=dev.device,
            conditions=result.conditions or default_conditions(),
            network_data=result.network_data,
            share_id=dev.share_id,
        )

    def _movers_for(self, dev: PreparedDevice) -> list[tuple[str, NamespaceMover]]:
        return [(n, m) for n, m in self.movers if n in dev.facets]

    def _lock(self, device: str) -> asyncio.Lock:
        return self._locks.setdefault(device, asyncio.Lock())

    async def _attach_one(self, item: _Item, pod: PodSandbox) -> AttachResult:
        dev = item.device
        async with self._lock(dev.device):
            st = self.store.device_state(item.uid, dev.device) or DeviceState()
            if st.phase == "attached" and st.pod_uid == pod.uid:
                log.info("already attached", extra=item.fields(pod))
                return AttachResult(network_data=st.network_data)
            if st.phase != "prepared" and st.pod_uid not in (None, pod.uid):
                raise DeviceError(dev.device, "attach", f"still held by pod {st.pod_uid} ({st.phase})")
            movers = self._movers_for(dev)
            if not movers:
                raise DeviceError(
                    dev.device, "attach", f"no backend can move it (facets: {sorted(dev.facets)})"
                )
            if st.phase == "attaching" and st.pod_uid == pod.uid and isinstance(st.snapshot, dict):
                snaps: dict[str, JSON] = dict(st.snapshot)  # resume a half-done attach
            else:
                snaps = {}
                for name, mover in movers:
                    snaps[name] = await mover.snapshot(dev)
            await self._journal(
                item, DeviceState(phase="attaching", pod_uid=pod.uid, netns=pod.netns, snapshot=snaps)
            )
            results: list[AttachResult] = []
            attached: list[tuple[str, NamespaceMover]] = []
            for name, mover in movers:
                t0 = time.perf_counter()
                try:
                    results.append(await mover.attach(dev, pod, snaps.get(name)))
                except Exception as exc:
                    self._timing("attach", name, False, t0)
                    for pname, pmover in reversed(attached):
                        await self._safe_detach(item, pname, pmover, pod, snaps.get(pname))
                    await self._journal(item, DeviceState(phase="prepared"))
                    if isinstance(exc, DranetError):
                        raise
                    raise DeviceError(dev.device, f"attach ({name})", f"{type(exc).__name__}: {exc}") from exc
                self._timing("attach", name, True, t0)
                attached.append((name, mover))
            nd = next((r.network_data for r in results if r.network_data is not None), None)
            conditions = tuple(c for r in results for c in r.conditions)
            await self._journal(
                item,
                DeviceState(
                    phase="attached", pod_uid=pod.uid, netns=pod.netns, snapshot=snaps, network_data=nd
                ),
            )
            log.info("device attached", extra=item.fields(pod))
            return AttachResult(network_data=nd, conditions=conditions)

    # --- detach ---

    async def detach_pod(self, pod: PodSandbox) -> None:
        """Bring home every device ``pod`` holds (NRI StopPodSandbox). Never raises."""
        held = self.held_by(pod.uid)
        for item, _ in reversed(held):
            await self._detach_one(item, pod, reason="stop")
        if held and self._pins is not None:
            self._pins.request_rescan()

    async def _detach_one(self, item: _Item, pod: PodSandbox | None, *, reason: str) -> bool:
        dev = item.device
        async with self._lock(dev.device):
            st = self.store.device_state(item.uid, dev.device)
            if st is None or st.phase == "prepared":
                return True
            netns = (pod.netns if pod is not None else None) or st.netns
            target = pod or PodSandbox(uid=st.pod_uid or "", name="", namespace="", netns=netns)
            if target.netns != netns:
                target = attrs.evolve(target, netns=netns)
            snaps = st.snapshot if isinstance(st.snapshot, dict) else {}
            await self._journal(item, attrs.evolve(st, phase="detaching"))
            ok = True
            for name, mover in reversed(self._movers_for(dev)):
                ok = await self._safe_detach(item, name, mover, target, snaps.get(name)) and ok
            if ok:
                await self._journal(item, DeviceState(phase="prepared"))
                log.info("device back home (%s)", reason, extra=item.fields(target))
            return ok

    async def _safe_detach(
        self, item: _Item, name: str, mover: NamespaceMover, pod: PodSandbox, snap: JSON
    ) -> bool:
        t0 = time.perf_counter()
        try:
            await mover.detach(item.device, pod, snap)
        except Exception as exc:
            self._timing("detach", name, False, t0)
            log.error("detach (%s) failed: %s", name, exc, extra=item.fields(pod))
            if pod.name:
                await self._event(pod, "NetworkDeviceDetachFailed", f"device {item.device.device}: {exc}")
            return False
        self._timing("detach", name, True, t0)
        return True

    # --- recovery and unprepare ---

    async def reconcile(self, running: Iterable[PodSandbox]) -> dict[str, int]:
        """Bring every journalled device to a consistent state (NRI Synchronize).

        Returns counts of what was done (``resumed``, ``attached``, ``returned``, ``kept``,
        ``failed``). Never raises for one device; never removes a claim.
        """
        pods = {p.uid: p for p in running}
        done: Counter[str] = Counter()
        for pc in self.store.claims().values():
            for dev in pc.plan.devices:
                item = _Item(pc, dev)
                st = pc.devices.get(dev.device) or DeviceState()
                try:
                    done[await self._reconcile_one(item, st, pods)] += 1
                except DranetError as exc:
                    log.error("reconcile failed: %s", exc, extra=item.fields())
                    done["failed"] += 1
        if done:
            log.info("reconciled devices: %s", dict(done))
        return dict(done)

    async def _reconcile_one(self, item: _Item, st: DeviceState, pods: Mapping[str, PodSandbox]) -> str:
        if st.phase == "prepared":
            owner = next((pods[p] for p in item.claim.plan.pods if p in pods and pods[p].netns), None)
            if owner is None:
                return "kept"
            await self._attach_one(item, owner)
            return "attached"
        pod = pods.get(st.pod_uid or "")
        if st.phase in ("attaching", "attached") and pod is not None and pod.netns:
            if st.phase == "attached":
                return "kept"
            await self._attach_one(item, pod)
            return "resumed"
        ok = await self._detach_one(item, pod, reason="reconcile")
        return "returned" if ok else "failed"

    async def release_claim(self, claim: ClaimRef) -> None:
        """Bring home every device of ``claim`` that is not (call before unpreparing it)."""
        pc = self.store.get(claim.uid)
        if pc is None:
            return
        for dev in pc.plan.devices:
            st = pc.devices.get(dev.device)
            if st is not None and st.phase != "prepared":
                await self._detach_one(_Item(pc, dev), None, reason="unprepare")

    # --- helpers ---

    async def _journal(self, item: _Item, state: DeviceState) -> None:
        await self.store.set_device_state(item.uid, item.device.device, state)
        if self._observer is not None:
            self._observer.journal_changed(self.states())
        if self._pins is not None:
            self._pins.hold_only(self.held_devices())
        if self._hold is not None and state.phase in ("attaching", "detaching"):
            await self._hold(state.phase)

    def _timing(self, action: str, backend: str, ok: bool, t0: float) -> None:
        if self._observer is not None:
            self._observer.mover_done(action, backend, ok, time.perf_counter() - t0)

    async def _event(self, pod: PodSandbox, reason: str, message: str) -> None:
        if self._events is None:
            return
        try:
            await self._events.record_event(
                EventRecord(
                    kind="Pod",
                    namespace=pod.namespace,
                    name=pod.name,
                    uid=pod.uid,
                    type="Warning",
                    reason=reason,
                    message=message[:1024],
                )
            )
        except Exception as exc:  # an event must never break the NRI path
            log.warning("cannot record event %s: %s", reason, exc)
