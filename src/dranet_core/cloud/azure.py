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

The network metadata also gives each NIC a baseline config (the Go driver's
``GetDeviceConfig``), merged under a claim's own config at prepare: for the NIC at index
``i`` of ``interface`` with a first IPv4 subnet ``A/P``, a rule ``from A/P`` to table
``100 + i`` and a route ``0.0.0.0/0 via <A + 1>`` in that table (policy routing, so the pod
answers through the NIC it was reached on). A subnet whose address is not its network base is
one warning and no baseline. The Go driver's IPv6 counterpart (from the host's IPv6 default
gateway of the link) is not produced.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dranet_core.cloud.attributes import CloudAttributes
from dranet_core.cloud.imds import MetadataClient, MetadataError
from dranet_core.config.model import NetworkConfig, RouteConfig, RuleConfig
from dranet_core.types import AttributeValue

__all__ = ["API_VERSION", "DEFAULT_URL", "ROUTING_TABLE_BASE", "azure_attributes", "azure_baselines", "fetch"]

log = logging.getLogger(__name__)

DEFAULT_URL = "http://169.254.169.254"
API_VERSION = "2025-11-11"
_P = "azure.dra.net/"
ROUTING_TABLE_BASE = 100
_NODE = ("vmSize", "placementGroupId", "interconnectGroupId", "interconnectSubgroupId")


def azure_attributes(compute: Mapping[str, Any], network: Mapping[str, Any] | None) -> CloudAttributes:
    """The Go driver's Azure attributes (and baselines) from the compute and network documents."""
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
        subnet = _first_subnet(nic)
        if subnet is not None:
            by_mac.setdefault(nic["macAddress"], {_P + "subnet": "/".join(subnet)})
    return CloudAttributes(
        node, by_mac, configs_by_mac=azure_baselines(network) if network is not None else None
    )


def _first_subnet(nic: Mapping[str, Any]) -> tuple[str, str] | None:
    ipv4 = nic.get("ipv4")
    subnets = ipv4.get("subnet") if isinstance(ipv4, Mapping) else None
    first = subnets[0] if isinstance(subnets, list) and subnets else None
    if not isinstance(first, Mapping):
        return None
    address, prefix = first.get("address"), first.get("prefix")
    if isinstance(address, str) and isinstance(prefix, str) and address and prefix:
        return address, prefix
    return None


def azure_baselines(network: Mapping[str, Any]) -> dict[str, NetworkConfig]:
    """MAC -> the Go driver's per-NIC policy-routing baseline (module docstring)."""
    out: dict[str, NetworkConfig] = {}
    nics = network.get("interface")
    for index, nic in enumerate(nics if isinstance(nics, list) else []):
        if not isinstance(nic, Mapping) or not isinstance(nic.get("macAddress"), str):
            continue
        subnet = _first_subnet(nic)
        if subnet is None:
            continue
        cidr = "/".join(subnet)
        try:
            net = ipaddress.IPv4Network(cidr)
        except ValueError as exc:
            log.warning(
                "cloud provider AZURE: NIC %s: subnet %s: %s; no baseline config",
                nic["macAddress"],
                cidr,
                exc,
            )
            continue
        if net.num_addresses < 2:
            log.warning(
                "cloud provider AZURE: NIC %s: subnet %s has no gateway address; no baseline config",
                nic["macAddress"],
                cidr,
            )
            continue
        table = ROUTING_TABLE_BASE + index
        out.setdefault(
            nic["macAddress"],
            NetworkConfig(
                rules=(RuleConfig(source=cidr, table=table),),
                routes=(
                    RouteConfig(destination="0.0.0.0/0", gateway=str(net.network_address + 1), table=table),
                ),
            ),
        )
    return out


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
