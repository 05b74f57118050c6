"""The one ownership rule: which backend a device belongs to, and what follows from it.

**A backend owns a device exactly when the device carries a facet under the backend's name**
(``device.facets[backend.name]``), put there by that backend's own discovery. The driver
calls every per-device capability of a backend (moving, validating and resolving a config,
device nodes for containers, health) only for the devices that backend owns, and keeps the
backend's name with each handler; no backend ever filters devices itself.

A claim configuration section named after a backend (:data:`BACKEND_SECTIONS`, e.g.
``sriov``) is that backend's: on a device the backend does not own it is refused by the
driver itself (:func:`section_issues`), before any backend is asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, TypeVar

from dranet_core.config.model import NetworkConfig
from dranet_core.errors import ConfigIssue
from dranet_core.types import JSON

__all__ = ["BACKEND_SECTIONS", "HasFacets", "owned", "owns", "section_issues"]

BACKEND_SECTIONS: tuple[str, ...] = ("sriov", "rdma")
"""Claim config sections that belong to the backend of the same name."""

H = TypeVar("H")


class HasFacets(Protocol):
    """A discovered device (:class:`~dranet_core.types.Device`) or a prepared one
    (:class:`~dranet_core.plans.PreparedDevice`): both carry the backends' facets."""

    @property
    def facets(self) -> Mapping[str, JSON]:
        """Backend name -> that backend's private data about the device."""
        ...


def owns(backend: str, device: HasFacets) -> bool:
    """Whether ``backend`` owns ``device`` (the device has a facet under that name)."""
    return backend in device.facets


def owned(handlers: Iterable[tuple[str, H]], device: HasFacets) -> list[tuple[str, H]]:
    """The ``(backend name, handler)`` pairs whose backend owns ``device``, in their order."""
    return [(name, h) for name, h in handlers if name in device.facets]


def section_issues(device: str, facets: Mapping[str, JSON], config: NetworkConfig) -> list[ConfigIssue]:
    """One issue per backend section of ``config`` whose backend does not own ``device``."""
    return [
        ConfigIssue(
            section,
            f"not allowed: device {device} is not a {section} device (it has no {section} facet; "
            f"a '{section}' section applies only to devices the {section} backend discovered)",
        )
        for section in BACKEND_SECTIONS
        if getattr(config, section) is not None and section not in facets
    ]
