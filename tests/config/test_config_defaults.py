"""Static defaults: the VRF table from FNV-32a of the name."""

from __future__ import annotations

import pytest

from dranet_core.config import InterfaceConfig, NetworkConfig, VRFConfig, apply_defaults, vrf_table_for
from dranet_core.config.defaults import fnv32a


def test_fnv32a_by_hand() -> None:
    # FNV-1a 32: h = 0x811c9dc5; for each byte: h ^= b; h *= 0x01000193 (mod 2**32).
    # "a": 0x811c9dc5 ^ 0x61 = 0x811c9da4; 0x811c9da4 * 0x01000193 mod 2**32 = 0xe40c292c.
    assert (0x811C9DC5 ^ 0x61) == 0x811C9DA4
    assert (0x811C9DA4 * 0x01000193) % 2**32 == 0xE40C292C
    assert fnv32a(b"a") == 0xE40C292C
    assert fnv32a(b"") == 0x811C9DC5
    # published FNV-1a test vector
    assert fnv32a(b"foobar") == 0xBF9CF968


@pytest.mark.parametrize(
    ("name", "table"),
    [
        ("a", 0xE40C292C % 1000 + 1000),  # 3826002220 -> 1220
        ("foobar", 0xBF9CF968 % 1000 + 1000),  # 3214735720 -> 1720
    ],
)
def test_vrf_table_for(name: str, table: int) -> None:
    assert vrf_table_for(name) == table
    assert 1000 <= table <= 1999


def test_vrf_table_range() -> None:
    tables = {vrf_table_for(f"vrf{i}") for i in range(500)}
    assert min(tables) >= 1000 and max(tables) <= 1999
    assert len(tables) > 300  # spread, not constant


def test_apply_defaults_fills_table() -> None:
    cfg = NetworkConfig(interface=InterfaceConfig(mtu=1500, vrf=VRFConfig(name="a")))
    out = apply_defaults(cfg)
    assert out.interface is not None and out.interface.vrf == VRFConfig(name="a", table=1220)
    assert out.interface.mtu == 1500
    assert cfg.interface is not None and cfg.interface.vrf == VRFConfig(name="a")  # input unchanged


@pytest.mark.parametrize(
    "cfg",
    [
        NetworkConfig(),
        NetworkConfig(interface=InterfaceConfig(mtu=1500)),
        NetworkConfig(interface=InterfaceConfig(vrf=VRFConfig(name="a", table=7))),
        NetworkConfig(interface=InterfaceConfig(vrf=VRFConfig(name=""))),
        NetworkConfig(interface=InterfaceConfig(vrf=VRFConfig())),
    ],
)
def test_apply_defaults_leaves_others(cfg: NetworkConfig) -> None:
    assert apply_defaults(cfg) == cfg
