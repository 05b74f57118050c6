"""pytest fixtures of the testing kit.

Enable them in a ``conftest.py`` with ``pytest_plugins = ["dranet_core.testing.pytest_plugin"]``.

* ``fake_api``: a started :class:`~dranet_core.testing.fakeapi.FakeApiServer` on 127.0.0.1
  (random port), closed after the test.
* ``fake_api_client``: a kubernetes-asyncio ``ApiClient`` pointing at it, closed after the test.
* ``node`` and ``pod``: throwaway network namespaces (:func:`~dranet_core.testing.netns.throwaway_netns`)
  sharing one random prefix, deleted after the test; the test is skipped, saying why, when
  this process cannot create namespaces (not root).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from kubernetes_asyncio.client import ApiClient

from dranet_core.testing.fakeapi.client import make_api_client
from dranet_core.testing.fakeapi.server import FakeApiServer
from dranet_core.testing.netns import Netns, can_use_netns, throwaway_netns, unique_prefix

__all__ = ["fake_api", "fake_api_client", "netns_prefix", "node", "pod"]


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeApiServer]:
    """A started fake API server, closed after the test."""
    server = FakeApiServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def fake_api_client(fake_api: FakeApiServer) -> AsyncIterator[ApiClient]:
    """A kubernetes-asyncio client for ``fake_api``, closed after the test."""
    client = make_api_client(fake_api.url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def netns_prefix() -> str:
    """The random name prefix of this test's namespaces (skips when they cannot be made)."""
    why = can_use_netns()
    if why is not None:
        pytest.skip(f"probe for network namespaces failed: {why}")
    return unique_prefix()


@pytest.fixture
def node(netns_prefix: str) -> Iterator[Netns]:
    """A throwaway "node" network namespace."""
    with throwaway_netns("node", prefix=netns_prefix) as ns:
        yield ns


@pytest.fixture
def pod(netns_prefix: str) -> Iterator[Netns]:
    """A throwaway "pod" network namespace."""
    with throwaway_netns("pod", prefix=netns_prefix) as ns:
        yield ns
