"""The conformance suite can fail: a correct in-memory backend passes every check, and each
kind of broken backend fails the check meant for it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from dranet_core import JSON, AttachResult, Device, DeviceNode, NetworkConfig, PodSandbox, PreparedDevice
from dranet_core.errors import BackendError, ConfigError
from dranet_core.testing.conformance import BackendConformance, MoveCase

CASE = MoveCase(device="fake0", pod_netns="/run/netns/fake-pod")


class FakeBackend:
    """Devices in dicts: "host" and "pods"; a move pops from one and puts into the other."""

    name = "fake"

    def __init__(self) -> None:
        self.host: dict[str, dict[str, Any]] = {"fake0": {"mtu": 1500}, "fake1": {"mtu": 9000}}
        self.pods: dict[str, dict[str, Any]] = {}

    async def scan(self) -> Sequence[Device]:
        every = {**self.host, **self.pods}
        return [
            Device(name=n, attributes={"dra.net/mtu": s["mtu"]}, facets={"fake": {"n": n}})
            for n, s in sorted(every.items())
        ]

    async def watch(self, notify: Callable[[], None]) -> None:
        import asyncio

        await asyncio.Event().wait()

    async def snapshot(self, device: PreparedDevice) -> JSON:
        return dict(self.host[device.device])

    async def attach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> AttachResult:
        if device.device in self.host:
            self.pods[device.device] = self.host.pop(device.device)
        self.pods[device.device]["mtu"] = 1400
        return AttachResult()

    async def detach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> None:
        state = self.pods.pop(device.device, None) or self.host[device.device]
        assert isinstance(snapshot, dict)
        state.update(snapshot)
        self.host[device.device] = state


class ForgetsToRestore(FakeBackend):
    async def detach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> None:
        self.host[device.device] = self.pods.pop(device.device, None) or self.host[device.device]


class NotIdempotent(FakeBackend):
    async def attach(self, device: PreparedDevice, pod: PodSandbox, snapshot: JSON) -> AttachResult:
        self.pods[device.device] = self.host.pop(device.device)  # KeyError the second time
        return AttachResult()


class UnpublishableName(FakeBackend):
    async def scan(self) -> Sequence[Device]:
        return [*(await super().scan()), Device(name="big", capacity={"dra.net/x": "lots"})]


class NoWatch:
    name = "nowatch"

    async def scan(self) -> Sequence[Device]:
        return []


class WithDeviceCapabilities(FakeBackend):
    """Validates, adjusts and reports health for its own devices (a correct one)."""

    def validate_config(self, device: Device, config: NetworkConfig) -> None:
        if device.facets["fake"]["n"] == "fake1":
            raise ConfigError("not for this one")  # a refusal is an answer

    def device_nodes(self, device: PreparedDevice) -> Sequence[DeviceNode]:
        return [DeviceNode(path=f"/dev/{device.facets['fake']['n']}", type="c", major=1, minor=3)]

    async def health(self) -> Mapping[str, bool]:
        return {d.name: True for d in await self.scan()}


class HealthOfStrangers(WithDeviceCapabilities):
    async def health(self) -> Mapping[str, bool]:
        return {**await super().health(), "eth0": False}  # eth0 is not its device


class CrashesOnItsOwnDevice(WithDeviceCapabilities):
    def device_nodes(self, device: PreparedDevice) -> Sequence[DeviceNode]:
        return [DeviceNode(path=device.facets["other"], type="c", major=1, minor=3)]  # KeyError


SUITE = BackendConformance()


async def run_all(backend: Any) -> None:
    SUITE.test_capabilities_are_complete(backend)
    await SUITE.test_scan_returns_publishable_devices(backend)
    await SUITE.test_scan_is_stable(backend)
    await SUITE.test_watch_runs_until_cancelled(backend)
    await SUITE.test_attach_detach_round_trip_restores(backend, CASE)
    await SUITE.test_attach_and_detach_are_idempotent(backend, CASE)
    await SUITE.test_per_device_capabilities_answer_for_every_owned_device(backend)
    await SUITE.test_health_names_only_owned_devices(backend)


async def test_a_correct_backend_passes_every_check() -> None:
    await run_all(WithDeviceCapabilities())


async def test_health_of_a_device_the_backend_does_not_own_fails_ownership() -> None:
    with pytest.raises(AssertionError, match=r"health names devices without a 'fake' facet: \['eth0'\]"):
        await SUITE.test_health_names_only_owned_devices(HealthOfStrangers())


async def test_a_capability_that_crashes_on_an_owned_device_fails_ownership() -> None:
    with pytest.raises(KeyError):
        await SUITE.test_per_device_capabilities_answer_for_every_owned_device(CrashesOnItsOwnDevice())


async def test_a_detach_that_does_not_restore_fails_the_round_trip() -> None:
    with pytest.raises(AssertionError):
        await SUITE.test_attach_detach_round_trip_restores(ForgetsToRestore(), CASE)


async def test_an_attach_that_cannot_run_twice_fails_idempotence() -> None:
    with pytest.raises(KeyError):
        await SUITE.test_attach_and_detach_are_idempotent(NotIdempotent(), CASE)


async def test_a_device_the_api_would_reject_fails_discovery() -> None:
    with pytest.raises(AssertionError, match="the API would reject"):
        await SUITE.test_scan_returns_publishable_devices(UnpublishableName())


def test_a_partial_capability_fails() -> None:
    with pytest.raises(BackendError, match="implements part of Discovery: has scan, lacks watch"):
        SUITE.test_capabilities_are_complete(NoWatch())
