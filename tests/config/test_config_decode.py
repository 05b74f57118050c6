"""Strict decoding of the opaque parameters: unknown, duplicate, wrong-case, wrong-type fields."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dranet_core.config import (
    EthtoolConfig,
    InterfaceConfig,
    NeighborConfig,
    NetworkConfig,
    RouteConfig,
    RuleConfig,
    VRFConfig,
    decode_config,
    encode_config,
)
from dranet_core.errors import ConfigError, ConfigIssue

FULL = {
    "profile": "acme.com/overlay",
    "interface": {
        "name": "net1",
        "addresses": ["192.0.2.10/24"],
        "dhcp": False,
        "mtu": 9000,
        "hardwareAddr": "02:00:5e:10:00:01",
        "gsoMaxSize": 65536,
        "groMaxSize": 65536,
        "gsoIPv4MaxSize": 65536,
        "groIPv4MaxSize": 65536,
        "disableEbpfPrograms": True,
        "forwarding": True,
        "arpIgnore": 1,
        "arpAnnounce": 2,
        "vrf": {"name": "blue", "table": 1200},
    },
    "routes": [
        {"destination": "0.0.0.0/0", "gateway": "192.0.2.1", "source": "192.0.2.10", "scope": 0, "table": 5}
    ],
    "rules": [{"priority": 100, "source": "192.0.2.0/24", "destination": "198.51.100.0/24", "table": 5}],
    "neighbors": [{"destination": "192.0.2.1", "hardwareAddr": "02:00:5e:10:00:02"}],
    "ethtool": {"features": {"rx-gro": True, "tso": False}, "privateFlags": {"flag": True}},
}


def issues_of(raw: Any, **kw: Any) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        decode_config(raw, **kw)
    return list(info.value.issues)


def test_full_document_decodes_field_for_field() -> None:
    cfg = decode_config(FULL)
    assert cfg == NetworkConfig(
        profile="acme.com/overlay",
        interface=InterfaceConfig(
            name="net1",
            addresses=("192.0.2.10/24",),
            dhcp=False,
            mtu=9000,
            hardware_addr="02:00:5e:10:00:01",
            gso_max_size=65536,
            gro_max_size=65536,
            gso_ipv4_max_size=65536,
            gro_ipv4_max_size=65536,
            disable_ebpf_programs=True,
            forwarding=True,
            arp_ignore=1,
            arp_announce=2,
            vrf=VRFConfig(name="blue", table=1200),
        ),
        routes=(
            RouteConfig(destination="0.0.0.0/0", gateway="192.0.2.1", source="192.0.2.10", scope=0, table=5),
        ),
        rules=(RuleConfig(priority=100, source="192.0.2.0/24", destination="198.51.100.0/24", table=5),),
        neighbors=(NeighborConfig(destination="192.0.2.1", hardware_addr="02:00:5e:10:00:02"),),
        ethtool=EthtoolConfig(features={"rx-gro": True, "tso": False}, private_flags={"flag": True}),
    )
    assert decode_config(json.dumps(FULL)) == cfg
    assert decode_config(json.dumps(FULL).encode()) == cfg
    assert encode_config(cfg) == FULL


@pytest.mark.parametrize("raw", [None, b"", "", {}, "null", "{}"])
def test_no_config_is_empty(raw: Any) -> None:
    assert decode_config(raw) == NetworkConfig()


def test_null_means_unset() -> None:
    cfg = decode_config('{"interface": {"mtu": null, "name": "a"}, "routes": null}')
    assert cfg == NetworkConfig(interface=InterfaceConfig(name="a"))


def test_unknown_field() -> None:
    assert issues_of({"interface": {"mtu": 1500, "speed": 10}}) == [
        ConfigIssue("interface.speed", issues_of({"interface": {"speed": 1}})[0].rule)
    ]
    (issue,) = issues_of({"interfaces": {}})
    assert issue.path == "interfaces" and "did you mean 'interface'" in issue.rule


def test_field_names_are_case_sensitive() -> None:
    (issue,) = issues_of({"interface": {"MTU": 1500}})
    assert issue.path == "interface.MTU"
    assert "case-sensitive" in issue.rule and "'mtu'" in issue.rule
    (issue,) = issues_of({"interface": {"hardwareaddr": "02:00:00:00:00:01"}})
    assert "'hardwareAddr'" in issue.rule


def test_docs_ipaddress_key_of_neighbors_is_rejected() -> None:
    (issue,) = issues_of({"neighbors": [{"ipAddress": "192.0.2.1", "hardwareAddr": "02:00:00:00:00:01"}]})
    assert issue.path == "neighbors[0].ipAddress" and issue.rule.startswith("unknown field")


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('{"profile": "a", "profile": "b"}', "profile"),
        ('{"interface": {"mtu": 1500, "mtu": 9000}}', "interface.mtu"),
        ('{"routes": [{"destination": "0.0.0.0/0", "destination": "::/0"}]}', "routes[0].destination"),
        ('{"ethtool": {"features": {"gro": true, "gro": false}}}', "ethtool.features.gro"),
        ('{"interface": {}, "interface": {}}', "interface"),
    ],
)
def test_duplicate_fields_in_text(text: str, path: str) -> None:
    issues = issues_of(text)
    assert [i.path for i in issues] == [path]
    assert issues[0].rule.startswith("duplicate")


@pytest.mark.parametrize(
    ("params", "path", "rule"),
    [
        ({"interface": {"mtu": True}}, "interface.mtu", "must be an integer, got boolean true"),
        ({"interface": {"mtu": "1500"}}, "interface.mtu", 'must be an integer, got string "1500"'),
        ({"interface": {"mtu": 1500.0}}, "interface.mtu", "must be an integer, got number 1500.0"),
        ({"interface": {"dhcp": 1}}, "interface.dhcp", "must be a boolean, got number 1"),
        ({"interface": {"dhcp": "true"}}, "interface.dhcp", 'must be a boolean, got string "true"'),
        ({"interface": {"name": 5}}, "interface.name", "must be a string, got number 5"),
        ({"interface": {"addresses": "10.0.0.1/8"}}, "interface.addresses", "must be an array"),
        ({"interface": {"addresses": [None]}}, "interface.addresses[0]", "must be a string, got null"),
        ({"interface": []}, "interface", "must be an object, got array []"),
        ({"routes": {}}, "routes", "must be an array, got object {}"),
        ({"routes": [5]}, "routes[0]", "must be an object, got number 5"),
        ({"ethtool": {"features": {"gro": 1}}}, "ethtool.features.gro", "must be a boolean"),
        ({"ethtool": {"features": ["gro"]}}, "ethtool.features", "must be an object"),
        ({"ethtool": {"features": {"a.b": "on"}}}, 'ethtool.features["a.b"]', "must be a boolean"),
    ],
)
def test_wrong_types(params: Any, path: str, rule: str) -> None:
    (issue,) = issues_of(params)
    assert issue.path == path
    assert issue.rule.startswith(rule), issue.rule


@pytest.mark.parametrize("raw", ["[]", "5", '"x"', "true", [1], 3])
def test_top_level_must_be_an_object(raw: Any) -> None:
    (issue,) = issues_of(raw)
    assert issue.path == "" and issue.rule.startswith("must be an object")


@pytest.mark.parametrize(
    "text", ['{"interface": ', "{'a': 1}", '{"interface": {"mtu": NaN}}', '{"mtu": Infinity}', b"\xff\xfe{"]
)
def test_invalid_json(text: str | bytes) -> None:
    (issue,) = issues_of(text, path="config[0].parameters")
    assert issue.path == "config[0].parameters"
    assert issue.rule.startswith("invalid JSON")


def test_deeply_nested_json_is_an_error_not_a_crash() -> None:
    (issue,) = issues_of("[" * 100000 + "]" * 100000)
    assert "invalid JSON" in issue.rule


def test_all_issues_collected_with_prefix() -> None:
    text = (
        '{"interface": {"mtu": true, "Name": "x", "mtu": 3}, "routes": [{"gw": 1}, {"table": "5"}], "x": 1}'
    )
    issues = issues_of(text, path="config[3].parameters")
    assert {(i.path, i.rule.split(" (")[0]) for i in issues} == {
        ("config[3].parameters.interface.mtu", "duplicate field"),
        ("config[3].parameters.interface.Name", "unknown field"),
        ("config[3].parameters.routes[0].gw", "unknown field"),
        ("config[3].parameters.routes[1].table", 'must be an integer, got string "5"'),
        ("config[3].parameters.x", "unknown field"),
    }


def test_decoding_checks_shapes_not_values() -> None:
    # value rules are validate_config's job; decoding an out-of-range value succeeds
    assert decode_config({"interface": {"mtu": 1}}).interface == InterfaceConfig(mtu=1)


# -- round trip -------------------------------------------------------------------------------

_text = st.text(max_size=12)
_int = st.integers(min_value=-(2**40), max_value=2**40)


def _opt(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | s


_vrf = st.builds(VRFConfig, name=_opt(_text), table=_opt(_int))
_iface = st.builds(
    InterfaceConfig,
    name=_opt(_text),
    addresses=_opt(st.lists(_text, max_size=3).map(tuple)),
    dhcp=_opt(st.booleans()),
    mtu=_opt(_int),
    arp_ignore=_opt(_int),
    forwarding=_opt(st.booleans()),
    vrf=_opt(_vrf),
)
_route = st.builds(
    RouteConfig, destination=_opt(_text), gateway=_opt(_text), scope=_opt(_int), table=_opt(_int)
)
_rule = st.builds(RuleConfig, priority=_opt(_int), source=_opt(_text), table=_opt(_int))
_neigh = st.builds(NeighborConfig, destination=_opt(_text), hardware_addr=_opt(_text))
_flags = st.dictionaries(_text, st.booleans(), max_size=3)
_configs = st.builds(
    NetworkConfig,
    profile=_opt(_text),
    interface=_opt(_iface),
    routes=_opt(st.lists(_route, max_size=3).map(tuple)),
    rules=_opt(st.lists(_rule, max_size=3).map(tuple)),
    neighbors=_opt(st.lists(_neigh, max_size=2).map(tuple)),
    ethtool=_opt(st.builds(EthtoolConfig, features=_opt(_flags), private_flags=_opt(_flags))),
)


@given(_configs)
def test_encode_decode_round_trip(cfg: NetworkConfig) -> None:
    encoded = encode_config(cfg)
    assert decode_config(encoded) == cfg
    assert decode_config(json.dumps(encoded)) == cfg
