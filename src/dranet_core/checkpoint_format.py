"""The checkpoint file's format: its records and their strict JSON codec.

The file layout is described in :mod:`dranet_core.checkpoint`, whose :class:`ClaimStore`
reads and writes it; every name here is also importable from there. Parsing raises
:class:`~dranet_core.errors.CheckpointError` naming the bad field (``<path>: <rule>``);
:func:`decode_lenient` keeps the sound claims of a file and says why each other one is
unusable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import attrs

from dranet_core.config.codec import decode_config, encode_config
from dranet_core.config.model import NetworkConfig
from dranet_core.errors import CheckpointError, ConfigError
from dranet_core.plans import ClaimPlan, PreparedDevice
from dranet_core.types import JSON, ClaimRef, NetworkData

__all__ = [
    "CHECKPOINT_VERSION",
    "PHASES",
    "ClaimCheck",
    "DeviceState",
    "Phase",
    "PreparedClaim",
    "config_from_json",
    "config_to_json",
    "decode_checkpoint",
    "decode_lenient",
    "encode_checkpoint",
    "encode_claim",
    "join_checkpoint",
    "plan_from_json",
    "plan_to_json",
]

CHECKPOINT_VERSION: Final = 1
"""The only file version this code reads and writes."""

Phase = Literal["prepared", "attaching", "attached", "detaching"]
PHASES: Final[tuple[str, ...]] = ("prepared", "attaching", "attached", "detaching")


# --- NetworkConfig <-> JSON: the config package's strict codec (same camelCase names) ---


def config_to_json(config: NetworkConfig) -> JSON:
    """A NetworkConfig as JSON with the API's camelCase names; unset fields are left out
    (:func:`dranet_core.config.codec.encode_config`)."""
    return encode_config(config)


def config_from_json(data: JSON, *, path: str = "config") -> NetworkConfig:
    """The inverse of :func:`config_to_json` (:func:`dranet_core.config.codec.decode_config`);
    raises CheckpointError naming every bad field (``<path>: <rule>``)."""
    try:
        return decode_config(data, path=path)
    except ConfigError as exc:
        raise CheckpointError("; ".join(f"{i.path}: {i.rule}" for i in exc.issues)) from exc


# --- the records ---


def _opt(d: dict[str, JSON], key: str, value: JSON) -> None:
    if value is not None:
        d[key] = value


def _req(data: Mapping[str, JSON], key: str, kind: type, path: str) -> Any:
    if key not in data:
        raise CheckpointError(f"{path}.{key}: missing")
    v = data[key]
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise CheckpointError(f"{path}.{key}: expected {kind.__name__}")
    return v


def _get(data: Mapping[str, JSON], key: str, kind: type, path: str) -> Any:
    return _req(data, key, kind, path) if data.get(key) is not None else None


def _obj(data: JSON, path: str) -> Mapping[str, JSON]:
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected an object")
    return data


def _strs(data: Mapping[str, JSON], key: str, path: str) -> tuple[str, ...]:
    v = data.get(key, [])
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise CheckpointError(f"{path}.{key}: expected a list of strings")
    return tuple(v)


@attrs.frozen(kw_only=True)
class DeviceState:
    """Where one prepared device is in its attach life (one journal entry).

    ``snapshot`` maps each backend that moved the device to the JSON its NamespaceMover
    returned from ``snapshot()`` before the move (what to restore on the way home);
    ``sandbox_id`` and ``netns`` name the pod sandbox it went to (an attachment belongs to one
    sandbox: a new sandbox of the same pod is another attachment).
    """

    phase: Phase = "prepared"
    pod_uid: str | None = None
    sandbox_id: str | None = None
    netns: str | None = None
    snapshot: JSON = None
    network_data: NetworkData | None = None

    def to_json(self) -> dict[str, JSON]:
        """The journal entry as JSON."""
        out: dict[str, JSON] = {"phase": self.phase}
        _opt(out, "podUID", self.pod_uid)
        _opt(out, "sandboxID", self.sandbox_id)
        _opt(out, "netns", self.netns)
        _opt(out, "snapshot", self.snapshot)
        if self.network_data is not None:
            nd = self.network_data
            out["networkData"] = {
                "interfaceName": nd.interface_name,
                "hardwareAddress": nd.hardware_address,
                "ips": list(nd.ips),
            }
        return out

    @classmethod
    def from_json(cls, data: JSON, *, path: str = "device") -> DeviceState:
        """Parse a journal entry; raises CheckpointError naming the bad field."""
        d = _obj(data, path)
        phase = _req(d, "phase", str, path)
        if phase not in PHASES:
            raise CheckpointError(f"{path}.phase: unknown phase {phase!r}")
        nd = None
        if d.get("networkData") is not None:
            n = _obj(d["networkData"], f"{path}.networkData")
            nd = NetworkData(
                interface_name=_get(n, "interfaceName", str, f"{path}.networkData") or "",
                hardware_address=_get(n, "hardwareAddress", str, f"{path}.networkData") or "",
                ips=_strs(n, "ips", f"{path}.networkData"),
            )
        snapshot = d.get("snapshot")
        if snapshot is not None and not isinstance(snapshot, dict):
            raise CheckpointError(f"{path}.snapshot: expected an object (backend name -> its snapshot)")
        return cls(
            phase=phase,
            pod_uid=_get(d, "podUID", str, path),
            sandbox_id=_get(d, "sandboxID", str, path),
            netns=_get(d, "netns", str, path),
            snapshot=snapshot,
            network_data=nd,
        )


def plan_to_json(plan: ClaimPlan) -> dict[str, JSON]:
    """A ClaimPlan as JSON."""
    devices: list[JSON] = []
    for dev in plan.devices:
        d: dict[str, JSON] = {
            "pool": dev.pool,
            "device": dev.device,
            "requestNames": list(dev.request_names),
            "config": config_to_json(dev.config),
            "facets": dict(dev.facets),
        }
        _opt(d, "shareID", dev.share_id)
        devices.append(d)
    c = plan.claim
    return {
        "claim": {"namespace": c.namespace, "name": c.name, "uid": c.uid},
        "pods": list(plan.pods),
        "devices": devices,
    }


def plan_from_json(data: JSON, *, path: str = "plan") -> ClaimPlan:
    """Parse a ClaimPlan; raises CheckpointError naming the bad field."""
    d = _obj(data, path)
    c = _obj(d.get("claim"), f"{path}.claim")
    ref = ClaimRef(
        namespace=_req(c, "namespace", str, f"{path}.claim"),
        name=_req(c, "name", str, f"{path}.claim"),
        uid=_req(c, "uid", str, f"{path}.claim"),
    )
    raw_devices = d.get("devices", [])
    if not isinstance(raw_devices, list):
        raise CheckpointError(f"{path}.devices: expected a list")
    devices = []
    for i, raw in enumerate(raw_devices):
        p = f"{path}.devices[{i}]"
        dd = _obj(raw, p)
        devices.append(
            PreparedDevice(
                pool=_req(dd, "pool", str, p),
                device=_req(dd, "device", str, p),
                request_names=_strs(dd, "requestNames", p),
                config=config_from_json(dd.get("config"), path=f"{p}.config"),
                facets=dict(_obj(dd.get("facets", {}), f"{p}.facets")),
                share_id=_get(dd, "shareID", str, p),
            )
        )
    return ClaimPlan(claim=ref, pods=_strs(d, "pods", path), devices=tuple(devices))


@attrs.frozen(kw_only=True)
class PreparedClaim:
    """A prepared claim: its plan and the journal state of each of its devices (by name)."""

    plan: ClaimPlan
    devices: Mapping[str, DeviceState] = attrs.field(factory=dict)

    @property
    def uid(self) -> str:
        return self.plan.claim.uid

    def to_json(self) -> dict[str, JSON]:
        """The claim record as JSON."""
        return {
            "plan": plan_to_json(self.plan),
            "devices": {name: st.to_json() for name, st in self.devices.items()},
        }

    @classmethod
    def from_json(cls, data: JSON, *, path: str = "claim") -> PreparedClaim:
        """Parse a claim record; raises CheckpointError naming the bad field."""
        d = _obj(data, path)
        plan = plan_from_json(d.get("plan"), path=f"{path}.plan")
        devs = _obj(d.get("devices", {}), f"{path}.devices")
        return cls(
            plan=plan,
            devices={k: DeviceState.from_json(v, path=f"{path}.devices.{k}") for k, v in devs.items()},
        )


def encode_claim(claim: PreparedClaim) -> bytes:
    """One claim record's bytes, exactly as :func:`encode_checkpoint` writes it in the file
    (a store caches them, so a write re-encodes only the claims that changed)."""
    return json.dumps(claim.to_json(), separators=(",", ":"), sort_keys=True).encode()


def join_checkpoint(records: Mapping[str, bytes], *, boot_id: str | None = None) -> bytes:
    """The whole file's bytes from encoded claim records (keys: claim UIDs), stamped with
    ``boot_id`` when given; the same bytes ``json.dumps(..., sort_keys=True)`` gives."""
    parts = [b"{"]
    if boot_id is not None:
        parts += [b'"bootID":', json.dumps(boot_id).encode(), b","]
    parts.append(b'"claims":{')
    for i, uid in enumerate(sorted(records)):
        if i:
            parts.append(b",")
        parts += [json.dumps(uid).encode(), b":", records[uid]]
    parts.append(b'},"version":%d}' % CHECKPOINT_VERSION)
    return b"".join(parts)


def encode_checkpoint(claims: Mapping[str, PreparedClaim], *, boot_id: str | None = None) -> bytes:
    """The whole file's bytes for ``claims`` (keys: claim UIDs), stamped with ``boot_id``
    (the kernel's boot id when written) when given."""
    return join_checkpoint({uid: encode_claim(c) for uid, c in claims.items()}, boot_id=boot_id)


@attrs.frozen
class _Document:
    """A file's parts: the boot id it was stamped with (None: not stamped) and its raw claims."""

    boot_id: str | None
    claims: Mapping[str, JSON]


def _document(raw: bytes) -> _Document:
    """The file's top-level object, version checked; raises CheckpointError."""
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise CheckpointError("not JSON this driver reads: nested too deeply") from exc
    if not isinstance(doc, dict):
        raise CheckpointError("top level: expected an object")
    version = doc.get("version")
    if version != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"version: unknown checkpoint version {version!r} (this code reads {CHECKPOINT_VERSION})"
        )
    boot_id = doc.get("bootID")
    if boot_id is not None and not isinstance(boot_id, str):
        raise CheckpointError("bootID: expected a string")
    return _Document(boot_id, _obj(doc.get("claims", {}), "claims"))


