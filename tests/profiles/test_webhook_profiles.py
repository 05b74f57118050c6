"""The webhook profile provider against a loopback server speaking the Go driver's protocol:
success, 5xx, 4xx, bad JSON, timeouts, the start-up check and release."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from profile_webhook import ProfileWebhook

from dranet_core.cli import _go_only_warnings, build_parser, settings_from_args
from dranet_core.config.model import InterfaceConfig, NetworkConfig, RouteConfig
from dranet_core.errors import ConfigError, DeviceError, SettingsError
from dranet_core.profiles import WebhookProfileProvider
from dranet_core.types import Device

DEV = Device(
    name="pci-0000-8a-00-0",
    attributes={"dra.net/mac": "02:00:00:00:00:09", "dra.net/pciAddress": "0000:8a:00.0"},
)
PROFILE = {
    "interface": {"addresses": ["10.200.200.200/24"], "mtu": 9000},
    "routes": [{"destination": "10.0.0.0/8", "gateway": "10.200.200.1"}],
}
USER = NetworkConfig(profile="python-profile", interface=InterfaceConfig(name="net1", mtu=1450))


@pytest.fixture
async def hook() -> AsyncIterator[ProfileWebhook]:
    h = ProfileWebhook({"python-profile": PROFILE})
    await h.start()
    yield h
    await h.close()


@pytest.fixture
async def provider(hook: ProfileWebhook) -> AsyncIterator[WebhookProfileProvider]:
    p = WebhookProfileProvider(hook.url, request_seconds=0.5)
    yield p
    await p.close()


async def test_profile_config_is_merged_under_the_claims_own(
    hook: ProfileWebhook, provider: WebhookProfileProvider
) -> None:
    await provider.check()
    got = await provider.resolve(DEV, "uid-1", USER)
    assert got.interface is not None
    assert got.interface.addresses == ("10.200.200.200/24",)
    assert (got.interface.name, got.interface.mtu) == ("net1", 1450)  # the claim's own settings win
    assert got.routes == (RouteConfig(destination="10.0.0.0/8", gateway="10.200.200.1"),)
    ((kind, body),) = hook.requests
    assert kind == "get"
    assert body["device"] == {
        "mac_address": "02:00:00:00:00:09",
        "pci_address": "0000:8a:00.0",
        "name": DEV.name,
    }
    assert body["claim_uid"] == "uid-1"
    assert body["config"] == {"profile": "python-profile", "interface": {"name": "net1", "mtu": 1450}}
    await provider.release(DEV, "uid-1", got)
    assert hook.requests[-1][0] == "release" and hook.requests[-1][1]["claim_uid"] == "uid-1"


@pytest.mark.parametrize(
    ("mode", "message", "temporary"),
    [
        ("500", r"HTTP 500: ipam exhausted", True),
        ("404", r"HTTP 404: no such profile", False),
        ("badjson", r"the answer is not JSON", False),
        ("slow", r"no answer within 0.5s", True),
    ],
)
async def test_a_failing_webhook_fails_the_device_clearly(
    hook: ProfileWebhook, provider: WebhookProfileProvider, mode: str, message: str, temporary: bool
) -> None:
    hook.mode = mode
    with pytest.raises(
        DeviceError,
        match=rf"device {DEV.name}: profile 'python-profile': POST .*/GetProfileConfig: {message}",
    ) as err:
        await provider.resolve(DEV, "uid-1", USER)
    assert err.value.temporary is temporary


async def test_a_profile_config_this_driver_rejects_is_an_error(
    hook: ProfileWebhook, provider: WebhookProfileProvider
) -> None:
    hook.profiles["python-profile"] = {"interface": {"mtuu": 1500}}
    with pytest.raises(DeviceError, match=r"GetProfileConfig.interface.mtuu"):
        await provider.resolve(DEV, "uid-1", USER)


async def test_start_check_needs_a_profile_provider(hook: ProfileWebhook) -> None:
    hook.provider = False
    p = WebhookProfileProvider(hook.url)
    try:
        with pytest.raises(ConfigError, match="does not report profileProvider: true"):
            await p.check()
    finally:
        await p.close()
    gone = WebhookProfileProvider("http://127.0.0.1:9", request_seconds=0.5)
    try:
        with pytest.raises(ConfigError, match=r"--webhook-url: GET http://127.0.0.1:9/health"):
            await gone.check()
    finally:
        await gone.close()


def test_flags() -> None:
    parse = build_parser().parse_args
    args = parse(["run", "--profile-provider=webhook", "--webhook-url=http://127.0.0.1:8081"])
    assert _go_only_warnings(args) == []  # implemented: no "not supported" warning
    s = settings_from_args(args)
    assert (s.profile.provider, s.profile.webhook_url) == ("webhook", "http://127.0.0.1:8081")
    with pytest.raises(SettingsError, match="--webhook-url: --profile-provider=webhook needs"):
        settings_from_args(parse(["run", "--profile-provider=webhook"]))
    with pytest.raises(SettingsError, match="--profile-provider: must be cloud, webhook or none"):
        settings_from_args(parse(["run", "--profile-provider=magic"]))
