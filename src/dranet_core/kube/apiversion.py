"""Which resource.k8s.io version the API server serves: one probe shared by every user.

The publisher (slices, claim status, events) and the claim source ask the same
:class:`ResourceApiVersion`, so the server is asked once, and a version that disappears (a
404 on a path that used to work) is forgotten for all of them at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["RESOURCE_API_VERSIONS", "ResourceApiVersion"]

log = logging.getLogger(__name__)

RESOURCE_API_VERSIONS: tuple[str, ...] = ("v1", "v1beta2", "v1beta1")
"""resource.k8s.io versions the driver speaks, most preferred first."""


class ResourceApiVersion:
    """The served resource.k8s.io version, probed once through ``api_client`` and cached.

    :meth:`get` raises :class:`~dranet_core.errors.KubeApiError` (temporary when the server
    cannot be reached, status 404 when it serves none of ``preferred``).
    """

    def __init__(
        self,
        api_client: Any,
        *,
        preferred: tuple[str, ...] = RESOURCE_API_VERSIONS,
        request_timeout: float = 10.0,
        known: str | None = None,
    ) -> None:
        self.api_client = api_client
        self.preferred = preferred
        self.request_timeout = request_timeout
        self.version = known
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"ResourceApiVersion({self.version or 'not probed'})"

    async def get(self) -> str:
        """The version to use (probes on first use and after :meth:`forget`)."""
        async with self._lock:
            if self.version is None:
                from dranet_core.kube.client import probe_resource_api_version

                self.version = await probe_resource_api_version(
                    self.api_client, preferred=self.preferred, request_timeout=self.request_timeout
                )
                log.info("using resource.k8s.io/%s", self.version)
            return self.version

    def forget(self, version: str) -> None:
        """``version`` stopped working: probe again next time (unless already re-probed)."""
        if self.version == version:
            self.version = None
