"""The testing kit for backend and driver authors (install ``dranet[testing]``).

* :mod:`dranet_core.testing.fakeapi`: a fake Kubernetes API server (aiohttp) that
  kubernetes-asyncio talks to, with the API server's validation of ResourceSlices and claim
  status, watches, and injectable faults.
* :mod:`dranet_core.testing.peers`: the kubelet (DRA gRPC) and container runtime (NRI) as
  in-process peers, and an in-memory claim source and status publisher: drive a real
  :class:`~dranet_core.Driver` without a node.
* :mod:`dranet_core.testing.netns`: throwaway network namespaces and veth pairs (root).
* :mod:`dranet_core.testing.conformance`: :class:`BackendConformance`, the checks every
  backend must pass; subclass it in your tests.
* :mod:`dranet_core.testing.pytest_plugin`: fixtures (``fake_api``, ``fake_api_client``,
  ``node``, ``pod``); enable with ``pytest_plugins = ["dranet_core.testing.pytest_plugin"]``.

Submodules are imported on first use, so ``import dranet_core.testing`` needs no extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dranet_core.testing.conformance import BackendConformance, MoveCase
    from dranet_core.testing.fakeapi import FakeApiServer
    from dranet_core.testing.netns import Netns, throwaway_netns, veth_pair
    from dranet_core.testing.peers import DemoPod, KubeletPeer, MemoryClaimSource, NriRuntimePeer

__all__ = [
    "BackendConformance",
    "DemoPod",
    "FakeApiServer",
    "KubeletPeer",
    "MemoryClaimSource",
    "MoveCase",
    "Netns",
    "NriRuntimePeer",
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
    "DemoPod": "peers",
    "KubeletPeer": "peers",
    "MemoryClaimSource": "peers",
    "NriRuntimePeer": "peers",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'dranet_core.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(f"dranet_core.testing.{module}"), name)