def _claim(uid: str, raw_claim: JSON, check: ClaimCheck | None) -> PreparedClaim:
    """One claim record, checked; raises CheckpointError naming the bad field."""
    try:
        pc = PreparedClaim.from_json(raw_claim, path=f"claims.{uid}")
        if pc.uid != uid:
            raise CheckpointError(f"claims.{uid}: plan is for claim uid {pc.uid}")
        if check is not None:
            check(pc)
    except CheckpointError:
        raise
    except RecursionError as exc:
        raise CheckpointError(f"claims.{uid}: nested too deeply") from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"claims.{uid}: {exc}") from exc
    return pc


def decode_checkpoint(raw: bytes) -> dict[str, PreparedClaim]:
    """Parse a whole file; raises CheckpointError (bad JSON, unknown version, bad field)."""
    return {uid: _claim(uid, raw_claim, None) for uid, raw_claim in _document(raw).claims.items()}


def decode_lenient(
    raw: bytes, check: ClaimCheck | None
) -> tuple[dict[str, PreparedClaim], dict[str, str], str | None]:
    """The sound claims of a file, by UID why each other one is unusable, and the boot id the
    file was stamped with (None: not stamped).

    Raises CheckpointError only when the file as a whole is unusable.
    """
    doc = _document(raw)
    good: dict[str, PreparedClaim] = {}
    bad: dict[str, str] = {}
    for uid, raw_claim in doc.claims.items():
        try:
            good[uid] = _claim(uid, raw_claim, check)
        except CheckpointError as exc:
            bad[uid] = str(exc)
    return good, bad, doc.boot_id


ClaimCheck = Callable[[PreparedClaim], None]
"""Checks one loaded claim beyond its JSON shape (e.g. that each backend can read its device
snapshot); raises ValueError or CheckpointError saying what is wrong."""
