"""Shared test fixtures.

``_no_pending_tasks`` fails any async test that leaves tasks running behind it (kopf's
approach): every task a test starts must be awaited or cancelled by the test itself.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest


@pytest.fixture(autouse=True)
async def _no_pending_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    # give cancelled tasks one turn to finish
    await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    if left:
        for t in left:
            t.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        pytest.fail(f"test left {len(left)} pending task(s): {[t.get_name() for t in left]}")


def is_root() -> bool:
    return os.geteuid() == 0


# The fake Kubernetes API server's fixtures (tests/fakeapi), shared by every area.
from fakeapi.fixtures import fake_api, fake_api_client  # noqa: E402, F401
