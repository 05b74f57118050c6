"""The rdma backend: RDMA devices: discovery from sysfs, RDMA netlink, char devices, exclusive netns mode."""

from __future__ import annotations

from typing import Any

from dranet_core.errors import BackendError

__all__ = ["create"]


def create(context: Any) -> Any:
    """Entry point of the ``dranet.backends`` group (not implemented yet)."""
    raise BackendError("rdma", "not implemented yet")
