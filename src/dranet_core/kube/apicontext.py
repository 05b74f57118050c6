"""What the publisher's three writers share: one API request path and its bookkeeping.

:class:`ApiContext` holds the ApiClient, the shared resource.k8s.io version probe, the
settings and names, the injectable ``sleep``/``now`` seams, and the outcome of the last API
call (told to every :class:`~dranet_core.status.PublishListener`). The slices, claim-status
and event writers each take one and nothing of each other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dranet_core.backoff import Backoff, Retry
from dranet_core.kube.apiversion import ResourceApiVersion
from dranet_core.kube.client import resource_api
from dranet_core.status import PublishListener

if TYPE_CHECKING:
    from dranet_core.kube.publisher import PublisherSettings

__all__ = ["ApiContext"]

log = logging.getLogger(__name__)


class ApiContext:
    """Shared by the publisher's writers (module doc)."""

    def __init__(
        self,
        api_client: Any,
        *,
        settings: PublisherSettings,
        driver_name: str,
        node_name: str,
        versions: ResourceApiVersion,
        sleep: Callable[[float], Awaitable[None]],
        now: Callable[[], datetime],
    ) -> None:
        self.api_client = api_client
        self.settings = settings
        self.driver_name = driver_name
        self.node_name = node_name
        self.versions = versions
        self.sleep = sleep
        self.now = now
        self.listeners: list[PublishListener] = []
        self.last_success: float | None = None
        self.last_error: str | None = None
        self.last_error_time: float | None = None
        self.progress = asyncio.Event()

    def __repr__(self) -> str:
        return f"ApiContext(driver={self.driver_name!r}, node={self.node_name!r}, {self.versions!r})"

    @property
    def api_version(self) -> str | None:
        """The probed resource.k8s.io version, if known yet."""
        return self.versions.version

    async def ensure_api_version(self) -> str:
        """The resource.k8s.io version (probed on first use)."""
        known = self.versions.version
        version = await self.versions.get()
        if known is None:
            self.ok()
        return version

    def resource_api(self) -> Any:
        """The resource.k8s.io API object for the probed version."""
        assert self.versions.version is not None
        return resource_api(self.api_client, self.versions.version)

    def retry(self) -> Retry:
        """A fresh failure counter on the publisher's backoff settings."""
        return Retry(Backoff(base=self.settings.backoff_initial, cap=self.settings.backoff_max))

    def signal_progress(self) -> None:
        """Wake whoever waits for the writers to make progress."""
        self.progress.set()
        self.progress = asyncio.Event()

    def ok(self) -> None:
        """An API call succeeded."""
        self.last_success = time.time()
        for listener in self.listeners:
            listener.api_state(None)

    def failed(self, what: str, exc: BaseException) -> None:
        """An API call failed (it will be retried by whoever made it)."""
        self.last_error = f"{what}: {exc}"
        self.last_error_time = time.time()
        log.warning("%s failed: %s", what, exc)
        for listener in self.listeners:
            listener.api_state(self.last_error)
