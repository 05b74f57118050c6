"""The Go driver's end-to-end scenarios, one test each under the Go name.

veth and macvlan devices stand in for the Go suite's dummy devices (this kernel has no dummy
module); one driver process serves the whole module.
"""

from __future__ import annotations

import pytest
from e2e.harness import Cluster, global_addrs

pytestmark = [pytest.mark.netns, pytest.mark.socket, pytest.mark.slow]


def test_dummy_interface_with_ip_addresses_resourceclaim(cluster: Cluster) -> None:
    dev = cluster.node.veth(addrs=["10.50.0.2/24"])
    claim = cluster.claim([dev], config={"interface": {"name": "eth99", "addresses": ["169.254.169.13/24"]}})
    pod = cluster.create_pod([claim])
    assert global_addrs(pod.link("eth99")) == ["169.254.169.13/24"]
    assert cluster.node.link(dev.name) is None
    assert cluster.status_ips(claim) == ["169.254.169.13/24"]
    cluster.delete_pod(pod)
    cluster.assert_home(dev)
    cluster.assert_forgotten(claim)
