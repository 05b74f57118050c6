"""Profile providers: a claim config's ``profile:`` resolved into network config at prepare.

The Go driver's "webhook" provider protocol (``--profile-provider=webhook --webhook-url``):

* ``GET <url>/health`` -> ``{"cloudProvider": bool, "profileProvider": bool}``; at start the
  provider must say ``profileProvider: true``;
* ``POST <url>/GetProfileConfig`` with ``{"device": {"mac_address", "pci_address", "name"},
  "claim_uid", "config": <the merged claim config>}`` -> a NetworkConfig (our claim config
  schema); called for each device whose config sets ``profile``; must be idempotent per
  device and claim UID;
* ``POST <url>/ReleaseProfileConfig`` with the same body when the claim is unprepared
  (best effort: a failure is logged, never retried, as in the Go driver).

Any answer but 200 with a JSON object fails the claim's prepare with an error naming the
profile, the URL and what went wrong (status, bad JSON, timeout). The claim's own config wins
over the profile's (profile lists come first), as in the Go driver. ``unix:///path`` URLs
talk HTTP over a unix socket.
"""

from __future__ import annotations

import logging
from typing import Protocol

from dranet_core.config.codec import decode_config, encode_config
from dranet_core.config.merge import merge_configs
from dranet_core.config.model import NetworkConfig
from dranet_core.errors import ConfigError, DeviceError
from dranet_core.types import Device
from dranet_core.webhook_client import WebhookClient, WebhookError

__all__ = ["ProfileProvider", "WebhookProfileProvider", "device_identity"]

log = logging.getLogger(__name__)


def device_identity(device: Device) -> dict[str, str]:
    """The Go provider protocol's device identifiers (MAC, PCI address, name)."""
    attrs = device.attributes
    return {
        "mac_address": str(attrs.get("dra.net/mac") or ""),
        "pci_address": str(attrs.get("dra.net/pciAddress") or ""),
        "name": device.name,
    }


class ProfileProvider(Protocol):
    """Resolves ``profile:`` for one device of one claim, and releases it."""

    async def resolve(self, device: Device, claim_uid: str, config: NetworkConfig) -> NetworkConfig:
        """``config`` merged with the profile's config (the claim's own settings win)."""
        ...

    async def release(self, device: Device, claim_uid: str, config: NetworkConfig) -> None:
        """Give the profile's resources back (never raises)."""
        ...


class WebhookProfileProvider:
    """The Go driver's webhook profile provider (module docstring)."""

    def __init__(self, url: str, *, request_seconds: float = 10.0) -> None:
        self.client = WebhookClient(url, request_seconds=request_seconds)
        self.url = self.client.url

    def __repr__(self) -> str:
        return f"WebhookProfileProvider({self.url!r})"

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.client.close()

    async def check(self) -> None:
        """At start: the webhook must say it is a profile provider; raises ConfigError if not."""
        try:
            health = await self.client.call("GET", "/health")
        except WebhookError as exc:
            raise ConfigError(f"--webhook-url: {exc}") from exc
        if not isinstance(health, dict) or health.get("profileProvider") is not True:
            raise ConfigError(
                f"--webhook-url: {self.url}/health does not report profileProvider: true ({health!r})"
            )

    async def resolve(self, device: Device, claim_uid: str, config: NetworkConfig) -> NetworkConfig:
        body = {"device": device_identity(device), "claim_uid": claim_uid, "config": encode_config(config)}
        try:
            answer = await self.client.call("POST", "/GetProfileConfig", body)
            profile = decode_config(answer, path="GetProfileConfig")
        except WebhookError as exc:
            raise DeviceError(
                device.name, f"profile {config.profile!r}", str(exc), temporary=exc.temporary
            ) from exc
        except ConfigError as exc:
            raise DeviceError(device.name, f"profile {config.profile!r}", f"{self.url}: {exc}") from exc
        return merge_configs([profile, config])

    async def release(self, device: Device, claim_uid: str, config: NetworkConfig) -> None:
        body = {"device": device_identity(device), "claim_uid": claim_uid, "config": encode_config(config)}
        try:
            await self.client.call("POST", "/ReleaseProfileConfig", body)
        except WebhookError as exc:
            log.warning(
                "profile %r of device %s (claim %s): release failed: %s",
                config.profile,
                device.name,
                claim_uid,
                exc,
            )
