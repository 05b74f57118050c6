"""The kubelet plugin: the DRA gRPC server and the registration server, with their lifecycle.

Sockets (``root`` = the kubelet root dir, default from :mod:`dranet_core.settings`)::

    <root>/plugins/<driver>/dra.sock              DRA v1 + v1beta1 (started first)
    <root>/plugins_registry/<driver>-reg.sock     registration (started second)
    <root>/plugins/<driver>/instance.lock         flock held while running

Directories we create get mode 0750 (existing ones, like the kubelet's ``plugins_registry``,
are left alone); sockets get mode 0600. A stale socket file is
removed before listening; a second instance is refused (:class:`AlreadyRunningError`) because
it cannot take the instance lock, instead of silently stealing the sockets. :meth:`run`
watches both socket files and re-creates one that was deleted or replaced (a kubelet restart
wipes the registry directory). :meth:`shutdown` refuses new prepares, lets in-flight calls
finish within the grace period, then closes and removes both sockets (registration first, so
the kubelet stops routing calls to us).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import attrs

from dranet_core.dra.registration import SUPPORTED_VERSIONS, RegistrationHealth, RegistrationServicer
from dranet_core.dra.server import UnixGrpcServer
from dranet_core.dra.servicer import ClaimPreparer, DraService, DraV1beta1Servicer, DraV1Servicer
from dranet_core.errors import AlreadyRunningError, PermanentError
from dranet_core.files import make_dirs, open_private
from dranet_core.health import HealthPart
from dranet_core.settings import KubeletSettings

__all__ = ["DEFAULT_KUBELET_ROOT", "KubeletPlugin", "PluginPaths"]

log = logging.getLogger(__name__)

DEFAULT_KUBELET_ROOT: pathlib.Path = KubeletSettings().root_dir
"""The kubelet root dir default, as defined in :class:`dranet_core.settings.KubeletSettings`."""


@attrs.frozen(kw_only=True)
class PluginPaths:
    """Where the plugin's files live."""

    registration_socket: pathlib.Path
    dra_socket: pathlib.Path
    lock_file: pathlib.Path

    @classmethod
    def for_driver(
        cls, driver_name: str, kubelet_root: str | os.PathLike[str] = DEFAULT_KUBELET_ROOT
    ) -> PluginPaths:
        """The standard layout under ``kubelet_root`` for ``driver_name``."""
        root = pathlib.Path(kubelet_root)
        plugin_dir = root / "plugins" / driver_name
        return cls(
            registration_socket=root / "plugins_registry" / f"{driver_name}-reg.sock",
            dra_socket=plugin_dir / "dra.sock",
            lock_file=plugin_dir / "instance.lock",
        )


class KubeletPlugin:
    """Registration + DRA servers for one driver. Use inside a running event loop.

    ``preparer`` does the work of NodePrepareResources / NodeUnprepareResources.
    """

    def __init__(
        self,
        driver_name: str,
        preparer: ClaimPreparer,
        *,
        kubelet_root: str | os.PathLike[str] = DEFAULT_KUBELET_ROOT,
        paths: PluginPaths | None = None,
        watch_interval: float = 1.0,
        health: HealthPart | None = None,
        dra_services: Sequence[Any] = (),
        advertised: Sequence[str] = (),
    ) -> None:
        self.driver_name = driver_name
        self.paths = paths or PluginPaths.for_driver(driver_name, kubelet_root)
        self.service = DraService(preparer)
        versions = [*SUPPORTED_VERSIONS, *advertised]  # e.g. v1.DRAResourceHealth, v1alpha1.DRAResourceHealth
        self.registration = RegistrationServicer(
            driver_name, str(self.paths.dra_socket.absolute()), versions, part=health
        )
        self._watch_interval = watch_interval
        self._dra_services = tuple(dra_services)  # more gRPC services on the DRA socket (health)
        self._dra: UnixGrpcServer | None = None
        self._reg: UnixGrpcServer | None = None
        self._lock_fd: int | None = None
        self._stopped = asyncio.Event()

    @property
    def health(self) -> RegistrationHealth:
        """Registered or not, and the kubelet's last rejection reason."""
        return self.registration.health

    async def wait_registered(self) -> None:
        """Wait until the kubelet accepted the registration."""
        await self.registration.registered.wait()

    def inflight(self) -> int:
        """Number of kubelet calls being handled now."""
        return sum(s.inflight() for s in (self._dra, self._reg) if s is not None)

    def _take_lock(self) -> None:
        path = self.paths.lock_file
        try:  # never through a symlink someone planted: we are root
            fd = open_private(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            if not os.path.islink(path):
                raise PermanentError(f"cannot take the instance lock {path}: {exc.strerror or exc}") from exc
            # a symlink is never another instance's lock (we only create regular files):
            # replace the link itself, leave its target alone
            log.warning(
                "%s is a symbolic link (to %s); replacing it with a lock file", path, os.readlink(path)
            )
            try:
                os.unlink(path)
                fd = open_private(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError as again:
                raise PermanentError(
                    f"cannot take the instance lock {path}: {again.strerror or again}"
                ) from again
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunningError(
                f"another instance of {self.driver_name} holds {self.paths.lock_file}; "
                f"refusing to take over {self.paths.dra_socket}"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    async def start(self) -> None:
        """Take the instance lock, serve DRA, then serve registration."""
        paths = self.paths
        for directory in {paths.dra_socket.parent, paths.registration_socket.parent, paths.lock_file.parent}:
            make_dirs(directory, 0o750)  # existing dirs (the kubelet's) are left as they are
        self._take_lock()
        try:
            self._dra = UnixGrpcServer(
                self.paths.dra_socket,
                [DraV1Servicer(self.service), DraV1beta1Servicer(self.service), *self._dra_services],
            )
            await self._dra.start()
            self._reg = UnixGrpcServer(self.paths.registration_socket, [self.registration])
            await self._reg.start()
        except BaseException:
            await self._close_servers(0)
            self._release_lock()
            raise

    async def run(self) -> None:
        """Start if needed, then keep both sockets present until :meth:`shutdown`.

        Returns once :meth:`shutdown` was called. If cancelled instead, it closes at once
        (in-flight calls are cancelled, sockets removed) and re-raises the cancellation.
        """
        if self._dra is None:
            await self.start()
        try:
            while not self._stopped.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), self._watch_interval)
                if self._stopped.is_set():
                    break
                await self.check_sockets()
        except asyncio.CancelledError:
            await self.shutdown(0)
            raise

    async def check_sockets(self) -> bool:
        """Re-create any socket file that vanished or was replaced; True if one was."""
        redone = False
        for server in (self._dra, self._reg):
            if server is not None:
                try:
                    redone |= await server.ensure_socket()
                except OSError as exc:
                    log.error("cannot re-create %s: %s", server.path, exc)
        return redone

    async def shutdown(self, grace: float = 5.0) -> None:
        """Refuse new prepares, finish in-flight calls within ``grace`` s, remove the sockets."""
        self.service.drain()
        self._stopped.set()
        await self._close_servers(grace)
        self._release_lock()

    async def _close_servers(self, grace: float) -> None:
        reg, dra = self._reg, self._dra
        if reg is not None:
            await reg.shutdown(grace)
        if dra is not None:
            await dra.shutdown(grace)
