"""pytest fixtures for the fake API server (imported by ``tests/conftest.py``).

* ``fake_api``: a started :class:`FakeApiServer` on 127.0.0.1 (random port), closed after
  the test.
* ``fake_api_client``: a kubernetes-asyncio ``ApiClient`` pointing at it, closed after the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio.client import ApiClient

from .client import make_api_client
from .server import FakeApiServer


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeApiServer]:
    server = FakeApiServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def fake_api_client(fake_api: FakeApiServer) -> AsyncIterator[ApiClient]:
    client = make_api_client(fake_api.url)
    try:
        yield client
    finally:
        await client.close()
