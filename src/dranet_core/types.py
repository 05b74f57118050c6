"""Core value types: devices and their attributes, claims, allocations, pods, status.

All models are frozen, keyword-only attrs classes: values, not objects with behaviour. They
validate what the Kubernetes API would reject (attribute names, 64-character string values,
32 attributes and capacities per device, 48 attribute values per device counting list items,
DNS-label device names), so a value that exists is
one the API server accepts; a backend that builds an invalid one gets a :class:`ValueError`
naming the field, and leaves that device out instead of breaking the whole slice.

JSON-able state that backends attach to a device (``facets``) and to a prepared device
(``state``) is typed :data:`JSON`; the core stores it in the checkpoint without looking in.
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeAlias

import attrs

__all__ = [
    "DEVICE_ATTRIBUTE_MAX",
    "DEVICE_ATTRIBUTE_VALUES_MAX",
    "DRIVER_DOMAIN",
    "JSON",
    "STRING_ATTRIBUTE_MAX_LEN",
    "AllocationResult",
    "AttributeList",
    "AttributeValue",
    "Claim",
    "ClaimRef",
    "Condition",
    "ConsumerRef",
    "Device",
    "DeviceMemo",
    "DeviceNode",
    "DeviceStatus",
    "NetworkData",
    "OpaqueConfig",
    "PodSandbox",
    "ScalarValue",
    "Version",
    "attribute_from_json",
    "attribute_json",
    "attribute_values",
    "is_dns_label",
    "is_dns_subdomain",
    "scalar_form",
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

DEVICE_ATTRIBUTE_VALUES_MAX: Final = 48
"""resource.k8s.io: attribute values per device, each item of a list attribute counting as one."""

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
    problem = _qualified_name_problem(name)
    if problem is not None:
        raise ValueError(f"attribute name {name!r}: {problem}")


@functools.lru_cache(maxsize=4096)
def _qualified_name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a QualifiedName (None: nothing). Cached: every device
    of a node carries the same few dozen names, checked at each device's construction and
    again before publication."""
    domain, sep, ident = name.rpartition("/")
    if sep and (not domain or len(domain) > 63 or not is_dns_subdomain(domain)):
        return "domain must be a DNS subdomain of <= 63 characters"
    if not ident or len(ident) > 32 or not _C_IDENTIFIER.match(ident):
        return "must be a C identifier of <= 32 characters"
    return None


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


ScalarValue: TypeAlias = bool | int | str | Version
"""One scalar attribute value. ``bool`` is checked before ``int`` wherever the type matters."""

_LIST_KINDS: Final = {bool: "bools", int: "ints", str: "strings", Version: "versions"}
_SCALAR_KINDS: Final = {bool: "bool", int: "int", str: "string", Version: "version"}
_EXACT_KINDS: Final[dict[type, str]] = {bool: "bool", int: "int", str: "string"}


def _scalar_type(value: object) -> type | None:
    for tp in (bool, int, str, Version):  # bool first: True is an int too
        if isinstance(value, tp):
            return tp
    return None


def _check_items(item: AttributeList, _: attrs.Attribute[Any], items: tuple[ScalarValue, ...]) -> None:
    if not items:
        raise ValueError("list attribute: must not be empty")
    types = {_scalar_type(v) for v in items}
    if len(types) != 1 or None in types:
        raise ValueError(f"list attribute {items!r}: items must all be bool, all int, all str or all Version")
    for v in items:
        if isinstance(v, str) and len(v) > STRING_ATTRIBUTE_MAX_LEN:
            raise ValueError(f"list attribute: item longer than 64 characters ({len(v)})")


def _list_kind(items: tuple[ScalarValue, ...]) -> str:
    tp = _scalar_type(items[0]) if items else None
    return _LIST_KINDS[tp] if tp is not None else ""


def _items(values: Iterable[ScalarValue]) -> tuple[ScalarValue, ...]:
    return tuple(values)


@attrs.frozen
class AttributeList:
    """A list-typed attribute value (resource.k8s.io ``ints``, ``bools``, ``strings``,
    ``versions``; Kubernetes 1.36+, feature gate ``DRAListTypeAttributes``).

    ``items`` is non-empty and of one type. **Contract:** the first item is the attribute's
    scalar form: where list attributes are off (the default) the driver publishes that item
    alone (:func:`scalar_form`), so a backend puts first what it would publish as a scalar
    (for ``resource.kubernetes.io/numaNode``: the device's own NUMA node). Equality includes
    the kind, so ``(1,)`` and ``(True,)`` differ.
    """

    items: tuple[ScalarValue, ...] = attrs.field(converter=_items, validator=_check_items)
    kind: str = attrs.field(
        init=False, default=attrs.Factory(lambda self: _list_kind(self.items), takes_self=True)
    )
    """The JSON field of the list: ``ints``, ``bools``, ``strings`` or ``versions``."""

    @property
    def first(self) -> ScalarValue:
        """The scalar form: the first item."""
        return self.items[0]

    def __str__(self) -> str:
        return ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in self.items)


