"""ClaimCache: prepare answers from a watch of this node's claims; a GET only on a miss."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from conftest import DRIVER, NODE, resource_claim

from dranet_core.errors import ClaimError, KubeApiError
from dranet_core.kube.claimcache import ClaimCache
from dranet_core.kube.claims import ApiClaimSource
from dranet_core.types import ClaimRef


async def until(pred: Callable[[], bool]) -> None:
    """Wait for ``pred`` (events arrive asynchronously); the outer bound only guards a hang."""

    async def poll() -> None:
        while not pred():  # noqa: ASYNC110 - the fake API has no hook to wait on
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), 30)


def claim_gets(fake_api: Any) -> list[Any]:
    return [r for r in fake_api.requests if r.resource == "resourceclaims" and r.name and r.method == "GET"]


@contextlib.asynccontextmanager
async def running(cache: ClaimCache) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(cache.run())
    try:
        await until(lambda: cache.synced)
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, KubeApiError):
            await task


def make(fake_api_client: Any, **kw: Any) -> tuple[ClaimCache, ApiClaimSource]:
    source = ApiClaimSource(fake_api_client, driver_name=DRIVER, pool=NODE)
    return ClaimCache(source, **kw), source


async def test_a_claim_seen_by_the_watch_is_answered_without_a_request(
    fake_api: Any, fake_api_client: Any
) -> None:
    fake_api.put_object(resource_claim("before", "u-1"))
    cache, source = make(fake_api_client)
    async with running(cache):
        fake_api.put_object(
            resource_claim("after", "u-2", (("nic", "eth2"),), parameters={"interface": {"mtu": 1400}})
        )
        ref1 = ClaimRef(namespace="default", name="before", uid="u-1")
        ref2 = ClaimRef(namespace="default", name="after", uid="u-2")
        await until(lambda: ref2 in cache)
        fake_api.clear_requests()
        got1, got2 = await cache.get(ref1), await cache.get(ref2)
        assert claim_gets(fake_api) == [] and (cache.hits, cache.misses) == (2, 0)
        # the same Claim a GET gives
        assert got1 == await source.get(ref1) and got2 == await source.get(ref2)
        assert got2.configs and got2.results[0].device == "eth2"


async def test_a_cached_claim_is_converted_once_when_its_event_arrives(
    fake_api: Any, fake_api_client: Any
) -> None:
    cache, source = make(fake_api_client)
    async with running(cache):
        fake_api.put_object(resource_claim("c", "u-1", parameters={"interface": {"mtu": 1400}}))
        ref = ClaimRef(namespace="default", name="c", uid="u-1")
        await until(lambda: ref in cache)
        first = await cache.get(ref)
        # every prepare of it gets the Claim built from the event, not a new conversion
        assert await cache.get(ref) is first and cache.hits == 2
        assert first == await source.get(ref)
        # a MODIFIED event replaces it
        fake_api.put_object(resource_claim("c", "u-1", parameters={"interface": {"mtu": 1500}}))
        await until(lambda: cache._claims[("default", "c")].claim is not first)
        assert (await cache.get(ref)).configs[0].parameters == {"interface": {"mtu": 1500}}


async def test_a_claim_without_uid_is_not_cached(fake_api: Any, fake_api_client: Any) -> None:
    cache, _ = make(fake_api_client)
    async with running(cache):
        obj = resource_claim("no-uid", "u-1")
        del obj["metadata"]["uid"]
        cache._event({"type": "ADDED", "object": obj})
        assert len(cache) == 0


async def test_only_claims_allocated_to_this_node_by_this_driver_are_kept(
    fake_api: Any, fake_api_client: Any
) -> None:
    other_node = resource_claim("other-node", "u-3")
    other_node["status"]["allocation"]["devices"]["results"][0]["pool"] = "node-b"
    other_driver = resource_claim("other-driver", "u-4")
    other_driver["status"]["allocation"]["devices"]["results"][0]["driver"] = "gpu.example.com"
    for obj in (other_node, other_driver, resource_claim("pending", "u-5", allocated=False)):
        fake_api.put_object(obj)
    fake_api.put_object(resource_claim("mine", "u-6"))
    cache, _ = make(fake_api_client)
    async with running(cache):
        assert len(cache) == 1 and ClaimRef(namespace="default", name="mine", uid="u-6") in cache
        # deallocated or deleted: dropped
        fake_api.put_object(resource_claim("mine", "u-6", allocated=False))
        await until(lambda: len(cache) == 0)
        fake_api.put_object(resource_claim("mine", "u-6"))
        await until(lambda: len(cache) == 1)
        fake_api.delete_object("resourceclaims", "mine", "default")
        await until(lambda: len(cache) == 0)


async def test_a_miss_or_another_uid_is_a_get(fake_api: Any, fake_api_client: Any) -> None:
    cache, _ = make(fake_api_client)
    async with running(cache):
        fake_api.put_object(resource_claim("c", "u-new"))
        await until(lambda: ClaimRef(namespace="default", name="c", uid="u-new") in cache)
        fake_api.clear_requests()
        with pytest.raises(ClaimError, match="deleted and re-created"):
            await cache.get(ClaimRef(namespace="default", name="c", uid="u-old"))
        with pytest.raises(ClaimError, match="not found"):
            await cache.get(ClaimRef(namespace="default", name="nope", uid="u-x"))
        assert len(claim_gets(fake_api)) == 2 and cache.misses == 2 and cache.hits == 0


async def test_a_claim_not_reserved_yet_is_read_from_the_api(fake_api: Any, fake_api_client: Any) -> None:
    fake_api.put_object(resource_claim("c", "u-1", pods=()))
    cache, _ = make(fake_api_client)
    async with running(cache):
        fake_api.clear_requests()
        await cache.get(ClaimRef(namespace="default", name="c", uid="u-1"))
        assert len(claim_gets(fake_api)) == 1 and cache.misses == 1


async def test_a_failed_watch_empties_the_cache_and_raises_for_a_restart(
    fake_api: Any, fake_api_client: Any
) -> None:
    fake_api.put_object(resource_claim("c", "u-1"))
    cache, _ = make(fake_api_client)
    ref = ClaimRef(namespace="default", name="c", uid="u-1")
    task = asyncio.create_task(cache.run())
    await until(lambda: cache.synced)
    assert ref in cache
    await fake_api.go_down()
    with pytest.raises(KubeApiError) as info:
        await asyncio.wait_for(task, 30)
    assert info.value.temporary and not cache.synced and len(cache) == 0
    with pytest.raises(ClaimError):  # no stale answer: a GET, which fails while the server is down
        await cache.get(ref)
    await fake_api.come_back()
    async with running(cache):  # what the supervisor does: run it again
        assert ref in cache


async def test_a_compacted_history_makes_it_list_again(fake_api: Any, fake_api_client: Any) -> None:
    def lists() -> int:
        return sum(
            1 for r in fake_api.requests if r.resource == "resourceclaims" and not r.is_watch and not r.name
        )

    fake_api.put_object(resource_claim("first", "u-0"))
    cache, _ = make(fake_api_client, watch_timeout=1)
    async with running(cache):
        assert lists() == 1
        # history moves on without a claim event, then is forgotten: when the stream ends (1 s),
        # resuming from the last resourceVersion the cache saw gets a 410
        fake_api.put_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}})
        fake_api.compact()
        await until(lambda: lists() == 2)
        fake_api.put_object(resource_claim("c", "u-1"))
        await until(lambda: ClaimRef(namespace="default", name="c", uid="u-1") in cache)
        assert cache.synced


async def test_a_template_claim_keeps_its_pod_claim_name(fake_api: Any, fake_api_client: Any) -> None:
    """The device metadata of a template claim is mounted under its name in the pod spec."""
    obj = resource_claim("pod-1-net-x7k2p", "u-9")
    obj["metadata"]["annotations"] = {"resource.kubernetes.io/pod-claim-name": "net", "other": "dropped"}
    fake_api.put_object(obj)
    cache, source = make(fake_api_client)
    async with running(cache):
        ref = ClaimRef(namespace="default", name="pod-1-net-x7k2p", uid="u-9")
        await until(lambda: ref in cache)
        got = await cache.get(ref)
        assert cache.hits == 1
        assert got.pod_claim_name == "net"
        assert got == await source.get(ref)
