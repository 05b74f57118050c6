"""Merging configs in order, later wins; list de-duplication; explicit zero values."""

from __future__ import annotations

from typing import Any

from dranet_core.config import (
    InterfaceConfig,
    NetworkConfig,
    RouteConfig,
    RuleConfig,
    VRFConfig,
    decode_config,
    merge_configs,
)


def merge(*params: dict[str, Any]) -> NetworkConfig:
    return merge_configs([decode_config(p) for p in params])


def test_empty() -> None:
    assert merge_configs([]) == NetworkConfig()


def test_single_config_is_kept() -> None:
    cfg = decode_config({"interface": {"mtu": 9000, "name": "a"}, "routes": [{"destination": "0.0.0.0/0"}]})
    assert merge_configs([cfg]) == cfg


def test_later_scalar_wins() -> None:
    out = merge({"profile": "a", "interface": {"mtu": 9000, "name": "x"}}, {"interface": {"mtu": 1500}})
    assert out.profile == "a"
    assert out.interface == InterfaceConfig(mtu=1500, name="x")


def test_explicit_zero_false_and_empty_string_override() -> None:
    out = merge(
        {"profile": "p", "interface": {"dhcp": True, "forwarding": True, "arpIgnore": 2, "name": "x"}},
        {"profile": "", "interface": {"dhcp": False, "forwarding": False, "arpIgnore": 0, "name": ""}},
    )
    assert out.profile == ""
    assert out.interface == InterfaceConfig(dhcp=False, forwarding=False, arp_ignore=0, name="")


def test_unset_does_not_override() -> None:
    out = merge({"interface": {"mtu": 9000}}, {"interface": {"mtu": None}}, {})
    assert out.interface == InterfaceConfig(mtu=9000)


def test_addresses_dedup_keep_last_occurrence() -> None:
    out = merge(
        {"interface": {"addresses": ["10.0.0.1/24", "10.0.0.2/24", "2001:db8::1/64"]}},
        {"interface": {"addresses": ["10.0.0.3/24", "10.0.0.1/24", "2001:DB8:0::1/64"]}},
    )
    assert out.interface is not None
    assert out.interface.addresses == ("10.0.0.2/24", "10.0.0.3/24", "10.0.0.1/24", "2001:DB8:0::1/64")


def test_same_address_other_prefix_is_distinct() -> None:
    out = merge({"interface": {"addresses": ["10.0.0.1/24"]}}, {"interface": {"addresses": ["10.0.0.1/16"]}})
    assert out.interface is not None and out.interface.addresses == ("10.0.0.1/24", "10.0.0.1/16")


def test_explicit_empty_list_clears() -> None:
    out = merge(
        {"interface": {"addresses": ["10.0.0.1/24"]}, "routes": [{"destination": "0.0.0.0/0"}]},
        {"interface": {"addresses": []}, "routes": []},
    )
    assert out.interface is not None and out.interface.addresses == ()
    assert out.routes == ()


def test_routes_keyed_by_destination_and_table() -> None:
    out = merge(
        {
            "routes": [
                {"destination": "0.0.0.0/0", "gateway": "10.0.0.1"},
                {"destination": "10.1.0.0/16", "gateway": "10.0.0.1", "table": 100},
                {"destination": "10.2.0.0/16", "gateway": "10.0.0.1"},
            ]
        },
        {
            "routes": [
                {"destination": "0.0.0.0/0", "gateway": "10.0.0.254", "table": 254},  # main == unset
                {"destination": "10.1.0.0/16", "gateway": "10.0.0.9", "table": 200},  # other table
            ]
        },
    )
    assert out.routes == (
        RouteConfig(destination="10.1.0.0/16", gateway="10.0.0.1", table=100),
        RouteConfig(destination="10.2.0.0/16", gateway="10.0.0.1"),
        RouteConfig(destination="0.0.0.0/0", gateway="10.0.0.254", table=254),
        RouteConfig(destination="10.1.0.0/16", gateway="10.0.0.9", table=200),
    )


def test_neighbors_keyed_by_destination() -> None:
    out = merge(
        {"neighbors": [{"destination": "2001:db8::1", "hardwareAddr": "02:00:00:00:00:01"}]},
        {"neighbors": [{"destination": "2001:db8:0::1", "hardwareAddr": "02:00:00:00:00:02"}]},
    )
    assert out.neighbors is not None and len(out.neighbors) == 1
    assert out.neighbors[0].hardware_addr == "02:00:00:00:00:02"


def test_rules_deduplicated_by_whole_rule() -> None:
    out = merge(
        {"rules": [{"priority": 100, "source": "10.0.0.0/8", "table": 5}, {"table": 6}]},
        {"rules": [{"priority": 100, "source": "10.0.0.0/8", "table": 5}, {"priority": 101, "table": 5}]},
    )
    assert out.rules == (
        RuleConfig(table=6),
        RuleConfig(priority=100, source="10.0.0.0/8", table=5),
        RuleConfig(priority=101, table=5),
    )


def test_ethtool_maps_merge_keywise() -> None:
    out = merge(
        {"ethtool": {"features": {"gro": True, "tso": True}, "privateFlags": {"a": True}}},
        {"ethtool": {"features": {"gro": False, "lro": True}}},
    )
    assert out.ethtool is not None
    assert dict(out.ethtool.features or {}) == {"gro": False, "tso": True, "lro": True}
    assert dict(out.ethtool.private_flags or {}) == {"a": True}


def test_vrf_is_replaced_whole() -> None:
    out = merge({"interface": {"vrf": {"name": "a", "table": 1500}}}, {"interface": {"vrf": {"name": "b"}}})
    assert out.interface is not None and out.interface.vrf == VRFConfig(name="b")


def test_three_way_order() -> None:
    out = merge({"interface": {"mtu": 1}}, {"interface": {"mtu": 2}}, {"interface": {"mtu": 3}})
    assert out.interface is not None and out.interface.mtu == 3


def test_inputs_unchanged() -> None:
    a = decode_config({"ethtool": {"features": {"gro": True}}, "interface": {"addresses": ["10.0.0.1/8"]}})
    b = decode_config({"ethtool": {"features": {"gro": False}}, "interface": {"addresses": ["10.0.0.2/8"]}})
    merge_configs([a, b])
    assert a.ethtool is not None and dict(a.ethtool.features or {}) == {"gro": True}
    assert a.interface is not None and a.interface.addresses == ("10.0.0.1/8",)
