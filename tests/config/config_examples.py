"""Example configs, one failing and one passing per validation rule (shared by the validator
and the schema tests). Each case: (id, parameters, expected issue path or None, rule substring)."""

from __future__ import annotations

from typing import Any

R = {"destination": "0.0.0.0/0", "gateway": "192.0.2.1"}  # a valid route to extend

# (id, parameters, expected issue path, expected rule substring); path None = valid.
CASES: list[tuple[str, dict[str, Any], str | None, str]] = [
    # interface.name
    ("name-ok", {"interface": {"name": "net_1.a-b"}}, None, ""),
    ("name-empty-ok", {"interface": {"name": ""}}, None, ""),
    ("name-unicode-ok", {"interface": {"name": "réseau0"}}, None, ""),
    ("name-15-ok", {"interface": {"name": "a" * 15}}, None, ""),
    ("name-16", {"interface": {"name": "a" * 16}}, "interface.name", "must be at most 15 bytes, got 16"),
    ("name-bytes", {"interface": {"name": "ééééééééé"}}, "interface.name", "at most 15 bytes, got 18"),
    ("name-slash", {"interface": {"name": "a/b"}}, "interface.name", "must not contain '/'"),
    ("name-space", {"interface": {"name": "a b"}}, "interface.name", "must not contain whitespace"),
    ("name-nbsp", {"interface": {"name": "a\u00a0b"}}, "interface.name", "must not contain whitespace"),
    ("name-dot", {"interface": {"name": "."}}, "interface.name", "must not be '.' or '..'"),
    ("name-dotdot", {"interface": {"name": ".."}}, "interface.name", "must not be '.' or '..'"),
    ("name-colon", {"interface": {"name": "eth:0"}}, "interface.name", "invalid character ':'"),
    # addresses
    ("addr-ok", {"interface": {"addresses": ["192.0.2.10/24", "2001:db8::5/64"]}}, None, ""),
    ("addr-hostbits-ok", {"interface": {"addresses": ["10.1.2.3/8"]}}, None, ""),
    ("addr-noprefix", {"interface": {"addresses": ["192.0.2.10"]}}, "interface.addresses[0]", "CIDR form"),
    ("addr-badlen", {"interface": {"addresses": ["10.0.0.1/33"]}}, "interface.addresses[0]", "<= 32"),
    ("addr-v6-len", {"interface": {"addresses": ["2001:db8::1/129"]}}, "interface.addresses[0]", "<= 128"),
    ("addr-zone", {"interface": {"addresses": ["fe80::1%eth0/64"]}}, "interface.addresses[0]", "CIDR form"),
    ("addr-2nd", {"interface": {"addresses": ["10.0.0.1/8", "x/8"]}}, "interface.addresses[1]", "'x/8'"),
    # dhcp xor addresses
    ("dhcp-ok", {"interface": {"dhcp": True}}, None, ""),
    ("dhcp-false-addr-ok", {"interface": {"dhcp": False, "addresses": ["10.0.0.1/8"]}}, None, ""),
    (
        "dhcp-addr",
        {"interface": {"dhcp": True, "addresses": ["10.0.0.1/8"]}},
        "interface",
        "dhcp and addresses are mutually exclusive",
    ),
    # mtu
    ("mtu-68-ok", {"interface": {"mtu": 68}}, None, ""),
    ("mtu-9000-ok", {"interface": {"mtu": 9000}}, None, ""),
    ("mtu-40", {"interface": {"mtu": 40}}, "interface.mtu", "must be >= 68, got 40"),
    ("mtu-int32", {"interface": {"mtu": 2**31}}, "interface.mtu", "must be <= 2147483647, got 2147483648"),
    # hardwareAddr
    ("mac-ok", {"interface": {"hardwareAddr": "02:00:5E:10:00:01"}}, None, ""),
    ("mac-bad", {"interface": {"hardwareAddr": "02:00:5e:10:00"}}, "interface.hardwareAddr", "MAC address"),
    ("mac-empty", {"interface": {"hardwareAddr": ""}}, "interface.hardwareAddr", "MAC address"),
    # gso/gro sizes
    *[
        (f"{f}-ok", {"interface": {f: 65536}}, None, "")
        for f in ("gsoMaxSize", "groMaxSize", "gsoIPv4MaxSize", "groIPv4MaxSize")
    ],
    *[
        (f"{f}-0", {"interface": {f: 0}}, f"interface.{f}", "must be >= 1, got 0")
        for f in ("gsoMaxSize", "groMaxSize", "gsoIPv4MaxSize", "groIPv4MaxSize")
    ],
    # arpIgnore / arpAnnounce
    *[(f"arpIgnore-{v}-ok", {"interface": {"arpIgnore": v}}, None, "") for v in (0, 1, 2, 3, 8)],
    (
        "arpIgnore-4",
        {"interface": {"arpIgnore": 4}},
        "interface.arpIgnore",
        "must be one of 0, 1, 2, 3, 8, got 4",
    ),
    ("arpAnnounce-2-ok", {"interface": {"arpAnnounce": 2}}, None, ""),
    ("arpAnnounce-3", {"interface": {"arpAnnounce": 3}}, "interface.arpAnnounce", "must be <= 2, got 3"),
    ("arpAnnounce-neg", {"interface": {"arpAnnounce": -1}}, "interface.arpAnnounce", "must be >= 0, got -1"),
    # vrf
    ("vrf-ok", {"interface": {"vrf": {"name": "blue", "table": 100}}}, None, ""),
    ("vrf-noname", {"interface": {"vrf": {"table": 100}}}, "interface.vrf.name", "is required"),
    ("vrf-emptyname", {"interface": {"vrf": {"name": ""}}}, "interface.vrf.name", "must not be empty"),
    (
        "vrf-table-0",
        {"interface": {"vrf": {"name": "b", "table": 0}}},
        "interface.vrf.table",
        "must be >= 1, got 0",
    ),
    *[
        (
            f"vrf-table-{t}",
            {"interface": {"vrf": {"name": "b", "table": t}}},
            "interface.vrf.table",
            f"reserved values 253, 254, 255, got {t}",
        )
        for t in (253, 254, 255)
    ],
    ("vrf-table-256-ok", {"interface": {"vrf": {"name": "b", "table": 256}}}, None, ""),
    # rules with vrf
    ("rules-novrf-ok", {"rules": [{"table": 100, "priority": 10}]}, None, ""),
    (
        "rules-vrf",
        {"interface": {"vrf": {"name": "b"}}, "rules": [{"table": 100}]},
        "rules",
        "not supported when interface.vrf is set",
    ),
    ("rules-empty-vrf-ok", {"interface": {"vrf": {"name": "b"}}, "rules": []}, None, ""),
    # routes
    ("route-ok", {"routes": [R]}, None, ""),
    ("route-nodst", {"routes": [{"gateway": "192.0.2.1"}]}, "routes[0].destination", "is required"),
    ("route-emptydst", {"routes": [{**R, "destination": ""}]}, "routes[0].destination", "must not be empty"),
    ("route-baddst", {"routes": [{**R, "destination": "10.0.0.0"}]}, "routes[0].destination", "CIDR form"),
    ("route-scope-link-ok", {"routes": [{"destination": "10.0.0.0/8", "scope": 253}]}, None, ""),
    ("route-scope-7", {"routes": [{**R, "scope": 7}]}, "routes[0].scope", "must be one of 0, 253, got 7"),
    (
        "route-nogw",
        {"routes": [{"destination": "10.0.0.0/8"}]},
        "routes[0].gateway",
        "is required unless scope",
    ),
    (
        "route-nogw-0",
        {"routes": [{"destination": "10.0.0.0/8", "scope": 0}]},
        "routes[0].gateway",
        "required",
    ),
    (
        "route-badgw",
        {"routes": [{**R, "gateway": "192.0.2.300"}]},
        "routes[0].gateway",
        "must be an IP address",
    ),
    ("route-gw-family", {"routes": [{**R, "gateway": "2001:db8::1"}]}, "routes[0].gateway", "same IP family"),
    (
        "route-v6-ok",
        {"routes": [{"destination": "::/0", "gateway": "fe80::1", "source": "2001:db8::2"}]},
        None,
        "",
    ),
    ("route-src-family", {"routes": [{**R, "source": "2001:db8::2"}]}, "routes[0].source", "same IP family"),
    ("route-src-bad", {"routes": [{**R, "source": "nope"}]}, "routes[0].source", "must be an IP address"),
    ("route-src-ok", {"routes": [{**R, "source": "192.0.2.7"}]}, None, ""),
    ("route-table-ok", {"routes": [{**R, "table": 100}]}, None, ""),
    ("route-table-neg", {"routes": [{**R, "table": -1}]}, "routes[0].table", "must be >= 0, got -1"),
    # rules
    ("rule-prio-ok", {"rules": [{"priority": 32767}]}, None, ""),
    ("rule-prio-big", {"rules": [{"priority": 32768}]}, "rules[0].priority", "must be <= 32767, got 32768"),
    ("rule-prio-neg", {"rules": [{"priority": -1}]}, "rules[0].priority", "must be >= 0, got -1"),
    ("rule-table-neg", {"rules": [{"table": -5}]}, "rules[0].table", "must be >= 0, got -5"),
    ("rule-src-bad", {"rules": [{"source": "10.0.0.1"}]}, "rules[0].source", "CIDR form"),
    ("rule-dst-bad", {"rules": [{"destination": "10.0.0.0/40"}]}, "rules[0].destination", "<= 32"),
    ("rule-cidrs-ok", {"rules": [{"source": "10.0.0.0/8", "destination": "192.0.2.0/24"}]}, None, ""),
    (
        "rule-family",
        {"rules": [{"source": "10.0.0.0/8", "destination": "::/0"}]},
        "rules[0]",
        "same IP family",
    ),
    # neighbors
    (
        "neigh-ok",
        {"neighbors": [{"destination": "192.0.2.1", "hardwareAddr": "02:00:00:00:00:01"}]},
        None,
        "",
    ),
    (
        "neigh-nodst",
        {"neighbors": [{"hardwareAddr": "02:00:00:00:00:01"}]},
        "neighbors[0].destination",
        "required",
    ),
    (
        "neigh-baddst",
        {"neighbors": [{"destination": "192.0.2.0/24", "hardwareAddr": "02:00:00:00:00:01"}]},
        "neighbors[0].destination",
        "must be an IP address",
    ),
    (
        "neigh-nomac",
        {"neighbors": [{"destination": "192.0.2.1"}]},
        "neighbors[0].hardwareAddr",
        "is required",
    ),
    (
        "neigh-badmac",
        {"neighbors": [{"destination": "192.0.2.1", "hardwareAddr": "zz:00:00:00:00:01"}]},
        "neighbors[0].hardwareAddr",
        "MAC address",
    ),
    # ethtool: no static validation
    (
        "ethtool-ok",
        {"ethtool": {"features": {"gro": True, "anything": False}, "privateFlags": {"x": True}}},
        None,
        "",
    ),
]
