"""The built-in netdev backend runs the conformance suite of the testing kit, as any backend would."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dranet_backends.netdev import NetdevBackend, create
from dranet_core.backends import BackendContext
from dranet_core.testing.conformance import BackendConformance, MoveCase
from dranet_core.testing.netns import Netns, veth_pair
from dranet_core.testing.pytest_plugin import netns_prefix, node, pod  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.netns]


class TestNetdevConformance(BackendConformance):
    @pytest.fixture
    async def backend(self, node: Netns) -> AsyncIterator[NetdevBackend]:  # noqa: F811
        veth_pair(node, "cup0", "cup0p")
        node.ip("link", "add", "cmv0", "link", "cup0", "type", "macvlan", "mode", "bridge")
        node.ip("addr", "add", "10.97.0.10/24", "dev", "cmv0")
        node.ip("link", "set", "cmv0", "mtu", "1400", "up")
        backend = create(BackendContext(node_name="n", host_netns=node.path))
        try:
            yield backend
        finally:
            await backend.aclose()

    @pytest.fixture
    def move_case(self, pod: Netns) -> MoveCase:  # noqa: F811
        return MoveCase(device="cmv0", pod_netns=pod.path)
