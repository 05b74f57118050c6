"""Upgrade in place from the Go driver: adopt the pod-device records of its bbolt checkpoint.

The Go driver (kubernetes-sigs/dranet) keeps, at the same default path, a bbolt file::

    pod_configs / <pod UID> / device_configs / <device name> = JSON DeviceConfig

with ``claim`` (``{"Namespace", "Name"}``), ``deviceSnapshot`` (the published Device),
``networkInterfaceConfigInHost.interface.name`` (the host interface name),
``networkInterfaceConfigInPod`` (the merged claim config, the same schema as ours) and
``ready`` (newer versions: attached). :func:`adopt_go_checkpoint` turns those records into
prepared claims (as the JSON records of our checkpoint, which
:class:`~dranet_core.checkpoint.ClaimStore` loads) whose devices are journalled ``attached``
to their pod, so that this driver
brings them home when the pod stops (NRI StopPodSandbox, or at reconcile when the pod is
already gone) exactly as it does for its own attachments.

The Go records carry no claim UID: an adopted claim gets the key
``go-dranet:<namespace>/<name>`` (:func:`adopted_uid`), and unprepare of a claim this driver
did not prepare falls back to that key. The netdev backend's host snapshot is rebuilt from
what Go recorded (name, link type, MAC, MTU, PCI address, virtual): the device comes home under its
host name with its MAC and MTU; addresses and routes the Go driver did not record are not
restored (the Go driver did not restore them either). RDMA links moved in exclusive mode
are not adopted (Go's record has no RDMA netns facts to return them with).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Final

from dranet_core.bbolt import BboltError, read_bbolt
from dranet_core.config.codec import decode_config, encode_config
from dranet_core.errors import CheckpointError, ConfigError
from dranet_core.names import adopted_uid
from dranet_core.types import JSON

__all__ = ["NETDEV_SNAPSHOT_VERSION", "adopt_go_checkpoint", "adopted_uid"]

log = logging.getLogger(__name__)

NETDEV_SNAPSHOT_VERSION: Final = 1
"""The version of the netdev backend's host snapshot built here (tests check it parses)."""


def _attr(snapshot: Mapping[str, Any], name: str) -> Any:
    """A value of the Go record's deviceSnapshot attributes (``{"string": ...}`` etc.)."""
    attrs = snapshot.get("attributes")
    value = attrs.get(name) if isinstance(attrs, Mapping) else None
    if not isinstance(value, Mapping):
        return None
    for kind in ("string", "int", "bool", "version"):
        if kind in value:
            return value[kind]
    return None


def _config(raw: Any, where: str) -> dict[str, JSON]:
    """The Go pod config (same schema as ours), re-encoded; ``{}`` if this driver rejects it."""
    if not raw:
        return {}
    try:
        return encode_config(decode_config(raw, path="networkInterfaceConfigInPod"))
    except ConfigError as exc:
        log.warning("Go checkpoint %s: pod config not understood (%s); using the host name only", where, exc)
        return {}


_Adopted = tuple[tuple[str, str], dict[str, JSON], dict[str, JSON]]
"""(namespace, claim name), the plan's device record, the device's journal entry."""


