"""The device metadata file and its CDI spec as values: paths, names, JSON. No I/O.

For each prepared claim and each request (its base name: ``req`` of ``req/sub``) the driver
keeps one file on the host and one CDI spec that bind-mounts it into the containers using
that request (:class:`MetadataLayout` says where). The file is a JSON stream: the same
``DeviceMetadata`` object once per configured API version, in order, each followed by a
newline (:func:`encode_stream`); readers take the first version they know
(:mod:`dranet_core.metadata.reader`).

The object (:func:`metadata_object`)::

    {"apiVersion": "metadata.resource.k8s.io/v1beta1", "kind": "DeviceMetadata",
     "metadata": {"name": ..., "namespace": ..., "uid": ..., "generation": 1},
     "podClaimName": ...,                      # only for a claim made from a template
     "requests": [{"name": "nic", "devices": [
         {"driver": "dra.net", "pool": "node-a", "name": "eth1",
          "attributes": {"dra.net/ifName": {"string": "eth1"}, ...},   # as published
          "networkData": {"interfaceName": "net1", "ips": [...], "hardwareAddress": ...}}]}]}

``networkData`` appears once the device is in the pod; every rewrite raises ``generation``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import attrs

from dranet_core.metadata.reader import API_GROUP, CONTAINER_ROOT, KIND, KNOWN_VERSIONS, container_path
from dranet_core.plans import ClaimPlan, PreparedDevice
from dranet_core.types import JSON, AttributeValue, ClaimRef, NetworkData, attribute_json

__all__ = [
    "CDI_VERSION",
    "MetadataLayout",
    "RequestDevices",
    "attribute_json",
    "base_request",
    "cdi_spec",
    "device_entry",
    "encode_stream",
    "metadata_object",
    "network_json",
    "requests_of",
]

CDI_VERSION: Final = "0.5.0"
"""The CDI spec version written (mounts with options; understood by containerd >= 1.7, CRI-O >= 1.23)."""

METADATA_DIR: Final = "dra-device-metadata"
METADATA_FILE: Final = "metadata.json"


def base_request(request: str) -> str:
    """``req`` of a prioritized-list subrequest ``req/sub``; a plain request name unchanged."""
    return request.split("/", 1)[0]


@attrs.frozen(kw_only=True)
class MetadataLayout:
    """Where the files of one driver live.

    ``data_dir``: the host directory of the metadata files (``<plugin dir>/dra-device-metadata``);
    ``cdi_dir``: where the runtime reads CDI specs; ``versions``: API versions written, in order.
    """

    driver: str
    data_dir: Path
    cdi_dir: Path
    versions: tuple[str, ...] = KNOWN_VERSIONS
    container_root: str = CONTAINER_ROOT

    @classmethod
    def for_plugin_dir(
        cls, driver: str, plugin_dir: Path, cdi_dir: Path, versions: Sequence[str] = KNOWN_VERSIONS
    ) -> MetadataLayout:
        """The standard layout for a driver whose kubelet plugin directory is ``plugin_dir``."""
        return cls(
            driver=driver, data_dir=plugin_dir / METADATA_DIR, cdi_dir=cdi_dir, versions=tuple(versions)
        )

    def claim_dir(self, ref: ClaimRef) -> Path:
        """``<data_dir>/<namespace>_<name>``: every request of the claim below it."""
        return self.data_dir / f"{ref.namespace}_{ref.name}"

    def metadata_file(self, ref: ClaimRef, request: str) -> Path:
        """The host file of one request."""
        return self.claim_dir(ref) / base_request(request) / METADATA_FILE

    @property
    def cdi_prefix(self) -> str:
        """File-name prefix of this driver's metadata CDI specs (``<driver>_metadata_``)."""
        return f"{self.driver}_metadata_"

    def cdi_spec_file(self, uid: str, request: str) -> Path:
        """``<cdi_dir>/<driver>_metadata_<claimUID>_<request>.json``."""
        return self.cdi_dir / f"{self.cdi_prefix}{uid}_{base_request(request)}.json"

    @property
    def cdi_kind(self) -> str:
        """``<driver>/metadata``."""
        return f"{self.driver}/metadata"

    def cdi_device_name(self, uid: str, request: str) -> str:
        """``<claimUID>_<request>``: the CDI device of one request."""
        return f"{uid}_{base_request(request)}"

    def cdi_device_id(self, uid: str, request: str) -> str:
        """``<driver>/metadata=<claimUID>_<request>``: what the prepare reply carries."""
        return f"{self.cdi_kind}={self.cdi_device_name(uid, request)}"

    def container_path(self, ref: ClaimRef, request: str, pod_claim_name: str | None) -> str:
        """Where the containers see the file (template claims by their name in the pod)."""
        if pod_claim_name:
            return container_path(
                pod_claim_name, request, driver=self.driver, template=True, root=self.container_root
            )
        return container_path(ref.name, request, driver=self.driver, root=self.container_root)


