"""GCE (``--cloud-provider-hint=GCE``): the Go driver's ``gce.dra.net/*`` attributes.

One request: ``GET <base>/computeMetadata/v1/instance/?recursive=true`` with the header
``Metadata-Flavor: Google`` (the default base is ``http://metadata.google.internal``). From the
instance document:

* on every device ``gce.dra.net/machineType`` (the last part of ``machineType``) and, when
  ``attributes.physical_host`` is ``/block/subBlock/host``, ``gce.dra.net/block``,
  ``gce.dra.net/subBlock`` and ``gce.dra.net/host``;
* on the device whose MAC equals a vNIC's ``mac``: ``gce.dra.net/networkName`` and
  ``gce.dra.net/networkProjectNumber`` (int, from ``projects/<number>/networks/<name>``) and
  ``gce.dra.net/ipAliases`` (comma-joined, when the vNIC has any).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dranet_core.cloud.attributes import CloudAttributes
from dranet_core.cloud.imds import MetadataClient
from dranet_core.types import AttributeValue

__all__ = ["DEFAULT_URL", "fetch", "gce_attributes"]

DEFAULT_URL = "http://metadata.google.internal"
_P = "gce.dra.net/"


def _last(path: object) -> str:
    return str(path or "").rstrip("/").rsplit("/", 1)[-1]


def gce_attributes(doc: Mapping[str, Any]) -> CloudAttributes:
    """The Go driver's GCE attributes from an ``instance/?recursive=true`` document."""
    node: dict[str, AttributeValue] = {}
    machine = _last(doc.get("machineType"))
    if machine:
        node[_P + "machineType"] = machine
    meta = doc.get("attributes")
    topology = str(meta.get("physical_host") or "") if isinstance(meta, Mapping) else ""
    parts = topology.split("/")
    if len(parts) == 4 and parts[0] == "" and all(parts[1:]):
        node.update({_P + "block": parts[1], _P + "subBlock": parts[2], _P + "host": parts[3]})
    by_mac: dict[str, dict[str, AttributeValue]] = {}
    nics = doc.get("networkInterfaces")
    for nic in nics if isinstance(nics, list) else []:
        if not isinstance(nic, Mapping) or not nic.get("mac"):
            continue
        attrs: dict[str, AttributeValue] = {}
        net = str(nic.get("network") or "").split("/")
        if len(net) == 4 and net[0] == "projects" and net[2] == "networks" and net[1].isdigit():
            attrs[_P + "networkName"] = net[3]
            attrs[_P + "networkProjectNumber"] = int(net[1])
        aliases = nic.get("ipAliases")
        if isinstance(aliases, list) and aliases:
            attrs[_P + "ipAliases"] = ",".join(str(a) for a in aliases)
        by_mac[str(nic["mac"])] = attrs
    return CloudAttributes(node, by_mac)


async def fetch(client: MetadataClient, sysfs: Path) -> CloudAttributes:
    """Read the instance document once (module docstring); raises MetadataError."""
    doc = await client.json_object(
        "/computeMetadata/v1/instance/?recursive=true", {"Metadata-Flavor": "Google"}
    )
    return gce_attributes(doc)
