"""The kubelet plugin registration service (``pluginregistration.Registration``).

The kubelet dials ``<root>/plugins_registry/<driver>-reg.sock``, calls ``GetInfo`` and tells
us the verdict with ``NotifyRegistrationStatus``; recent kubelets keep polling ``GetInfo``
every 10 s, so this service lives as long as the driver. A rejection is logged with the
kubelet's reason and kept in :class:`RegistrationHealth` for the driver's health endpoint.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import attrs

from dranet_core._generated import pluginregistration as reg
from dranet_core.health import HealthPart

__all__ = ["DRA_PLUGIN_TYPE", "SUPPORTED_VERSIONS", "RegistrationHealth", "RegistrationServicer"]

log = logging.getLogger(__name__)

DRA_PLUGIN_TYPE = "DRAPlugin"
SUPPORTED_VERSIONS: tuple[str, ...] = ("v1.DRAPlugin", "v1beta1.DRAPlugin")
"""Advertised in this order; the kubelet picks the first it knows (not gRPC service names)."""


@attrs.frozen(kw_only=True)
class RegistrationHealth:
    """What the kubelet last told us. ``registered`` is True only after it accepted us."""

    registered: bool = False
    last_error: str | None = None
    notified_at: float | None = None
    """``time.time()`` of the last NotifyRegistrationStatus."""
    info_calls: int = 0
    """How many GetInfo calls the kubelet made (it polls every 10 s)."""


class RegistrationServicer(reg.RegistrationBase):
    """Answers the kubelet's registration calls for one DRA driver."""

    def __init__(
        self,
        driver_name: str,
        endpoint: str,
        versions: Sequence[str] = SUPPORTED_VERSIONS,
        *,
        part: HealthPart | None = None,
    ) -> None:
        self.driver_name = driver_name
        self.part = part
        if part is not None:
            part.failing("waiting for the kubelet to register us")
        self.endpoint = endpoint
        self.versions = list(versions)
        self.health = RegistrationHealth()
        self.registered = asyncio.Event()

    async def get_info(self, message: reg.InfoRequest) -> reg.PluginInfo:
        self.health = attrs.evolve(self.health, info_calls=self.health.info_calls + 1)
        return reg.PluginInfo(
            type=DRA_PLUGIN_TYPE,
            name=self.driver_name,
            endpoint=self.endpoint,
            supported_versions=self.versions,
        )

    async def notify_registration_status(
        self, message: reg.RegistrationStatus
    ) -> reg.RegistrationStatusResponse:
        now = time.time()
        if message.plugin_registered:
            if not self.health.registered:
                log.info("kubelet registered DRA driver %s (endpoint %s)", self.driver_name, self.endpoint)
            self.health = attrs.evolve(self.health, registered=True, last_error=None, notified_at=now)
            self.registered.set()
            if self.part is not None:
                self.part.ok("registered")
        else:
            reason = message.error or "(no reason given)"
            log.error("kubelet rejected the registration of DRA driver %s: %s", self.driver_name, reason)
            self.health = attrs.evolve(self.health, registered=False, last_error=reason, notified_at=now)
            self.registered.clear()
            if self.part is not None:
                self.part.failing(f"the kubelet rejected the registration: {reason}")
        return reg.RegistrationStatusResponse()
