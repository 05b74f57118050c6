"""Which form list-typed attributes are published in: lists, or their scalar form.

Backends state what they know as lists where a list is the truth (a NIC's NUMA node and the
nodes equally close to it: ``resource.kubernetes.io/numaNode``), first item first
(:class:`~dranet_core.types.AttributeList`). Kubernetes takes list-typed attributes only from
1.36 on, with the ``DRAListTypeAttributes`` feature gate on the kube-apiserver and the
kube-scheduler; the driver cannot see that gate, so the operator says it with the driver's
``--feature-gates=DRAListTypeAttributes=true``, as for the Go driver. Without it (the
default) every list attribute is published as its first item, the scalar the Go driver
publishes then. :class:`ScalarForms` applies that to every scan, before the filter, so the
filter, the ResourceSlices, ``dranet inventory`` and the device metadata all see the same form.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from dranet_core.types import AttributeList, Device, DeviceMemo, scalar_form

__all__ = ["ScalarForms", "with_scalar_forms"]


def with_scalar_forms(device: Device) -> Device:
    """``device`` with every list-typed attribute replaced by its first item (itself if none)."""
    if not any(isinstance(v, AttributeList) for v in device.attributes.values()):
        return device
    return attrs.evolve(device, attributes={k: scalar_form(v) for k, v in device.attributes.items()})


class ScalarForms:
    """:func:`with_scalar_forms` over a whole scan unless ``lists`` is on, remembering the last
    result per device so an unchanged device is not rebuilt on every scan."""

    def __init__(self, *, lists: bool = False) -> None:
        self.lists = lists
        self._memo = DeviceMemo(with_scalar_forms)

    def apply(self, devices: Mapping[str, Device]) -> dict[str, Device]:
        """``devices`` in the published form, by name."""
        return dict(devices) if self.lists else self._memo.apply(devices)
