"""The checkpoint: prepared claims, their plans and a per-device attach journal, in one file.

Format (JSON, UTF-8, one object)::

    {"version": 1,
     "claims": {
       "<claim uid>": {
         "plan": {"claim": {"namespace", "name", "uid"}, "pods": [...], "devices": [
                   {"pool", "device", "requestNames", "config": <NetworkConfig JSON>,
                    "facets": {...}, "shareID"?}]},
         "devices": {"<device name>": {"phase", "podUID"?, "sandboxID"?, "netns"?, "snapshot"?,
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
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import attrs

from dranet_core.config.codec import decode_config, encode_config
from dranet_core.config.model import NetworkConfig
from dranet_core.errors import CheckpointError, ConfigError
from dranet_core.files import make_dirs, open_private, write_new_file
from dranet_core.plans import ClaimPlan, PreparedDevice
from dranet_core.types import JSON, ClaimRef, NetworkData

__all__ = [
    "CHECKPOINT_VERSION",
    "PHASES",
    "CheckpointProblem",
    "ClaimCheck",
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

    ``snapshot`` maps each backend that moved the device to the JSON its NamespaceMover
    returned from ``snapshot()`` before the move (what to restore on the way home);
    ``sandbox_id`` and ``netns`` name the pod sandbox it went to (an attachment belongs to one
    sandbox: a new sandbox of the same pod is another attachment).
    """

    phase: Phase = "prepared"
    pod_uid: str | None = None
    sandbox_id: str | None = None
    netns: str | None = None
    snapshot: JSON = None
    network_data: NetworkData | None = None

    def to_json(self) -> dict[str, JSON]:
        """The journal entry as JSON."""
        out: dict[str, JSON] = {"phase": self.phase}
        _opt(out, "podUID", self.pod_uid)
        _opt(out, "sandboxID", self.sandbox_id)
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
        snapshot = d.get("snapshot")
        if snapshot is not None and not isinstance(snapshot, dict):
            raise CheckpointError(f"{path}.snapshot: expected an object (backend name -> its snapshot)")
        return cls(
            phase=phase,
            pod_uid=_get(d, "podUID", str, path),
            sandbox_id=_get(d, "sandboxID", str, path),
            netns=_get(d, "netns", str, path),
            snapshot=snapshot,
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


def _document(raw: bytes) -> Mapping[str, JSON]:
    """The file's top-level object, version checked; raises CheckpointError."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise CheckpointError("not JSON this driver reads: nested too deeply") from exc
    if not isinstance(doc, dict):
        raise CheckpointError("top level: expected an object")
    version = doc.get("version")
    if version != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"version: unknown checkpoint version {version!r} (this code reads {CHECKPOINT_VERSION})"
        )
    return _obj(doc.get("claims", {}), "claims")


def _claim(uid: str, raw_claim: JSON, check: ClaimCheck | None) -> PreparedClaim:
    """One claim record, checked; raises CheckpointError naming the bad field."""
    try:
        pc = PreparedClaim.from_json(raw_claim, path=f"claims.{uid}")
        if pc.uid != uid:
            raise CheckpointError(f"claims.{uid}: plan is for claim uid {pc.uid}")
        if check is not None:
            check(pc)
    except CheckpointError:
        raise
    except RecursionError as exc:
        raise CheckpointError(f"claims.{uid}: nested too deeply") from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"claims.{uid}: {exc}") from exc
    return pc


def decode_checkpoint(raw: bytes) -> dict[str, PreparedClaim]:
    """Parse a whole file; raises CheckpointError (bad JSON, unknown version, bad field)."""
    return {uid: _claim(uid, raw_claim, None) for uid, raw_claim in _document(raw).items()}


def _decode_lenient(raw: bytes, check: ClaimCheck | None) -> tuple[dict[str, PreparedClaim], dict[str, str]]:
    """The sound claims of a file and, by UID, why each other one is unusable.

    Raises CheckpointError only when the file as a whole is unusable.
    """
    good: dict[str, PreparedClaim] = {}
    bad: dict[str, str] = {}
    for uid, raw_claim in _document(raw).items():
        try:
            good[uid] = _claim(uid, raw_claim, check)
        except CheckpointError as exc:
            bad[uid] = str(exc)
    return good, bad


ClaimCheck = Callable[[PreparedClaim], None]
"""Checks one loaded claim beyond its JSON shape (e.g. that each backend can read its device
snapshot); raises ValueError or CheckpointError saying what is wrong."""


@attrs.frozen(kw_only=True)
class CheckpointProblem:
    """A checkpoint file that could not be used: why, and where it was set aside."""

    path: str
    reason: str
    moved_to: str | None
    claims: tuple[str, ...] = ()
    """UIDs of the claims set aside when the rest of the file was sound (empty: the whole
    file was unusable)."""

    def __str__(self) -> str:
        if self.claims:
            where = f"; a copy of the file is kept as {self.moved_to}" if self.moved_to else ""
            n = len(self.claims)
            return (
                f"checkpoint {self.path}: {n} unusable claim record(s) set aside, the rest loaded: "
                f"{self.reason}{where}"
            )
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
            write_new_file(keep, raw, fsync=True)  # mode 0600, like the checkpoint
        except OSError as exc:
            log.warning("checkpoint %s: cannot keep a copy of the Go driver's file: %s", path, exc)
    return claims


class ClaimStore:
    """Prepared claims and the attach journal, persisted in one checkpoint file.

    Async-safe: each mutation runs under one lock and is on disk before it returns (many
    concurrent mutations share one file write). Readers (:meth:`claims`, :meth:`get`,
    :meth:`device_state`) never block and see the state of the last completed mutation.
    ``path=None``: memory only. ``check`` is run on every claim read from the file (see
    :data:`ClaimCheck`); a claim it refuses is set aside like a malformed one.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        on_problem: Callable[[CheckpointProblem], None] | None = None,
        fsync: bool = True,
        check: ClaimCheck | None = None,
    ) -> None:
        self._path = pathlib.Path(path) if path is not None else None
        self._on_problem = on_problem
        self._fsync = fsync
        self.check = check
        self._claims: dict[str, PreparedClaim] = {}
        self._lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._generation = 0
        self._written = 0
        self._dirty = False
        self.writes = 0
        """Successful file writes so far (each one fsync of the file and its directory)."""
        self.problem: CheckpointProblem | None = None
        """The problem met by the last :meth:`load`, if any."""

    @property
    def path(self) -> pathlib.Path | None:
        return self._path

    @property
    def dirty(self) -> bool:
        """Whether memory holds changes a failed write could not put on disk yet."""
        return self._dirty

    # --- loading ---

    async def load(self) -> CheckpointProblem | None:
        """Read the file (a missing file is an empty store). Never raises for bad content.

        An unusable file (not JSON, nested too deeply, wrong shape, unknown version, a
        symbolic link) is renamed to ``<file>.corrupt-<timestamp>``, logged, passed to
        ``on_problem`` and returned; the store then starts empty. When only some claim
        records are unusable, those are set aside (a copy of the whole file is kept as
        ``<file>.corrupt-<timestamp>``, the file is rewritten without them), the problem
        names them, and the other claims are loaded.
        """
        async with self._lock:
            self.problem = None
            self._claims = {}
            if self._path is None:
                return None
            path = self._path
            try:
                raw = await asyncio.to_thread(self._read)
            except FileNotFoundError:
                return None
            except OSError as exc:
                if path.is_symlink():
                    return self._problem("is a symbolic link; refusing to follow it")
                return self._problem(f"cannot read: {exc.strerror or exc}", set_aside=False)
            try:
                bad: dict[str, str] = {}
                if _is_go_bbolt(raw):
                    good = _adopt_go(path, raw)
                else:
                    good, bad = _decode_lenient(raw, self.check)
            except CheckpointError as exc:
                return self._problem(str(exc))
            self._claims = good
            log.info("checkpoint %s: loaded %d prepared claim(s)", path, len(good))
            if not bad:
                return None
            problem = self._problem("; ".join(bad.values()), claims=tuple(sorted(bad)), data=raw)
        await self.flush_now()
        return problem

    def _read(self) -> bytes:
        assert self._path is not None
        fd = open_private(self._path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as f:
            return f.read()

    def _problem(
        self, reason: str, *, claims: tuple[str, ...] = (), data: bytes | None = None, set_aside: bool = True
    ) -> CheckpointProblem:
        assert self._path is not None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self._path.with_name(f"{self._path.name}.corrupt-{stamp}")
        n = 1
        while os.path.lexists(aside):
            aside = self._path.with_name(f"{self._path.name}.corrupt-{stamp}-{n}")
            n += 1
        moved: str | None = str(aside) if set_aside else None
        try:
            if not set_aside:
                pass
            elif data is None:
                os.replace(self._path, aside)
            else:  # some claims are sound: keep a copy, the file itself stays
                write_new_file(aside, data, fsync=self._fsync)
        except OSError as exc:
            log.error("checkpoint %s: cannot set it aside: %s", self._path, exc)
            moved = None
        problem = CheckpointProblem(path=str(self._path), reason=reason, moved_to=moved, claims=claims)
        if claims:
            log.error("%s; the devices of those claims are not tracked", problem)
        else:
            log.error(
                "%s; starting with no prepared claims and reconciling from kubelet and runtime", problem
            )
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

    async def set_device_state(
        self, uid: str, device: str, state: DeviceState, *, keep_on_failure: bool = False
    ) -> None:
        """Write the journal entry of ``device`` in claim ``uid``.

        Raises CheckpointError if the claim is not prepared or ``device`` is not in its plan,
        or if the write failed. A failed write undoes the change in memory, unless
        ``keep_on_failure`` (the entry records what already happened, e.g. a device that is
        home again): then memory keeps it, :attr:`dirty` is set and the next write (any
        mutation or :meth:`flush`) puts it on disk.
        """
        async with self._lock:
            old = self._claims.get(uid)
            if old is None:
                raise CheckpointError(f"claim {uid} is not prepared")
            if all(d.device != device for d in old.plan.devices):
                raise CheckpointError(f"device {device} is not part of claim {uid}")
            self._claims[uid] = attrs.evolve(old, devices={**old.devices, device: state})
            undo = None if keep_on_failure else self._undo(uid, old)
        await self._persist(undo)

    async def flush_now(self) -> bool:
        """Write the file now (what memory holds); like :meth:`flush`, never raises for a
        failed write (logged; the store stays dirty and :meth:`run` retries)."""
        self._dirty = True
        return await self.flush()

    async def flush(self) -> bool:
        """Write the file if an earlier write failed (:attr:`dirty`); True when on disk now.

        Never raises for a failed write (it is logged; the store stays dirty).
        """
        if not self._dirty:
            return True
        try:
            await self._persist(None)
        except CheckpointError as exc:
            log.warning("%s (will retry)", exc)
            return False
        return True

    async def run(self, interval: float = 5.0) -> None:
        """Retry a failed write every ``interval`` seconds while :attr:`dirty` (a long-lived
        loop for the driver's supervisor; never returns, never raises for a failed write)."""
        while True:
            await asyncio.sleep(interval)
            if self._dirty:
                await self.flush()

    def _undo(self, uid: str, old: PreparedClaim | None) -> _Undo:
        now = self._claims.get(uid)

        def undo() -> None:
            if self._claims.get(uid) is now:  # nobody changed it since
                if old is None:
                    self._claims.pop(uid, None)
                else:
                    self._claims[uid] = old

        return undo

    async def _persist(self, undo: _Undo | None) -> None:
        """Put every mutation so far on disk (group commit); ``undo`` reverts this caller's
        mutation in memory if the write fails (None: keep it and mark the store dirty)."""
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
                self._dirty = False
                self.writes += 1
            elif undo is not None:
                undo()
            else:
                self._dirty = True
            if cancelled:
                raise asyncio.CancelledError
            if error is not None:
                raise CheckpointError(f"checkpoint {self._path}: write failed: {error}") from error

    def _write(self, data: bytes) -> None:
        assert self._path is not None
        directory = self._path.parent
        make_dirs(directory, 0o750)
        # a fresh, unguessable temporary name created with O_EXCL: never someone's symlink
        tmp = directory / f".{self._path.name}.tmp-{os.getpid()}-{secrets.token_hex(8)}"
        try:
            write_new_file(tmp, data, fsync=self._fsync)
            os.replace(tmp, self._path)  # rename replaces a symlink itself, never its target
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
