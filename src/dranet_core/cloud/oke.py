"""OKE / Oracle Cloud (``--cloud-provider-hint=OKE``): the Go driver's ``oke.dra.net/*``.

One request: ``GET <base>/opc/v2/host/`` with ``Authorization: Bearer Oracle`` (default base
``http://169.254.169.254``). The host document's ``rdmaTopologyData`` (present on RDMA shapes
when topology data is enabled for the tenancy) gives, on every device, each when not empty:
``oke.dra.net/hpcIslandId`` (``customerHPCIslandId``), ``oke.dra.net/networkBlockId``
(``customerNetworkBlock``), ``oke.dra.net/localBlockId`` (``customerLocalBlock``),
``oke.dra.net/gpuMemoryFabricId`` (``customerGpuMemoryFabric``), each the OCID's part after
its last ``.`` cut to its last 60 characters (attribute strings hold at most 64 bytes), and
``oke.dra.net/rackId`` (the document's ``rackId`` as is). Without ``rdmaTopologyData`` there
are no OKE attributes; a topology value that is not an OCID is an error (no attributes).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dranet_core.cloud.attributes import CloudAttributes
from dranet_core.cloud.imds import MetadataClient, MetadataError
from dranet_core.types import AttributeValue

__all__ = ["DEFAULT_URL", "fetch", "ocid_suffix", "oke_attributes"]

DEFAULT_URL = "http://169.254.169.254"
_P = "oke.dra.net/"
_TOPOLOGY = (
    ("hpcIslandId", "customerHPCIslandId"),
    ("networkBlockId", "customerNetworkBlock"),
    ("localBlockId", "customerLocalBlock"),
    ("gpuMemoryFabricId", "customerGpuMemoryFabric"),
)


def ocid_suffix(ocid: str) -> str:
    """The unique part of an OCID (after the last ``.``, at most 60 characters); ValueError if
    ``ocid`` is not one."""
    if not ocid:
        return ""
    if "ocid" not in ocid or "." not in ocid:
        raise ValueError(f"not an OCID: {ocid!r}")
    return ocid.rsplit(".", 1)[1][-60:]


def oke_attributes(host: Mapping[str, Any]) -> CloudAttributes:
    """The Go driver's OKE attributes from the ``/opc/v2/host/`` document; ValueError if a
    topology value is not an OCID."""
    topo = host.get("rdmaTopologyData")
    if not isinstance(topo, Mapping):
        return CloudAttributes()
    node: dict[str, AttributeValue] = {}
    for name, key in _TOPOLOGY:
        value = ocid_suffix(str(topo.get(key) or ""))
        if value:
            node[_P + name] = value
    rack = host.get("rackId")
    if isinstance(rack, str) and rack:
        node[_P + "rackId"] = rack
    return CloudAttributes(node)


async def fetch(client: MetadataClient, sysfs: Path) -> CloudAttributes:
    """Read the host document once (module docstring); raises MetadataError."""
    host = await client.json_object("/opc/v2/host/", {"Authorization": "Bearer Oracle"})
    try:
        return oke_attributes(host)
    except ValueError as exc:
        raise MetadataError(f"GET {client.base}/opc/v2/host/: rdmaTopologyData: {exc}") from exc
