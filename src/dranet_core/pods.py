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
from dranet_core.errors import CheckpointError, DeviceError, DranetError
from dranet_core.mover import AttachResult, NamespaceMover
from dranet_core.ownership import owned
from dranet_core.plans import PreparedDevice
from dranet_core.ports import AttachObserver, DeviceObserver, DevicePins, EventSink
from dranet_core.sandbox_journal import (
    ChecksSnapshot,
    JournalItem,
    check_snapshots,
    default_conditions,
    journal_statuses,
    journalled_sandbox,
    newest_sandbox,
    same_sandbox,
)
from dranet_core.status import EventRecord
from dranet_core.types import JSON, ClaimRef, DeviceNode, DeviceStatus, PodSandbox

__all__ = [
    "ChecksSnapshot",
    "DeviceNodeSource",
    "PodNetworking",
    "default_conditions",
    "journal_statuses",
    "same_sandbox",
]

log = logging.getLogger(__name__)

DeviceNodeSource = Callable[[PreparedDevice], Sequence[DeviceNode]]
"""A backend's ``device_nodes`` (AdjustsContainers), given as ``(backend name, source)``."""


class PodNetworking:
    """Attaches and detaches a pod's prepared devices, journalled in the ClaimStore.

    ``movers`` are ``(backend name, mover)`` in attach order and ``device_nodes``
    ``(backend name, source)``; each is used only for the devices its backend owns (they carry
    a facet of that backend, :mod:`dranet_core.ownership`). The ports (:mod:`dranet_core.ports`): ``pins``
    keeps the devices not at home published and is asked for a rescan after devices came
    home; ``observer`` learns every mover call, journal change, attach and failed attach
    (metrics and claim status); ``events`` takes the Warning events of failed detaches;
    ``device_observer`` learns every device that reached ``attached`` or came back to
    ``prepared``, whatever the path (the device metadata writer).
    ``hold(phase)`` is awaited after each ``attaching``/``detaching`` journal write (a test
    seam, see :class:`~dranet_core.settings.DebugSettings`). Unless the store already has a
    load check, :meth:`check_claim` becomes it.
    """

    def __init__(
        self,
        *,
        store: ClaimStore,
        movers: Sequence[tuple[str, NamespaceMover]],
        driver_name: str,
        pool: str,
        device_nodes: Sequence[tuple[str, DeviceNodeSource]] = (),
        observer: AttachObserver | None = None,
        pins: DevicePins | None = None,
        events: EventSink | None = None,
        hold: Callable[[str], Awaitable[None]] | None = None,
        device_observer: DeviceObserver | None = None,
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
        self._device_observer = device_observer
        self._locks: dict[str, asyncio.Lock] = {}
        if store.check is None:  # claims whose snapshots a backend cannot read are set aside at load
            store.check = self.check_claim

    def __repr__(self) -> str:
        names = [n for n, _ in self.movers]
        return f"PodNetworking(pool={self.pool!r}, movers={names}, states={self.states()})"

    # --- queries ---

    def items_for_pod(self, pod_uid: str) -> list[JournalItem]:
        """The prepared devices reserved for ``pod_uid``, in claim then allocation order."""
        out: list[JournalItem] = []
        for pc in self.store.claims().values():
            if pod_uid in pc.plan.pods:
                out.extend(JournalItem(pc, d) for d in pc.plan.devices)
        return out

    def held_by(self, pod_uid: str) -> list[tuple[JournalItem, DeviceState]]:
        """Devices not at home whose journal names ``pod_uid``, with their journal entries."""
        out: list[tuple[JournalItem, DeviceState]] = []
        for pc in self.store.claims().values():
            for d in pc.plan.devices:
                st = pc.devices.get(d.device) or DeviceState()
                if st.phase != "prepared" and st.pod_uid == pod_uid:
                    out.append((JournalItem(pc, d), st))
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
            for _name, source in owned(self.device_nodes, item.device):
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
        done: list[JournalItem] = []
        results: dict[str, list[DeviceStatus]] = {}
        for item in items:
            try:
                result = await self._attach_one(item, pod)
            except Exception as exc:
                err = (
                    exc
                    if isinstance(exc, DranetError)
                    else DeviceError(item.device.device, "attach", f"{type(exc).__name__}: {exc}")
                )
                log.error("attach failed: %s", err, extra=item.fields(pod))
                for prev in reversed(done):
                    await self._detach_one(prev, pod, reason="rollback")
                if self._observer is not None:
                    await self._observer.attach_failed(pod, item.claim.plan.claim, item.device, err)
                if err is exc:
                    raise
                raise err from exc
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
        return owned(self.movers, dev)

    def _lock(self, device: str) -> asyncio.Lock:
        return self._locks.setdefault(device, asyncio.Lock())

    async def _attach_one(self, item: JournalItem, pod: PodSandbox) -> AttachResult:
        dev = item.device
        async with self._lock(dev.device):
            st = self.store.device_state(item.uid, dev.device) or DeviceState()
            if st.phase == "attached" and same_sandbox(st, pod):
                log.info("already attached", extra=item.fields(pod))
                return AttachResult(network_data=st.network_data)
            if st.phase != "prepared" and st.pod_uid not in (None, pod.uid):
                raise DeviceError(dev.device, "attach", f"still held by pod {st.pod_uid} ({st.phase})")
            movers = self._movers_for(dev)
            if not movers:
                raise DeviceError(
                    dev.device, "attach", f"no backend can move it (facets: {sorted(dev.facets)})"
                )
            if st.phase != "prepared" and not same_sandbox(st, pod):
                st = await self._leave_old_sandbox(item, st, pod)
            if st.phase != "prepared" and isinstance(st.snapshot, dict):
                snaps: dict[str, JSON] = dict(st.snapshot)  # resume: the host state before the move
            else:
                snaps = {}
                for name, mover in movers:
                    snaps[name] = await mover.snapshot(dev)
            into = DeviceState(
                phase="attaching", pod_uid=pod.uid, sandbox_id=pod.id or None, netns=pod.netns, snapshot=snaps
            )
            await self._journal(item, into)
            results: list[AttachResult] = []
            attached: list[tuple[str, NamespaceMover]] = []
            for name, mover in movers:
                t0 = time.perf_counter()
                try:
                    results.append(await mover.attach(dev, pod, snaps.get(name)))
                except Exception as exc:
                    self._timing("attach", name, False, t0)
                    await self._undo_attach(item, into, attached, pod)
                    if isinstance(exc, DranetError):
                        raise
                    raise DeviceError(dev.device, f"attach ({name})", f"{type(exc).__name__}: {exc}") from exc
                self._timing("attach", name, True, t0)
                attached.append((name, mover))
            nd = next((r.network_data for r in results if r.network_data is not None), None)
            conditions = tuple(c for r in results for c in r.conditions)
            try:
                await self._journal(item, attrs.evolve(into, phase="attached", network_data=nd))
            except DranetError:
                # Not recorded as attached (e.g. the checkpoint is read-only): the runtime fails
                # this sandbox, so the device must not stay in it.
                await self._undo_attach(item, into, attached, pod)
                raise
            log.info("device attached", extra=item.fields(pod))
            return AttachResult(network_data=nd, conditions=conditions)

    async def _leave_old_sandbox(self, item: JournalItem, st: DeviceState, pod: PodSandbox) -> DeviceState:
        """Bring the device home from an earlier sandbox of the same pod (lock held).

        Returns the entry to continue from (``prepared``); raises DeviceError when the device
        could not be verifiably brought home (it stays journalled in the old sandbox).
        """
        old = PodSandbox(
            uid=pod.uid, name=pod.name, namespace=pod.namespace, id=st.sandbox_id or "", netns=st.netns
        )
        where = old.id or old.netns or "unknown"
        log.warning(
            "device is in an earlier sandbox %s of this pod; bringing it home for sandbox %s",
            where,
            pod.id or pod.netns,
            extra=item.fields(pod),
        )
        if not await self._detach_locked(item, old, st, reason="new sandbox"):
            raise DeviceError(
                item.device.device,
                "attach",
                f"it is still in the pod's earlier sandbox {where} and could not be brought home",
            )
        return DeviceState()

    async def _undo_attach(
        self,
        item: JournalItem,
        into: DeviceState,
        attached: Sequence[tuple[str, NamespaceMover]],
        pod: PodSandbox,
    ) -> None:
        """Take home what ``attached`` moved; the journal follows, but never blocks it."""
        snaps = into.snapshot if isinstance(into.snapshot, dict) else {}
        ok = True
        for name, mover in reversed(attached):
            ok = await self._safe_detach(item, name, mover, pod, snaps.get(name)) and ok
        await self._journal(item, DeviceState() if ok else attrs.evolve(into, phase="detaching"), keep=True)

    # --- detach ---

    async def detach_pod(self, pod: PodSandbox) -> None:
        """Bring home every device ``pod`` holds (NRI StopPodSandbox). Never raises.

        Only devices journalled in this sandbox are touched: a Stop of an earlier sandbox of
        the pod leaves the devices of the pod's current sandbox where they are.
        """
        held = self.held_by(pod.uid)
        for item, st in reversed(held):
            if not same_sandbox(st, pod):
                log.info("device is in another sandbox of this pod; left there", extra=item.fields(pod))
                continue
            await self._detach_one(item, pod, reason="stop")
        if held and self._pins is not None:
            self._pins.request_rescan()

    async def _detach_one(self, item: JournalItem, pod: PodSandbox | None, *, reason: str) -> bool:
        async with self._lock(item.device.device):
            st = self.store.device_state(item.uid, item.device.device)
            if st is None or st.phase == "prepared":
                return True
            netns = (pod.netns if pod is not None else None) or st.netns
            target = pod or PodSandbox(
                uid=st.pod_uid or "", name="", namespace="", id=st.sandbox_id or "", netns=netns
            )
            if target.netns != netns:
                target = attrs.evolve(target, netns=netns)
            return await self._detach_locked(item, target, st, reason=reason)

    async def _detach_locked(
        self, item: JournalItem, target: PodSandbox, st: DeviceState, *, reason: str
    ) -> bool:
        """Journal ``detaching``, run the movers' detach, journal ``prepared`` when every mover
        succeeded (lock held). Journal writes here never stop a device from coming home: a
        failed one is kept in memory and written later. True when the device is home."""
        snaps = st.snapshot if isinstance(st.snapshot, dict) else {}
        await self._journal(item, attrs.evolve(st, phase="detaching"), keep=True)
        ok = True
        for name, mover in reversed(self._movers_for(item.device)):
            ok = await self._safe_detach(item, name, mover, target, snaps.get(name)) and ok
        if ok:
            await self._journal(item, DeviceState(), keep=True)
            log.info("device back home (%s)", reason, extra=item.fields(target))
        return ok

    async def _safe_detach(
        self, item: JournalItem, name: str, mover: NamespaceMover, pod: PodSandbox, snap: JSON
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

        Returns counts of what was done (``resumed``, ``attached``, ``moved`` (to a newer
        sandbox of its pod), ``returned``, ``kept``, ``failed``). Never raises for one
        device; never removes a claim. A journal write that failed earlier is retried first.
        """
        await self.store.flush()
        pods: dict[str, list[PodSandbox]] = {}
        for p in running:
            pods.setdefault(p.uid, []).append(p)
        done: Counter[str] = Counter()
        for pc in self.store.claims().values():
            attached = False
            for dev in pc.plan.devices:
                item = JournalItem(pc, dev)
                st = self.store.device_state(pc.uid, dev.device) or DeviceState()
                try:
                    outcome = await self._reconcile_one(item, st, pods)
                except DranetError as exc:
                    log.error("reconcile failed: %s", exc, extra=item.fields())
                    outcome = "failed"
                done[outcome] += 1
                attached = attached or outcome in ("resumed", "attached", "moved")
            if attached:
                await self._report_from_journal(pc.uid)
        if done:
            log.info("reconciled devices: %s", dict(done))
        return dict(done)

    async def _reconcile_one(
        self, item: JournalItem, st: DeviceState, pods: Mapping[str, Sequence[PodSandbox]]
    ) -> str:
        if st.phase == "prepared":
            owner = next(
                (
                    newest_sandbox(pods[p])
                    for p in item.claim.plan.pods
                    if p in pods and newest_sandbox(pods[p])
                ),
                None,
            )
            if owner is None:
                return "kept"
            await self._attach_one(item, owner)
            return "attached"
        sandboxes = [p for p in pods.get(st.pod_uid or "", ()) if p.netns]
        if st.phase in ("attaching", "attached") and sandboxes:
            current = journalled_sandbox(st, sandboxes)
            if current is None:  # the pod runs in a sandbox the journal does not know
                await self._attach_one(item, sandboxes[-1])
                return "moved"
            if st.phase == "attached":
                return "kept"
            await self._attach_one(item, current)
            return "resumed"
        ok = await self._detach_one(item, journalled_sandbox(st, sandboxes), reason="reconcile")
        return "returned" if ok else "failed"

    async def _report_from_journal(self, uid: str) -> None:
        """Tell the observer the claim's status after reconcile attached some of its devices."""
        pc = self.store.get(uid)
        if pc is None or self._observer is None:
            return
        statuses = journal_statuses(pc, driver_name=self.driver_name, pool=self.pool)
        if statuses:
            await self._observer.attached(pc.plan.claim, statuses)

    async def release_claim(self, claim: ClaimRef) -> None:
        """Bring home every device of ``claim`` that is not (call before unpreparing it).

        Raises DeviceError naming the devices that could not be verifiably brought home:
        the claim must then stay prepared (and journalled) so that a retry finishes it.
        """
        pc = self.store.get(claim.uid)
        if pc is None:
            return
        stuck: list[str] = []
        for dev in pc.plan.devices:
            st = self.store.device_state(claim.uid, dev.device)
            if (
                st is not None
                and st.phase != "prepared"
                and not await self._detach_one(JournalItem(pc, dev), None, reason="unprepare")
            ):
                stuck.append(dev.device)
        if self._pins is not None:
            self._pins.request_rescan()
        if stuck:
            raise DeviceError(
                ", ".join(stuck),
                "unprepare",
                "not verifiably back on the host (see the detach error above); the claim stays "
                "prepared and the next unprepare retries",
                temporary=True,
            )

    def check_claim(self, pc: PreparedClaim) -> None:
        """Raise ValueError if a backend cannot read a device snapshot journalled in ``pc``
        (used as the :class:`~dranet_core.checkpoint.ClaimStore` load check)."""
        check_snapshots(pc, self.movers)

    # --- helpers ---

    async def _journal(self, item: JournalItem, state: DeviceState, *, keep: bool = False) -> None:
        """Record ``state``. With ``keep`` (the state says what already happened to the
        device), a failed write is logged, not raised: memory keeps the state and a later
        write puts it on disk."""
        try:
            await self.store.set_device_state(item.uid, item.device.device, state, keep_on_failure=keep)
        except CheckpointError as exc:
            if not keep:
                raise
            log.error("journal %s not written (kept in memory, retried later): %s", state.phase, exc)
        if self._observer is not None:
            self._observer.journal_changed(self.states())
        if self._pins is not None:
            self._pins.hold_only(self.held_devices())
        if self._device_observer is not None and state.phase == "attached":
            await self._device_observer.attached(item.claim.plan, item.device, state.network_data)
        elif self._device_observer is not None and state.phase == "prepared":
            await self._device_observer.released(item.claim.plan, item.device)
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
