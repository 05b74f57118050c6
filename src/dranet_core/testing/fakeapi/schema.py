"""What the real API server validates on ResourceSlices and ResourceClaim status.

Written from the published API rules (resource.k8s.io v1 validation), independently of
dranet's own checks, so tests catch a driver that sends what a real server would refuse.
Each function returns a list of :class:`Cause` (empty = valid); the fake API server turns a
non-empty list into ``422 Invalid``. Public: :func:`validate_resource_slice`,
:func:`validate_claim_status`.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

MAX_DEVICES_PER_SLICE = 128
MAX_DEVICES_WITH_TAINTS_OR_COUNTERS = 64
MAX_ATTRIBUTES_AND_CAPACITIES = 32
MAX_ATTRIBUTE_VALUES = 48
LIST_FIELDS = ("ints", "bools", "strings", "versions")
MAX_STRING_LEN = 64
MAX_IPS = 16
MAX_CONDITIONS = 8
MAX_DATA_BYTES = 10 * 1024

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_C_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(-(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*)?"
    r"(\+[0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*)?$"
)
_QUANTITY = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
_CONDITION_TYPE = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class Cause:
    """One validation failure: the JSON field path and what is wrong."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def is_dns_label(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 63 and bool(_DNS_LABEL.match(value))


def is_dns_subdomain(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 253 and all(is_dns_label(p) for p in value.split("."))


@functools.lru_cache(maxsize=4096)
def _qualified_name_problem(name: str) -> str | None:
    domain, sep, ident = name.rpartition("/")
    if sep and (not domain or len(domain) > 63 or not is_dns_subdomain(domain)):
        return "domain must be a DNS subdomain of at most 63 characters"
    if not ident or len(ident) > 32 or not _C_IDENT.match(ident):
        return "must be a C identifier of at most 32 characters"
    return None


def _pool_name_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return "Required value"
    if len(name) > 253:
        return "must be no more than 253 characters"
    if not all(is_dns_subdomain(p) for p in name.split("/")):
        return "must be one or more DNS subdomains separated by slashes"
    return None


def _attribute_causes(path: str, value: Any) -> list[Cause]:
    if not isinstance(value, dict):
        return [Cause(path, "must be an object")]
    kinds = [
        k
        for k in ("int", "bool", "string", "version", "ints", "bools", "strings", "versions")
        if value.get(k) is not None
    ]
    if len(kinds) != 1:
        return [Cause(path, f"exactly one value must be specified, got {kinds or 'none'}")]
    kind = kinds[0]
    v = value[kind]
    out: list[Cause] = []
    if kind in ("string", "version") and (not isinstance(v, str) or len(v) > MAX_STRING_LEN):
        out.append(Cause(f"{path}.{kind}", f"Too long: may not be more than {MAX_STRING_LEN} bytes"))
    if kind == "version" and isinstance(v, str) and not _SEMVER.match(v):
        out.append(Cause(f"{path}.version", "must be a string compatible with semver.org spec 2.0.0"))
    if kind == "int" and (not isinstance(v, int) or isinstance(v, bool)):
        out.append(Cause(f"{path}.int", "must be an integer"))
    if kind == "bool" and not isinstance(v, bool):
        out.append(Cause(f"{path}.bool", "must be a boolean"))
    if kind in LIST_FIELDS:
        out.extend(_list_causes(f"{path}.{kind}", kind, v))
    return out


def _list_causes(path: str, kind: str, items: Any) -> list[Cause]:
    if not isinstance(items, list):
        return [Cause(path, "must be a list")]
    if not items:
        return [Cause(path, "must not be empty if specified")]
    out: list[Cause] = []
    for i, v in enumerate(items):
        where = f"{path}[{i}]"
        if kind == "ints" and (not isinstance(v, int) or isinstance(v, bool)):
            out.append(Cause(where, "must be an integer"))
        elif kind == "bools" and not isinstance(v, bool):
            out.append(Cause(where, "must be a boolean"))
        elif kind in ("strings", "versions") and (not isinstance(v, str) or len(v) > MAX_STRING_LEN):
            out.append(Cause(where, f"Too long: may not be more than {MAX_STRING_LEN} bytes"))
        elif kind == "versions" and not _SEMVER.match(v):
            out.append(Cause(where, "must be a string compatible with semver.org spec 2.0.0"))
    return out


def attribute_value_count(attrs: dict[str, Any]) -> int:
    """Values of a device's attributes for the API's limit: one per scalar, one per list item."""
    count = 0
    for value in attrs.values():
        lists = [value[k] for k in LIST_FIELDS if isinstance(value, dict) and isinstance(value.get(k), list)]
        count += sum(len(v) for v in lists) if any(lists) else 1
    return count


def has_list_attribute(device: Any, version: str) -> bool:
    """Whether a ``spec.devices[]`` entry has a list-typed attribute."""
    if not isinstance(device, dict):
        return False
    body = (device.get("basic") or {}) if version == "v1beta1" else device
    attrs = body.get("attributes") or {}
    return any(isinstance(v, dict) and any(k in v for k in LIST_FIELDS) for v in attrs.values())


def drop_list_attributes(obj: dict[str, Any], version: str) -> None:
    """Remove list values from a ResourceSlice, as an API server without the
    DRAListTypeAttributes feature gate does before validating (which then refuses the
    attribute left without a value)."""
    for device in (obj.get("spec") or {}).get("devices") or []:
        if not isinstance(device, dict):
            continue
        body = (device.get("basic") or {}) if version == "v1beta1" else device
        for value in (body.get("attributes") or {}).values():
            if isinstance(value, dict):
                for k in LIST_FIELDS:
                    value.pop(k, None)


def _device_causes(path: str, device: dict[str, Any], version: str) -> list[Cause]:
    out: list[Cause] = []
    if not is_dns_label(device.get("name")):
        out.append(Cause(f"{path}.name", f"Invalid value: {device.get('name')!r}: must be a DNS label"))
    body = (device.get("basic") or {}) if version == "v1beta1" else device
    bpath = f"{path}.basic" if version == "v1beta1" else path
    attrs = body.get("attributes") or {}
    caps = body.get("capacity") or {}
    for name, value in attrs.items():
        problem = _qualified_name_problem(name)
        if problem:
            out.append(Cause(f"{bpath}.attributes[{name}]", problem))
        out.extend(_attribute_causes(f"{bpath}.attributes[{name}]", value))
    for name, value in caps.items():
        problem = _qualified_name_problem(name)
        if problem:
            out.append(Cause(f"{bpath}.capacity[{name}]", problem))
        q = value.get("value") if isinstance(value, dict) else None
        if not isinstance(q, str | int) or not _QUANTITY.match(str(q)):
            out.append(Cause(f"{bpath}.capacity[{name}].value", f"invalid quantity {q!r}"))
    values = attribute_value_count(attrs)
    if values > MAX_ATTRIBUTE_VALUES:
        out.append(
            Cause(bpath, f"Invalid value: {values}: the total number of attribute values must not exceed 48")
        )
    if len(attrs) + len(caps) > MAX_ATTRIBUTES_AND_CAPACITIES:
        out.append(
            Cause(
                bpath,
                f"Too many: {len(attrs) + len(caps)}: must have at most "
                f"{MAX_ATTRIBUTES_AND_CAPACITIES} attributes and capacities combined",
            )
        )
    if len(body.get("taints") or []) > 16:
        out.append(Cause(f"{bpath}.taints", "Too many: must have at most 16 items"))
    return out


def validate_resource_slice(obj: dict[str, Any], version: str = "v1") -> list[Cause]:
    """Validate a ResourceSlice as resource.k8s.io ``version`` would on create/update."""
    out: list[Cause] = []
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if name is not None and not is_dns_subdomain(name):
        out.append(Cause("metadata.name", f"Invalid value: {name!r}: must be a DNS subdomain"))
    if name is None and not meta.get("generateName"):
        out.append(Cause("metadata.name", "Required value: name or generateName is required"))
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [*out, Cause("spec", "Required value")]
    out.extend(_spec_causes(spec))
    out.extend(_devices_causes(spec, version))
    return out


def _spec_causes(spec: dict[str, Any]) -> list[Cause]:
    out: list[Cause] = []
    driver = spec.get("driver")
    if not (isinstance(driver, str) and is_dns_subdomain(driver) and len(driver) <= 63):
        out.append(Cause("spec.driver", f"Invalid value: {driver!r}: must be a DNS subdomain of <= 63"))
    pool = spec.get("pool")
    if not isinstance(pool, dict):
        out.append(Cause("spec.pool", "Required value"))
    else:
        problem = _pool_name_problem(pool.get("name"))
        if problem:
            out.append(Cause("spec.pool.name", problem))
        gen = pool.get("generation", 0)
        if not isinstance(gen, int) or gen < 0:
            out.append(Cause("spec.pool.generation", "must be greater than or equal to 0"))
        count = pool.get("resourceSliceCount")
        if not isinstance(count, int) or count <= 0:
            out.append(Cause("spec.pool.resourceSliceCount", "must be greater than zero"))
    selectors = [
        k
        for k in ("nodeName", "nodeSelector", "allNodes", "perDeviceNodeSelection")
        if spec.get(k) not in (None, False, "")
    ]
    if len(selectors) != 1:
        out.append(
            Cause(
                "spec",
                f"exactly one of nodeName, nodeSelector, allNodes, "
                f"perDeviceNodeSelection is required, got {selectors}",
            )
        )
    if spec.get("nodeName") and not is_dns_subdomain(spec["nodeName"]):
        out.append(Cause("spec.nodeName", "must be a DNS subdomain"))
    return out


def _devices_causes(spec: dict[str, Any], version: str) -> list[Cause]:
    out: list[Cause] = []
    devices = spec.get("devices") or []
    if not isinstance(devices, list):
        return [*out, Cause("spec.devices", "must be a list")]
    if devices and spec.get("sharedCounters"):
        out.append(Cause("spec", "devices and sharedCounters are mutually exclusive"))
    limit = MAX_DEVICES_PER_SLICE
    if any(d.get("taints") or d.get("consumesCounters") for d in devices if isinstance(d, dict)) or any(
        has_list_attribute(d, version) for d in devices
    ):
        limit = MAX_DEVICES_WITH_TAINTS_OR_COUNTERS
    if len(devices) > limit:
        out.append(Cause("spec.devices", f"Too many: {len(devices)}: must have at most {limit} items"))
    seen: set[Any] = set()
    for i, device in enumerate(devices):
        if not isinstance(device, dict):
            out.append(Cause(f"spec.devices[{i}]", "must be an object"))
            continue
        out.extend(_device_causes(f"spec.devices[{i}]", device, version))
        dname = device.get("name")
        if dname in seen:
            out.append(Cause(f"spec.devices[{i}].name", f"Duplicate value: {dname!r}"))
        seen.add(dname)
    return out


def _condition_causes(path: str, conds: Any) -> list[Cause]:
    if not isinstance(conds, list):
        return [Cause(path, "must be a list")]
    out: list[Cause] = []
    if len(conds) > MAX_CONDITIONS:
        out.append(Cause(path, f"Too many: {len(conds)}: must have at most {MAX_CONDITIONS} items"))
    types: set[str] = set()
    for i, c in enumerate(conds):
        cp = f"{path}[{i}]"
        ctype = c.get("type")
        if not isinstance(ctype, str) or len(ctype) > 316 or not _CONDITION_TYPE.match(ctype):
            out.append(Cause(f"{cp}.type", f"Invalid value: {ctype!r}"))
        if ctype in types:
            out.append(Cause(f"{cp}.type", f"Duplicate value: {ctype!r}"))
        types.add(ctype)
        if c.get("status") not in ("True", "False", "Unknown"):
            out.append(Cause(f"{cp}.status", f"Unsupported value: {c.get('status')!r}"))
        reason = c.get("reason")
        if not isinstance(reason, str) or not reason or len(reason) > 1024 or not _REASON.match(reason):
            out.append(Cause(f"{cp}.reason", f"Invalid value: {reason!r}"))
        if len(c.get("message") or "") > 32768:
            out.append(Cause(f"{cp}.message", "Too long: may not be more than 32768 bytes"))
        ltt = c.get("lastTransitionTime")
        if not isinstance(ltt, str) or not _RFC3339.match(ltt):
            out.append(Cause(f"{cp}.lastTransitionTime", "Required value: must be set"))
    return out


def _network_data_causes(path: str, nd: Any) -> list[Cause]:
    if not isinstance(nd, dict):
        return [Cause(path, "must be an object")]
    out: list[Cause] = []
    if len(nd.get("interfaceName") or "") > 256:
        out.append(Cause(f"{path}.interfaceName", "Too long: may not be more than 256 bytes"))
    if len(nd.get("hardwareAddress") or "") > 128:
        out.append(Cause(f"{path}.hardwareAddress", "Too long: may not be more than 128 bytes"))
    ips = nd.get("ips") or []
    if len(ips) > MAX_IPS:
        out.append(Cause(f"{path}.ips", f"Too many: {len(ips)}: must have at most {MAX_IPS} items"))
    seen: set[str] = set()
    for i, ip in enumerate(ips):
        try:
            if not isinstance(ip, str) or "/" not in ip:
                raise ValueError(ip)
            ipaddress.ip_interface(ip)
        except ValueError:
            out.append(
                Cause(f"{path}.ips[{i}]", f"Invalid value: {ip!r}: must be an IP address in CIDR form")
            )
        if ip in seen:
            out.append(Cause(f"{path}.ips[{i}]", f"Duplicate value: {ip!r}"))
        seen.add(ip)
    return out


def _allocated(claim: dict[str, Any]) -> set[tuple[Any, Any, Any, Any]] | None:
    alloc = (claim.get("status") or {}).get("allocation")
    if not alloc:
        return None
    results = (alloc.get("devices") or {}).get("results") or []
    return {(r.get("driver"), r.get("pool"), r.get("device"), r.get("shareID")) for r in results}


def validate_claim_status(claim: dict[str, Any]) -> list[Cause]:
    """Validate ``status.devices`` of a ResourceClaim (the whole object, after the write).

    Also checks what the real server checks across fields: each entry must name a device of
    the claim's allocation, and entries are unique by driver/pool/device/shareID.
    """
    status = claim.get("status") or {}
    devices = status.get("devices") or []
    out: list[Cause] = []
    if not isinstance(devices, list):
        return [Cause("status.devices", "must be a list")]
    allocated = _allocated(claim)
    seen: set[tuple[Any, ...]] = set()
    for i, d in enumerate(devices):
        p = f"status.devices[{i}]"
        key = (d.get("driver"), d.get("pool"), d.get("device"), d.get("shareID"))
        if not is_dns_subdomain(d.get("driver")):
            out.append(Cause(f"{p}.driver", "must be a DNS subdomain"))
        problem = _pool_name_problem(d.get("pool"))
        if problem:
            out.append(Cause(f"{p}.pool", problem))
        if not is_dns_label(d.get("device")):
            out.append(Cause(f"{p}.device", "must be a DNS label"))
        if key in seen:
            out.append(Cause(p, f"Duplicate value: {key}"))
        seen.add(key)
        if allocated is None:
            out.append(Cause(p, "may not be specified when the claim is not allocated"))
        elif key not in allocated:
            out.append(Cause(p, f"Invalid value: {key[:3]}: must be an allocated device in the claim"))
        if "conditions" in d and d["conditions"] is not None:
            out.extend(_condition_causes(f"{p}.conditions", d["conditions"]))
        if d.get("networkData") is not None:
            out.extend(_network_data_causes(f"{p}.networkData", d["networkData"]))
        if d.get("data") is not None and len(json.dumps(d["data"])) > MAX_DATA_BYTES:
            out.append(Cause(f"{p}.data", f"Too long: may not be more than {MAX_DATA_BYTES} bytes"))
    return out
