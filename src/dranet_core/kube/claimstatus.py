"""ResourceClaim ``status.devices`` (KEP-4817): the server-side apply body for one claim.

One apply per claim covers all of this driver's devices of the claim. The body names the
claim (``metadata.name``, ``namespace`` and ``uid`` — the uid makes the API server refuse the
write if the claim was deleted and re-created under the same name) and lists
``status.devices`` entries keyed by driver/pool/device(/shareID), each with ``conditions``
(metav1.Condition: type, status, reason, message, lastTransitionTime) and ``networkData``
(``interfaceName``, ``hardwareAddress``, ``ips`` in CIDR form). Applied with field manager
= driver name on the ``status`` subresource, an empty list removes exactly this driver's
entries (server-side apply ownership), which is how status is cleared.

The API's limits are enforced here, before sending, so one oversized value cannot make the
whole apply fail: at most 16 IPs (extra ones dropped), IPs must be CIDRs (a bare address gets
/32 or /128; garbage is dropped), at most 8 conditions, ``interfaceName`` <= 256 and
``hardwareAddress`` <= 128 characters, ``data`` <= 10 KiB, condition messages <= 32 KiB.
Every trim is reported in the returned notes.

``lastTransitionTime`` follows the metav1 convention: it changes only when the condition's
status changes (:class:`TransitionTimes` remembers them per claim).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import attrs
from kubernetes_asyncio.client import (
    ApiClient,
    V1AllocatedDeviceStatus,
    V1Condition,
    V1NetworkDeviceData,
    V1ObjectMeta,
)

from dranet_core.types import JSON, ClaimRef, Condition, DeviceStatus

__all__ = [
    "MAX_CONDITIONS",
    "MAX_IPS",
    "TransitionTimes",
    "claim_status_body",
    "normalize_ip",
]

MAX_IPS: Final = 16
MAX_CONDITIONS: Final = 8
MAX_INTERFACE_NAME: Final = 256
MAX_HARDWARE_ADDRESS: Final = 128
MAX_DATA_BYTES: Final = 10 * 1024
MAX_MESSAGE: Final = 32768

_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
_CONDITION_TYPE = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
_SERIALIZER: Final = ApiClient.__new__(ApiClient)  # stateless use: sanitize_for_serialization only


def _to_second(when: datetime) -> datetime:
    """UTC, second precision (metav1.Time)."""
    return when.astimezone(UTC).replace(microsecond=0)


def normalize_ip(value: str) -> str | None:
    """``value`` in CIDR form (a bare address gets its full prefix), or None if it is no IP."""
    try:
        if "/" in value:
            return str(ipaddress.ip_interface(value))
        addr = ipaddress.ip_address(value)
        return f"{addr}/{addr.max_prefixlen}"
    except ValueError:
        return None


def _entry_key(d: DeviceStatus) -> str:
    return f"{d.driver}/{d.pool}/{d.device}/{d.share_id or ''}"


@attrs.define
class TransitionTimes:
    """Remembers (status, lastTransitionTime) per claim uid, device and condition type."""

    now: Callable[[], datetime] = attrs.field(default=lambda: datetime.now(UTC))
    _seen: dict[str, dict[tuple[str, str], tuple[str, datetime]]] = attrs.field(factory=dict)

    max_claims: int = 4096
    """Claims remembered; the oldest is forgotten beyond this (a claim never cleared must not leak)."""

    def time_for(self, claim_uid: str, device_key: str, condition: Condition) -> datetime:
        if claim_uid not in self._seen and len(self._seen) >= self.max_claims:
            del self._seen[next(iter(self._seen))]
        per_claim = self._seen.setdefault(claim_uid, {})
        key = (device_key, condition.type)
        prev = per_claim.get(key)
        if prev is not None and prev[0] == condition.status:
            return prev[1]
        stamp = _to_second(self.now())
        per_claim[key] = (condition.status, stamp)
        return stamp

    def forget(self, claim_uid: str) -> None:
        self._seen.pop(claim_uid, None)


def _conditions(
    claim: ClaimRef, d: DeviceStatus, times: TransitionTimes, notes: list[str]
) -> list[V1Condition]:
    out: list[V1Condition] = []
    seen: set[str] = set()
    for c in d.conditions:
        if not _CONDITION_TYPE.match(c.type) or not _REASON.match(c.reason) or c.type in seen:
            notes.append(f"{d.device}: condition {c.type!r}, reason {c.reason!r}: invalid or repeated")
            continue
        if c.status not in ("True", "False", "Unknown"):
            notes.append(f"{d.device}: condition {c.type} has status {c.status!r}; left out")
            continue
        if len(out) == MAX_CONDITIONS:
            notes.append(f"{d.device}: more than {MAX_CONDITIONS} conditions; {c.type} left out")
            continue
        seen.add(c.type)
        message = c.message if len(c.message) <= MAX_MESSAGE else c.message[: MAX_MESSAGE - 3] + "..."
        out.append(
            V1Condition(
                type=c.type,
                status=c.status,
                reason=c.reason,
                message=message,
                last_transition_time=times.time_for(claim.uid, _entry_key(d), c),
            )
        )
    return out


def _network_data(d: DeviceStatus, notes: list[str]) -> V1NetworkDeviceData | None:
    nd = d.network_data
    if nd is None:
        return None
    ips: list[str] = []
    for raw in nd.ips:
        ip = normalize_ip(raw)
        if ip is None:
            notes.append(f"{d.device}: {raw!r} is not an IP address; left out")
        elif ip not in ips:
            ips.append(ip)
    if len(ips) > MAX_IPS:
        notes.append(f"{d.device}: {len(ips)} IPs, only the first {MAX_IPS} are published")
        ips = ips[:MAX_IPS]
    iface = nd.interface_name
    if len(iface) > MAX_INTERFACE_NAME:
        notes.append(f"{d.device}: interfaceName longer than {MAX_INTERFACE_NAME}; left out")
        iface = ""
    hw = nd.hardware_address
    if len(hw) > MAX_HARDWARE_ADDRESS:
        notes.append(f"{d.device}: hardwareAddress longer than {MAX_HARDWARE_ADDRESS}; left out")
        hw = ""
    if not (iface or hw or ips):
        return None
    return V1NetworkDeviceData(interface_name=iface or None, hardware_address=hw or None, ips=ips or None)


def _data(d: DeviceStatus, notes: list[str]) -> Any:
    if d.data is None:
        return None
    if len(json.dumps(d.data)) > MAX_DATA_BYTES:
        notes.append(f"{d.device}: data larger than {MAX_DATA_BYTES} bytes; left out")
        return None
    return d.data


def claim_status_body(
    claim: ClaimRef,
    devices: Sequence[DeviceStatus],
    *,
    times: TransitionTimes,
    api_version: str = "v1",
) -> tuple[dict[str, JSON], list[str]]:
    """The apply body making ``devices`` this driver's ``status.devices`` of ``claim``.

    Returns the body and notes about anything trimmed to fit the API's limits. An empty
    ``devices`` clears this driver's entries. Duplicate device keys keep the last entry.
    """
    notes: list[str] = []
    entries: dict[str, V1AllocatedDeviceStatus] = {}
    for d in devices:
        entries[_entry_key(d)] = V1AllocatedDeviceStatus(
            driver=d.driver,
            pool=d.pool,
            device=d.device,
            share_id=d.share_id,
            conditions=_conditions(claim, d, times, notes) or None,
            network_data=_network_data(d, notes),
            data=_data(d, notes),
        )
    meta = V1ObjectMeta(name=claim.name, namespace=claim.namespace, uid=claim.uid or None)
    body: dict[str, JSON] = {
        "apiVersion": f"resource.k8s.io/{api_version}",
        "kind": "ResourceClaim",
        "metadata": _SERIALIZER.sanitize_for_serialization(meta),
        "status": {"devices": [_SERIALIZER.sanitize_for_serialization(e) for e in entries.values()]},
    }
    return body, notes
