"""In-process peers that drive a :class:`~dranet_core.Driver` as a node would, without a node.

* :class:`KubeletPeer`: the kubelet's side of DRA: registers the plugin over its registration
  socket, then calls ``NodePrepareResources`` / ``NodeUnprepareResources`` (DRA v1, gRPC).
* :class:`NriRuntimePeer`: the container runtime's side of NRI: accepts the plugin,
  configures and synchronizes it, then sends pod events (RunPodSandbox, StopPodSandbox,
  RemovePodSandbox, CreateContainer) for :class:`DemoPod` pods.
* :class:`MemoryClaimSource` and :class:`DemoPublisher` stand in for the API server: claims
  from memory, slices and claim status kept locally.

``dranet demo`` and ``examples/custom_driver`` use exactly these.
"""

from __future__ import annotations

from dranet_core.demo import DemoPublisher, MemoryClaimSource
from dranet_core.demo.kubelet import KubeletPeer
from dranet_core.demo.runtime import DemoPod, NriRuntimePeer

__all__ = ["DemoPod", "DemoPublisher", "KubeletPeer", "MemoryClaimSource", "NriRuntimePeer"]
