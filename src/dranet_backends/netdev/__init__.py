"""The netdev backend: plain network devices: discovery over rtnetlink and sysfs, and the namespace mover."""

from __future__ import annotations

from typing import Any

from dranet_core.errors import BackendError

__all__ = ["create"]


def create(context: Any) -> Any:
    """Entry point of the ``dranet.backends`` group (not implemented yet)."""
    raise BackendError("netdev", "not implemented yet")
