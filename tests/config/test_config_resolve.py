"""Selecting a request's configs from a claim allocation, and resolving them to one config."""

from __future__ import annotations

from typing import Any

import pytest

from dranet_core.config import InterfaceConfig, NetworkConfig, VRFConfig, configs_for_request, resolve_config
from dranet_core.errors import ConfigError
from dranet_core.types import OpaqueConfig

D = "dra.net"


def oc(
    params: Any, *, requests: tuple[str, ...] = (), driver: str = D, source: str = "FromClaim"
) -> OpaqueConfig:
    return OpaqueConfig(source=source, requests=requests, driver=driver, parameters=params)


def test_selection_by_driver_and_request() -> None:
    configs = [
        oc({"interface": {"mtu": 1000}}, source="FromClass"),
        oc({"interface": {"mtu": 2000}}, driver="gpu.example.com"),
        oc({"interface": {"mtu": 3000}}, requests=("other",)),
        oc({"interface": {"mtu": 4000}}, requests=("nic",)),
        oc(None),
        oc({"interface": {"mtu": 5000}}, requests=("nic", "x")),
    ]
    got = configs_for_request(configs, "nic", D)
    assert got == [
        ("config[0].parameters", NetworkConfig(interface=InterfaceConfig(mtu=1000))),
        ("config[3].parameters", NetworkConfig(interface=InterfaceConfig(mtu=4000))),
        ("config[5].parameters", NetworkConfig(interface=InterfaceConfig(mtu=5000))),
    ]
    # subrequest of a prioritized-list request: the parent name selects it too
    assert [p for p, _ in configs_for_request(configs, "nic/fast", D)] == [
        "config[0].parameters",
        "config[3].parameters",
        "config[5].parameters",
    ]


def test_all_invalid_entries_reported() -> None:
    configs = [oc({"interface": {"mtu": 10}}), oc({"interface": {"MTU": 1}}), oc('{"a": 1, "a": 2}')]
    with pytest.raises(ConfigError) as info:
        configs_for_request(configs, "nic", D)
    assert [i.path for i in info.value.issues] == [
        "config[0].parameters.interface.mtu",
        "config[1].parameters.interface.MTU",
        "config[2].parameters.a",
        "config[2].parameters.a",
    ]


def test_claim_config_overrides_class_config() -> None:
    # The API lists class configs first; Go takes the first, we let the claim's win.
    configs = [
        oc({"interface": {"mtu": 9000, "name": "cls0"}}, source="FromClass"),
        oc({"interface": {"mtu": 1500}}, source="FromClaim"),
    ]
    assert resolve_config(configs, "nic", D) == NetworkConfig(
        interface=InterfaceConfig(mtu=1500, name="cls0")
    )


def test_resolve_applies_defaults() -> None:
    out = resolve_config([oc({"interface": {"vrf": {"name": "a"}}})], "nic", D)
    assert out.interface == InterfaceConfig(vrf=VRFConfig(name="a", table=1220))


def test_resolve_nothing_selected() -> None:
    assert resolve_config([oc({"interface": {"mtu": 9000}}, driver="x")], "nic", D) == NetworkConfig()


def test_conflict_only_after_merge_is_reported() -> None:
    configs = [
        oc({"interface": {"dhcp": True}}, source="FromClass"),
        oc({"interface": {"addresses": ["10.0.0.1/24"]}}),
    ]
    with pytest.raises(ConfigError) as info:
        resolve_config(configs, "nic", D)
    (issue,) = info.value.issues
    assert issue.path == "interface"
    assert issue.rule == "dhcp and addresses are mutually exclusive (after merging config[0], config[1])"


def test_conflict_resolved_by_later_override() -> None:
    configs = [
        oc({"interface": {"dhcp": True}}, source="FromClass"),
        oc({"interface": {"dhcp": False, "addresses": ["10.0.0.1/24"]}}),
    ]
    out = resolve_config(configs, "nic", D)
    assert out.interface == InterfaceConfig(dhcp=False, addresses=("10.0.0.1/24",))


def test_vrf_from_class_rules_from_claim_rejected_after_merge() -> None:
    configs = [oc({"interface": {"vrf": {"name": "v"}}}), oc({"rules": [{"table": 5}]})]
    with pytest.raises(ConfigError) as info:
        resolve_config(configs, "nic", D)
    assert [i.path for i in info.value.issues] == ["rules"]
