"""Alibaba Cloud (``--cloud-provider-hint=ALIBABA``): the Go driver's ``alibaba.dra.net/*``.

IMDS in hardened mode (default base ``http://100.100.100.200``): ``PUT <base>/latest/api/token``
with ``X-aliyun-ecs-metadata-token-ttl-seconds`` gives a token, then
``GET <base>/latest/meta-data/instance/instance-type`` with ``X-aliyun-ecs-metadata-token``
gives the instance type (plain text): ``alibaba.dra.net/instanceType`` on every device.

``alibaba.dra.net/erdma`` (true) goes on the device whose ``dra.net/pciAddress`` is the PCI
function of an eRDMA device: an entry ``erdma*`` of ``<sysfs>/class/infiniband`` whose
``device`` link points at it. As in the Go driver, a failed metadata read is one warning and
the eRDMA attributes are still published.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from dranet_core.cloud.attributes import CloudAttributes
from dranet_core.cloud.imds import MetadataClient, MetadataError
from dranet_core.types import AttributeValue

__all__ = ["DEFAULT_URL", "erdma_pci_addresses", "fetch"]

log = logging.getLogger(__name__)

DEFAULT_URL = "http://100.100.100.200"
TOKEN_TTL_SECONDS = "21600"


def erdma_pci_addresses(sysfs: Path) -> set[str]:
    """PCI addresses of the host's eRDMA devices (module docstring)."""
    root = sysfs / "class" / "infiniband"
    try:
        names = [n for n in os.listdir(root) if n.startswith("erdma")]
    except OSError:
        return set()
    out = set()
    for name in names:
        try:
            out.add(os.path.basename(os.readlink(root / name / "device")))
        except OSError:
            continue
    return out


async def fetch(client: MetadataClient, sysfs: Path) -> CloudAttributes:
    """The instance type from IMDS and the eRDMA devices from sysfs (module docstring)."""
    node: dict[str, AttributeValue] = {}
    try:
        token = await client.text(
            "/latest/api/token", {"X-aliyun-ecs-metadata-token-ttl-seconds": TOKEN_TTL_SECONDS}, method="PUT"
        )
        kind = await client.text(
            "/latest/meta-data/instance/instance-type", {"X-aliyun-ecs-metadata-token": token}
        )
        if kind:
            node["alibaba.dra.net/instanceType"] = kind
    except MetadataError as exc:
        log.warning("cloud provider ALIBABA: %s; no alibaba.dra.net/instanceType", exc)
    by_pci: dict[str, dict[str, AttributeValue]] = {
        bdf: {"alibaba.dra.net/erdma": True} for bdf in erdma_pci_addresses(sysfs)
    }
    return CloudAttributes(node, by_pci=by_pci)
