"""The ``sriov`` and ``rdma`` sections of the claim configuration: decoding, rules, merging, schema."""

from __future__ import annotations

import json

import pytest

from dranet_core.config import (
    NetworkConfig,
    RdmaConfig,
    SriovConfig,
    config_issues,
    config_json_schema,
    decode_config,
    encode_config,
    merge_configs,
)
from dranet_core.errors import ConfigError


def issues(raw: str) -> list[str]:
    return [str(i) for i in config_issues(decode_config(raw))]


def test_full_sriov_and_rdma_sections_decode_and_round_trip() -> None:
    raw = {
        "sriov": {
            "mac": "02:00:00:00:00:0a",
            "vlan": 100,
            "vlanQoS": 3,
            "vlanProto": "802.1ad",
            "spoofChk": False,
            "trust": True,
            "linkState": "enable",
            "minTxRate": 100,
            "maxTxRate": 1000,
        },
        "rdma": {"fileMode": 0o660, "uid": 1000, "gid": 2000},
    }
    config = decode_config(json.dumps(raw))
    assert config.sriov == SriovConfig(
        mac="02:00:00:00:00:0a",
        vlan=100,
        vlan_qos=3,
        vlan_proto="802.1ad",
        spoof_chk=False,
        trust=True,
        link_state="enable",
        min_tx_rate=100,
        max_tx_rate=1000,
    )
    assert config.rdma == RdmaConfig(file_mode=0o660, uid=1000, gid=2000)
    assert config_issues(config) == []
    assert decode_config(encode_config(config)) == config


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"sriov": {"vlan": "100"}}', 'sriov.vlan: must be an integer, got string "100"'),
        (
            '{"sriov": {"spoofchk": true}}',
            "sriov.spoofchk: unknown field (names are case-sensitive: did you mean 'spoofChk'?)",
        ),
        ('{"rdma": {"mode": 1}}', "rdma.mode: unknown field"),
    ],
)
def test_strict_decoding_names_the_field(raw: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        decode_config(raw)
    assert expected in str(err.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"sriov": {"vlan": 4096}}', "sriov.vlan: must be <= 4095, got 4096"),
        ('{"sriov": {"vlan": 5, "vlanQoS": 8}}', "sriov.vlanQoS: must be <= 7, got 8"),
        ('{"sriov": {"vlanQoS": 2}}', "sriov.vlanQoS: needs a non-zero sriov.vlan, got vlanQoS 2"),
        ('{"sriov": {"vlanProto": "802.1ad"}}', "sriov.vlanProto: 802.1ad needs a non-zero sriov.vlan"),
        (
            '{"sriov": {"vlan": 5, "vlanProto": "qinq"}}',
            'sriov.vlanProto: must be one of 802.1Q, 802.1ad, got "qinq"',
        ),
        ('{"sriov": {"linkState": "up"}}', 'sriov.linkState: must be one of auto, enable, disable, got "up"'),
        (
            '{"sriov": {"mac": "01:00:5e:00:00:01"}}',
            "sriov.mac: must be a unicast MAC, got '01:00:5e:00:00:01'",
        ),
        ('{"sriov": {"mac": "00:00:00:00:00:00"}}', "sriov.mac: must not be all zeros"),
        ('{"sriov": {"mac": "00:00:00:00:fe:80:00:00"}}', "sriov.mac: must be a 6-octet Ethernet MAC"),
        ('{"sriov": {"mac": "nope"}}', "sriov.mac: must be a MAC address"),
        (
            '{"sriov": {"minTxRate": 500, "maxTxRate": 100}}',
            "sriov.minTxRate: must be <= maxTxRate (100), got 500",
        ),
        ('{"sriov": {"maxTxRate": -1}}', "sriov.maxTxRate: must be >= 0, got -1"),
        ('{"rdma": {"fileMode": 512}}', "rdma.fileMode: must be <= 511, got 512"),
        ('{"rdma": {"uid": -1}}', "rdma.uid: must be >= 0, got -1"),
    ],
)
def test_rules_name_path_value_and_rule(raw: str, expected: str) -> None:
    found = issues(raw)
    assert any(expected in line for line in found), found


def test_min_rate_without_max_and_vlan_zero_without_qos_are_valid() -> None:
    assert issues('{"sriov": {"minTxRate": 500, "maxTxRate": 0, "vlan": 0, "vlanProto": "802.1Q"}}') == []


def test_sections_merge_field_by_field_later_wins() -> None:
    merged = merge_configs(
        [
            NetworkConfig(sriov=SriovConfig(vlan=10, trust=True), rdma=RdmaConfig(uid=1)),
            NetworkConfig(sriov=SriovConfig(vlan=20), rdma=RdmaConfig(gid=2)),
        ]
    )
    assert merged.sriov == SriovConfig(vlan=20, trust=True)
    assert merged.rdma == RdmaConfig(uid=1, gid=2)


def test_schema_states_the_choices_and_bounds() -> None:
    props = config_json_schema()["properties"]
    assert isinstance(props, dict)
    sriov = json.dumps(props["sriov"])
    assert '"802.1Q", "802.1ad"' in sriov
    assert '"auto", "enable", "disable"' in sriov
    assert '"maximum": 4095' in sriov
    assert '"maximum": 511' in json.dumps(props["rdma"])
