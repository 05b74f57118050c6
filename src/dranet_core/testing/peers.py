"""In-memory stand-ins for the API server, to run a real :class:`~dranet_core.Driver` without a
cluster: :class:`MemoryClaimSource` (claims a test or a script puts in a dict) and
:class:`DemoPublisher` (ResourceSlices and claim status kept locally, written as YAML files).

The kubelet and the container runtime are the kit's independent peers:
:mod:`dranet_core.testing.kubelet` and :mod:`dranet_core.testing.nri_runtime`.
"""

from __future__ import annotations

from dranet_core.demo import DemoPublisher, MemoryClaimSource

__all__ = ["DemoPublisher", "MemoryClaimSource"]
