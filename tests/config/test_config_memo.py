"""ConfigMemo: resolve_config remembering its answers, keyed by the applying parameters' JSON text."""

from __future__ import annotations

import copy
import pathlib
from collections.abc import Sequence
from typing import Any

import pytest
from config_examples import CASES

from dranet_core.checkpoint import ClaimStore
from dranet_core.claim_allocator import ClaimAllocator
from dranet_core.config import ConfigMemo, NetworkConfig, resolve_config
from dranet_core.errors import ConfigError
from dranet_core.types import AllocationResult, Claim, ClaimRef, ConsumerRef, Device, OpaqueConfig

D = "dra.net"
VALID = [params for _, params, path, _ in CASES if path is None]
INVALID = [params for _, params, path, _ in CASES if path is not None]


def oc(params: Any, *, requests: tuple[str, ...] = (), driver: str = D) -> OpaqueConfig:
    return OpaqueConfig(source="FromClaim", requests=requests, driver=driver, parameters=params)


class Counting:
    """resolve_config, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, configs: Sequence[OpaqueConfig], request: str, driver: str) -> NetworkConfig:
        self.calls += 1
        return resolve_config(configs, request, driver)


@pytest.mark.parametrize("params", VALID)
def test_every_valid_example_resolves_as_resolve_config_and_once(params: dict[str, Any]) -> None:
    inner = Counting()
    memo = ConfigMemo(inner)
    first = memo([oc(params)], "nic", D)
    again = memo([oc(copy.deepcopy(params))], "nic", D)  # another claim, equal parameters
    assert first == resolve_config([oc(params)], "nic", D)
    assert again is first
    assert (inner.calls, memo.hits, memo.misses) == (1, 1, 1)


@pytest.mark.parametrize("params", INVALID)
def test_an_invalid_config_raises_every_time_and_is_not_remembered(params: dict[str, Any]) -> None:
    inner = Counting()
    memo = ConfigMemo(inner)
    for _ in range(2):
        with pytest.raises(ConfigError) as caught:
            memo([oc(params)], "nic", D)
        with pytest.raises(ConfigError) as direct:
            resolve_config([oc(params)], "nic", D)
        assert caught.value.issues == direct.value.issues
    assert inner.calls == 2
    assert len(memo) == 0


def test_order_of_entries_is_part_of_the_key() -> None:
    a, b = oc({"interface": {"mtu": 1000}}), oc({"interface": {"mtu": 2000}})
    memo = ConfigMemo()
    assert memo([a, b], "nic", D).interface.mtu == 2000  # later wins
    assert memo([b, a], "nic", D).interface.mtu == 1000
    assert memo([a], "nic", D).interface.mtu == 1000
    assert len(memo) == 3


def test_values_equal_in_python_but_not_in_json_are_different_keys() -> None:
    memo = ConfigMemo()
    assert memo([oc({"interface": {"mtu": 1500}})], "nic", D).interface.mtu == 1500
    with pytest.raises(ConfigError, match="mtu"):  # 1500.0 == 1500 in Python, not an integer in JSON
        memo([oc({"interface": {"mtu": 1500.0}})], "nic", D)
    assert memo([oc({"interface": {"dhcp": True}})], "nic", D).interface.dhcp is True
    with pytest.raises(ConfigError, match="dhcp"):  # 1 == True in Python
        memo([oc({"interface": {"dhcp": 1}})], "nic", D)


def test_entries_that_do_not_apply_do_not_change_the_key() -> None:
    inner = Counting()
    memo = ConfigMemo(inner)
    mine = oc({"interface": {"name": "net1"}}, requests=("nic",))
    first = memo([mine, oc({"interface": {"mtu": 1}}, requests=("other",))], "nic", D)
    second = memo([oc({"x": 1}, driver="gpu.example.com"), mine, oc(None)], "nic", D)
    assert second is first
    assert inner.calls == 1
    # ... but the request selects: for "other" the other entry applies
    assert (
        memo([mine, oc({"interface": {"mtu": 1500}}, requests=("other",))], "other", D).interface.mtu == 1500
    )


def test_json_text_parameters_are_keyed_by_their_text() -> None:
    inner = Counting()
    memo = ConfigMemo(inner)
    text = '{"interface": {"name": "net1"}}'
    assert memo([oc(text)], "nic", D) is memo([oc(text)], "nic", D)
    assert memo([oc(text.encode())], "nic", D).interface.name == "net1"
    assert inner.calls == 2  # str and bytes are separate keys
    with pytest.raises(ConfigError, match="duplicate"):  # text is still checked for duplicate keys
        memo([oc('{"interface": {}, "interface": {}}')], "nic", D)


def test_parameters_json_cannot_encode_bypass_the_memo() -> None:
    inner = Counting()
    memo = ConfigMemo(inner)
    odd = {"interface": {"name": "net1"}, "extra": {1, 2}}  # a set: not JSON
    for _ in range(2):
        with pytest.raises(ConfigError):
            memo([oc(odd)], "nic", D)
    assert inner.calls == 2
    assert len(memo) == 0


def test_least_recently_used_answer_is_dropped_first() -> None:
    inner = Counting()
    memo = ConfigMemo(inner, size=2)
    one, two, three = ([oc({"interface": {"mtu": m}})] for m in (1001, 1002, 1003))
    memo(one, "nic", D)
    memo(two, "nic", D)
    memo(one, "nic", D)  # one is now the most recently used
    memo(three, "nic", D)  # drops two
    assert len(memo) == 2
    calls = inner.calls
    memo(one, "nic", D)
    assert inner.calls == calls
    memo(two, "nic", D)
    assert inner.calls == calls + 1


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="size must be >= 1, got 0"):
        ConfigMemo(size=0)


def _claim(uid: str, device: str, params: dict[str, Any]) -> Claim:
    return Claim(
        ref=ClaimRef(namespace="ns", name=f"c-{uid}", uid=uid),
        results=(AllocationResult(request="nic", driver=D, pool="node-a", device=device),),
        configs=(OpaqueConfig(source="FromClaim", driver=D, parameters=params),),
        reserved_for=(ConsumerRef(resource="pods", name=f"p-{uid}", uid=f"pod-{uid}"),),
    )


async def test_claim_allocator_resolves_a_template_config_once(tmp_path: pathlib.Path) -> None:
    inventory = {n: Device(name=n, facets={"netdev": {"ifName": n}}) for n in ("eth1", "eth2", "eth3")}
    alloc = ClaimAllocator(D, "node-a", ClaimStore(tmp_path / "cp.json"))
    params = {"interface": {"name": "net1", "mtu": 1400}}
    a = await alloc.prepare(_claim("a", "eth1", params), inventory)
    b = await alloc.prepare(_claim("b", "eth2", copy.deepcopy(params)), inventory)
    c = await alloc.prepare(_claim("c", "eth3", {"interface": {"name": "net2"}}), inventory)
    assert b.devices[0].config is a.devices[0].config  # one resolution shared by both claims
    assert a.devices[0].config.interface.mtu == 1400
    assert c.devices[0].config.interface.name == "net2"
