"""``--cloud-provider-hint=webhook`` against a loopback webhook speaking the Go driver's
protocol: the start-up capability check, per-device attributes and baseline configs, bad
entries, failing calls, and the baseline merged under a claim's config at prepare."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from profile_webhook import ProfileWebhook

from dranet_core.claim_allocator import resolve_plan
from dranet_core.cli import _go_only_warnings, build_parser, settings_from_args
from dranet_core.cloud.webhook import WebhookCloud, decode_attributes, device_identifiers
from dranet_core.config.model import InterfaceConfig, NetworkConfig
from dranet_core.errors import SettingsError
from dranet_core.plans import ClaimPlan, PreparedDevice
from dranet_core.types import ClaimRef, Device, Version

DUMMY = Device(name="dummy1", attributes={"dra.net/ifName": "dummy1", "dra.net/mac": "02:00:00:00:00:01"})
PCI = Device(
    name="pci-0000-8a-00-0",
    attributes={
        "dra.net/ifName": "eth3",
        "dra.net/mac": "02:00:00:00:00:03",
        "dra.net/pciAddress": "0000:8a:00.0",
    },
)
ATTRS = {
    "dra.net/webhook_attr": {"string": "python"},
    "acme.com/rail": {"int": 3},
    "acme.com/fast": {"bool": True},
    "acme.com/fw": {"version": "1.2.3"},
}


@pytest.fixture
async def hook() -> AsyncIterator[ProfileWebhook]:
    h = ProfileWebhook(
        {},
        provider=False,
        cloud=True,
        device_attrs={"dummy1": ATTRS},
        device_configs={"dummy1": {"interface": {"mtu": 1450}}},
    )
    h.slow_seconds = 1.0
    await h.start()
    yield h
    await h.close()


@pytest.fixture
async def cloud(hook: ProfileWebhook) -> AsyncIterator[WebhookCloud]:
    c = WebhookCloud(hook.url, request_seconds=0.5)
    yield c
    await c.close()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_attributes_and_baseline_for_the_device_the_webhook_knows(
    hook: ProfileWebhook, cloud: WebhookCloud, caplog: pytest.LogCaptureFixture
) -> None:
    assert await cloud.check()
    out = await cloud.enrich({"dummy1": DUMMY, PCI.name: PCI})
    assert dict(out["dummy1"].attributes) == {
        **DUMMY.attributes,
        "dra.net/webhook_attr": "python",
        "acme.com/rail": 3,
        "acme.com/fast": True,
        "acme.com/fw": Version("1.2.3"),
    }
    assert out[PCI.name] is PCI
    assert cloud.baseline("dummy1") == NetworkConfig(interface=InterfaceConfig(mtu=1450))
    assert cloud.baseline(PCI.name) is None  # the webhook answered {}
    bodies = sorted((k, tuple(sorted(b.items()))) for k, b in hook.requests)
    assert bodies == [
        ("GetDeviceAttributes", (("mac_address", "02:00:00:00:00:01"), ("name", "dummy1"))),
        (
            "GetDeviceAttributes",
            (("mac_address", "02:00:00:00:00:03"), ("name", "eth3"), ("pci_address", "0000:8a:00.0")),
        ),
        ("GetDeviceConfig", (("mac_address", "02:00:00:00:00:01"), ("name", "dummy1"))),
        (
            "GetDeviceConfig",
            (("mac_address", "02:00:00:00:00:03"), ("name", "eth3"), ("pci_address", "0000:8a:00.0")),
        ),
    ]
    assert warnings(caplog) == []


def test_identifiers_leave_out_what_is_unknown() -> None:
    assert device_identifiers(Device(name="ib-only")) == {"name": "ib-only"}


def test_bad_attribute_entries_are_left_out_each_named() -> None:
    got, problems = decode_attributes(
        {
            "dra.net/ok": {"string": "yes"},
            "not a name!": {"string": "x"},
            "acme.com/long": {"string": "x" * 65},
            "acme.com/two": {"string": "a", "int": 1},
            "acme.com/float": {"int": 1.5},
            "acme.com/ver": {"version": "one"},
        }
    )
    assert got == {"dra.net/ok": "yes"}
    assert len(problems) == 5
    assert any("'not a name!'" in p for p in problems) and any("acme.com/ver" in p for p in problems)
    assert decode_attributes(None) == ({}, [])
    assert decode_attributes([1]) == ({}, ["the answer must be a JSON object, got list"])


async def test_a_bad_entry_is_one_warning_not_one_per_scan(
    hook: ProfileWebhook, cloud: WebhookCloud, caplog: pytest.LogCaptureFixture
) -> None:
    hook.device_attrs["dummy1"] = {**ATTRS, "acme.com/bad": {"float": 1.5}}
    for _ in range(3):
        out = await cloud.enrich({"dummy1": DUMMY})
        assert out["dummy1"].attributes["dra.net/webhook_attr"] == "python"
    (line,) = warnings(caplog)
    assert "device dummy1: GetDeviceAttributes: attribute acme.com/bad" in line


@pytest.mark.parametrize(
    ("mode", "text"), [("500", "HTTP 500"), ("badjson", "not JSON"), ("slow", "no answer within")]
)
async def test_a_failing_device_call_leaves_the_device_as_it_was(
    hook: ProfileWebhook, cloud: WebhookCloud, mode: str, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    hook.device_mode = mode
    for _ in range(2):
        out = await cloud.enrich({"dummy1": DUMMY})
        assert out["dummy1"] is DUMMY and cloud.baseline("dummy1") is None
    lines = warnings(caplog)
    assert len(lines) == 2  # one per call, not repeated at the next scan
    assert all(text in ln and "device dummy1" in ln for ln in lines)
    hook.device_mode = ""
    out = await cloud.enrich({"dummy1": DUMMY})  # the webhook is back: so are the attributes
    assert out["dummy1"].attributes["dra.net/webhook_attr"] == "python"


async def test_a_baseline_that_is_not_a_valid_config_is_one_warning(
    hook: ProfileWebhook, cloud: WebhookCloud, caplog: pytest.LogCaptureFixture
) -> None:
    hook.device_configs["dummy1"] = {"interface": {"mtu": "big"}}
    await cloud.enrich({"dummy1": DUMMY})
    assert cloud.baseline("dummy1") is None
    (line,) = warnings(caplog)
    assert "GetDeviceConfig" in line and "mtu" in line


@pytest.mark.parametrize(
    ("setup", "text"),
    [
        ({"cloud": False}, "does not report cloudProvider: true"),
        ({"url": "http://127.0.0.1:1"}, "GET http://127.0.0.1:1/health"),
    ],
)
async def test_the_start_check_is_one_warning_when_the_webhook_is_no_cloud_provider(
    hook: ProfileWebhook, setup: dict[str, Any], text: str, caplog: pytest.LogCaptureFixture
) -> None:
    hook.cloud = setup.get("cloud", True)
    c = WebhookCloud(setup.get("url", hook.url), request_seconds=0.5)
    try:
        assert not await c.check()
    finally:
        await c.close()
    (line,) = warnings(caplog)
    assert "cloud provider webhook" in line and text in line and "no cloud attributes" in line


class Baselines:
    def baseline(self, device: str) -> NetworkConfig | None:
        return (
            NetworkConfig(interface=InterfaceConfig(name="from-webhook", mtu=1450))
            if device == "dummy1"
            else None
        )


async def test_prepare_lays_the_claims_config_over_the_baseline() -> None:
    plan = ClaimPlan(
        claim=ClaimRef(namespace="ns", name="c", uid="u1"),
        pods=(),
        devices=(
            PreparedDevice(
                pool="n",
                device="dummy1",
                request_names=("r0",),
                config=NetworkConfig(interface=InterfaceConfig(name="eth99")),
            ),
        ),
    )
    got = await resolve_plan(plan, {"dummy1": DUMMY}, [], None, Baselines())
    assert got.devices[0].config.interface == InterfaceConfig(name="eth99", mtu=1450)


def test_the_webhook_hint_needs_a_url_and_uses_it() -> None:
    with pytest.raises(SettingsError, match="--webhook-url: --cloud-provider-hint=webhook needs"):
        settings_from_args(
            build_parser().parse_args(["run", "--cloud-provider-hint=webhook"]), {"NODE_NAME": "n"}
        )
    args = build_parser().parse_args(
        ["run", "--cloud-provider-hint=webhook", "--webhook-url=unix:///run/w.sock"]
    )
    assert settings_from_args(args, {"NODE_NAME": "n"}).cloud.webhook_url == "unix:///run/w.sock"
    assert _go_only_warnings(args) == []
