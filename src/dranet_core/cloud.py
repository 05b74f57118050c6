"""Cloud provider attributes: ``--cloud-provider-hint`` read once at start, added to devices.

The Go driver's ``--cloud-provider-hint`` names the cloud whose instance metadata service
describes this node. At start the driver asks it once (``--cloud-metadata-url`` overrides the
provider's well-known address, ``--cloud-metadata-timeout`` bounds the whole fetch); a failure
(timeout, refused, not 200, bad JSON) is one warning line and the driver runs without cloud
attributes. The answer is kept for the process lifetime and added to every scan's devices
(:meth:`CloudAttributes.apply`), so a rescan never loses them.

Supported providers and the attributes they publish (names and values as in the Go driver):

* ``GCE`` (``GET <url>/computeMetadata/v1/instance/?recursive=true``, header
  ``Metadata-Flavor: Google``): on every device ``gce.dra.net/machineType`` (the last part of
  ``machineType``) and, when ``attributes.physical_host`` is ``/block/subBlock/host``,
  ``gce.dra.net/block``, ``gce.dra.net/subBlock``, ``gce.dra.net/host``; on the device whose
  ``dra.net/mac`` equals a vNIC's ``mac`` (case-insensitive): ``gce.dra.net/networkName``,
  ``gce.dra.net/networkProjectNumber`` (int, from ``projects/<number>/networks/<name>``) and
  ``gce.dra.net/ipAliases`` (comma-joined, when the vNIC has any).

Other hints (``AWS``, ``AZURE``, ``OKE``, ``ALIBABA``, ``webhook``) are logged as not
supported and publish nothing; empty and ``NONE`` mean no provider (no auto-detection).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp

from dranet_core.types import AttributeValue, Device

__all__ = ["GCE_DEFAULT_URL", "CloudAttributes", "fetch_cloud_attributes", "gce_attributes"]

log = logging.getLogger(__name__)

GCE_DEFAULT_URL = "http://metadata.google.internal"
_GCE = "gce.dra.net/"
_SUPPORTED = {"gce": GCE_DEFAULT_URL}


class CloudAttributes:
    """Node-level attributes plus per-MAC attributes, added to the devices of every scan."""

    def __init__(
        self,
        node: Mapping[str, AttributeValue] | None = None,
        by_mac: Mapping[str, Mapping[str, AttributeValue]] | None = None,
    ) -> None:
        self.node = dict(node or {})
        self.by_mac = {mac.lower(): dict(a) for mac, a in (by_mac or {}).items()}

    def __bool__(self) -> bool:
        return bool(self.node) or any(self.by_mac.values())

    def apply(self, devices: Mapping[str, Device]) -> dict[str, Device]:
        """``devices`` with the cloud attributes added (the cloud's values win, as in Go)."""
        out: dict[str, Device] = {}
        for name, dev in devices.items():
            mac = str(dev.attributes.get("dra.net/mac") or "").lower()
            extra = {**self.node, **self.by_mac.get(mac, {})} if mac or self.node else {}
            if extra and any(dev.attributes.get(k) != v for k, v in extra.items()):
                dev = Device(
                    name=name,
                    attributes={**dev.attributes, **extra},
                    capacity=dev.capacity,
                    facets=dev.facets,
                    allow_multiple_allocations=dev.allow_multiple_allocations,
                )
            out[name] = dev
        return out


def _last(path: object) -> str:
    return str(path or "").rstrip("/").rsplit("/", 1)[-1]


def gce_attributes(doc: Mapping[str, Any]) -> CloudAttributes:
    """The Go driver's GCE attributes from an ``instance/?recursive=true`` document."""
    node: dict[str, AttributeValue] = {}
    machine = _last(doc.get("machineType"))
    if machine:
        node[_GCE + "machineType"] = machine
    meta = doc.get("attributes")
    topology = str(meta.get("physical_host") or "") if isinstance(meta, Mapping) else ""
    parts = topology.split("/")
    if len(parts) == 4 and parts[0] == "" and all(parts[1:]):
        node.update({_GCE + "block": parts[1], _GCE + "subBlock": parts[2], _GCE + "host": parts[3]})
    by_mac: dict[str, dict[str, AttributeValue]] = {}
    nics = doc.get("networkInterfaces")
    for nic in nics if isinstance(nics, list) else []:
        if not isinstance(nic, Mapping) or not nic.get("mac"):
            continue
        attrs: dict[str, AttributeValue] = {}
        net = str(nic.get("network") or "").split("/")
        if len(net) == 4 and net[0] == "projects" and net[2] == "networks" and net[1].isdigit():
            attrs[_GCE + "networkName"] = net[3]
            attrs[_GCE + "networkProjectNumber"] = int(net[1])
        aliases = nic.get("ipAliases")
        if isinstance(aliases, list) and aliases:
            attrs[_GCE + "ipAliases"] = ",".join(str(a) for a in aliases)
        by_mac[str(nic["mac"])] = attrs
    return CloudAttributes(node, by_mac)


async def _get_json(url: str, headers: Mapping[str, str], seconds: float) -> Any:
    t = aiohttp.ClientTimeout(total=seconds)
    async with aiohttp.ClientSession(timeout=t) as session, session.get(url, headers=dict(headers)) as resp:
        body = await resp.read()
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status}")
        return json.loads(body)


async def fetch_cloud_attributes(hint: str, url: str = "", *, seconds: float = 5.0) -> CloudAttributes:
    """Ask the ``hint`` provider's metadata service once; never raises (module docstring)."""
    key = hint.strip().lower()
    if key in ("", "none"):
        return CloudAttributes()
    if key not in _SUPPORTED:
        log.warning("--cloud-provider-hint=%s is not supported by this driver: no cloud attributes", hint)
        return CloudAttributes()
    base = (url or _SUPPORTED[key]).rstrip("/")
    target = f"{base}/computeMetadata/v1/instance/?recursive=true"
    try:
        doc = await _get_json(target, {"Metadata-Flavor": "Google"}, seconds)
        if not isinstance(doc, Mapping):
            raise ValueError("not a JSON object")
        return gce_attributes(doc)
    except TimeoutError:
        reason = f"no answer within {seconds}s"
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        reason = str(exc) or type(exc).__name__
    log.warning("cloud provider %s: metadata %s: %s; no cloud attributes", hint, target, reason)
    return CloudAttributes()
