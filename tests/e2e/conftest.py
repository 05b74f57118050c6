"""Fixtures of the acceptance suite (see ``harness.py`` for how to write a scenario).

* ``cluster``: one driver process (and its peers, one node namespace) shared by every test of
  a module, started once; each test's leftovers (pods, claims, links) are cleaned after it.
* ``fresh_cluster``: a driver of the test's own, for tests that kill, restart or break it.
"""

from __future__ import annotations

import types
from collections.abc import Iterator

import pytest
from e2e.harness import Cluster, grpc_pb_fixture, root_or_skip  # noqa: F401


@pytest.fixture(scope="module")
def shared_cluster(grpc_pb: types.SimpleNamespace) -> Iterator[Cluster]:
    root_or_skip()
    c = Cluster(grpc_pb)
    try:
        c.start()
        yield c
    finally:
        c.close()


@pytest.fixture
def cluster(shared_cluster: Cluster) -> Iterator[Cluster]:
    """The module's driver; after the test it must still be running and healthy."""
    if not shared_cluster.driver.alive:
        shared_cluster.start(*shared_cluster.extra)  # an earlier test broke it: do not cascade
    try:
        yield shared_cluster
    finally:
        shared_cluster.cleanup()
    shared_cluster.assert_serving()


@pytest.fixture
def fresh_cluster(grpc_pb: types.SimpleNamespace) -> Iterator[Cluster]:
    """A cluster whose driver is not started yet (``fresh_cluster.start(*flags)``)."""
    root_or_skip()
    c = Cluster(grpc_pb)
    try:
        yield c
    finally:
        c.close()


# The Go driver's e2e scenarios (its bats suite) that this suite does not run, and why.
NOT_PORTED = [
    (20, "validate vrf routing", "ported (test_validate_vrf_routing), runs only where the kernel has VRF"),
    (22, "validate python webhook configuration integration", "needs the Go webhook cloud/profile provider"),
    (23, "validate whereabouts cni integration", "needs whereabouts IPAM and the webhook profile provider"),
]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print which Go scenarios are not ported (and why) after every run of this suite."""
    tr = terminalreporter
    tr.section("Go e2e scenarios not ported")
    for number, name, why in NOT_PORTED:
        tr.write_line(f"  #{number:<3} {name:<52} {why}")
