"""Core value types: devices and their attributes, claims, allocations, pods, status.

All models are frozen, keyword-only attrs classes: values, not objects with behaviour. They
validate what the Kubernetes API would reject (attribute names, 64-character string values,
32 attributes and capacities per device, DNS-label device names), so a value that exists is
one the API server accepts; a backend that builds an invalid one gets a :class:`ValueError`
naming the field, and leaves that device out instead of breaking the whole slice.

JSON-able state that backends attach to a device (``facets``) and to a prepared device
(``state``) is typed :data:`JSON`; the core stores it in the checkpoint without looking in.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any, Final, TypeAlias

import attrs

__all__ = [
    "DEVICE_ATTRIBUTE_MAX",
    "DRIVER_DOMAIN",
    "JSON",
    "STRING_ATTRIBUTE_MAX_LEN",
    "AllocationResult",
    "AttributeValue",
    "Claim",
    "ClaimRef",
    "Condition",
    "ConsumerRef",
    "Device",
    "DeviceNode",
    "DeviceStatus",
    "NetworkData",
    "OpaqueConfig",
    "PodSandbox",
    "Version",
    "is_dns_label",
    "is_dns_subdomain",
    "validate_qualified_name",
]

JSON: TypeAlias = Any
"""A value that ``json.dumps`` accepts (dicts with str keys, lists, str, int, float, bool, None)."""

DRIVER_DOMAIN: Final = "dra.net"
"""Default driver name and attribute domain, as the Go driver."""

STRING_ATTRIBUTE_MAX_LEN: Final = 64
"""resource.k8s.io: string and version attribute values are at most 64 characters."""

DEVICE_ATTRIBUTE_MAX: Final = 32
"""resource.k8s.io: attributes plus capacities per device."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


def is_dns_label(value: str) -> bool:
    """RFC 1123 label: lower-case alphanumerics and '-', alphanumeric at both ends, <= 63."""
    return bool(_DNS_LABEL.match(value))


def is_dns_subdomain(value: str) -> bool:
    """RFC 1123 subdomain: dot-separated labels, <= 253 characters in all."""
    return 0 < len(value) <= 253 and all(is_dns_label(p) for p in value.split("."))


def validate_qualified_name(name: str) -> None:
    """Raise ValueError unless ``name`` is a valid device attribute/capacity name.

    A QualifiedName is a C identifier of at most 32 characters, optionally prefixed with a
    DNS subdomain of at most 63 characters and a slash: ``dra.net/ifName``,
    ``resource.kubernetes.io/pcieRoot``.
    """
    domain, sep, ident = name.rpartition("/")
    if sep and (not domain or len(domain) > 63 or not is_dns_subdomain(domain)):
        raise ValueError(f"attribute name {name!r}: domain must be a DNS subdomain of <= 63 characters")
    if not ident or len(ident) > 32 or not _C_IDENTIFIER.match(ident):
        raise ValueError(f"attribute name {name!r}: must be a C identifier of <= 32 characters")


@attrs.frozen
class Version:
    """A semantic-version attribute value (semver 2.0, at most 64 characters)."""

    value: str = attrs.field()

    @value.validator
    def _check(self, _: attrs.Attribute[str], value: str) -> None:
        if len(value) > STRING_ATTRIBUTE_MAX_LEN or not _SEMVER.match(value):
            raise ValueError(f"version {value!r}: must be semver 2.0 of <= 64 characters")

    def __str__(self) -> str:
        return self.value


AttributeValue: TypeAlias = bool | int | str | Version
"""One device attribute value. ``bool`` is checked before ``int`` wherever the type matters."""


def _check_attributes(device: Device, _: attrs.Attribute[Any], value: Mapping[str, AttributeValue]) -> None:
    for name, v in value.items():
        validate_qualified_name(name)
        if isinstance(v, str) and len(v) > STRING_ATTRIBUTE_MAX_LEN:
            raise ValueError(f"attribute {name}: string longer than 64 characters ({len(v)})")
        if not isinstance(v, bool | int | str | Version):
            raise ValueError(f"attribute {name}: unsupported value type {type(v).__name__}")


def _check_capacity(device: Device, _: attrs.Attribute[Any], value: Mapping[str, str]) -> None:
    for name in value:
        validate_qualified_name(name)
    if len(value) + len(device.attributes) > DEVICE_ATTRIBUTE_MAX:
        raise ValueError(
            f"device {device.name}: {len(device.attributes)} attributes + {len(value)} capacities "
            f"exceed the limit of {DEVICE_ATTRIBUTE_MAX}"
        )


def _check_device_name(_: Any, __: attrs.Attribute[str], value: str) -> None:
    if not is_dns_label(value):
        raise ValueError(f"device name {value!r}: must be a DNS label")


