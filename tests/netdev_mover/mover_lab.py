"""Helpers for the netdev mover tests: a throwaway "node" netns (the mover's host) and a
"pod" netns, each with a unique ``dnt-mv-<random>`` prefix, deleted even on failure.

Results are checked with iproute2 (``ip -j``), ``ethtool`` and ``/proc/sys`` through
``ip netns exec``: independently of pyroute2. Nothing here touches the real root netns.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import attrs

from dranet_core.config.model import NetworkConfig
from dranet_core.plans import PreparedDevice
from dranet_core.types import PodSandbox


def sh(cmd: list[str], check: bool = True) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed: {res.stderr.strip()}")
    return res.stdout


def ipj(ns: str, *args: str) -> Any:
    out = sh(["ip", "-n", ns, "-j", *args])
    return json.loads(out) if out.strip() else []


def in_ns(ns: str, *cmd: str, check: bool = True) -> str:
    return sh(["ip", "netns", "exec", ns, *cmd], check=check)


def sysctl_get(ns: str, path: str) -> int:
    return int(in_ns(ns, "cat", f"/proc/sys/net/{path}").strip())


def ethtool_k(ns: str, ifname: str) -> dict[str, bool]:
    out = {}
    for line in in_ns(ns, "ethtool", "-k", ifname).splitlines()[1:]:
        key, _, val = line.strip().partition(": ")
        if val:
            out[key] = val.startswith("on")
    return out


def raw_link_sizes(ns: str, ifname: str) -> dict[int, int]:
    """IFLA_* u32 attributes 41, 58, 63, 64 (GSO/GRO sizes) by a hand-made RTM_GETLINK,
    decoded here without pyroute2 (iproute2 6.1 does not print the IPv4 ones)."""
    code = (
        "import socket,struct,sys\n"
        "s=socket.socket(16,2,0);name=sys.argv[1].encode()+b'\\0'\n"
        "nla=struct.pack('=HH',4+len(name),3)+name+b'\\0'*((4-len(name)%4)%4)\n"
        "body=struct.pack('=BxHiII',0,0,0,0,0)+nla\n"
        "s.send(struct.pack('=IHHII',16+len(body),18,1,1,0)+body)\n"
        "d=s.recv(65536);off=16+16;out={}\n"
        "while off+4<=len(d):\n"
        " l,t=struct.unpack_from('=HH',d,off)\n"
        " if l<4: break\n"
        " t&=0x3fff\n"
        " if t in (41,58,63,64): out[t]=struct.unpack_from('=I',d,off+4)[0]\n"
        " off+=(l+3)&~3\n"
        "print(out)\n"
    )
    import ast

    return dict(ast.literal_eval(in_ns(ns, "python3", "-c", code, ifname).strip()))


def host_state(ns: str, ifname: str) -> dict[str, Any]:
    """Everything the snapshot promises to restore, as iproute2/ethtool/procfs see it."""
    link = ipj(ns, "-d", "link", "show", "dev", ifname)[0]
    for _ in range(100):  # carrier follows "up" asynchronously (linkwatch); routes show it
        if "UP" not in link["flags"] or "LOWER_UP" in link["flags"]:
            break
        time.sleep(0.02)
        link = ipj(ns, "-d", "link", "show", "dev", ifname)[0]
    addrs = sorted(
        (a["local"], a["prefixlen"], a.get("scope"))
        for a in ipj(ns, "addr", "show", "dev", ifname)[0]["addr_info"]
    )
    routes = sorted(
        json.dumps(r, sort_keys=True)
        for fam in ("-4", "-6")
        for r in ipj(ns, fam, "route", "show", "table", "all", "dev", ifname)
        if r.get("table") != "local" and r.get("protocol") != "kernel"
    )
    rules = sorted(
        json.dumps(r, sort_keys=True) for fam in ("-4", "-6") for r in ipj(ns, fam, "rule", "show")
    )
    neigh = sorted(
        (n["dst"], n.get("lladdr"))
        for n in ipj(ns, "neigh", "show", "dev", ifname)
        if "PERMANENT" in n.get("state", [])
    )
    sysctls = {
        k: sysctl_get(ns, f"{k.split('.')[0]}/conf/{ifname}/{k.split('.')[1]}")
        for k in ("ipv4.arp_ignore", "ipv4.arp_announce", "ipv4.forwarding", "ipv6.forwarding")
    }
    return {
        "ifindex": link["ifindex"],
        "mtu": link["mtu"],
        "mac": link["address"],
        "up": "UP" in link["flags"],
        "gso": (link.get("gso_max_size"), link.get("gro_max_size")),
        "sizes": raw_link_sizes(ns, ifname),
        "addrs": addrs,
        "routes": routes,
        "rules": rules,
        "neigh": neigh,
        "sysctls": sysctls,
        "features": ethtool_k(ns, ifname),
    }


@attrs.define
class Lab:
    """A node netns (the mover's host) and a pod netns, with helpers."""

    prefix: str
    node: str
    pod: str
    links: list[str] = attrs.field(factory=list)

    def ip(self, ns: str, *args: str) -> str:
        return sh(["ip", "-n", ns, *args])

    def veth(self, name: str, peer: str, *, up: bool = True) -> int:
        self.ip(self.node, "link", "add", name, "type", "veth", "peer", "name", peer)
        self.ip(self.node, "link", "set", peer, "up")
        if up:
            self.ip(self.node, "link", "set", name, "up")
        return int(ipj(self.node, "link", "show", "dev", name)[0]["ifindex"])

    def pod_sandbox(self, netns: str | None = None) -> PodSandbox:
        return PodSandbox(
            uid="uid-1", name="pod", namespace="default", netns=netns or f"/run/netns/{self.pod}"
        )

    def device(self, ifname: str, config: NetworkConfig | None = None, **facet: Any) -> PreparedDevice:
        idx = ipj(self.node, "link", "show", "dev", ifname)[0]["ifindex"]
        f = {
            "ifname": ifname,
            "ifindex": idx,
            "mac": None,
            "perm_mac": None,
            "pci_address": None,
            "kind": "veth",
            "virtual": True,
            **facet,
        }
        return PreparedDevice(
            pool="node",
            device=ifname,
            request_names=("nic",),
            config=config or NetworkConfig(),
            facets={"netdev": f},
        )


_TCX_SCRIPT = r"""
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
def bpf(cmd, attr):
    r = libc.syscall(ctypes.c_long(321), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr)))
    if r < 0:
        raise OSError(ctypes.get_errno(), "bpf %d" % cmd)
    return r
ifindex = int(sys.argv[2])
if sys.argv[1] == "attach":
    insns = ctypes.create_string_buffer(bytes([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]), 16)
    lic = ctypes.create_string_buffer(b"GPL")
    attr = ctypes.create_string_buffer(144)
    struct.pack_into("=IIQQ", attr, 0, 3, 2, ctypes.addressof(insns), ctypes.addressof(lic))
    fd = bpf(5, attr)                                   # BPF_PROG_LOAD, SCHED_CLS
    attr = ctypes.create_string_buffer(144)
    struct.pack_into("=III", attr, 0, ifindex, fd, 46)  # BPF_PROG_ATTACH, BPF_TCX_INGRESS
    bpf(8, attr)
    print("attached")
else:
    ids = (ctypes.c_uint32 * 16)()
    attr = ctypes.create_string_buffer(144)
    struct.pack_into("=II", attr, 0, ifindex, 46)
    struct.pack_into("=Q", attr, 16, ctypes.addressof(ids))
    struct.pack_into("=I", attr, 24, 16)
    bpf(16, attr)                                       # BPF_PROG_QUERY
    print(struct.unpack_from("=I", attr, 24)[0])
"""


def tcx_attach(ns: str, ifindex: int) -> None:
    """Load a 2-instruction SCHED_CLS program and attach it at TCX ingress, inside ``ns``
    (hand-packed bpf(2), independent of the code under test)."""
    assert in_ns(ns, "python3", "-c", _TCX_SCRIPT, "attach", str(ifindex)).strip() == "attached"


def tcx_count(ns: str, ifindex: int) -> int:
    """How many programs sit at TCX ingress of ``ifindex`` in ``ns``."""
    return int(in_ns(ns, "python3", "-c", _TCX_SCRIPT, "query", str(ifindex)).strip())
