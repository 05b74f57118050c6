"""The kit's fixtures (``node``, ``pod``: throwaway network namespaces) and a node with a macvlan."""

from __future__ import annotations

import pytest

from dranet_core.testing.netns import Netns, veth_pair

pytest_plugins = ["dranet_core.testing.pytest_plugin"]


@pytest.fixture
def node_with_macvlan(node: Netns) -> Netns:
    """The node namespace with an uplink veth and one macvlan on it, addressed."""
    veth_pair(node, "up0", "up0p")
    node.ip("link", "add", "mv0", "link", "up0", "type", "macvlan", "mode", "bridge")
    node.ip("addr", "add", "10.96.0.10/24", "dev", "mv0")
    node.ip("link", "set", "mv0", "up")
    return node
