"""The sriov backend: SR-IOV virtual functions and their physical functions, from sysfs."""

from __future__ import annotations

from typing import Any

from dranet_core.errors import BackendError

__all__ = ["create"]


def create(context: Any) -> Any:
    """Entry point of the ``dranet.backends`` group (not implemented yet)."""
    raise BackendError("sriov", "not implemented yet")
