"""Cloud provider attributes: ``--cloud-provider-hint`` read once at start, added to devices.

The Go driver's ``--cloud-provider-hint`` names the cloud whose instance metadata service
describes this node. At start the driver reads it once
(:func:`~dranet_core.cloud.providers.fetch_cloud_attributes`); the answer is kept for the
process lifetime and added to every scan's devices
(:meth:`~dranet_core.cloud.attributes.CloudAttributes.apply`), so a rescan never loses them.
Each provider is one module stating the requests it sends and the attributes it publishes,
with the names and values of the Go driver: :mod:`~dranet_core.cloud.gce`,
:mod:`~dranet_core.cloud.aws`, :mod:`~dranet_core.cloud.azure`, :mod:`~dranet_core.cloud.oke`,
:mod:`~dranet_core.cloud.alibaba`.
"""

from __future__ import annotations

from dranet_core.cloud.attributes import CloudAttributes
from dranet_core.cloud.gce import gce_attributes
from dranet_core.cloud.providers import fetch_cloud_attributes

__all__ = ["CloudAttributes", "fetch_cloud_attributes", "gce_attributes"]
