"""``dranet inventory``: read-only discovery printed as a table or as the ResourceSlices that
would be published, which the fake API server's schema checks accept."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from driver_helpers import NodeNs, node_ns_fixture  # noqa: F401 (the node_ns fixture)
from fakeapi.schema import validate_resource_slice

pytestmark = [pytest.mark.netns]


def _inventory(ns: NodeNs, *args: str) -> str:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dranet_core",
            "inventory",
            "--hostname-override=node-i",
            "--backends=netdev",
            f"--host-netns={ns.node_path}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # quiet by default: no log lines
    return proc.stdout


def test_table(node_ns: NodeNs) -> None:
    out = _inventory(node_ns)
    devices, left_out = out.split("\n\n")
    lines = devices.splitlines()
    assert lines[0].split() == ["NAME", "IFNAME", "TYPE", "PCI", "MAC", "RDMA", "ATTRS"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["dnm0"][1:3] == ["dnm0", "macvlan"]
    # the default filter hides the veth pair and says so, as it says why lo is left out
    assert "dnv0" not in rows
    reasons = {line.split(None, 2)[0]: line.split(None, 2)[1:] for line in left_out.splitlines()}
    assert reasons["LEFT"] == ["OUT", "BACKEND  REASON"]
    assert reasons["dnv0"] == ["-", "does not match --filter"]
    assert reasons["lo"] == ["netdev", "loopback"]


def test_yaml_and_json_are_one_document(node_ns: NodeNs) -> None:
    doc = yaml.safe_load(_inventory(node_ns, "-o", "yaml"))
    assert json.loads(_inventory(node_ns, "-o", "json")) == doc
    assert list(doc) == ["node", "driver", "backends", "devices", "excluded", "resourceSlices"]
    assert doc["backends"] == {"netdev": ["discover", "move", "resolve", "health", "background"]}
    assert {"name": "lo", "backend": "netdev", "reason": "loopback"} in doc["excluded"]
    assert {"name": "dnv0", "backend": "", "reason": "does not match --filter"} in doc["excluded"]
    (dnm0,) = [d for d in doc["devices"] if d["name"] == "dnm0"]
    assert dnm0["backends"] == ["netdev"] and dnm0["attributes"]["dra.net/type"] == "macvlan"


def test_yaml_is_what_the_api_server_accepts(node_ns: NodeNs) -> None:
    slices = yaml.safe_load(_inventory(node_ns, "-o", "yaml", "--filter="))["resourceSlices"]
    assert len(slices) == 1
    (obj,) = slices
    assert obj["apiVersion"] == "resource.k8s.io/v1"
    assert obj["kind"] == "ResourceSlice"
    assert obj["spec"]["driver"] == "dra.net"
    assert obj["spec"]["nodeName"] == "node-i"
    assert obj["spec"]["pool"]["name"] == "node-i"
    names = {d["name"] for d in obj["spec"]["devices"]}
    assert {"dnm0", "dnv0", "dnv0p"} <= names
    assert validate_resource_slice(obj, version="v1") == []


def test_json_lists_the_same_slices(node_ns: NodeNs) -> None:
    doc = json.loads(_inventory(node_ns, "-o", "json", "--filter="))
    (obj,) = doc["resourceSlices"]
    assert validate_resource_slice(obj, version="v1") == []


def test_bad_filter_is_a_clear_error(node_ns: NodeNs) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dranet_core",
            "inventory",
            "--hostname-override=node-i",
            "--filter=attributes[",
            f"--host-netns={node_ns.node_path}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "filter: invalid CEL expression 'attributes['" in proc.stderr


NO_CAPS = ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all", "--"]


def test_works_without_privileges(node_ns: NodeNs) -> None:
    """In the node's namespace, with every capability dropped: discovery still lists devices."""
    import shutil

    if shutil.which("setpriv") is None:
        pytest.skip("probe 'setpriv' failed: util-linux setpriv is not installed")
    enter = ["ip", "netns", "exec", node_ns.node]
    caps = subprocess.run(
        [*enter, *NO_CAPS, "grep", "CapEff", "/proc/self/status"], capture_output=True, text=True
    )
    assert caps.stdout.split() == ["CapEff:", "0000000000000000"]
    proc = subprocess.run(
        [*enter, *NO_CAPS, sys.executable, "-m", "dranet_core", "inventory",
         "--hostname-override=node-i", "-o", "yaml", "--filter=", "--backends=netdev"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (obj,) = yaml.safe_load(proc.stdout)["resourceSlices"]
    assert {"dnm0", "dnv0", "dnv0p"} <= {d["name"] for d in obj["spec"]["devices"]}
    assert validate_resource_slice(obj, version="v1") == []
