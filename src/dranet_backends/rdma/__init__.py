"""The rdma backend: RDMA devices: discovery from sysfs, RDMA netlink, char devices, exclusive netns mode.

``create(context)`` is the ``dranet.backends`` entry point. It reads the context's
``sysfs``, ``procfs`` and ``host_netns`` (the namespace to treat as the host's; default
this process's own) and the options:

* ``rdma.netns_mode``: ``auto`` (default: ask the kernel once, ``RDMA_NLDEV_CMD_SYS_GET``; any
  error means ``shared``, logged, as the Go driver), ``shared`` or ``exclusive``;
* ``rdma.dev_root``: the host's ``/dev`` (default ``/dev``);
* ``rdma.poll_interval``: seconds between sysfs polls of :meth:`RdmaBackend.watch` (default 30).

On a machine without RDMA the backend still loads: it discovers nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from dranet_backends.pci import DEFAULT_PATHS, PciIds
from dranet_backends.uevent import UeventSource
from dranet_core.backends import (
    BackendContext,
    BackendOption,
    backend_options,
    parse_choice,
    parse_path,
    parse_seconds,
)

from .backend import RdmaBackend
from .mover import FACET, NetnsMode, RdmaMover
from .nldev import NETNS_EXCLUSIVE, NETNS_SHARED, probe_netns_mode

__all__ = [
    "DEV_ROOT",
    "FACET",
    "NETNS_MODE",
    "POLL_INTERVAL",
    "RdmaBackend",
    "RdmaMover",
    "create",
    "detect_netns_mode",
]

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


NETNS_MODE = BackendOption(
    "rdma",
    "netns_mode",
    parse_choice("auto", "shared", "exclusive"),
    "auto",
    "the kernel's RDMA netns mode: auto asks the kernel",
)
DEV_ROOT = BackendOption(
    "rdma", "dev_root", parse_path, Path("/dev"), "the /dev char devices are found under"
)
POLL_INTERVAL = BackendOption("rdma", "poll_interval", parse_seconds, 30.0, "seconds between sysfs polls")


@backend_options(NETNS_MODE, DEV_ROOT, POLL_INTERVAL)
def create(context: BackendContext) -> RdmaBackend:
    """Entry point of the ``dranet.backends`` group: the rdma backend for ``context``.

    Raises :class:`~dranet_core.backends.BackendOptionError` for an invalid option value.
    """
    netns = str(context.host_netns) if context.host_netns else None
    wanted = context.option(NETNS_MODE)
    poll = context.option(POLL_INTERVAL)
    mode: NetnsMode = (
        detect_netns_mode(netns) if wanted == "auto" else "exclusive" if wanted == "exclusive" else "shared"
    )
    log.debug("rdma: RDMA netns mode %s", mode)
    return RdmaBackend(
        sysfs=context.sysfs,
        procfs=context.procfs,
        dev_root=context.option(DEV_ROOT),
        mover=RdmaMover(mode=mode, host_netns=netns),
        poll_interval=poll,
        pci_ids=PciIds(DEFAULT_PATHS),  # names for IB-only functions, from the distribution's pci.ids
        uevents=UeventSource.opener(netns),
    )
