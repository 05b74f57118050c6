"""ResourceSlice planning: which slices to create, replace and delete for a device set.

Pure functions, no I/O. The publisher (:mod:`.publisher`) feeds them what exists on the
server and what should, and executes the :class:`SlicePlan` they return.

**Pool and names.** One pool per node, named after the node, ``spec.nodeName = <node>``.
Slice names are deterministic: ``<node>-<driver>-<index>`` (:func:`slice_name`; made a DNS
subdomain, hashed when too long), so a restarted driver finds and *adopts* its slices
(:func:`parse_slice_index`). This driver's slices for this node whose names do not follow the
scheme (for example the Go driver's ``<node>-dra.net-xxxxx`` from ``generateName``; its
random suffix never is a number below 10000 without leading zeros) are deleted.

**Sticky layout.** A device stays in the slice it was published in: devices are matched by
name to the slice that holds them; new devices fill existing slices that have room (lowest
index first) and then new slices at the lowest free index, at most ``max_per_slice`` (128)
each. So a changed, added or removed device rewrites exactly one slice, and an insertion never
shifts chunk boundaries. From scratch this gives sorted chunks of 128 (1,000 devices: 8
slices). Slices that become empty are dropped (a node with no devices keeps one empty
slice); when the layout has more than twice the slices needed it is repacked from scratch.

**Generation.** ``spec.pool.generation`` and ``resourceSliceCount`` are the same in every
slice of the pool. The generation is bumped (and every slice rewritten) when the number of
slices changes, devices are repacked, or what exists is inconsistent (mixed generations,
wrong count, extra slices, foreign slices of a higher generation); a change confined to
existing slices, or re-creating slices that went missing (the kubelet deleted them, or an
interrupted plan had not created them yet), keeps it: with a sticky layout no device can
appear in two slices, which is what the generation protects the scheduler from (the upstream
helper keeps it when one update suffices, too). A new pool starts at generation 1.

**Limits.** :func:`device_problems` checks a device against what the API server enforces
(DNS-label name, qualified attribute names, 64-character strings, 32 attributes plus
capacities, 48 attribute values, quantities); :func:`prepare_devices` leaves such devices
(and duplicate names) out and reports them instead of letting one device break the whole
slice. A slice holding a list-typed attribute holds at most 64 devices
(:func:`max_devices_per_slice`).

**List attributes.** :func:`prepare_devices` with ``lists=False`` publishes every list-typed
attribute in its scalar form (its first item): the publisher's fallback when the API server
does not take list attributes.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from typing import Any, Final

import attrs
from kubernetes_asyncio.client import (
    ApiClient,
    V1ObjectMeta,
    V1OwnerReference,
    V1ResourcePool,
    V1ResourceSlice,
    V1ResourceSliceSpec,
)

from dranet_core.types import (
    DEVICE_ATTRIBUTE_MAX,
    DEVICE_ATTRIBUTE_VALUES_MAX,
    JSON,
    STRING_ATTRIBUTE_MAX_LEN,
    AttributeList,
    AttributeValue,
    Device,
    Version,
    attribute_json,
    is_dns_label,
    is_dns_subdomain,
    scalar_form,
    validate_qualified_name,
)

__all__ = [
    "MAX_DEVICES_PER_SLICE",
    "MAX_DEVICES_WITH_LISTS",
    "ExistingSlice",
    "SkippedDevice",
    "SlicePlan",
    "SliceWrite",
    "BodyCache",
    "device_body",
    "device_problems",
    "existing_from_object",
    "has_list_attributes",
    "max_devices_per_slice",
    "parse_slice_index",
    "plan_slices",
    "prepare_devices",
    "share_bodies",
    "slice_name",
    "slice_object",
]

MAX_DEVICES_PER_SLICE: Final = 128
"""resource.k8s.io: devices per ResourceSlice (64 with taints or counters, which we don't use)."""

MAX_DEVICES_WITH_LISTS: Final = 64
"""resource.k8s.io (1.36+): devices per ResourceSlice when any of them has a list-typed attribute."""

_MAX_INDEX: Final = 10000
_QUANTITY = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
# sanitize_for_serialization uses no instance state; a real ApiClient() would open an HTTP session
_SERIALIZER: Final = ApiClient.__new__(ApiClient)


def _sanitize(model: Any) -> Any:
    return _SERIALIZER.sanitize_for_serialization(model)


# --------------------------------------------------------------------------- names


def _slice_name_base(node: str, driver: str) -> str:
    base = f"{node}-{driver}".lower()
    if len(base) + 5 > 253 or not is_dns_subdomain(base + "-0"):
        digest = hashlib.sha256(f"{node}\0{driver}".encode()).hexdigest()[:16]
        head = re.sub(r"[^a-z0-9.-]", "-", base)[:200].strip("-.")
        base = f"{head}-{digest}" if head else digest
    return base


def slice_name(node: str, driver: str, index: int) -> str:
    """The name of slice ``index`` of this node's pool: ``<node>-<driver>-<index>``."""
    return f"{_slice_name_base(node, driver)}-{index}"


def parse_slice_index(name: str, node: str, driver: str) -> int | None:
    """The index if ``name`` follows :func:`slice_name` for this node and driver, else None."""
    prefix = _slice_name_base(node, driver) + "-"
    if not name.startswith(prefix):
        return None
    rest = name[len(prefix) :]
    if not re.fullmatch(r"0|[1-9][0-9]*", rest) or int(rest) >= _MAX_INDEX:
        return None
    return int(rest)


# --------------------------------------------------------------------------- devices


@attrs.frozen(kw_only=True)
class SkippedDevice:
    """A device left out of the slices, and why."""

    name: str
    reason: str


def device_problems(device: Device) -> list[str]:
    """What the API server would reject about ``device`` (empty: nothing)."""
    problems: list[str] = []
    if not is_dns_label(device.name):
        problems.append(f"name {device.name!r} is not a DNS label")
    values = 0
    for name, value in device.attributes.items():
        try:
            validate_qualified_name(name)
        except ValueError as exc:
            problems.append(str(exc))
        kind = type(value)
        if kind is bool or kind is int or (isinstance(value, str) and len(value) <= STRING_ATTRIBUTE_MAX_LEN):
            values += 1  # the common cases first
            continue
        values += len(value.items) if isinstance(value, AttributeList) else 1
        items = value.items if isinstance(value, AttributeList) else (value,)
        if any(isinstance(v, str | Version) and len(str(v)) > STRING_ATTRIBUTE_MAX_LEN for v in items):
            problems.append(f"attribute {name}: longer than {STRING_ATTRIBUTE_MAX_LEN} characters")
        if not isinstance(value, bool | int | str | Version | AttributeList):
            problems.append(f"attribute {name}: unsupported type {type(value).__name__}")
    for name, quantity in device.capacity.items():
        try:
            validate_qualified_name(name)
        except ValueError as exc:
            problems.append(str(exc))
        if not isinstance(quantity, str) or not _QUANTITY.match(quantity):
            problems.append(f"capacity {name}: {quantity!r} is not a quantity")
    if len(device.attributes) + len(device.capacity) > DEVICE_ATTRIBUTE_MAX:
        total = f"{len(device.attributes)} attributes + {len(device.capacity)} capacities"
        problems.append(f"{total} exceed {DEVICE_ATTRIBUTE_MAX}")
    if values > DEVICE_ATTRIBUTE_VALUES_MAX:
        problems.append(f"{values} attribute values exceed {DEVICE_ATTRIBUTE_VALUES_MAX}")
    return problems


_SHARED_VALUES: dict[tuple[type, object], dict[str, JSON]] = {}
"""Attribute value bodies shared by every device that has the same value (``{"bool": false}``,
``{"int": 1500}``, ``{"string": "veth"}``...): a node's devices repeat most of their values."""
_MAX_SHARED = 4096


def _attribute(value: AttributeValue) -> dict[str, JSON]:
    key = (type(value), value)
    shared = _SHARED_VALUES.get(key)
    if shared is not None:
        return shared
    body = attribute_json(value)
    if len(_SHARED_VALUES) < _MAX_SHARED:
        _SHARED_VALUES[key] = body
    return body


def device_body(device: Device, *, lists: bool = True) -> dict[str, JSON]:
    """The ``spec.devices[]`` entry (resource.k8s.io/v1 form) for ``device``.

    Built as plain JSON (the same object the kubernetes models serialise to). Equal attribute
    values share one body object, so treat the result as read-only. With ``lists=False`` a
    list-typed attribute is written in its scalar form (its first item).
    """
    body: dict[str, JSON] = {"name": device.name}
    if device.attributes:
        body["attributes"] = {
            k: _attribute(v if lists else scalar_form(v)) for k, v in sorted(device.attributes.items())
        }
    if device.capacity:
        body["capacity"] = {k: {"value": v} for k, v in sorted(device.capacity.items())}
    if device.allow_multiple_allocations:
        body["allowMultipleAllocations"] = True
    return body


_LIST_FIELDS: Final = ("ints", "bools", "strings", "versions")


def has_list_attributes(body: Mapping[str, Any]) -> bool:
    """Whether the device entry ``body`` (v1 form) has a list-typed attribute."""
    attributes = body.get("attributes") or {}
    return any(isinstance(v, Mapping) and any(k in v for k in _LIST_FIELDS) for v in attributes.values())


def max_devices_per_slice(bodies: Iterable[Mapping[str, Any]], limit: int = MAX_DEVICES_PER_SLICE) -> int:
    """How many of these device entries one slice may hold: ``limit``, at most
    :data:`MAX_DEVICES_WITH_LISTS` when any of them has a list-typed attribute."""
    return min(limit, MAX_DEVICES_WITH_LISTS) if any(has_list_attributes(b) for b in bodies) else limit


BodyCache = MutableMapping[str, tuple[Device, dict[str, JSON], tuple[str, ...]]]
"""The device, its body and its problems by device name, kept between rescans by the caller."""


def _same_device(a: Device, b: Device) -> bool:
    """Equal, value types included (``True == 1`` in Python, not in the published body)."""
    if a is b:
        return True
    return a == b and all(type(v) is type(b.attributes[k]) for k, v in a.attributes.items())


def prepare_devices(
    devices: Iterable[Device], *, cache: BodyCache | None = None, lists: bool = True
) -> tuple[dict[str, dict[str, JSON]], list[SkippedDevice]]:
    """Bodies by device name for the publishable devices, and the ones left out (with why).

    With a ``cache`` (a dict the caller keeps) an unchanged device costs one comparison and
    keeps its body object (no copy per rescan); the cache holds the device objects the
    inventory holds anyway, and is left holding exactly this call's devices. A cache must be
    used with one ``lists`` setting (clear it when that changes). ``lists=False``: see
    :func:`device_body`.
    """
    bodies: dict[str, dict[str, JSON]] = {}
    skipped: list[SkippedDevice] = []
    fresh: dict[str, tuple[Device, dict[str, JSON], tuple[str, ...]]] = {}
    for device in devices:
        hit = cache.get(device.name) if cache is not None else None
        if hit is None or not _same_device(hit[0], device):
            problems = tuple(device_problems(device))
            hit = (device, device_body(device, lists=lists) if not problems else {}, problems)
        fresh.setdefault(device.name, hit)
        _, body, problems = hit
        if device.name in bodies:
            problems = (*problems, "duplicate device name")
        if problems:
            skipped.append(SkippedDevice(name=device.name, reason="; ".join(problems)))
            continue
        bodies[device.name] = body
    if cache is not None:
        cache.clear()
        cache.update(fresh)
    return bodies, skipped


# --------------------------------------------------------------------------- what exists


@attrs.frozen(kw_only=True)
class ExistingSlice:
    """A slice of this driver and node as it is on the server (as far as we know).

    ``index`` is None for a slice that does not follow our naming scheme (to be deleted).
    ``devices`` are in v1 form (v1beta1's ``basic`` unnested), in slice order.
    """

    name: str
    index: int | None
    uid: str
    resource_version: str
    generation: int
    slice_count: int
    pool: str
    devices: tuple[dict[str, JSON], ...] = ()
    owner_uid: str | None = None
    """The uid of the Node in ``ownerReferences`` (None: no Node owner)."""


def _flat_device(device: dict[str, JSON]) -> dict[str, JSON]:
    basic = device.get("basic")
    if isinstance(basic, dict):
        return {"name": device.get("name"), **basic}
    return device


def existing_from_object(obj: Mapping[str, Any], *, node: str, driver: str) -> ExistingSlice:
    """Read a ResourceSlice (a JSON dict of any served version) into an :class:`ExistingSlice`."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    pool = spec.get("pool") or {}
    name = str(meta.get("name", ""))
    index = parse_slice_index(name, node, driver) if pool.get("name") == node else None
    owner = next(
        (
            str(r.get("uid"))
            for r in meta.get("ownerReferences") or []
            if r.get("kind") == "Node" and r.get("name") == node
        ),
        None,
    )
    return ExistingSlice(
        name=name,
        index=index,
        uid=str(meta.get("uid", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        generation=int(pool.get("generation") or 0),
        slice_count=int(pool.get("resourceSliceCount") or 0),
        pool=str(pool.get("name", "")),
        devices=tuple(_flat_device(d) for d in spec.get("devices") or [] if isinstance(d, dict)),
        owner_uid=owner,
    )


def share_bodies(
    existing: Mapping[str, ExistingSlice], bodies: Mapping[str, dict[str, JSON]]
) -> dict[str, ExistingSlice]:
    """``existing`` with each listed device that equals our body for it replaced by that body.

    A listed slice holds the server's copy of every device (a few KiB each once decoded);
    where it is the same as what we publish, keeping our object instead (the publisher holds
    it anyway) drops the copy. Equal values, so planning sees no difference.
    """
    out: dict[str, ExistingSlice] = {}
    for name, s in existing.items():
        shared = []
        for d in s.devices:
            ours = bodies.get(str(d.get("name")))
            shared.append(ours if ours is not None and ours == d else d)
        out[name] = attrs.evolve(s, devices=tuple(shared))
    return out


# --------------------------------------------------------------------------- planning


@attrs.frozen(kw_only=True)
class SliceWrite:
    """Create (``existing`` None) or replace one slice."""

    index: int
    name: str
    devices: tuple[dict[str, JSON], ...]
    existing: ExistingSlice | None


@attrs.frozen(kw_only=True)
class SlicePlan:
    """What to do: ``writes`` first (creates and replaces), then ``deletes``."""

    writes: tuple[SliceWrite, ...]
    deletes: tuple[ExistingSlice, ...]
    generation: int
    slice_count: int
    device_count: int

    @property
    def is_noop(self) -> bool:
        return not self.writes and not self.deletes


def _sticky_layout(
    desired: Mapping[str, Any],
    ours: Sequence[ExistingSlice],
    max_per_slice: int,
    preferred: Mapping[str, int],
) -> dict[int, list[str]]:
    layout: dict[int, list[str]] = {}
    placed: set[str] = set()
    for s in sorted(ours, key=lambda s: s.index or 0):
        assert s.index is not None
        names: list[str] = []
        for d in s.devices:
            n = d.get("name")
            if isinstance(n, str) and n in desired and n not in placed and len(names) < max_per_slice:
                names.append(n)
                placed.add(n)
        layout[s.index] = names
    pending = sorted(n for n in desired if n not in placed)
    # devices whose slice went missing go back where they were, so that recreating it is one write
    rest: list[str] = []
    for n in pending:
        p = preferred.get(n)
        if p is not None and 0 <= p < _MAX_INDEX and len(layout.setdefault(p, [])) < max_per_slice:
            layout[p].append(n)
        else:
            rest.append(n)
    pending = rest
    for index in sorted(layout):
        room = max_per_slice - len(layout[index])
        if room > 0 and pending:
            layout[index].extend(pending[:room])
            pending = pending[room:]
    index = 0
    while pending:
        while index in layout:
            index += 1
        layout[index] = pending[:max_per_slice]
        pending = pending[max_per_slice:]
    return {i: names for i, names in layout.items() if names}


def plan_slices(
    desired: Mapping[str, dict[str, JSON]],
    existing: Iterable[ExistingSlice],
    *,
    node: str,
    driver: str,
    max_per_slice: int = MAX_DEVICES_PER_SLICE,
    preferred: Mapping[str, int] | None = None,
    owner_uid: str | None = None,
) -> SlicePlan:
    """Plan the writes that make the server hold exactly ``desired`` (bodies by device name).

    ``preferred`` maps device names to the slice index they were last published in (the
    publisher's memory), used for devices found in no existing slice. With ``owner_uid`` a
    slice whose Node owner differs (the Node was re-created) is rewritten too.
    """
    existing = list(existing)
    ours = [s for s in existing if s.index is not None]
    foreign = [s for s in existing if s.index is None]
    by_index = {s.index: s for s in ours}
    needed = max(1, math.ceil(len(desired) / max_per_slice))
    layout = _sticky_layout(desired, ours, max_per_slice, preferred or {})
    repacked = len(layout) > 2 * needed
    if repacked:
        names = sorted(desired)
        layout = {i: names[i * max_per_slice : (i + 1) * max_per_slice] for i in range(needed)}
    if not layout:
        layout = {min((i for i in by_index if i is not None), default=0): []}
    target = {i: tuple(desired[n] for n in sorted(names)) for i, names in layout.items()}
    count = len(target)
    top = max((s.generation for s in existing if s.pool == node), default=0)
    # Missing slices (deleted behind our back, or not yet created by an interrupted plan) can be
    # (re)created under the current generation: their devices are in no other slice.
    consistent = (
        bool(ours)
        and not repacked
        and set(by_index) <= set(target)
        and all(s.generation == top and s.slice_count == count for s in ours)
    )
    generation = top if consistent else top + 1
    writes = []
    for i in sorted(target):
        cur = by_index.get(i)
        owner_ok = owner_uid is None or (cur is not None and cur.owner_uid == owner_uid)
        if consistent and cur is not None and cur.devices == target[i] and owner_ok:
            continue
        writes.append(SliceWrite(index=i, name=slice_name(node, driver, i), devices=target[i], existing=cur))
    deletes = foreign + [s for s in ours if s.index not in target]
    return SlicePlan(
        writes=tuple(writes),
        deletes=tuple(sorted(deletes, key=lambda s: s.name)),
        generation=generation,
        slice_count=count,
        device_count=len(desired),
    )


def slice_object(
    *,
    name: str,
    driver: str,
    node: str,
    generation: int,
    slice_count: int,
    devices: Sequence[dict[str, JSON]],
    api_version: str = "v1",
    owner_uid: str | None = None,
    resource_version: str | None = None,
) -> dict[str, JSON]:
    """The ResourceSlice object (JSON) for ``api_version`` (v1, v1beta2 or v1beta1).

    With ``owner_uid`` the Node is the controller owner, so the slice dies with the node.
    """
    owners = None
    if owner_uid:
        owners = [V1OwnerReference(api_version="v1", kind="Node", name=node, uid=owner_uid, controller=True)]
    model = V1ResourceSlice(
        api_version=f"resource.k8s.io/{api_version}",
        kind="ResourceSlice",
        metadata=V1ObjectMeta(name=name, owner_references=owners, resource_version=resource_version),
        spec=V1ResourceSliceSpec(
            driver=driver,
            node_name=node,
            pool=V1ResourcePool(name=node, generation=generation, resource_slice_count=slice_count),
            devices=[],
        ),
    )
    obj: dict[str, JSON] = _sanitize(model)
    if api_version == "v1beta1":
        obj["spec"]["devices"] = [
            {"name": d["name"], "basic": {k: v for k, v in d.items() if k != "name"}} for d in devices
        ]
    else:
        obj["spec"]["devices"] = [dict(d) for d in devices]
    return obj
