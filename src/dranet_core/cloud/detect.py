"""Which cloud this node runs on, when ``--cloud-provider-hint`` is empty (auto-detection).

Two local signals, no network probe, so a machine without any metadata service starts as
fast as with ``NONE``:

1. the Node's ``spec.providerID``, which the cloud's controller manager sets: ``gce://`` is
   GCE, ``aws://`` AWS, ``azure://`` AZURE, ``oci://`` or a bare ``ocid1.`` OCID OKE and
   ``alicloud://`` ALIBABA;
2. otherwise the machine's firmware identity in sysfs (``devices/virtual/dmi/id``): a
   ``product_name`` or ``sys_vendor`` naming Google is GCE, a ``sys_vendor`` of
   ``Amazon EC2`` AWS, a ``chassis_asset_tag`` of ``7783-7084-3265-9085`` AZURE, of
   ``OracleCloud.com`` OKE, and a ``sys_vendor`` of ``Alibaba Cloud`` ALIBABA.

:func:`detect_cloud_provider` returns the hint (``NONE`` when neither says), and never
raises: a Node that cannot be read counts as one without a providerID.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from dranet_core.errors import DranetError

__all__ = ["detect_cloud_provider", "provider_from_dmi", "provider_from_id"]

log = logging.getLogger("dranet_core.cloud")

_ID_PREFIXES = (
    ("gce://", "GCE"),
    ("aws://", "AWS"),
    ("azure://", "AZURE"),
    ("oci://", "OKE"),
    ("ocid1.", "OKE"),
    ("alicloud://", "ALIBABA"),
)
_AZURE_ASSET_TAG = "7783-7084-3265-9085"


def provider_from_id(provider_id: str) -> str:
    """The hint a Node ``spec.providerID`` names, or '' (module docstring)."""
    pid = provider_id.strip().lower()
    return next((hint for prefix, hint in _ID_PREFIXES if pid.startswith(prefix)), "")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


def provider_from_dmi(sysfs: Path) -> str:
    """The hint the firmware identity under ``sysfs`` names, or '' (module docstring)."""
    dmi = sysfs / "devices" / "virtual" / "dmi" / "id"
    vendor, product, tag = (_read(dmi / f) for f in ("sys_vendor", "product_name", "chassis_asset_tag"))
    if "google" in product.lower() or vendor.lower().startswith("google"):
        return "GCE"
    if vendor == "Amazon EC2":
        return "AWS"
    if tag == _AZURE_ASSET_TAG:
        return "AZURE"
    if tag == "OracleCloud.com":
        return "OKE"
    if vendor == "Alibaba Cloud":
        return "ALIBABA"
    return ""


async def detect_cloud_provider(provider_id: Callable[[], Awaitable[str]] | None, sysfs: Path) -> str:
    """The hint auto-detection picks (module docstring), logged in one line."""
    pid, unread = "", ""
    if provider_id is not None:
        try:
            pid = await provider_id()
        except DranetError as exc:  # the API server's answer or its absence
            unread = f" (cannot read the Node: {exc})"
    hint = provider_from_id(pid)
    if hint:
        log.info("cloud provider auto-detected: %s (Node spec.providerID %s)", hint, pid)
        return hint
    hint = provider_from_dmi(sysfs)
    if hint:
        log.info("cloud provider auto-detected: %s (firmware identity under %s)", hint, sysfs)
        return hint
    log.info(
        "cloud provider auto-detection: none (Node spec.providerID %r%s, no known firmware identity); "
        "no cloud attributes",
        pid,
        unread,
    )
    return "NONE"
