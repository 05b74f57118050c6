"""The kit's local node: the real driver with the built-in netdev backend and the kit's kubelet
and runtime peers, in throwaway namespaces (root)."""

from __future__ import annotations

import pytest

from dranet_core.testing.local import local_node
from dranet_core.testing.netns import Netns, veth_pair
from dranet_core.testing.nri_runtime import FakePod
from dranet_core.testing.pytest_plugin import netns_prefix, node, pod  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.netns, pytest.mark.socket]


async def test_a_pod_gets_a_device_through_the_local_driver(node: Netns, pod: Netns) -> None:  # noqa: F811
    veth_pair(node, "lnv0", "lnv0p")
    node.ip("link", "set", "lnv0", "up")
    async with local_node(backends=["netdev"], host_netns=node.path) as local:
        await local.wait_published("lnv0")
        sandbox = FakePod(id="sb-1", name="web", uid="pod-1", netns=pod.path)
        prepared = await local.prepare("c1", ["lnv0"], sandbox, config={"interface": {"name": "net1"}})
        assert prepared.error == ""
        started = await local.session.run_pod_sandbox(sandbox)
        assert started.code == 0, started.message
        assert pod.link("net1") is not None and node.link("lnv0") is None
        await local.session.stop_pod_sandbox(sandbox)
        assert node.link("lnv0") is not None and pod.link("net1") is None
        assert (await local.unprepare("c1")).error == ""


async def test_waiting_for_a_device_that_never_appears_names_what_is_published(node: Netns) -> None:  # noqa: F811
    async with local_node(backends=["netdev"], host_netns=node.path) as local:
        with pytest.raises(TimeoutError, match=r"device nothere0 not published within 0.5s \(published: "):
            await local.wait_published("nothere0", within=0.5)
