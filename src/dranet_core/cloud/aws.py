"""AWS (``--cloud-provider-hint=AWS``): the Go driver's Neuron/EFA device-group attributes.

IMDSv2 (default base ``http://169.254.169.254``): ``PUT <base>/latest/api/token`` with
``X-aws-ec2-metadata-token-ttl-seconds`` gives a session token, then
``GET <base>/latest/dynamic/instance-identity/document`` with ``X-aws-ec2-metadata-token``
gives the identity document, of which only ``instanceType`` is used.

Like the Go driver, AWS publishes no node-wide attributes. On a Neuron instance (an
``instanceType`` whose letters before the first digit are ``trn`` or ``inf``) whose DMI product
name (``<sysfs>/devices/virtual/dmi/id/product_name``) is an EFA-enabled Trainium type
(:data:`~dranet_core.cloud.neuron_topology.FAMILY_OF_INSTANCE_TYPE`), every EFA adapter of
that type's topology that is bound to the ``efa`` driver
(``<sysfs>/bus/pci/devices/<address>/driver``) gets ``resource.aws.com/devicegroup1_id``,
``devicegroup4_id``, ``devicegroup8_id`` and ``devicegroup16_id`` on the device with that
``dra.net/pciAddress`` (:func:`~dranet_core.cloud.neuron_topology.efa_device_groups`). The
driver bindings are read once at start, with the metadata.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from dranet_core.cloud.attributes import CloudAttributes
from dranet_core.cloud.imds import MetadataClient
from dranet_core.cloud.neuron_topology import FAMILY_OF_INSTANCE_TYPE, efa_device_groups
from dranet_core.types import AttributeValue

__all__ = ["DEFAULT_URL", "fetch", "is_neuron_instance", "neuron_efa_attributes"]

log = logging.getLogger(__name__)

DEFAULT_URL = "http://169.254.169.254"
TOKEN_TTL_SECONDS = "21600"


def is_neuron_instance(instance_type: str) -> bool:
    """True for Trainium and Inferentia types (``trn1.32xlarge``, ``inf2.xlarge``, ...)."""
    m = re.match(r"[^0-9]*", instance_type.lower())
    return m is not None and m.group(0) in ("trn", "inf")


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _driver(sysfs: Path, bdf: str) -> str:
    try:
        return os.path.basename(os.readlink(sysfs / "bus" / "pci" / "devices" / bdf / "driver"))
    except OSError:
        return ""


def neuron_efa_attributes(sysfs: Path) -> dict[str, dict[str, AttributeValue]]:
    """PCI address -> device-group attributes of this host's EFA adapters (module docstring)."""
    product = _read(sysfs / "devices" / "virtual" / "dmi" / "id" / "product_name")
    family = FAMILY_OF_INSTANCE_TYPE.get(product)
    if family is None:
        log.info("AWS: instance type %r (DMI product name) has no Neuron/EFA topology", product)
        return {}
    return {bdf: dict(a) for bdf, a in efa_device_groups(family).items() if _driver(sysfs, bdf) == "efa"}


async def fetch(client: MetadataClient, sysfs: Path) -> CloudAttributes:
    """IMDSv2 token, identity document, then the EFA attributes (module docstring)."""
    token = await client.text(
        "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": TOKEN_TTL_SECONDS}, method="PUT"
    )
    doc = await client.json_object(
        "/latest/dynamic/instance-identity/document", {"X-aws-ec2-metadata-token": token}
    )
    instance_type = str(doc.get("instanceType") or "")
    neuron = is_neuron_instance(instance_type)
    log.info("AWS: instance type %r, region %r, neuron %s", instance_type, doc.get("region"), neuron)
    return CloudAttributes(by_pci=neuron_efa_attributes(sysfs) if neuron else {})
