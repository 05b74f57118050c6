"""Hostile input: claim configurations, claims naming devices that are not ours, garbage and
oversized frames on the NRI connection and on the kubelet's gRPC sockets.

Each gets one clear error (one line, naming the field or thing, its value and the rule),
nothing moves, and the driver keeps serving (a fresh pod still works).
"""

from __future__ import annotations

import contextlib
import socket
import struct
from typing import Any

import pytest
from e2e.faultlib import smoke
from e2e.harness import Cluster, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.socket, pytest.mark.slow]

# (id, config, words the error must contain)
CONFIGS: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("mtu-wrong-type", {"interface": {"mtu": "big"}}, ("mtu", "big")),
    ("addresses-wrong-type", {"interface": {"addresses": "10.0.0.1/24"}}, ("addresses",)),
    ("unknown-field", {"interface": {"nmae": "eth1"}}, ("nmae",)),
    ("unknown-top-level-field", {"interfaces": {}}, ("interfaces",)),
    ("mtu-out-of-range", {"interface": {"mtu": 10}}, ("mtu", "10")),
    ("arp-ignore-out-of-range", {"interface": {"arpIgnore": 7}}, ("arpIgnore", "7")),
    ("rule-priority-out-of-range", {"rules": [{"priority": 99999999, "table": 100}]}, ("priority",)),
    ("name-with-slash", {"interface": {"name": "a/b"}}, ("name", "a/b")),
    ("name-of-16-bytes", {"interface": {"name": "x" * 16}}, ("name", "x" * 16)),
    ("name-of-16-bytes-utf8", {"interface": {"name": "éééééééé"}}, ("name",)),
    (
        "route-to-the-other-family",
        {
            "interface": {"addresses": ["10.9.0.2/24"]},
            "routes": [{"destination": "2001:db8::/64", "gateway": "10.9.0.1"}],
        },
        ("route",),
    ),
    ("not-an-object", ["interface"], ()),  # type: ignore[list-item]
    (
        "deeply-nested",
        {"interface": {"name": "e"}, "x": [[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
        (),
    ),
]


def _one_clear_line(error: str, words: tuple[str, ...]) -> None:
    assert error, "accepted"
    assert "\n" not in error.strip(), f"not one line: {error!r}"
    assert "Traceback" not in error and "RecursionError" not in error, error
    for w in words:
        assert w in error, f"{w!r} not named in {error!r}"


@pytest.mark.parametrize("config,words", [c[1:] for c in CONFIGS], ids=[c[0] for c in CONFIGS])
def test_a_hostile_claim_config_is_refused_with_one_clear_line(
    cluster: Cluster, config: Any, words: tuple[str, ...]
) -> None:
    dev = cluster.node.veth(addrs=["10.88.0.2/24"])
    claim = cluster.claim([dev], config=config)
    pod = cluster.new_pod([claim])
    res = cluster.prepare(claim)
    if res.error == "":
        # refused at the latest when the pod starts
        run = cluster.run_sandbox(pod)
        assert run.code != 0, f"config {config!r} was accepted and applied"
        _one_clear_line(run.message, words)
        cluster.stop_sandbox(pod)
        cluster.remove_sandbox(pod)
        assert cluster.unprepare(claim).error == ""
    else:
        _one_clear_line(res.error, words)
        assert claim.uid not in cluster.driver.claim_uids()
    assert pod.links() == ["lo"]
    cluster.assert_home(dev)
    cluster.assert_serving()


@pytest.mark.parametrize("section", ["sriov", "rdma"])
def test_a_backend_section_on_a_device_that_backend_does_not_own_is_refused_at_prepare(
    cluster: Cluster, section: str
) -> None:
    """A veth has only the netdev backend's facet: an ``sriov`` or ``rdma`` section for it is
    refused by the driver's ownership rule at prepare, naming the section, the device and the
    rule, and nothing moves."""
    dev = cluster.node.veth(addrs=["10.88.1.2/24"])
    params = {"sriov": {"vlan": 5}} if section == "sriov" else {"rdma": {"fileMode": 438}}
    claim = cluster.claim([dev], config=params)
    pod = cluster.new_pod([claim])
    res = cluster.prepare(claim)
    (device,) = claim.devices
    _one_clear_line(
        res.error,
        (
            f"device {device}.{section}",
            f"device {device} is not a {section} device",
            f"it has no {section} facet",
            f"a '{section}' section applies only to devices the {section} backend discovered",
        ),
    )
    assert claim.uid not in cluster.driver.claim_uids()
    run = cluster.run_sandbox(pod)  # the runtime starts the pod anyway: nothing of ours moves
    assert run.code == 0, run.message
    assert pod.links() == ["lo"]
    cluster.assert_home(dev)
    cluster.assert_serving()


def test_a_claim_naming_a_device_that_does_not_exist(cluster: Cluster) -> None:
    claim = cluster.claim(["no-such-device"], config={"interface": {"name": "net1"}})
    cluster.new_pod([claim])
    before = cluster.node.links()
    res = cluster.prepare(claim)
    _one_clear_line(res.error, ("no-such-device",))
    assert cluster.node.links() == before
    cluster.assert_serving()


def test_a_claim_naming_another_drivers_device(cluster: Cluster) -> None:
    dev = cluster.node.veth()
    published = cluster.slice_devices()
    claim = cluster.claim(
        [published[dev.name][0]] if dev.name in published else [dev], driver="gpu.example.com"
    )
    pod = cluster.new_pod([claim])
    res = cluster.prepare(claim)
    assert res.error != "" or list(res.devices) == [], "another driver's device was prepared as ours"
    cluster.run_sandbox(pod)  # nothing of ours to attach, whatever it answers
    assert pod.links() == ["lo"]
    cluster.assert_home(dev)
    cluster.assert_serving()


@pytest.mark.parametrize(
    "frame",
    [
        b"\xff" * 64,  # garbage
        struct.pack(">II", 1, 0xFFFFFFF0) + b"x" * 32,  # a mux frame claiming 4 GiB
        struct.pack(">II", 1, 30)
        + struct.pack(">IIBB", 0x7FFFFFFF, 2, 2, 0)
        + b"\0" * 20,  # a 2 GiB ttrpc message
        struct.pack(">II", 7, 4) + b"abcd",  # a frame on a connection that is not open
    ],
    ids=["garbage", "oversized-mux-frame", "oversized-ttrpc-message", "unknown-connection"],
)
def test_garbage_and_oversized_frames_on_the_nri_connection(cluster: Cluster, frame: bytes) -> None:
    before = len(cluster.runtime.sessions)
    old = cluster.session
    cluster.loop.call(old.send_raw, frame)
    # the driver either drops the connection and comes back with a fresh one, or (for what
    # it can skip, as containerd's ttrpc does) keeps it usable: the smoke test tells which
    with contextlib.suppress(AssertionError):
        wait_for("the driver to drop the connection", old.closed.is_set, within=3)
    if old.closed.is_set():
        cluster.wait_synchronized(before + 1)
    cluster.assert_serving()
    smoke(cluster)


def _raw_unix(path: str, data: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        try:
            s.sendall(data)
            s.recv(4096)
        except OSError:
            pass


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00\xff" * 512,
        PREFACE + struct.pack(">I", 0xFFFFFF)[1:] + b"\x00\x00" + b"\x00\x00\x00\x01" + b"x" * 64,
        PREFACE + b"\x00" * 100000,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["garbage", "oversized-http2-frame", "zeros-after-preface", "http1"],
)
def test_garbage_and_oversized_frames_on_the_grpc_sockets(cluster: Cluster, payload: bytes) -> None:
    for path in (cluster.kubelet.endpoint, str(cluster.kubelet.reg_sock)):
        _raw_unix(path, payload)
    cluster.assert_serving()
    cluster.kubelet.register_sync(alive=lambda: cluster.driver.alive)
    smoke(cluster)
