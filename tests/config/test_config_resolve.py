"""Selecting a request's configs from a claim allocation, and resolving them to one config."""

from __future__ import annotations

from typing import Any

import pytest
from config_examples import CASES, R

import dranet_core.config.resolve as resolve_module
from dranet_core.config import InterfaceConfig, NetworkConfig, VRFConfig, configs_for_request, resolve_config
from dranet_core.config.codec import decode_config
from dranet_core.config.defaults import apply_defaults
from dranet_core.config.merge import merge_configs
from dranet_core.config.validation import config_issues
from dranet_core.errors import ConfigError, ConfigIssue
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


_VALID = [(case_id, params) for case_id, params, path, _ in CASES if path is None] + [
    ("dup-addresses", {"interface": {"addresses": ["10.0.0.1/24", "10.0.0.1/24"]}}),
    ("dup-routes", {"routes": [R, R]}),
    ("vrf-default-table", {"interface": {"vrf": {"name": "blue"}}}),
    ("ipvlan-defaults", {"subinterface": {"type": "ipvlan"}}),
    ("macvlan-defaults", {"subinterface": {"type": "macvlan"}}),
]


@pytest.mark.parametrize(("case_id", "params"), _VALID, ids=[c for c, _ in _VALID])
def test_one_valid_config_stays_valid_after_merging_and_defaults(case_id: str, params: Any) -> None:
    # resolve_config does not validate again after merging a single config: this must hold
    cfg = decode_config(params)
    assert config_issues(cfg) == [], case_id
    assert config_issues(apply_defaults(merge_configs([cfg]))) == []
    assert resolve_config([oc(params)], "nic", D) == apply_defaults(merge_configs([cfg]))


def test_one_config_is_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def counting(config: NetworkConfig, *, path: str = "") -> list[ConfigIssue]:
        seen.append(path)
        return config_issues(config, path=path)

    monkeypatch.setattr(resolve_module, "config_issues", counting)
    resolve_config([oc({"interface": {"mtu": 1400}})], "nic", D)
    assert seen == ["config[0].parameters"]
    seen.clear()
    resolve_config([oc({"interface": {"mtu": 1400}}), oc({"interface": {"name": "n"}})], "nic", D)
    assert seen == ["config[0].parameters", "config[1].parameters", ""]  # two: the merge is checked
