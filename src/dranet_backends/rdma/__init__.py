"""The rdma backend: RDMA devices: discovery from sysfs, RDMA netlink, char devices, exclusive netns mode.

``create(context)`` is the ``dranet.backends`` entry point. The context is a
``dranet_core.backends.BackendContext`` (or any object with ``sysfs`` and ``options``).
Options (``rdma.<key>`` on the command line, prefix stripped here; unprefixed keys are
accepted too):

* ``netns_mode``: ``auto`` (default: ask the kernel once, ``RDMA_NLDEV_CMD_SYS_GET``; any
  error means ``shared``, logged, as the Go driver), ``shared`` or ``exclusive``;
* ``netns``: path of the network namespace to treat as the host's (default: own);
* ``dev_root``: the host's ``/dev`` (default ``/dev``);
* ``poll_interval``: seconds between sysfs polls of :meth:`RdmaBackend.watch` (default 30).

On a machine without RDMA the backend still loads: it discovers nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dranet_backends.pci import DEFAULT_PATHS, PciIds
from dranet_backends.uevent import UeventSource
from dranet_core.errors import BackendError

from .backend import RdmaBackend
from .mover import FACET, NetnsMode, RdmaMover
from .nldev import NETNS_EXCLUSIVE, NETNS_SHARED, probe_netns_mode

__all__ = ["FACET", "RdmaBackend", "RdmaMover", "create", "detect_netns_mode"]

log = logging.getLogger(__name__)


def detect_netns_mode(netns: str | None = None) -> NetnsMode:
    """The kernel's RDMA netns mode; ``shared`` (logged) when it cannot be asked."""
    try:
        mode = probe_netns_mode(netns)
    except OSError as exc:
        log.info("rdma: cannot read the RDMA netns mode (%s); assuming shared", exc.strerror or exc)
        return "shared"
    if mode == NETNS_EXCLUSIVE:
        return "exclusive"
    if mode != NETNS_SHARED:
        log.warning("rdma: unknown RDMA netns mode %d; assuming shared", mode)
    return "shared"


def _options(context: Any) -> dict[str, str]:
    raw: Mapping[str, str] = getattr(context, "options", {}) or {}
    out = {k: v for k, v in raw.items() if "." not in k}
    out.update({k[len("rdma.") :]: v for k, v in raw.items() if k.startswith("rdma.")})
    return out


def create(context: Any) -> RdmaBackend:
    """Entry point of the ``dranet.backends`` group: the rdma backend for ``context``.

    Raises :class:`BackendError` for an invalid option value.
    """
    opts = _options(context)
    netns = opts.get("netns") or None
    wanted = opts.get("netns_mode", "auto").lower()
    mode: NetnsMode
    if wanted == "auto":
        mode = detect_netns_mode(netns)
    elif wanted in ("shared", "exclusive"):
        mode = "shared" if wanted == "shared" else "exclusive"
    else:
        raise BackendError("rdma", f"netns_mode must be auto, shared or exclusive, not {wanted!r}")
    try:
        poll = float(opts.get("poll_interval", "30"))
    except ValueError as exc:
        raise BackendError("rdma", f"poll_interval must be a number: {exc}") from exc
    if poll <= 0:
        raise BackendError("rdma", f"poll_interval must be > 0, not {poll}")
    log.info("rdma: RDMA netns mode %s", mode)
    return RdmaBackend(
        sysfs=Path(getattr(context, "sysfs", "/sys")),
        procfs=Path(getattr(context, "procfs", "/proc")),
        dev_root=Path(opts.get("dev_root") or "/dev"),
        mover=RdmaMover(mode=mode, host_netns=netns),
        poll_interval=poll,
        pci_ids=PciIds(opts["pci_ids"].split(":")) if opts.get("pci_ids") else PciIds(DEFAULT_PATHS),
        uevents=UeventSource.opener(netns),
    )