def _device(pod_uid: str, name: str, record: Mapping[str, Any]) -> _Adopted:
    where = f"pod {pod_uid} device {name}"
    claim = record.get("claim")
    if not isinstance(claim, Mapping) or not claim.get("Name"):
        raise CheckpointError(f"Go checkpoint {where}: no claim")
    ns, cname = str(claim.get("Namespace") or ""), str(claim["Name"])
    host_cfg = record.get("networkInterfaceConfigInHost")
    host_iface = host_cfg.get("interface") if isinstance(host_cfg, Mapping) else None
    ifname = host_iface.get("name") if isinstance(host_iface, Mapping) else None
    snap_dev = record.get("deviceSnapshot")
    snap_dev = snap_dev if isinstance(snap_dev, Mapping) else {}
    ifname = ifname or _attr(snap_dev, "dra.net/ifName")
    facets: dict[str, JSON] = {}
    snapshots: dict[str, JSON] = {}
    if isinstance(ifname, str) and ifname:
        mac = _attr(snap_dev, "dra.net/mac")
        mtu = _attr(snap_dev, "dra.net/mtu")
        pci = _attr(snap_dev, "dra.net/pciAddress")
        virtual = _attr(snap_dev, "dra.net/virtual")
        kind = _attr(snap_dev, "dra.net/type")  # Go's link type: "device" is a NIC (no kind)
        kind = {"device": None, "tuntap": "tun"}.get(kind, kind) if isinstance(kind, str) else None
        facet: dict[str, JSON] = {
            "ifname": ifname,
            "ifindex": 0,  # unknown: the mover finds the link by name, MAC or PCI address
            "mac": mac if isinstance(mac, str) else "",
            "pci_address": pci if isinstance(pci, str) else None,
            "virtual": virtual is not False,
            "kind": kind or "device",
        }
        facets["netdev"] = facet
        snapshots["netdev"] = {
            "version": NETDEV_SNAPSHOT_VERSION,
            "ifname": ifname,
            "ifindex": 0,
            "kind": kind,
            "mac": facet["mac"] or None,
            "pci_address": facet["pci_address"],
            "virtual": facet["virtual"],
            "up": True,
            "mtu": mtu if isinstance(mtu, int) and not isinstance(mtu, bool) else None,
        }
    else:
        log.warning("Go checkpoint %s: no netdev (IB-only); not adopted", where)
    device: dict[str, JSON] = {
        "pool": "",
        "device": name,
        "requestNames": [],
        "config": _config(record.get("networkInterfaceConfigInPod"), where),
        "facets": facets,
    }
    state: dict[str, JSON] = {"phase": "attached", "podUID": pod_uid, "snapshot": snapshots}
    return (ns, cname), device, state


def adopt_go_checkpoint(raw: bytes) -> dict[str, JSON]:
    """Our checkpoint's claim records (by journal key) for the Go driver's bbolt file ``raw``.

    Raises :class:`CheckpointError` when the file is not a readable bbolt file; a single
    record that cannot be understood is logged and skipped.
    """
    try:
        tree = read_bbolt(raw)
    except BboltError as exc:
        raise CheckpointError(f"Go driver checkpoint: {exc}") from exc
    root = tree.get(b"pod_configs")
    if not isinstance(root, dict):
        return {}
    claims: dict[str, dict[str, Any]] = {}
    adopted = 0
    for pod_key, pod_bucket in root.items():
        devs = pod_bucket.get(b"device_configs") if isinstance(pod_bucket, dict) else None
        if not isinstance(devs, dict):
            continue
        pod_uid = pod_key.decode("utf-8", "replace")
        for dev_key, value in devs.items():
            name = dev_key.decode("utf-8", "replace")
            try:
                if not isinstance(value, bytes):
                    raise CheckpointError(f"Go checkpoint pod {pod_uid} device {name}: not a record")
                record = json.loads(value)
                if not isinstance(record, dict):
                    raise CheckpointError(f"Go checkpoint pod {pod_uid} device {name}: not a JSON object")
                (ns, cname), device, state = _device(pod_uid, name, record)
            except (CheckpointError, ValueError) as exc:
                log.error("%s; record skipped", exc)
                continue
            if not device["facets"]:
                continue
            uid = adopted_uid(ns, cname)
            claim = claims.setdefault(
                uid,
                {"plan": {"claim": {"namespace": ns, "name": cname, "uid": uid}, "pods": [], "devices": []},
                 "devices": {}},
            )  # fmt: skip
            if pod_uid not in claim["plan"]["pods"]:
                claim["plan"]["pods"].append(pod_uid)
            if name not in claim["devices"]:
                claim["plan"]["devices"].append(device)
                claim["devices"][name] = state
                adopted += 1
    log.warning("adopted %d device(s) of %d claim(s) from the Go driver's checkpoint", adopted, len(claims))
    return dict(claims)
