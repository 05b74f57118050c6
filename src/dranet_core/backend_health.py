"""Per-device health reported by backends (``ReportsHealth``), read into one health part.

:class:`BackendHealth` asks every ``ReportsHealth`` backend for its devices' health every
``interval`` seconds (the capability is a question, so it is asked; nothing else is polled)
and pushes the result into its part: ok with the device count, naming the unhealthy devices
(a device's health is not the driver's readiness). A backend that raises fails the part and
is asked again next time. ``on_devices`` receives each complete report (device ->
healthy), e.g. the kubelet's health stream (:mod:`dranet_core.dra.health`).

Ownership (:mod:`dranet_core.ownership`): a backend speaks only for the devices it owns. An
entry for a device that does not carry the backend's facet in the current inventory is
dropped (logged once per device), so one backend can never mark another's device unhealthy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

from dranet_core.capabilities import ReportsHealth
from dranet_core.health import HealthPart
from dranet_core.ownership import owns
from dranet_core.types import Device

__all__ = ["BackendHealth"]

log = logging.getLogger(__name__)

MAX_NAMED = 5
"""How many unhealthy devices the part names before it says "and N more"."""


class BackendHealth:
    """Reads ``ReportsHealth`` backends into one health part (module doc)."""

    def __init__(
        self,
        backends: Sequence[tuple[str, ReportsHealth]],
        part: HealthPart,
        *,
        devices: Callable[[], Mapping[str, Device]],
        interval: float = 10.0,
        on_devices: Callable[[Mapping[str, bool]], None] | None = None,
    ) -> None:
        """``backends`` are ``(backend name, capability)``; ``devices`` returns the current
        inventory (device name -> Device), read at each check to know who owns what."""
        self.backends = tuple(backends)
        self._inventory = devices
        self._disowned: set[tuple[str, str]] = set()
        self.on_devices = on_devices
        self.part = part
        self.interval = interval
        self.devices: Mapping[str, bool] = {}

    def __repr__(self) -> str:
        return f"BackendHealth(backends={len(self.backends)}, devices={len(self.devices)})"

    async def check(self) -> None:
        """Ask every backend once and push the verdict."""
        merged: dict[str, bool] = {}
        errors: list[str] = []
        for backend, b in self.backends:
            try:
                report = await b.health()
            except Exception as exc:
                errors.append(f"{backend}: {type(exc).__name__}: {exc}")
                continue
            inventory = self._inventory()
            for name, ok in report.items():
                dev = inventory.get(name)
                if dev is None or not owns(backend, dev):
                    self._disown(backend, name)
                    continue
                merged[name] = merged.get(name, True) and ok  # unhealthy in any backend
        self.devices = merged
        if self.on_devices is not None and not errors:
            self.on_devices(merged)  # a full report (a failed backend's devices are not gone)
        bad = sorted(name for name, ok in merged.items() if not ok)
        if errors:
            self.part.failing("cannot read device health: " + "; ".join(errors))
        elif bad:
            # an unhealthy device (a link down) is the device's state, not the driver's: the
            # driver stays ready and the kubelet learns it through the health stream
            more = f" and {len(bad) - MAX_NAMED} more" if len(bad) > MAX_NAMED else ""
            self.part.ok(f"{len(merged)} devices; unhealthy: {', '.join(bad[:MAX_NAMED])}{more}")
        else:
            self.part.ok(f"{len(merged)} devices healthy")

    def _disown(self, backend: str, device: str) -> None:
        if (backend, device) not in self._disowned:
            self._disowned.add((backend, device))
            log.info("health of %s from backend %s ignored: it does not own that device", device, backend)

    async def run(self) -> None:
        """Check every ``interval`` seconds until cancelled."""
        while True:
            await self.check()
            await asyncio.sleep(self.interval)