def _frozen_map(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """A private copy of ``value`` whose keys are interned.

    Every device carries the same dozen attribute names (``dra.net/ifName``, ...), usually
    built per device by concatenation: interning keeps one copy of each name per process
    instead of one per device (about 0.6 KiB per device).
    """
    intern = sys.intern
    return {intern(k) if type(k) is str else k: v for k, v in value.items()}


@attrs.frozen(kw_only=True)
class Device:
    """A device as published in a ResourceSlice, plus what backends know about it.

    ``attributes`` maps qualified names (``dra.net/ifName``) to values; ``capacity`` maps
    qualified names to Kubernetes quantities (``"100Gi"``). ``facets`` maps a backend name to
    that backend's JSON-able private data about this device (netdev: ifindex, permanent MAC;
    rdma: the RDMA link and its char devices). A device found by several backends (a VF that
    is a netdev, an SR-IOV VF and an RDMA device) is one ``Device`` whose attributes and
    facets are the union of theirs; see :meth:`merged`. ``allow_multiple_allocations`` publishes
    the device as shareable (``allowMultipleAllocations``): the scheduler may then allocate it
    to many claims at once, each result with its own share ID.
    """

    name: str = attrs.field(validator=_check_device_name)
    attributes: Mapping[str, AttributeValue] = attrs.field(
        factory=dict, converter=_frozen_map, validator=_check_attributes
    )
    capacity: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map, validator=_check_capacity)
    facets: Mapping[str, JSON] = attrs.field(factory=dict, converter=_frozen_map)
    allow_multiple_allocations: bool = False

    def merged(self, other: Device) -> Device:
        """This device with ``other``'s attributes, capacities and facets added (other wins);
        shareable when either is."""
        if other.name != self.name:
            raise ValueError(f"cannot merge device {other.name} into {self.name}")
        return Device(
            name=self.name,
            attributes={**self.attributes, **other.attributes},
            capacity={**self.capacity, **other.capacity},
            facets={**self.facets, **other.facets},
            allow_multiple_allocations=self.allow_multiple_allocations or other.allow_multiple_allocations,
        )


@attrs.frozen(kw_only=True)
class ClaimRef:
    """Identity of a ResourceClaim. ``uid`` is the key everywhere; name and namespace are for
    people and for API calls (a claim may be deleted and re-created under the same name)."""

    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}({self.uid})"


@attrs.frozen(kw_only=True)
class ConsumerRef:
    """One entry of ``status.reservedFor``: who may use the claim (a pod, normally)."""

    api_group: str = ""
    resource: str
    name: str
    uid: str

    @property
    def is_pod(self) -> bool:
        return self.api_group == "" and self.resource == "pods"


@attrs.frozen(kw_only=True)
class AllocationResult:
    """One ``status.allocation.devices.results[]`` entry: a device given to a request."""

    request: str
    driver: str
    pool: str
    device: str
    admin_access: bool = False
    share_id: str | None = None


@attrs.frozen(kw_only=True)
class OpaqueConfig:
    """One ``status.allocation.devices.config[]`` entry with an opaque driver config.

    ``source`` is ``FromClass`` or ``FromClaim``; ``requests`` empty means all requests.
    ``parameters`` is the raw JSON the user wrote, decoded by the driver's config API.
    The API lists these in order (class configs before claim configs); later ones win.
    """

    source: str
    requests: tuple[str, ...] = ()
    driver: str
    parameters: JSON = None

    def applies_to(self, request: str) -> bool:
        """Whether this config applies to ``request`` (``req`` or ``req/subreq``)."""
        if not self.requests:
            return True
        parent = request.split("/", 1)[0]
        return request in self.requests or parent in self.requests


@attrs.frozen(kw_only=True)
class Claim:
    """What the driver needs of an allocated ResourceClaim (already fetched from the API).

    ``results`` and ``configs`` hold every entry of the allocation; filtering to this
    driver and this node is the Allocator's job. ``pod_claim_name`` is the claim's name in
    the pod spec when a ResourceClaimTemplate made it (annotation
    ``resource.kubernetes.io/pod-claim-name``), else None.
    """

    ref: ClaimRef
    results: tuple[AllocationResult, ...] = ()
    configs: tuple[OpaqueConfig, ...] = ()
    reserved_for: tuple[ConsumerRef, ...] = ()
    pod_claim_name: str | None = None


@attrs.frozen(kw_only=True)
class PodSandbox:
    """A pod sandbox as the container runtime describes it over NRI.

    ``uid`` is the Kubernetes pod UID (the join key with ``reservedFor``); ``id`` is the CRI
    sandbox id; ``netns`` is the path of the pod's network namespace, ``None`` for a
    host-network pod or when the runtime no longer reports it.
    """

    uid: str
    name: str
    namespace: str
    id: str = ""
    netns: str | None = None
    ips: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}({self.uid})"


@attrs.frozen(kw_only=True)
class NetworkData:
    """``status.devices[].networkData``: what the pod sees, read back from the kernel.

    ``ips`` are in CIDR form (``192.0.2.5/24``); the API allows at most 16.
    """

    interface_name: str = ""
    hardware_address: str = ""
    ips: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Condition:
    """A metav1.Condition on a claim's device status (``type`` is the list-map key)."""

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str = ""


@attrs.frozen(kw_only=True)
class DeviceStatus:
    """One ``status.devices[]`` entry this driver owns for a claim."""

    driver: str
    pool: str
    device: str
    conditions: tuple[Condition, ...] = ()
    network_data: NetworkData | None = None
    data: JSON = None
    share_id: str | None = None


@attrs.frozen(kw_only=True)
class DeviceNode:
    """A device node to create in a container (NRI ``LinuxDevice``): RDMA, vfio.

    ``type`` is ``c`` or ``b``; ``file_mode``/``uid``/``gid`` are optional.
    """

    path: str
    type: str
    major: int
    minor: int
    file_mode: int | None = None
    uid: int | None = None
    gid: int | None = None
