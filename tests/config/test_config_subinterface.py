"""The ``subinterface`` section of the claim configuration: decoding, rules, defaults, merging."""

from __future__ import annotations

import json

import pytest

from dranet_core.config import (
    NetworkConfig,
    SubinterfaceConfig,
    apply_defaults,
    config_issues,
    config_json_schema,
    decode_config,
    encode_config,
    merge_configs,
    resolve_config,
)
from dranet_core.errors import ConfigError
from dranet_core.types import OpaqueConfig


def issues(raw: object) -> list[str]:
    return [str(i) for i in config_issues(decode_config(json.dumps(raw)))]


def test_section_decodes_and_round_trips() -> None:
    raw = {"subinterface": {"type": "ipvlan", "mode": "l3s", "flag": "private"}}
    config = decode_config(json.dumps(raw))
    assert config.subinterface == SubinterfaceConfig(type="ipvlan", mode="l3s", flag="private")
    assert encode_config(config) == raw
    assert issues(raw) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"subinterface": {}}, "subinterface.type: is required"),
        ({"subinterface": {"type": "vlan"}}, 'subinterface.type: must be one of macvlan, ipvlan, got "vlan"'),
        (
            {"subinterface": {"type": "macvlan", "mode": "l2"}},
            "subinterface.mode: must be one of bridge, private, vepa, passthru for type macvlan, got 'l2'",
        ),
        (
            {"subinterface": {"type": "ipvlan", "mode": "bridge"}},
            "subinterface.mode: must be one of l2, l3, l3s for type ipvlan, got 'bridge'",
        ),
        ({"subinterface": {"type": "macvlan", "mode": "source"}}, "subinterface.mode: must be one of"),
        (
            {"subinterface": {"type": "macvlan", "flag": "vepa"}},
            "subinterface.flag: is for type ipvlan only, got 'vepa' with type macvlan",
        ),
        (
            {"subinterface": {"type": "ipvlan", "flag": "loud"}},
            'subinterface.flag: must be one of bridge, private, vepa, got "loud"',
        ),
        (
            {"subinterface": {"type": "macvlan"}, "interface": {"dhcp": True}},
            "interface.dhcp: not supported with subinterface",
        ),
        (
            {"subinterface": {"type": "ipvlan"}, "interface": {"hardwareAddr": "02:00:00:00:00:01"}},
            "interface.hardwareAddr: not supported with subinterface type ipvlan",
        ),
        (
            {"subinterface": {"type": "macvlan"}, "sriov": {"trust": True}},
            "sriov: not supported with subinterface",
        ),
    ],
)
def test_broken_rules_name_the_field_and_value(raw: object, expected: str) -> None:
    got = issues(raw)
    assert len(got) == 1, got
    assert got[0].startswith(expected), got


def test_unknown_field_is_refused_not_ignored() -> None:
    with pytest.raises(ConfigError, match=r"subinterface\.name: unknown field"):
        decode_config(json.dumps({"subinterface": {"type": "macvlan", "name": "x"}}))


def test_defaults_fill_mode_and_flag_per_type() -> None:
    mac = apply_defaults(NetworkConfig(subinterface=SubinterfaceConfig(type="macvlan")))
    assert mac.subinterface == SubinterfaceConfig(type="macvlan", mode="bridge")
    ipv = apply_defaults(NetworkConfig(subinterface=SubinterfaceConfig(type="ipvlan")))
    assert ipv.subinterface == SubinterfaceConfig(type="ipvlan", mode="l2", flag="bridge")
    kept = NetworkConfig(subinterface=SubinterfaceConfig(type="macvlan", mode="vepa"))
    assert apply_defaults(kept) is kept


def test_merge_later_config_wins_field_by_field() -> None:
    a = NetworkConfig(subinterface=SubinterfaceConfig(type="ipvlan", mode="l3"))
    b = NetworkConfig(subinterface=SubinterfaceConfig(flag="private"))
    assert merge_configs([a, b]).subinterface == SubinterfaceConfig(type="ipvlan", mode="l3", flag="private")


def test_resolve_applies_defaults_to_a_claim_config() -> None:
    cfg = OpaqueConfig(source="FromClaim", driver="dra.net", parameters={"subinterface": {"type": "macvlan"}})
    assert resolve_config([cfg], "nic", "dra.net").subinterface == SubinterfaceConfig(
        type="macvlan", mode="bridge"
    )


def test_json_schema_lists_the_types() -> None:
    schema = config_json_schema()
    sub = schema["properties"]["subinterface"]
    assert sub["properties"]["type"]["enum"] == ["macvlan", "ipvlan"]
