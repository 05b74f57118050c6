"""Azure (``--cloud-provider-hint=AZURE``): the Go driver's ``azure.dra.net/*`` attributes.

Two IMDS requests (default base ``http://169.254.169.254``), both with the header
``Metadata: true``:

* ``GET <base>/metadata/instance/compute?api-version=2025-11-11&format=json``: on every
  device ``azure.dra.net/vmSize``, ``placementGroupId``, ``interconnectGroupId`` and
  ``interconnectSubgroupId``, each when not empty. Without this answer there are no Azure
  attributes.
* ``GET <base>/metadata/instance/network?api-version=2025-11-11&format=json``: on the device
  whose MAC equals an interface's ``macAddress`` (Azure writes ``000D3A...``; compared without
  separators, case-insensitive) ``azure.dra.net/subnet``, ``<address>/<prefix>`` of the first
  ``ipv4.subnet``. If this request fails it is one warning and the compute attributes stay.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dranet_core.cloud.attributes import CloudAttributes
from dranet_core.cloud.imds import MetadataClient, MetadataError
from dranet_core.types import AttributeValue

__all__ = ["API_VERSION", "DEFAULT_URL", "azure_attributes", "fetch"]

log = logging.getLogger(__name__)

DEFAULT_URL = "http://169.254.169.254"
API_VERSION = "2025-11-11"
_P = "azure.dra.net/"
_NODE = ("vmSize", "placementGroupId", "interconnectGroupId", "interconnectSubgroupId")


def azure_attributes(compute: Mapping[str, Any], network: Mapping[str, Any] | None) -> CloudAttributes:
    """The Go driver's Azure attributes from the compute and network documents."""
    node: dict[str, AttributeValue] = {}
    for key in _NODE:
        value = compute.get(key)
        if isinstance(value, str) and value:
            node[_P + key] = value
    by_mac: dict[str, dict[str, AttributeValue]] = {}
    nics = network.get("interface") if network is not None else None
    for nic in nics if isinstance(nics, list) else []:
        if not isinstance(nic, Mapping) or not isinstance(nic.get("macAddress"), str):
            continue
        ipv4 = nic.get("ipv4")
        subnets = ipv4.get("subnet") if isinstance(ipv4, Mapping) else None
        first = subnets[0] if isinstance(subnets, list) and subnets else None
        if not isinstance(first, Mapping):
            continue
        address, prefix = first.get("address"), first.get("prefix")
        if isinstance(address, str) and isinstance(prefix, str) and address and prefix:
            by_mac.setdefault(nic["macAddress"], {_P + "subnet": f"{address}/{prefix}"})
    return CloudAttributes(node, by_mac)


async def fetch(client: MetadataClient, sysfs: Path) -> CloudAttributes:
    """Read compute (required) and network (optional) metadata once (module docstring)."""
    headers = {"Metadata": "true"}
    query = f"?api-version={API_VERSION}&format=json"
    compute = await client.json_object("/metadata/instance/compute" + query, headers)
    network: dict[str, Any] | None = None
    try:
        network = await client.json_object("/metadata/instance/network" + query, headers)
    except MetadataError as exc:
        log.warning("cloud provider AZURE: %s; no azure.dra.net/subnet attributes", exc)
    return azure_attributes(compute, network)
