"""The macvlan backend against the dranet conformance suite, in throwaway namespaces (root)."""

from __future__ import annotations

import pytest
from dranet_macvlan import MacvlanBackend, create

from dranet_core import BackendContext
from dranet_core.testing.conformance import BackendConformance, MoveCase
from dranet_core.testing.netns import Netns


class TestMacvlanConformance(BackendConformance):
    @pytest.fixture
    def backend(self, node_with_macvlan: Netns) -> MacvlanBackend:
        return create(BackendContext(node_name="n", host_netns=node_with_macvlan.path))

    @pytest.fixture
    def move_case(self, pod: Netns) -> MoveCase:
        return MoveCase(device="mv0", pod_netns=pod.path)


async def test_discovers_only_macvlans(node_with_macvlan: Netns) -> None:
    backend = create(BackendContext(node_name="n", host_netns=node_with_macvlan.path))
    (device,) = await backend.scan()
    assert device.name == "mv0"
    assert device.attributes["dra.net/type"] == "macvlan"
    assert device.attributes["macvlan.example.com/mode"] == "bridge"


async def test_mode_option_filters(node_with_macvlan: Netns) -> None:
    ctx = BackendContext(node_name="n", host_netns=node_with_macvlan.path, options={"macvlan.mode": "vepa"})
    assert await create(ctx).scan() == []