@attrs.frozen(kw_only=True)
class RequestDevices:
    """One base request of a plan: its full request names and its devices, in plan order."""

    base: str
    names: tuple[str, ...]
    devices: tuple[PreparedDevice, ...]


def requests_of(plan: ClaimPlan) -> list[RequestDevices]:
    """The plan's devices grouped by base request, in order of first appearance."""
    names: dict[str, list[str]] = {}
    devices: dict[str, list[PreparedDevice]] = {}
    for dev in plan.devices:
        for full in dev.request_names:
            base = base_request(full)
            if full not in names.setdefault(base, []):
                names[base].append(full)
            if dev not in devices.setdefault(base, []):
                devices[base].append(dev)
    return [RequestDevices(base=b, names=tuple(names[b]), devices=tuple(devices[b])) for b in names]


def network_json(nd: NetworkData) -> dict[str, JSON]:
    """``networkData`` with the fields that are known (empty ones left out, as the API does)."""
    out: dict[str, JSON] = {}
    if nd.interface_name:
        out["interfaceName"] = nd.interface_name
    if nd.ips:
        out["ips"] = list(nd.ips)
    if nd.hardware_address:
        out["hardwareAddress"] = nd.hardware_address
    return out


def device_entry(
    *,
    driver: str,
    pool: str,
    name: str,
    attributes: Mapping[str, AttributeValue],
    network_data: NetworkData | None = None,
) -> dict[str, JSON]:
    """One ``requests[].devices[]`` entry (attributes sorted by name)."""
    out: dict[str, JSON] = {
        "driver": driver,
        "pool": pool,
        "name": name,
        "attributes": {k: attribute_json(attributes[k]) for k in sorted(attributes)},
    }
    if network_data is not None:
        net = network_json(network_data)
        if net:
            out["networkData"] = net
    return out


def metadata_object(
    ref: ClaimRef,
    *,
    generation: int,
    requests: Sequence[tuple[str, Sequence[dict[str, JSON]]]],
    pod_claim_name: str | None = None,
) -> dict[str, JSON]:
    """The ``DeviceMetadata`` object without ``apiVersion`` (:func:`encode_stream` adds it).

    ``requests`` are ``(full request name, device entries)`` pairs.
    """
    out: dict[str, JSON] = {
        "kind": KIND,
        "metadata": {"name": ref.name, "namespace": ref.namespace, "uid": ref.uid, "generation": generation},
    }
    if pod_claim_name:
        out["podClaimName"] = pod_claim_name
    out["requests"] = [{"name": name, "devices": list(devs)} for name, devs in requests]
    return out


def encode_stream(obj: Mapping[str, JSON], versions: Sequence[str]) -> bytes:
    """``obj`` once per version (``apiVersion`` first), one compact JSON line each."""
    body = {k: v for k, v in obj.items() if k != "apiVersion"}
    lines = [
        json.dumps({"apiVersion": f"{API_GROUP}/{v}", **body}, separators=(",", ":"), ensure_ascii=False)
        for v in versions
    ]
    return ("\n".join(lines) + "\n").encode()


def cdi_spec(
    layout: MetadataLayout, ref: ClaimRef, request: str, pod_claim_name: str | None
) -> dict[str, JSON]:
    """The CDI spec that bind-mounts one request's file read-only into its containers."""
    return {
        "cdiVersion": CDI_VERSION,
        "kind": layout.cdi_kind,
        "devices": [
            {
                "name": layout.cdi_device_name(ref.uid, request),
                "containerEdits": {
                    "mounts": [
                        {
                            "hostPath": str(layout.metadata_file(ref, request)),
                            "containerPath": layout.container_path(ref, request, pod_claim_name),
                            "options": ["ro", "bind"],
                        }
                    ]
                },
            }
        ],
    }
