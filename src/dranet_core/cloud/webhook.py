"""``--cloud-provider-hint=webhook``: device attributes and baseline config from a webhook.

The Go driver's "cloud provider" half of the webhook protocol (``--webhook-url``, the same
server the webhook profile provider may use):

* at start ``GET <url>/health`` must answer ``{"cloudProvider": true, ...}``; otherwise (not
  reachable, not 200, not JSON, or ``cloudProvider`` not true) it is one warning line and the
  driver runs on without the webhook's attributes and configs;
* at every inventory scan, for each device, ``POST <url>/GetDeviceAttributes`` and
  ``POST <url>/GetDeviceConfig`` with the device's identifiers
  ``{"name": <interface name, else device name>, "mac_address": ..., "pci_address": ...}``
  (the last two only when known):

  - ``GetDeviceAttributes`` answers a JSON object mapping attribute names to
    ``{"string"|"int"|"bool"|"version": value}`` or a list, ``{"ints"|"bools"|"strings"|"versions":
    [...]}`` (the ResourceSlice layout; lists are published as lists only with
    ``--feature-gates=DRAListTypeAttributes=true``, else their first item); they are added to
    the device, the webhook's values winning. An entry whose name or value breaks the
    ResourceSlice rules is left out;
  - ``GetDeviceConfig`` answers a claim configuration (the claim config schema), the
    device's baseline: at prepare it is merged under the claim's own config (the claim's
    settings win, its lists come after the baseline's), before any ``profile`` is resolved.

  A failed call (not 200, not JSON, timed out) leaves that device without the webhook's
  attributes or baseline for that scan. Each problem is one warning line naming the device,
  the call and what went wrong, logged when it first appears for that device, not at every
  scan.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import attrs

from dranet_core.config.codec import decode_config
from dranet_core.config.model import NetworkConfig
from dranet_core.errors import ConfigError
from dranet_core.types import (
    STRING_ATTRIBUTE_MAX_LEN,
    AttributeValue,
    Device,
    attribute_from_json,
    validate_qualified_name,
)
from dranet_core.webhook_client import WebhookClient, WebhookError

__all__ = ["WebhookCloud", "decode_attributes", "device_identifiers"]

log = logging.getLogger("dranet_core.cloud")


def device_identifiers(device: Device) -> dict[str, str]:
    """The Go protocol's ``DeviceIdentifiers`` of ``device`` (empty MAC/PCI left out)."""
    attrs = device.attributes
    out = {"name": str(attrs.get("dra.net/ifName") or device.name)}
    if mac := str(attrs.get("dra.net/mac") or ""):
        out["mac_address"] = mac
    if pci := str(attrs.get("dra.net/pciAddress") or ""):
        out["pci_address"] = pci
    return out


def _value(name: str, raw: object) -> AttributeValue:
    """One attribute of the answer, in the ResourceSlice layout: a scalar or (Kubernetes 1.36
    list attributes) ``ints``/``bools``/``strings``/``versions``."""
    try:  # list items are checked by AttributeList (one type, strings <= 64 characters)
        value = attribute_from_json(dict(raw) if isinstance(raw, Mapping) else raw)
    except ValueError as exc:
        raise ValueError(f"attribute {name}: {exc}") from None
    if isinstance(value, str) and len(value) > STRING_ATTRIBUTE_MAX_LEN:
        raise ValueError(f"attribute {name}: string longer than {STRING_ATTRIBUTE_MAX_LEN} characters")
    return value


def decode_attributes(answer: object) -> tuple[dict[str, AttributeValue], list[str]]:
    """The attributes in a ``GetDeviceAttributes`` answer, and one problem per entry left out."""
    if answer is None:
        return {}, []
    if not isinstance(answer, Mapping):
        return {}, [f"the answer must be a JSON object, got {type(answer).__name__}"]
    out: dict[str, AttributeValue] = {}
    problems = []
    for name, raw in answer.items():
        try:
            validate_qualified_name(name)
            out[name] = _value(name, raw)
        except ValueError as exc:
            problems.append(str(exc))
    return out, problems


class WebhookCloud:
    """The Go driver's webhook cloud provider (module docstring)."""

    def __init__(self, url: str, *, request_seconds: float = 10.0) -> None:
        self.client = WebhookClient(url, request_seconds=request_seconds)
        self._baselines: dict[str, NetworkConfig] = {}
        self._problems: dict[tuple[str, str], str] = {}  # (device, call) -> last logged problem

    def __repr__(self) -> str:
        return f"WebhookCloud({self.client.url!r})"

    async def check(self) -> bool:
        """At start: True if the webhook says ``cloudProvider: true``; else one warning."""
        try:
            health = await self.client.call("GET", "/health")
        except WebhookError as exc:
            log.warning("cloud provider webhook: %s; no cloud attributes", exc)
            return False
        if not isinstance(health, dict) or health.get("cloudProvider") is not True:
            log.warning(
                "cloud provider webhook: %s/health does not report cloudProvider: true (%r); "
                "no cloud attributes",
                self.client.url,
                health,
            )
            return False
        return True

    def baseline(self, device: str) -> NetworkConfig | None:
        """The baseline config the webhook gave ``device`` at the last scan, if any."""
        return self._baselines.get(device)

    async def enrich(self, devices: Mapping[str, Device]) -> dict[str, Device]:
        """``devices`` with the webhook's attributes; records each device's baseline config."""
        names = list(devices)
        found = await asyncio.gather(*(self._ask(devices[n]) for n in names))
        out: dict[str, Device] = {}
        self._baselines = {}
        for name, (extra, baseline) in zip(names, found, strict=True):
            dev = devices[name]
            if baseline is not None:
                self._baselines[name] = baseline
            if extra and any(dev.attributes.get(k) != v for k, v in extra.items()):
                try:
                    dev = attrs.evolve(dev, attributes={**dev.attributes, **extra})
                except ValueError as exc:  # e.g. over the attribute limit: keep the device as it was
                    self._problem(name, "GetDeviceAttributes", str(exc))
            out[name] = dev
        for key in [k for k in self._problems if k[0] not in devices]:
            del self._problems[key]
        return out

    async def _ask(self, dev: Device) -> tuple[dict[str, AttributeValue], NetworkConfig | None]:
        body = device_identifiers(dev)
        (attrs_ok, attrs_answer), (config_ok, config_answer) = await asyncio.gather(
            self._call(dev.name, "GetDeviceAttributes", body), self._call(dev.name, "GetDeviceConfig", body)
        )
        attrs: dict[str, AttributeValue] = {}
        if attrs_ok:
            attrs, problems = decode_attributes(attrs_answer)
            self._problem(dev.name, "GetDeviceAttributes", "; ".join(problems))
        baseline: NetworkConfig | None = None
        if config_ok:
            try:
                baseline = decode_config(config_answer, path="GetDeviceConfig")
                self._problem(dev.name, "GetDeviceConfig", "")
            except ConfigError as exc:
                self._problem(dev.name, "GetDeviceConfig", str(exc))
        return attrs, (baseline if baseline != NetworkConfig() else None)

    async def _call(self, device: str, call: str, body: Mapping[str, Any]) -> tuple[bool, Any]:
        try:
            return True, await self.client.call("POST", "/" + call, body)
        except WebhookError as exc:
            self._problem(device, call, str(exc))
            return False, None

    def _problem(self, device: str, call: str, problem: str) -> None:
        key = (device, call)
        if not problem:
            self._problems.pop(key, None)
        elif self._problems.get(key) != problem:
            self._problems[key] = problem
            log.warning("cloud provider webhook: device %s: %s: %s", device, call, problem)

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.client.close()
