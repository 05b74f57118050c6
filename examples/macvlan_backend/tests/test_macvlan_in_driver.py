"""The macvlan backend in a real driver, with the kit's kubelet and container runtime peers
around it (root): a pod gets the macvlan through the same path a node uses."""

from __future__ import annotations

from dranet_core.testing.local import local_node
from dranet_core.testing.netns import Netns
from dranet_core.testing.nri_runtime import FakePod


def _addrs(link: dict[str, object] | None) -> list[str]:
    infos = link.get("addr_info", []) if link else []
    assert isinstance(infos, list)
    return [f"{a['local']}/{a['prefixlen']}" for a in infos if a.get("scope") == "global"]


async def test_a_pod_gets_the_macvlan_and_gives_it_back(node_with_macvlan: Netns, pod: Netns) -> None:
    async with local_node(backends=["macvlan"], host_netns=node_with_macvlan.path) as local:
        device = await local.wait_published("mv0")
        assert device.attributes["macvlan.example.com/mode"] == "bridge"
        sandbox = FakePod(id="sandbox-1", name="web", uid="pod-1", netns=pod.path)
        config = {"interface": {"name": "net1", "addresses": ["10.96.0.20/24"]}}
        prepared = await local.prepare("claim-1", ["mv0"], sandbox, config=config)
        assert prepared.error == ""

        started = await local.session.run_pod_sandbox(sandbox)  # the driver calls the mover
        assert started.code == 0, started.message
        assert _addrs(pod.link("net1")) == ["10.96.0.20/24"]
        assert node_with_macvlan.link("mv0") is None

        await local.session.stop_pod_sandbox(sandbox)  # and brings it home
        await local.session.remove_pod_sandbox(sandbox)
        assert _addrs(node_with_macvlan.link("mv0")) == ["10.96.0.10/24"]
        assert (await local.unprepare("claim-1")).error == ""


async def test_a_config_section_of_another_backend_is_refused(node_with_macvlan: Netns, pod: Netns) -> None:
    """mv0 is the macvlan backend's (it carries its facet), not the sriov backend's: the
    driver refuses an ``sriov`` section for it at prepare, and nothing moves."""
    async with local_node(backends=["macvlan"], host_netns=node_with_macvlan.path) as local:
        await local.wait_published("mv0")
        sandbox = FakePod(id="sandbox-2", name="web", uid="pod-2", netns=pod.path)
        prepared = await local.prepare("claim-2", ["mv0"], sandbox, config={"sriov": {"vlan": 5}})
        assert "device mv0.sriov: not allowed: device mv0 is not a sriov device" in prepared.error
        assert node_with_macvlan.link("mv0") is not None
