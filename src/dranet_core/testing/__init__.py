"""The testing kit for backend and driver authors (install ``dranet[testing]``).

* :mod:`dranet_core.testing.fakeapi`: a fake Kubernetes API server (aiohttp) that
  kubernetes-asyncio talks to, with the API server's validation of ResourceSlices and claim
  status, watches, and injectable faults. It plays the API server.
* :mod:`dranet_core.testing.kubelet`: :class:`Kubelet` plays the kubelet toward a driver:
  plugin registration, then DRA v1 ``NodePrepareResources`` / ``NodeUnprepareResources``,
  over grpcio with stubs compiled from the kubelet's protos (:func:`kubelet_stubs`).
* :mod:`dranet_core.testing.nri_runtime`: :class:`RuntimePeer` plays the container runtime
  (containerd's NRI side): accepts the plugin, configures and synchronizes it, then sends pod
  and container events through a :class:`PeerSession`, and checks the plugin keeps the
  protocol's rules as containerd reads them.
* :mod:`dranet_core.testing.peers`: :class:`MemoryClaimSource` and :class:`DemoPublisher`
  stand in for the API server in memory.
* :mod:`dranet_core.testing.local`: :func:`local_node` runs the real driver with your
  backends and all of the above around it: a backend tested end to end on one machine.
* :mod:`dranet_core.testing.netns`: throwaway network namespaces and veth pairs (root).
* :mod:`dranet_core.testing.conformance`: :class:`BackendConformance`, the checks every
  backend must pass; subclass it in your tests.
* :mod:`dranet_core.testing.pytest_plugin`: fixtures (``fake_api``, ``fake_api_client``,
  ``node``, ``pod``); enable with ``pytest_plugins = ["dranet_core.testing.pytest_plugin"]``.

The kubelet and runtime peers share no code with the driver (their own gRPC stack and
protobuf codecs), so they test the driver's wire code instead of mirroring it.
Submodules are imported on first use, so ``import dranet_core.testing`` needs no extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dranet_core.testing.conformance import BackendConformance, MoveCase
    from dranet_core.testing.fakeapi import FakeApiServer
    from dranet_core.testing.kubelet import Kubelet, KubeletStubs, kubelet_stubs
    from dranet_core.testing.local import LocalNode, local_node
    from dranet_core.testing.netns import Netns, throwaway_netns, veth_pair
    from dranet_core.testing.nri_runtime import FakeContainer, FakePod, PeerSession, Result, RuntimePeer
    from dranet_core.testing.peers import DemoPublisher, MemoryClaimSource

__all__ = [
    "BackendConformance",
    "DemoPublisher",
    "FakeApiServer",
    "FakeContainer",
    "FakePod",
    "Kubelet",
    "KubeletStubs",
    "LocalNode",
    "MemoryClaimSource",
    "MoveCase",
    "Netns",
    "PeerSession",
    "Result",
    "RuntimePeer",
    "kubelet_stubs",
    "local_node",
    "throwaway_netns",
    "veth_pair",
]

_WHERE = {
    "BackendConformance": "conformance",
    "MoveCase": "conformance",
    "FakeApiServer": "fakeapi",
    "Netns": "netns",
    "throwaway_netns": "netns",
    "veth_pair": "netns",
    "DemoPublisher": "peers",
    "MemoryClaimSource": "peers",
    "Kubelet": "kubelet",
    "KubeletStubs": "kubelet",
    "kubelet_stubs": "kubelet",
    "LocalNode": "local",
    "local_node": "local",
    "FakeContainer": "nri_runtime",
    "FakePod": "nri_runtime",
    "PeerSession": "nri_runtime",
    "Result": "nri_runtime",
    "RuntimePeer": "nri_runtime",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'dranet_core.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dranet_core.testing.{module}"), name)
