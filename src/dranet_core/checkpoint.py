"""The checkpoint: prepared claims, their plans and a per-device attach journal, in one file.

Format (JSON, UTF-8, one object)::

    {"version": 1,
     "claims": {
       "<claim uid>": {
         "plan": {"claim": {"namespace", "name", "uid"}, "pods": [...], "devices": [
                   {"pool", "device", "requestNames", "config": <NetworkConfig JSON>,
                    "facets": {...}, "shareID"?}]},
         "devices": {"<device name>": {"phase", "podUID"?, "netns"?, "snapshot"?,
                                       "networkData"?: {"interfaceName", "hardwareAddress", "ips"}}}}}}

``phase`` is one of ``prepared`` (planned, still at home), ``attaching`` (a move into a pod
started), ``attached`` (in the pod), ``detaching`` (a move home started). The driver writes
``attaching``/``detaching`` *before* it touches the device, so after a crash it knows which
devices may be half-moved.

Writes are atomic: a temporary file in the same directory is written, fsynced, renamed over
the checkpoint, and the directory is fsynced. Concurrent mutations share one write (group
commit): every mutation is on disk before its coroutine returns, and a failed write undoes
that mutation in memory and raises :class:`~dranet_core.errors.CheckpointError`.

A bbolt file (the Go driver's checkpoint at the same default path) is adopted: its
pod-device records become claims journalled ``attached`` (:mod:`dranet_core.go_upgrade`).

A file that cannot be read (bad JSON, wrong shape, unknown version) never stops the driver:
:meth:`ClaimStore.load` renames it to ``<file>.corrupt-<UTC timestamp>``, logs why, returns a
:class:`CheckpointProblem` (also given to the ``on_problem`` callback, so the driver can turn
it into an Event) and starts empty; the driver then reconciles from what the kubelet and the
runtime tell it. With ``path=None`` the store lives only in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pathlib
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import attrs

from dranet_core.config.codec import decode_config, encode_config
from dranet_core.config.model import NetworkConfig
from dranet_core.errors import CheckpointError, ConfigError
from dranet_core.plans import ClaimPlan, PreparedDevice
from dranet_core.types import JSON, ClaimRef, NetworkData

__all__ = [
    "CHECKPOINT_VERSION",
    "PHASES",
    "CheckpointProblem",
    "ClaimStore",
    "DeviceState",
    "Phase",
    "PreparedClaim",
    "config_from_json",
    "config_to_json",
    "decode_checkpoint",
    "encode_checkpoint",
]

log = logging.getLogger(__name__)

CHECKPOINT_VERSION: Final = 1
"""The only file version this code reads and writes."""

Phase = Literal["prepared", "attaching", "attached", "detaching"]
PHASES: Final[tuple[str, ...]] = ("prepared", "attaching", "attached", "detaching")


# --- NetworkConfig <-> JSON: the config package's strict codec (same camelCase names) ---


def config_to_json(config: NetworkConfig) -> JSON:
    """A NetworkConfig as JSON with the API's camelCase names; unset fields are left out
    (:func:`dranet_core.config.codec.encode_config`)."""
    return encode_config(config)


def config_from_json(data: JSON, *, path: str = "config") -> NetworkConfig:
    """The inverse of :func:`config_to_json` (:func:`dranet_core.config.codec.decode_config`);
    raises CheckpointError naming every bad field (``<path>: <rule>``)."""
    try:
        return decode_config(data, path=path)
    except ConfigError as exc:
        raise CheckpointError("; ".join(f"{i.path}: {i.rule}" for i in exc.issues)) from exc


# --- the records ---


def _opt(d: dict[str, JSON], key: str, value: JSON) -> None:
    if value is not None:
        d[key] = value


def _req(data: Mapping[str, JSON], key: str, kind: type, path: str) -> Any:
    if key not in data:
        raise CheckpointError(f"{path}.{key}: missing")
    v = data[key]
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise CheckpointError(f"{path}.{key}: expected {kind.__name__}")
    return v


def _get(data: Mapping[str, JSON], key: str, kind: type, path: str) -> Any:
    return _req(data, key, kind, path) if data.get(key) is not None else None


def _obj(data: JSON, path: str) -> Mapping[str, JSON]:
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected an object")
    return data


def _strs(data: Mapping[str, JSON], key: str, path: str) -> tuple[str, ...]:
    v = data.get(key, [])
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise CheckpointError(f"{path}.{key}: expected a list of strings")
    return tuple(v)


@attrs.frozen(kw_only=True)
class DeviceState:
    """Where one prepared device is in its attach life (one journal entry).

    ``snapshot`` is the JSON the NamespaceMover returned from ``snapshot()`` before the
    move (what to restore on the way home); ``netns`` the pod netns path it went to.
    """

    phase: Phase = "prepared"
    pod_uid: str | None = None
    netns: str | None = None
    snapshot: JSON = None
    network_data: NetworkData | None = None

    def to_json(self) -> dict[str, JSON]:
        """The journal entry as JSON."""
        out: dict[str, JSON] = {"phase": self.phase}
        _opt(out, "podUID", self.pod_uid)
        _opt(out, "netns", self.netns)
        _opt(out, "snapshot", self.snapshot)
        if self.network_data is not None:
            nd = self.network_data
            out["networkData"] = {
                "interfaceName": nd.interface_name,
                "hardwareAddress": nd.hardware_address,
                "ips": list(nd.ips),
            }
        return out

    @classmethod
    def from_json(cls, data: JSON, *, path: str = "device") -> DeviceState:
        """Parse a journal entry; raises CheckpointError naming the bad field."""
        d = _obj(data, path)
        phase = _req(d, "phase", str, path)
        if phase not in PHASES:
            raise CheckpointError(f"{path}.phase: unknown phase {phase!r}")
        nd = None
        if d.get("networkData") is not None:
            n = _obj(d["networkData"], f"{path}.networkData")
            nd = NetworkData(
                interface_name=_get(n, "interfaceName", str, f"{path}.networkData") or "",
                hardware_address=_get(n, "hardwareAddress", str, f"{path}.networkData") or "",
                ips=_strs(n, "ips", f"{path}.networkData"),
            )
        return cls(
            phase=phase,
            pod_uid=_get(d, "podUID", str, path),
            netns=_get(d, "netns", str, path),
            snapshot=d.get("snapshot"),
            network_data=nd,
        )


def plan_to_json(plan: ClaimPlan) -> dict[str, JSON]:
    """A ClaimPlan as JSON."""
    devices: list[JSON] = []
    for dev in plan.devices:
        d: dict[str, JSON] = {
            "pool": dev.pool,
            "device": dev.device,
            "requestNames": list(dev.request_names),
            "config": config_to_json(dev.config),
            "facets": dict(dev.facets),
        }
        _opt(d, "shareID", dev.share_id)
        devices.append(d)
    c = plan.claim
    return {
        "claim": {"namespace": c.namespace, "name": c.name, "uid": c.uid},
        "pods": list(plan.pods),
        "devices": devices,
    }


def plan_from_json(data: JSON, *, path: str = "plan") -> ClaimPlan:
    """Parse a ClaimPlan; raises CheckpointError naming the bad field."""
    d = _obj(data, path)
    c = _obj(d.get("claim"), f"{path}.claim")
    ref = ClaimRef(
        namespace=_req(c, "namespace", str, f"{path}.claim"),
        name=_req(c, "name", str, f"{path}.claim"),
        uid=_req(c, "uid", str, f"{path}.claim"),
    )
    raw_devices = d.get("devices", [])
    if not isinstance(raw_devices, list):
        raise CheckpointError(f"{path}.devices: expected a list")
    devices = []
    for i, raw in enumerate(raw_devices):
        p = f"{path}.devices[{i}]"
        dd = _obj(raw, p)
        devices.append(
            PreparedDevice(
                pool=_req(dd, "pool", str, p),
                device=_req(dd, "device", str, p),
                request_names=_strs(dd, "requestNames", p),
                config=config_from_json(dd.get("config"), path=f"{p}.config"),
                facets=dict(_obj(dd.get("facets", {}), f"{p}.facets")),
                share_id=_get(dd, "shareID", str, p),
            )
        )
    return ClaimPlan(claim=ref, pods=_strs(d, "pods", path), devices=tuple(devices))


@attrs.frozen(kw_only=True)
class PreparedClaim:
    """A prepared claim: its plan and the journal state of each of its devices (by name)."""

    plan: ClaimPlan
    devices: Mapping[str, DeviceState] = attrs.field(factory=dict)

    @property
    def uid(self) -> str:
        return self.plan.claim.uid

    def to_json(self) -> dict[str, JSON]:
        """The claim record as JSON."""
        return {
            "plan": plan_to_json(self.plan),
            "devices": {name: st.to_json() for name, st in self.devices.items()},
        }

    @classmethod
    def from_json(cls, data: JSON, *, path: str = "claim") -> PreparedClaim:
        """Parse a claim record; raises CheckpointError naming the bad field."""
        d = _obj(data, path)
        plan = plan_from_json(d.get("plan"), path=f"{path}.plan")
        devs = _obj(d.get("devices", {}), f"{path}.devices")
        return cls(
            plan=plan,
            devices={k: DeviceState.from_json(v, path=f"{path}.devices.{k}") for k, v in devs.items()},
        )


def encode_checkpoint(claims: Mapping[str, PreparedClaim]) -> bytes:
    """The whole file's bytes for ``claims`` (keys: claim UIDs)."""
    doc = {"version": CHECKPOINT_VERSION, "claims": {uid: c.to_json() for uid, c in sorted(claims.items())}}
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def decode_checkpoint(raw: bytes) -> dict[str, PreparedClaim]:
    """Parse a whole file; raises CheckpointError (bad JSON, unknown version, bad field)."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise CheckpointError("top level: expected an object")
    version = doc.get("version")
    if version != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"version: unknown checkpoint version {version!r} (this code reads {CHECKPOINT_VERSION})"
        )
    claims = _obj(doc.get("claims", {}), "claims")
    out: dict[str, PreparedClaim] = {}
    for uid, raw_claim in claims.items():
        pc = PreparedClaim.from_json(raw_claim, path=f"claims.{uid}")
        if pc.uid != uid:
            raise CheckpointError(f"claims.{uid}: plan is for claim uid {pc.uid}")
        out[uid] = pc
    return out


@attrs.frozen(kw_only=True)
class CheckpointProblem:
    """A checkpoint file that could not be used: why, and where it was set aside."""

    path: str
    reason: str
    moved_to: str | None

    def __str__(self) -> str:
        where = f"; set aside as {self.moved_to}" if self.moved_to else ""
        return f"checkpoint {self.path} unusable: {self.reason}{where}"


_Undo = Callable[[], None]


def _is_go_bbolt(raw: bytes) -> bool:
    from dranet_core.bbolt import is_bbolt

    return is_bbolt(raw)


def _adopt_go(path: pathlib.Path, raw: bytes) -> dict[str, PreparedClaim]:
    """The Go driver's bbolt checkpoint adopted (:mod:`dranet_core.go_upgrade`); a copy of
    the file is kept as ``<file>.go-bbolt`` (our first write replaces the file)."""
    from dranet_core.go_upgrade import adopt_go_checkpoint

    claims = {
        uid: PreparedClaim.from_json(rec, path=f"go-checkpoint.{uid}")
        for uid, rec in adopt_go_checkpoint(raw).items()
    }
    keep = path.with_name(path.name + ".go-bbolt")
    if not keep.exists():
        try:
            keep.write_bytes(raw)
        except OSError as exc:
            log.warning("checkpoint %s: cannot keep a copy of the Go driver's file: %s", path, exc)
    return claims


class ClaimStore:
    """Prepared claims and the attach journal, persisted in one checkpoint file.

    Async-safe: each mutation runs under one lock and is on disk before it returns (many
    concurrent mutations share one file write). Readers (:meth:`claims`, :meth:`get`,
    :meth:`device_state`) never block and see the state of the last completed mutation.
    ``path=None``: memory only.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        on_problem: Callable[[CheckpointProblem], None] | None = None,
        fsync: bool = True,
    ) -> None:
        self._path = pathlib.Path(path) if path is not None else None
        self._on_problem = on_problem
        self._fsync = fsync
        self._claims: dict[str, PreparedClaim] = {}
        self._lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._generation = 0
        self._written = 0
        self.problem: CheckpointProblem | None = None
        """The problem met by the last :meth:`load`, if any."""

    @property
    def path(self) -> pathlib.Path | None:
        return self._path

    # --- loading ---

    async def load(self) -> CheckpointProblem | None:
        """Read the file (a missing file is an empty store). Never raises for bad content.

        An unusable file is renamed to ``<file>.corrupt-<timestamp>``, logged, passed to
        ``on_problem`` and returned; the store then starts empty.
        """
        async with self._lock:
            self.problem = None
            self._claims = {}
            if self._path is None:
                return None
            path = self._path
            try:
                raw = await asyncio.to_thread(path.read_bytes)
            except FileNotFoundError:
                return None
            except OSError as exc:
                return self._problem(f"cannot read: {exc}")
            try:
                self._claims = decode_checkpoint(raw) if not _is_go_bbolt(raw) else _adopt_go(path, raw)
            except CheckpointError as exc:
                return self._problem(str(exc))
            log.info("checkpoint %s: loaded %d prepared claim(s)", path, len(self._claims))
            return None

    def _problem(self, reason: str) -> CheckpointProblem:
        assert self._path is not None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self._path.with_name(f"{self._path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            aside = self._path.with_name(f"{self._path.name}.corrupt-{stamp}-{n}")
            n += 1
        moved: str | None = str(aside)
        try:
            os.replace(self._path, aside)
        except OSError as exc:
            log.error("checkpoint %s: cannot set it aside: %s", self._path, exc)
            moved = None
        problem = CheckpointProblem(path=str(self._path), reason=reason, moved_to=moved)
        log.error("%s; starting with no prepared claims and reconciling from kubelet and runtime", problem)
        self.problem = problem
        if self._on_problem is not None:
            try:
                self._on_problem(problem)
            except Exception:  # the callback must not stop start-up
                log.exception("checkpoint problem callback failed")
        return problem

    # --- reading ---

    def claims(self) -> Mapping[str, PreparedClaim]:
        """Every prepared claim, by claim UID (a snapshot copy)."""
        return dict(self._claims)

    def get(self, uid: str) -> PreparedClaim | None:
        """The prepared claim with this UID, or None."""
        return self._claims.get(uid)

    def device_state(self, uid: str, device: str) -> DeviceState | None:
        """The journal entry of ``device`` in claim ``uid``, or None if there is none."""
        pc = self._claims.get(uid)
        return None if pc is None else pc.devices.get(device)

    # --- mutations ---

    async def put_plan(self, plan: ClaimPlan) -> PreparedClaim:
        """Record ``plan`` (replacing an earlier plan of the same UID).

        Journal entries of devices that stay in the plan are kept; new devices start in phase
        ``prepared``; entries of devices no longer in the plan are dropped.
        """
        async with self._lock:
            uid = plan.claim.uid
            old = self._claims.get(uid)
            states = {}
            for d in plan.devices:
                prev = old.devices.get(d.device) if old is not None else None
                states[d.device] = prev if prev is not None else DeviceState()
            pc = PreparedClaim(plan=plan, devices=states)
            self._claims[uid] = pc
            undo = self._undo(uid, old)
        await self._persist(undo)
        return pc

    async def remove(self, uid: str) -> PreparedClaim | None:
        """Forget claim ``uid``; returns what it was (None if unknown; nothing is written)."""
        async with self._lock:
            old = self._claims.pop(uid, None)
            if old is None:
                return None
            undo = self._undo(uid, old)
        await self._persist(undo)
        return old

    async def set_device_state(self, uid: str, device: str, state: DeviceState) -> None:
        """Write the journal entry of ``device`` in claim ``uid``.

        Raises CheckpointError if the claim is not prepared or ``device`` is not in its plan.
        """
        async with self._lock:
            old = self._claims.get(uid)
            if old is None:
                raise CheckpointError(f"claim {uid} is not prepared")
            if all(d.device != device for d in old.plan.devices):
                raise CheckpointError(f"device {device} is not part of claim {uid}")
            self._claims[uid] = attrs.evolve(old, devices={**old.devices, device: state})
            undo = self._undo(uid, old)
        await self._persist(undo)

    def _undo(self, uid: str, old: PreparedClaim | None) -> _Undo:
        now = self._claims.get(uid)

        def undo() -> None:
            if self._claims.get(uid) is now:  # nobody changed it since
                if old is None:
                    self._claims.pop(uid, None)
                else:
                    self._claims[uid] = old

        return undo

    async def _persist(self, undo: _Undo) -> None:
        if self._path is None:
            return
        self._generation += 1
        mine = self._generation
        async with self._write_lock:
            if self._written >= mine:
                return  # a write that started after our mutation already covered it
            gen = self._generation
            data = encode_checkpoint(self._claims)
            fut = asyncio.get_running_loop().run_in_executor(None, self._write, data)
            cancelled = False
            while not fut.done():
                # A cancelled caller (e.g. a kubelet deadline) still waits for the thread, so
                # two writes never run at once; the cancellation is re-raised afterwards.
                try:
                    await asyncio.shield(fut)
                except asyncio.CancelledError:
                    cancelled = True
                except Exception:
                    break  # read from the future below
            error = fut.exception()
            if error is None:
                self._written = gen
            else:
                undo()
            if cancelled:
                raise asyncio.CancelledError
            if error is not None:
                raise CheckpointError(f"checkpoint {self._path}: write failed: {error}") from error

    def _write(self, data: bytes) -> None:
        assert self._path is not None
        directory = self._path.parent
        directory.mkdir(mode=0o750, parents=True, exist_ok=True)
        tmp = directory / f".{self._path.name}.tmp-{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.replace(tmp, self._path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        if self._fsync:
            dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
