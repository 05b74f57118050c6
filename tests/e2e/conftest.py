"""Fixtures of the acceptance suite (see ``harness.py`` for how to write a scenario).

* ``cluster``: one driver process (and its peers, one node namespace) shared by every test of
  a module, started once; each test's leftovers (pods, claims, links) are cleaned after it.
* ``fresh_cluster``: a driver of the test's own, for tests that kill, restart or break it.
"""

from __future__ import annotations

import os
import types
from collections.abc import Generator, Iterator

import pytest
from e2e.harness import Cluster, grpc_pb_fixture, root_or_skip  # noqa: F401
from e2e.nodenet import vrf_probe


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
def cluster(shared_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The module's driver; after the test it must still be running and healthy."""
    c = shared_cluster
    if c.broken or not c.driver.alive:
        c.driver.stop_now()  # an earlier test broke it: a fresh process, so failures do not cascade
        c.start(*c.extra)
        c.broken = False
    try:
        yield c
    finally:
        rep = getattr(request.node, "rep_call", None)
        c.broken = rep is None or rep.failed
        c.cleanup()
    try:
        c.assert_serving()
    except BaseException:
        c.broken = True
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the item (the ``cluster`` fixture reads ``rep_call``)."""
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


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
    (22, "validate python webhook configuration integration", "its runtime-hook part (no GetRuntimeHook)"),
    (23, "validate whereabouts cni integration", "needs whereabouts IPAM and the webhook profile provider"),
]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print which Go scenarios are not ported (and why) after every run of this suite."""
    tr = terminalreporter
    tr.section("Go e2e scenarios not ported")
    rows = list(NOT_PORTED)
    if os.geteuid() == 0 and (problem := vrf_probe()):
        rows.insert(0, (20, "validate vrf routing", f"this kernel has no VRF ({problem})"))
    for number, name, why in rows:
        tr.write_line(f"  #{number:<3} {name:<52} {why}")
