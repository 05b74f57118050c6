"""The checkpoint: prepared claims, their plans and a per-device attach journal, in one file.

Format (JSON, UTF-8, one object)::

    {"version": 1,
     "bootID": "<the kernel's boot id when the file was written>",
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

Writes are atomic: a temporary file in the same directory is written and renamed over the
checkpoint. Concurrent mutations share one write (group commit): every mutation is in the
file before its coroutine returns, and a failed write undoes that mutation in memory and
raises :class:`~dranet_core.errors.CheckpointError`. Each claim's record is encoded once per
change and cached, so a write re-encodes only the claims that changed. The first write runs
on a worker thread and finds out the file system; when it is a tmpfs (``/run`` on a node: a
write there is a copy into memory that never waits for a disk) later writes run on the event
loop itself, saving the thread hop; on any other file system every write runs on a thread.

Durability: nothing is fsynced. A killed process (SIGKILL, OOM, crash) leaves the old or the
new file, complete: the written data is in the kernel's page cache, which outlives the
process. What the journal tracks does not outlive a reboot (pod network namespaces are gone,
physical devices are back under their udev names, virtual ones are gone), so the file is
stamped with the kernel's boot id; a file from another boot keeps its prepared claims (the
kubelet prepares them again anyway) but every attachment in it is void: each device is back
to ``prepared`` (one log line), nothing is restored. A file torn by a power loss is unusable
like any other bad file (below).

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
import logging
import os
import pathlib
import secrets
import time
from collections.abc import Callable, Mapping

import attrs

from dranet_core.checkpoint_format import (
    CHECKPOINT_VERSION,
    PHASES,
    ClaimCheck,
    DeviceState,
    Phase,
    PreparedClaim,
    config_from_json,
    config_to_json,
    decode_checkpoint,
    decode_lenient,
    encode_checkpoint,
    encode_claim,
    join_checkpoint,
)
from dranet_core.errors import CheckpointError
from dranet_core.files import filesystem_type, make_dirs, open_private, write_new_file
from dranet_core.plans import ClaimPlan

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
    "read_boot_id",
]

log = logging.getLogger(__name__)


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

ENCODE_SLICE = 32
"""Changed claims one write encodes between two turns of the event loop (see
:meth:`ClaimStore._encode`)."""


def read_boot_id(procfs_root: str | os.PathLike[str] = "/proc") -> str | None:
    """The kernel's boot id (``<procfs>/sys/kernel/random/boot_id``), or None (logged) when it
    cannot be read: the checkpoint is then not stamped and a file is trusted as this boot's."""
    path = pathlib.Path(procfs_root, "sys", "kernel", "random", "boot_id")
    try:
        value = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("cannot read the boot id from %s (%s): the checkpoint is not stamped", path, exc)
        return None
    if not value:
        log.warning("boot id %s is empty: the checkpoint is not stamped", path)
        return None
    return value


def _void_attachments(claims: dict[str, PreparedClaim]) -> int:
    """Every journal entry of ``claims`` back to ``prepared``; returns how many were not."""
    void = 0
    for uid, pc in claims.items():
        if any(st != _PREPARED for st in pc.devices.values()):
            void += sum(st.phase != "prepared" for st in pc.devices.values())
            claims[uid] = attrs.evolve(pc, devices=dict.fromkeys(pc.devices, _PREPARED))
    return void


_PREPARED = DeviceState()


def _attempt(write: Callable[[bytes], None], data: bytes) -> OSError | None:
    """``write(data)``; the OSError it raised, or None."""
    try:
        write(data)
    except OSError as exc:
        return exc
    return None


def _is_go_bbolt(raw: bytes) -> bool:
    if raw.lstrip()[:1] == b"{":
        return False  # JSON: the bbolt reader is not even loaded
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
            write_new_file(keep, raw)  # mode 0600, like the checkpoint
        except OSError as exc:
            log.warning("checkpoint %s: cannot keep a copy of the Go driver's file: %s", path, exc)
    return claims


