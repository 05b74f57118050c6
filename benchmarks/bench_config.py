"""Benchmark of the claim-configuration pipeline against a floor measured in the same run.

Floor: ``json.loads`` of the same document (the least any decoder must do). Measured:
strict decoding from text (duplicate-key detection) and from a parsed dict, validation,
merge of a class and a claim config, the whole ``resolve_config`` of a two-entry claim,
and device-name encoding. Prints one table; the ratio column is time / floor time.
Run: ``.venv/bin/python benchmarks/bench_config.py``.
"""

from __future__ import annotations

import json
import timeit
from collections.abc import Callable

from dranet_core.config import decode_config, merge_configs, resolve_config, validate_config
from dranet_core.names import device_name_for_interface
from dranet_core.types import OpaqueConfig

DOC = {
    "interface": {
        "name": "net1",
        "addresses": ["192.0.2.10/24", "2001:db8::10/64"],
        "mtu": 9000,
        "hardwareAddr": "02:00:5e:10:00:01",
        "arpIgnore": 1,
        "arpAnnounce": 2,
    },
    "routes": [
        {"destination": "0.0.0.0/0", "gateway": "192.0.2.1"},
        {"destination": "198.51.100.0/24", "scope": 253},
        {"destination": "::/0", "gateway": "2001:db8::1", "table": 100},
    ],
    "rules": [{"priority": 100, "source": "192.0.2.0/24", "table": 100}],
    "neighbors": [{"destination": "192.0.2.1", "hardwareAddr": "02:00:5e:10:00:02"}],
    "ethtool": {"features": {"rx-gro": True, "tso": False}},
}
TEXT = json.dumps(DOC)
CLASS = {"interface": {"mtu": 1500, "addresses": ["192.0.2.10/24"]}, "ethtool": {"features": {"lro": False}}}
CONFIGS = [
    OpaqueConfig(source="FromClass", driver="dra.net", parameters=CLASS),
    OpaqueConfig(source="FromClaim", driver="dra.net", requests=("nic",), parameters=DOC),
]
PARSED = decode_config(DOC)
PARSED_CLASS = decode_config(CLASS)


def best_per_call(fn: Callable[[], object], number: int) -> float:
    """Best of 5 repeats, seconds per call."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number


def main() -> None:
    n = 2000
    floor = best_per_call(lambda: json.loads(TEXT), n)
    rows = [
        ("json.loads (floor)", floor),
        ("decode_config(text)", best_per_call(lambda: decode_config(TEXT), n)),
        ("decode_config(dict)", best_per_call(lambda: decode_config(DOC), n)),
        ("validate_config", best_per_call(lambda: validate_config(PARSED), n)),
        ("merge_configs(2)", best_per_call(lambda: merge_configs([PARSED_CLASS, PARSED]), n)),
        ("resolve_config(2 entries)", best_per_call(lambda: resolve_config(CONFIGS, "nic", "dra.net"), n)),
        ("device_name_for_interface", best_per_call(lambda: device_name_for_interface("eth:0"), n * 10)),
    ]
    print("bench_config.py: config decoding and resolution")
    print(f"{'operation':<28} {'µs/call':>10} {'calls/s':>12} {'x floor':>9}")
    for name, sec in rows:
        print(f"{name:<28} {sec * 1e6:>10.1f} {1 / sec:>12,.0f} {sec / floor:>9.1f}")


if __name__ == "__main__":
    main()
