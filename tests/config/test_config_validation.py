"""Every validation rule of the claim config: a failing and a passing case each (table-driven)."""

from __future__ import annotations

from typing import Any

import pytest
from config_examples import CASES, R

from dranet_core.config import (
    InterfaceConfig,
    NetworkConfig,
    RouteConfig,
    RuleConfig,
    decode_config,
    validate_config,
    validate_rdma_only,
)
from dranet_core.errors import ConfigError, ConfigIssue


@pytest.mark.parametrize(("params", "path", "rule"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(params: dict[str, Any], path: str | None, rule: str) -> None:
    cfg = decode_config(params)
    if path is None:
        validate_config(cfg)  # must not raise
        return
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    matching = [i for i in info.value.issues if i.path == path and rule in i.rule]
    assert matching, f"expected {path}: ...{rule}... in {info.value.issues}"


def test_all_issues_are_collected() -> None:
    cfg = decode_config(
        {
            "interface": {"mtu": 40, "name": "a/b", "arpAnnounce": 9},
            "routes": [R, {"destination": "bad"}],
            "neighbors": [{}],
        }
    )
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    paths = [i.path for i in info.value.issues]
    assert set(paths) == {
        "interface.name",
        "interface.mtu",
        "interface.arpAnnounce",
        "routes[1].destination",
        "routes[1].gateway",
        "neighbors[0].destination",
        "neighbors[0].hardwareAddr",
    }
    assert ConfigIssue("interface.mtu", "must be >= 68, got 40") in info.value.issues
    assert "interface.mtu: must be >= 68, got 40" in str(info.value)


def test_path_prefix() -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(NetworkConfig(interface=InterfaceConfig(mtu=1)), path="config[2].parameters")
    assert info.value.issues == (ConfigIssue("config[2].parameters.interface.mtu", "must be >= 68, got 1"),)


def test_hand_built_config_with_wrong_types_is_rejected() -> None:
    cfg = NetworkConfig(
        interface=InterfaceConfig(mtu="9000", dhcp=1),  # type: ignore[arg-type]
        routes=[RouteConfig(destination="10.0.0.0/8", gateway="10.0.0.1", scope=True)],  # type: ignore[arg-type]
    )
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    assert {i.path for i in info.value.issues} == {"interface.dhcp", "interface.mtu", "routes[0].scope"}


def test_empty_config_is_valid() -> None:
    validate_config(NetworkConfig())
    validate_config(decode_config({"interface": {}, "routes": [], "rules": [], "neighbors": []}))


RDMA_FORBIDDEN = [
    ({"interface": {"name": "ib0"}}, "interface.name"),
    ({"interface": {"addresses": ["10.0.0.1/8"]}}, "interface.addresses"),
    ({"interface": {"mtu": 4000}}, "interface.mtu"),
    ({"interface": {"hardwareAddr": "02:00:00:00:00:01"}}, "interface.hardwareAddr"),
    ({"interface": {"dhcp": False}}, "interface.dhcp"),
    ({"interface": {"gsoMaxSize": 1}}, "interface.gsoMaxSize"),
    ({"interface": {"groMaxSize": 1}}, "interface.groMaxSize"),
    ({"interface": {"gsoIPv4MaxSize": 1}}, "interface.gsoIPv4MaxSize"),
    ({"interface": {"groIPv4MaxSize": 1}}, "interface.groIPv4MaxSize"),
    ({"interface": {"disableEbpfPrograms": True}}, "interface.disableEbpfPrograms"),
    ({"interface": {"arpIgnore": 1}}, "interface.arpIgnore"),
    ({"interface": {"arpAnnounce": 1}}, "interface.arpAnnounce"),
    ({"routes": [R]}, "routes"),
    ({"rules": [{"table": 10}]}, "rules"),
    ({"neighbors": [{"destination": "192.0.2.1", "hardwareAddr": "02:00:00:00:00:01"}]}, "neighbors"),
    ({"ethtool": {}}, "ethtool"),
]


@pytest.mark.parametrize(("params", "path"), RDMA_FORBIDDEN, ids=[p for _, p in RDMA_FORBIDDEN])
def test_rdma_only_rejects(params: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_rdma_only(decode_config(params))
    assert [i.path for i in info.value.issues] == [path]
    assert "RDMA-only" in info.value.issues[0].rule


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"profile": "acme.com/ib"},
        {"interface": {"forwarding": True, "vrf": {"name": "v"}}},
        {"interface": {"name": "", "addresses": []}, "routes": [], "rules": [], "neighbors": []},
    ],
)
def test_rdma_only_allows(params: dict[str, Any]) -> None:
    validate_rdma_only(decode_config(params))


def test_rdma_only_collects_all() -> None:
    cfg = decode_config({"interface": {"mtu": 4000, "name": "x"}, "routes": [R], "ethtool": {}})
    with pytest.raises(ConfigError) as info:
        validate_rdma_only(cfg, path="config[0].parameters")
    assert [i.path for i in info.value.issues] == [
        "config[0].parameters.interface.name",
        "config[0].parameters.interface.mtu",
        "config[0].parameters.routes",
        "config[0].parameters.ethtool",
    ]


def test_wrong_python_types_never_crash_cross_field_rules() -> None:
    cfg = NetworkConfig(
        interface={"dhcp": True},  # type: ignore[arg-type]
        routes=(RouteConfig(destination=5, gateway=["x"]),),  # type: ignore[arg-type]
        rules=(RuleConfig(source=7, destination=("a",)),),  # type: ignore[arg-type]
    )
    with pytest.raises(ConfigError) as info:
        validate_config(cfg)
    assert {i.path for i in info.value.issues} >= {
        "interface",
        "routes[0].destination",
        "routes[0].gateway",
        "rules[0].source",
        "rules[0].destination",
    }
    validate_rdma_only(NetworkConfig(interface=InterfaceConfig(addresses=[], name="")))  # type: ignore[arg-type]


def test_profile_and_entry_counts_are_bounded_with_the_bound_in_the_message() -> None:
    from dranet_core.config import decode_config
    from dranet_core.config.model import MAX_ENTRIES, MAX_PROFILE_LENGTH

    route = {"destination": "10.0.0.0/8", "gateway": "192.0.2.1"}
    neigh = {"destination": "192.0.2.9", "hardwareAddr": "02:00:00:00:00:01"}
    rule = {"priority": 10, "table": 100}
    raw = {
        "profile": "x" * 10_000_000,
        "routes": [route] * 10_000,
        "rules": [rule] * (MAX_ENTRIES + 1),
        "neighbors": [neigh] * (MAX_ENTRIES + 1),
    }
    with pytest.raises(ConfigError) as info:
        validate_config(decode_config(raw))
    assert [(i.path, i.rule) for i in info.value.issues] == [
        ("profile", f"must be at most {MAX_PROFILE_LENGTH} characters long, got 10000000"),
        ("routes", f"must have at most {MAX_ENTRIES} entries, got 10000"),
        ("rules", f"must have at most {MAX_ENTRIES} entries, got {MAX_ENTRIES + 1}"),
        ("neighbors", f"must have at most {MAX_ENTRIES} entries, got {MAX_ENTRIES + 1}"),
    ]
    at_bound = {"profile": "x" * MAX_PROFILE_LENGTH, "routes": [route] * MAX_ENTRIES}
    validate_config(decode_config(at_bound))  # the bounds themselves are fine
