"""Event masks per runtime version, handler discovery, and NRI <-> core conversions."""

from __future__ import annotations

import pytest
from nri_convert import container_from_nri, linux_device, pod_from_nri

from dranet_core.nri import api
from dranet_core.nri.events import EventType, event_mask, parse_version, valid_events
from dranet_core.nri.handlers import ContainerInfo, subscribed_events
from dranet_core.types import DeviceNode, PodSandbox


@pytest.mark.parametrize(
    ("name", "version", "nri", "mask"),
    [
        ("containerd", "v2.3.1", "v0.12.2", 0x3FFF),
        ("containerd", "v1.7.27", "", 0x7FF),
        ("containerd", "2.0.5", "", 0x7FF),
        ("containerd", "v2.1.4", "", 0x7FF),
        ("containerd", "v2.2.0", "", 0x3FFF),
        ("cri-o", "1.32.3", "", 0x7FF),
        ("cri-o", "1.33.1", "", 0x1FFF),
        ("cri-o", "1.34.0", "", 0x3FFF),
        ("somethingelse", "9.9.9", "", 0x7FF),
        ("containerd", "garbage", "", 0x7FF),
        ("cri-o", "1.30.0", "v0.9.0", 0x7FF),
    ],
)
def test_valid_events(name: str, version: str, nri: str, mask: int) -> None:
    assert valid_events(name, version, nri) == mask


def test_event_bits() -> None:
    assert EventType.RUN_POD_SANDBOX.bit == 0x1
    assert EventType.CREATE_CONTAINER.bit == 0x8
    assert EventType.VALIDATE_CONTAINER_ADJUSTMENT.bit == 0x2000
    assert event_mask([EventType.RUN_POD_SANDBOX, EventType.STOP_POD_SANDBOX]) == 0x3
    assert parse_version("v0.12.2") == (0, 12, 2)
    assert parse_version("1.33") == (1, 33, 0)
    assert parse_version("unknown") is None


def test_subscribed_events_follow_methods() -> None:
    class Stop:
        async def stop_pod_sandbox(self, pod: PodSandbox) -> None: ...

    class NotCallable:
        run_pod_sandbox = "nope"

    assert subscribed_events(Stop()) == {EventType.STOP_POD_SANDBOX}
    assert subscribed_events(NotCallable()) == frozenset()


def test_pod_conversion() -> None:
    nri = api.PodSandbox(
        id="sb1",
        name="p",
        uid="u1",
        namespace="ns",
        ips=["10.0.0.5", "fd00::5"],
        linux=api.LinuxPodSandbox(
            namespaces=[
                api.LinuxNamespace(type="ipc", path="/x"),
                api.LinuxNamespace(type="network", path="/var/run/netns/cni-9"),
            ]
        ),
    )
    assert pod_from_nri(nri) == PodSandbox(
        uid="u1",
        name="p",
        namespace="ns",
        id="sb1",
        netns="/var/run/netns/cni-9",
        ips=("10.0.0.5", "fd00::5"),
    )
    host = api.PodSandbox(id="sb2", uid="u2", linux=api.LinuxPodSandbox(namespaces=[]))
    assert pod_from_nri(host).netns is None
    empty_path = api.PodSandbox(
        uid="u3", linux=api.LinuxPodSandbox(namespaces=[api.LinuxNamespace(type="network", path="")])
    )
    assert pod_from_nri(empty_path).netns is None
    assert pod_from_nri(None).uid == ""


def test_container_and_device_conversion() -> None:
    assert container_from_nri(api.Container(id="c", name="n", pod_sandbox_id="sb")) == ContainerInfo(
        id="c", name="n", pod_sandbox_id="sb"
    )
    dev = linux_device(
        DeviceNode(
            path="/dev/infiniband/rdma_cm", type="c", major=10, minor=58, file_mode=0o660, uid=1000, gid=1000
        )
    )
    # LinuxDevice{path, type "c", major 10, minor 58, file_mode{432}, uid{1000}, gid{1000}}
    assert bytes(dev) == (
        b"\x0a\x17/dev/infiniband/rdma_cm\x12\x01c\x18\x0a\x20\x3a"
        b"\x2a\x03\x08\xb0\x03\x32\x03\x08\xe8\x07\x3a\x03\x08\xe8\x07"
    )