AttributeValue: TypeAlias = ScalarValue | AttributeList
"""One device attribute value: a scalar, or a list (:class:`AttributeList`)."""


def scalar_form(value: AttributeValue) -> ScalarValue:
    """``value`` as a scalar: a list's first item, a scalar unchanged."""
    return value.first if isinstance(value, AttributeList) else value


def attribute_values(attributes: Mapping[str, AttributeValue]) -> int:
    """How many values ``attributes`` hold for the API's limit: one per scalar, one per list item."""
    return sum(len(v.items) if isinstance(v, AttributeList) else 1 for v in attributes.values())


def _scalar_json(value: ScalarValue) -> JSON:
    return value.value if isinstance(value, Version) else value


def attribute_json(value: AttributeValue) -> dict[str, JSON]:
    """The ResourceSlice form of ``value``: ``{"int": 1}``, ``{"string": "x"}``, ``{"ints": [0, 1]}``..."""
    kind = _EXACT_KINDS.get(type(value))
    if kind is not None:  # the common case, by exact type (True is an int too)
        return {kind: value}
    if isinstance(value, AttributeList):
        return {value.kind: [_scalar_json(v) for v in value.items]}
    tp = _scalar_type(value)
    return {_SCALAR_KINDS[tp] if tp is not None else "string": _scalar_json(value)}


def _scalar_from_json(kind: str, raw: Any) -> ScalarValue:
    if kind in ("bool", "bools") and isinstance(raw, bool):
        return raw
    if kind in ("int", "ints") and isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if kind in ("string", "strings") and isinstance(raw, str):
        return raw
    if kind in ("version", "versions") and isinstance(raw, str):
        return Version(raw)
    raise ValueError(f"attribute value {raw!r} is not a valid {kind} item")


def attribute_from_json(raw: Any) -> AttributeValue:
    """The value of a ResourceSlice attribute (:func:`attribute_json`'s inverse).

    Raises ValueError for anything but exactly one known kind with a value of its type.
    """
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ValueError(f"attribute value {raw!r} is not exactly one of bool/int/string/version (or a list)")
    ((kind, value),) = raw.items()
    if kind in _LIST_KINDS.values():
        if not isinstance(value, list):
            raise ValueError(f"attribute value {raw!r}: {kind} must be a list")
        return AttributeList(_scalar_from_json(kind, v) for v in value)
    if kind in _SCALAR_KINDS.values():
        return _scalar_from_json(kind, value)
    raise ValueError(f"attribute value {raw!r} is not exactly one of bool/int/string/version (or a list)")


def _check_attributes(device: Device, _: attrs.Attribute[Any], value: Mapping[str, AttributeValue]) -> None:
    for name, v in value.items():
        validate_qualified_name(name)
        if isinstance(v, str) and len(v) > STRING_ATTRIBUTE_MAX_LEN:
            raise ValueError(f"attribute {name}: string longer than 64 characters ({len(v)})")
        if not isinstance(v, bool | int | str | Version | AttributeList):
            raise ValueError(f"attribute {name}: unsupported value type {type(v).__name__}")
    count = attribute_values(value)
    if count > DEVICE_ATTRIBUTE_VALUES_MAX:
        raise ValueError(
            f"device {device.name}: {count} attribute values exceed the limit of "
            f"{DEVICE_ATTRIBUTE_VALUES_MAX}"
        )


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


class DeviceMemo:
    """A per-device transform over whole scans that remembers its last result per device, so
    an unchanged device (the same object, or an equal one) is not rebuilt and re-validated on
    every scan. Devices gone from a scan are forgotten."""

    def __init__(self, transform: Callable[[Device], Device]) -> None:
        self._transform = transform
        self._last: dict[str, tuple[Device, Device]] = {}

    def apply(self, devices: Mapping[str, Device]) -> dict[str, Device]:
        """Each of ``devices`` transformed, by name."""
        out: dict[str, Device] = {}
        for name, dev in devices.items():
            hit = self._last.get(name)
            if hit is not None and (hit[0] is dev or hit[0] == dev):
                out[name] = hit[1]
            else:
                out[name] = self._transform(dev)
                self._last[name] = (dev, out[name])
        for gone in self._last.keys() - devices.keys():
            del self._last[gone]
        return out


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