class ClaimStore:
    """Prepared claims and the attach journal, persisted in one checkpoint file.

    Async-safe: each mutation runs under one lock and is on disk before it returns (many
    concurrent mutations share one file write). Readers (:meth:`claims`, :meth:`get`,
    :meth:`device_state`) never block and see the state of the last completed mutation.
    ``path=None``: memory only. ``check`` is run on every claim read from the file (see
    :data:`ClaimCheck`); a claim it refuses is set aside like a malformed one. ``boot_id``
    (:func:`read_boot_id`) stamps every write; a file loaded with another stamp is from before
    a reboot: its attachments are void (module doc). None: no stamp, no check.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        on_problem: Callable[[CheckpointProblem], None] | None = None,
        check: ClaimCheck | None = None,
        boot_id: str | None = None,
    ) -> None:
        self._path = pathlib.Path(path) if path is not None else None
        self._on_problem = on_problem
        self.check = check
        self.boot_id = boot_id
        self._claims: dict[str, PreparedClaim] = {}
        self._encoded: dict[str, tuple[PreparedClaim, bytes]] = {}
        self.inline: bool | None = None
        """Whether writes run on the event loop (the file is on a tmpfs); None until the first
        write found out."""
        self._lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._generation = 0
        self._written = 0
        self._dirty = False
        self.writes = 0
        """Successful file writes so far."""
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
                stamp: str | None = None
                if _is_go_bbolt(raw):
                    good = _adopt_go(path, raw)
                else:
                    good, bad, stamp = decode_lenient(raw, self.check)
            except CheckpointError as exc:
                return self._problem(str(exc))
            rebooted = stamp is not None and self.boot_id is not None and stamp != self.boot_id
            if rebooted:
                void = _void_attachments(good)
                log.warning(
                    "checkpoint %s: written before a reboot (boot id %s, now %s): %d attachment(s) "
                    "void (their devices are home or gone, nothing is restored); %d prepared "
                    "claim(s) kept",
                    path,
                    stamp,
                    self.boot_id,
                    void,
                    len(good),
                )
            self._claims = good
            log.info("checkpoint %s: loaded %d prepared claim(s)", path, len(good))
            problem = None
            if bad:
                problem = self._problem("; ".join(bad.values()), claims=tuple(sorted(bad)), data=raw)
            elif not rebooted:
                return None
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
                write_new_file(aside, data)
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
            cancelled = False
            if self.inline:
                # one turn of the loop first: mutations made meanwhile share this write
                try:
                    await asyncio.sleep(0)
                except asyncio.CancelledError:
                    cancelled = True  # the write still happens; re-raised afterwards
            gen = self._generation
            claims = dict(self._claims)  # what this write covers; later mutations wait for theirs
            data, late = await self._encode(claims)
            cancelled = cancelled or late
            error: BaseException | None
            if self.inline:
                error = _attempt(self._write, data)
            else:
                error, late = await self._write_on_thread(data)
                cancelled = cancelled or late
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

    async def _write_on_thread(self, data: bytes) -> tuple[BaseException | None, bool]:
        """:meth:`_write` on a worker thread: (its error or None, whether the caller was
        cancelled meanwhile). A cancelled caller (e.g. a kubelet deadline) still waits for the
        thread, so two writes never run at once; the caller re-raises the cancellation."""
        fut = asyncio.get_running_loop().run_in_executor(None, self._write, data)
        cancelled = False
        while not fut.done():
            try:
                await asyncio.shield(fut)
            except asyncio.CancelledError:
                cancelled = True
            except Exception:
                break  # read from the future below
        return fut.exception(), cancelled

    async def _encode(self, claims: Mapping[str, PreparedClaim]) -> tuple[bytes, bool]:
        """The file's bytes for ``claims`` (a copy of memory taken when the write began), and
        whether the caller was cancelled meanwhile (the encode goes on; the caller re-raises).

        Only claims changed since the last write (a new :class:`PreparedClaim` object: they
        are immutable) are encoded again, :data:`ENCODE_SLICE` at a time with a turn of the
        event loop between slices: after a burst of new claims (200 pods prepared at once)
        one write encodes them all, about 45 us each, which in one go held the loop for
        ~10 ms.
        """
        cache = self._encoded
        cancelled = False
        done = 0
        for uid, pc in claims.items():
            hit = cache.get(uid)
            if hit is None or hit[0] is not pc:
                if done and done % ENCODE_SLICE == 0:
                    try:
                        await asyncio.sleep(0)
                    except asyncio.CancelledError:
                        cancelled = True
                cache[uid] = (pc, encode_claim(pc))
                done += 1
        return self._encode_now(claims), cancelled

    def _encode_now(self, claims: Mapping[str, PreparedClaim]) -> bytes:
        """:meth:`_encode` in one go (claims not cached yet are encoded here)."""
        cache = self._encoded
        records: dict[str, bytes] = {}
        for uid, pc in claims.items():
            hit = cache.get(uid)
            if hit is None or hit[0] is not pc:
                hit = cache[uid] = (pc, encode_claim(pc))
            records[uid] = hit[1]
        for uid in cache.keys() - records.keys():
            del cache[uid]
        return join_checkpoint(records, boot_id=self.boot_id)

    def _write(self, data: bytes) -> None:
        """Write ``data`` to a temporary file and rename it over the checkpoint. The directory
        (mode 0750) is created by the first write and again whenever it has gone missing."""
        assert self._path is not None
        directory = self._path.parent
        if self.inline is None:
            make_dirs(directory, 0o750)
            self.inline = filesystem_type(directory) == "tmpfs"
        # a fresh, unguessable temporary name created with O_EXCL: never someone's symlink
        tmp = f"{directory}/.{self._path.name}.tmp-{os.getpid()}-{secrets.token_hex(8)}"
        try:
            try:
                write_new_file(tmp, data)
            except FileNotFoundError:  # somebody removed the directory since the last write
                make_dirs(directory, 0o750)
                write_new_file(tmp, data)
            os.replace(tmp, self._path)  # rename replaces a symlink itself, never its target
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
