"""Parked devices: home under a temporary name because their own was taken; renamed back later.

A device that comes home while another link holds its name waits as ``drn<ifindex hex>``
(:func:`.hostside.temp_name`). :class:`ParkedDevices` remembers each one (host ifindex, DRA
device name, host snapshot) and gives it its name back once the name is free:
:meth:`ParkedDevices.retry` is one pass; the mover repeats it every :attr:`ParkedDevices.interval`
(:meth:`.mover.NetdevMover.run`, the long-lived job the driver supervises).

The list is durable when a state file is given (the driver puts ``netdev-parked.json`` next
to its checkpoint): written atomically (a new file renamed over the old one; a
symlink in its place is never followed) on every change, and read back at start, so a device
parked before a restart is renamed back after it. It is not fsynced: a killed process leaves
the old or the new file (the page cache outlives the process), and after a reboot no entry
holds anyway (the devices carry their udev names again). An unreadable state file is set aside as
``<name>.bad`` with one log line; nothing else depends on it (the device stays home, only
under its temporary name, and the name frees nothing).

An entry is kept only while the link at that ifindex still carries the temporary name;
otherwise it is dropped (the device was attached again, renamed by someone, or is gone).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from dranet_backends.netdev.hostside import HostSide, temp_name
from dranet_backends.netdev.snapshot import HostSnapshot
from dranet_core.errors import DeviceError

__all__ = ["STATE_FILE", "ParkedDevices", "RestoreFn"]

log = logging.getLogger(__name__)

STATE_FILE = "netdev-parked.json"
"""The state file's name in the driver's state directory."""

RestoreFn = Callable[[str, HostSnapshot, Any], Awaitable[None]]
"""``restore(device, snapshot, link)``: restore the snapshot on a home link."""

_VERSION = 1


class ParkedDevices:
    """Devices parked under a temporary name (see the module docstring)."""

    def __init__(self, host: HostSide, *, state_file: Path | None = None, interval: float = 5.0) -> None:
        self._host = host
        self._file = state_file
        self.interval = interval
        self._parked: dict[int, tuple[str, HostSnapshot]] = {}
        self._load()

    def __repr__(self) -> str:
        return f"ParkedDevices({len(self._parked)} parked, state_file={self._file})"

    @property
    def names(self) -> dict[int, str]:
        """Host ifindex -> the name each parked device waits for."""
        return {index: snap.ifname for index, (_, snap) in self._parked.items()}

    def park(self, index: int, device: str, snap: HostSnapshot) -> None:
        """Remember that host link ``index`` (DRA ``device``) waits for ``snap.ifname``."""
        self._parked[index] = (device, snap)
        self._save()

    def forget(self, index: int) -> None:
        """The device at ``index`` is no longer parked."""
        if self._parked.pop(index, None) is not None:
            self._save()

    async def retry(self, restore: RestoreFn) -> int:
        """One pass: rename every parked device whose name is free; returns how many.

        The rename is tried with the link as it is (recent kernels rename an up link); if
        the kernel wants it down (EBUSY), it is taken down, renamed and ``restore`` runs
        again, since taking a link down flushes its routes and IPv6 addresses.
        """
        if not self._parked:
            return 0
        host = await self._host.rtnl()
        done = 0
        for index, (device, snap) in list(self._parked.items()):
            link = await host.link_get(index=index)
            if link is None or link.get("ifname") != temp_name(snap.ifindex):
                log.info("parked device %s (ifindex %d) moved on; no longer waiting", device, index)
                self.forget(index)
                continue
            if await host.link_get(ifname=snap.ifname) is not None:
                continue
            try:
                try:
                    await host.link_set(index, [("IFLA_IFNAME", snap.ifname)])
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        raise
                    await host.link_set(index, [], up=False)
                    await host.link_set(index, [("IFLA_IFNAME", snap.ifname)])
                    await restore(device, snap, await host.link_get(index=index))
            except (OSError, DeviceError) as exc:
                log.warning("renaming ifindex %d back to %s failed: %s", index, snap.ifname, exc)
                continue
            log.info("parked device %s renamed back to %s", device, snap.ifname)
            self.forget(index)
            done += 1
        return done

    # -- the state file ------------------------------------------------------------------

    def _load(self) -> None:
        if self._file is None:
            return
        try:
            fd = os.open(self._file, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return
        except OSError as exc:
            self._set_aside(f"cannot be opened: {exc.strerror}")
            return
        try:
            with os.fdopen(fd, "rb") as f:
                raw = f.read(16 << 20)
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("version") != _VERSION:
                raise ValueError(f"version must be {_VERSION}")
            entries = data.get("parked")
            if not isinstance(entries, list):
                raise ValueError("parked must be a list")
            for entry in entries:
                if not isinstance(entry, dict):
                    raise ValueError("each parked entry must be an object")
                index, device = entry.get("ifindex"), entry.get("device")
                if not isinstance(index, int) or isinstance(index, bool) or not isinstance(device, str):
                    raise ValueError("each parked entry needs an integer ifindex and a device name")
                self._parked[index] = (device, HostSnapshot.from_json(entry.get("snapshot")))
        except (OSError, ValueError, RecursionError) as exc:
            self._parked.clear()
            self._set_aside(str(exc)[:200])
            return
        if self._parked:
            log.info("%d parked device(s) waiting for their names: %s", len(self._parked), self.names)

    def _set_aside(self, why: str) -> None:
        assert self._file is not None
        bad = self._file.with_name(self._file.name + ".bad")
        log.error("parked-device state %s is unusable (%s); set aside as %s", self._file, why, bad)
        try:
            os.replace(self._file, bad)
        except OSError as exc:
            log.error("cannot set %s aside: %s", self._file, exc.strerror)

    def _save(self) -> None:
        if self._file is None:
            return
        entries = [
            {"ifindex": index, "device": device, "snapshot": snap.to_json()}
            for index, (device, snap) in sorted(self._parked.items())
        ]
        data = json.dumps({"version": _VERSION, "parked": entries}, sort_keys=True).encode()
        tmp = self._file.with_name(f".{self._file.name}.tmp-{os.getpid()}")
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, self._file)
        except OSError as exc:
            # the rename-back still happens while this process lives; only a restart forgets
            log.error("cannot write parked-device state %s: %s", self._file, exc.strerror)
