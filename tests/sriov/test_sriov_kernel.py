"""The PF-side messages against the real kernel, in a throwaway network namespace.

There is no SR-IOV device here, so what can be checked is that the kernel accepts the
messages' layout: an ``RTM_GETLINK`` by name with the VF filter is answered (a veth has
no VF list), and every ``RTM_SETLINK`` VF setting gets past the kernel's attribute
validation (``ifla_vf_policy`` lengths, the nesting) to the driver hook the veth lacks:
``EOPNOTSUPP``, where a malformed message would get ``EINVAL`` or ``ERANGE``.
"""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from dranet_backends.sriov.pfside import NetlinkRoute
from dranet_backends.sriov.vfnl import VfSetting, get_request, parse_reply, set_request

pytestmark = [pytest.mark.netns]


@pytest.fixture
def veth_ns() -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0:
        pytest.skip("probe euid==0 failed: a throwaway network namespace needs root")
    ns = f"dranet-pf-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        subprocess.run(
            ["ip", "-n", ns, "link", "add", "pf0", "type", "veth", "peer", "name", "pf0p"],
            check=True,
            capture_output=True,
        )
        yield f"/run/netns/{ns}", "pf0"
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def test_getlink_by_name_with_the_vf_filter_is_answered(veth_ns: tuple[str, str]) -> None:
    path, pf = veth_ns
    route = NetlinkRoute(path)
    assert parse_reply(route.exchange(get_request(1, pf)), 1) == {}  # found; no VF list
    with pytest.raises(OSError) as exc:
        parse_reply(route.exchange(get_request(2, "nosuchpf0")), 2)
    assert exc.value.errno == errno.ENODEV


@pytest.mark.parametrize(
    "setting",
    [
        VfSetting.mac(0, "02:00:00:00:00:01"),
        VfSetting.vlan(0, 100, 3, "802.1ad"),
        VfSetting.spoof_chk(0, True),
        VfSetting.trust(0, True),
        VfSetting.link_state(0, "enable"),
        VfSetting.rate(0, 10, 100),
    ],
    ids=lambda s: s.name,
)
def test_every_setting_passes_the_kernels_validation(veth_ns: tuple[str, str], setting: VfSetting) -> None:
    path, pf = veth_ns
    with pytest.raises(OSError) as exc:
        parse_reply(NetlinkRoute(path).exchange(set_request(7, pf, setting)), 7)
    assert exc.value.errno == errno.EOPNOTSUPP, os.strerror(exc.value.errno or 0)


def test_a_malformed_setting_is_refused_by_validation_not_the_driver_hook(veth_ns: tuple[str, str]) -> None:
    """The control: the kernel does check the layout before the hook (a short IFLA_VF_MAC)."""
    path, pf = veth_ns
    short_mac = VfSetting("mac", 1, b"\0" * 8)  # struct ifla_vf_mac is 36 bytes
    with pytest.raises(OSError) as exc:
        parse_reply(NetlinkRoute(path).exchange(set_request(8, pf, short_mac)), 8)
    assert exc.value.errno in (errno.EINVAL, errno.ERANGE)
