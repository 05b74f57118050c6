"""The backend conformance suite: what every backend must do, checked against your backend.

Subclass :class:`BackendConformance` in a test module and provide two fixtures; pytest then
runs every check below against your backend::

    from dranet_core.testing.conformance import BackendConformance, MoveCase

    class TestMacvlanConformance(BackendConformance):
        @pytest.fixture
        def backend(self, node):                 # a fresh backend, scanning a throwaway netns
            return create(BackendContext(node_name="n", host_netns=node.path))

        @pytest.fixture
        def move_case(self, node, pod):          # None if the backend does not move devices
            return MoveCase(device="mv0", pod_netns=pod.path)

The checks (each a test):

* **capabilities**: the backend has a string ``name``, implements at least one capability
  and every capability protocol it touches completely (what ``dranet run`` enforces at load).
* **discovery** (when it is a :class:`~dranet_core.discovery.Discovery`): ``scan`` returns
  :class:`~dranet_core.types.Device` objects with unique names that the Kubernetes API would
  accept in a ResourceSlice; one with facets carries one under the backend's name (how the driver
  knows whom to ask); a second scan names the same devices; ``watch`` runs until cancelled.
* **round trip** (when it is a :class:`~dranet_core.netns.NamespaceMover` and ``move_case``
  is not None): snapshot -> attach -> detach brings the device home with the same attributes
  it had (while it is in the pod the driver keeps it listed, not the backend).
* **idempotence**: attach twice, detach twice: the second call of each succeeds and changes
  nothing.
* **ownership** (the driver asks a backend only about devices that carry its facet): each
  per-device capability it has (``validate_config`` and ``resolve_config`` with an empty
  config, ``device_nodes``) answers for every device it discovered, or raises a
  :class:`~dranet_core.errors.DranetError` (a refusal the driver reports), never another
  exception; ``health`` names only devices it discovered.

The tests are ``async`` and marked for pytest-asyncio (install ``dranet[testing]``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import attrs
import pytest

from dranet_core.backends import check_capabilities
from dranet_core.capabilities import (
    AdjustsContainers,
    ReportsHealth,
    ResolvesConfig,
    ValidatesConfig,
    handler_table,
)
from dranet_core.config.model import NetworkConfig
from dranet_core.discovery import Discovery
from dranet_core.errors import DranetError
from dranet_core.mover import NamespaceMover
from dranet_core.plans import PreparedDevice
from dranet_core.types import Device, PodSandbox

__all__ = ["BackendConformance", "MoveCase"]


@attrs.frozen(kw_only=True)
class MoveCase:
    """One device to move in the round-trip checks: its device name and a pod netns path."""

    device: str
    pod_netns: str
    pool: str = "conformance-node"


def _by_name(devices: Sequence[Device]) -> dict[str, Device]:
    return {d.name: d for d in devices}


class BackendConformance:
    """Checks every backend must pass; subclass it and provide ``backend`` and ``move_case``."""

    @pytest.fixture
    def move_case(self) -> MoveCase | None:
        """Override to give a device the round-trip checks may move (default: none)."""
        return None

    # --- capabilities ------------------------------------------------------------------

    def test_capabilities_are_complete(self, backend: Any) -> None:
        assert isinstance(getattr(backend, "name", None), str) and backend.name
        check_capabilities(backend)
        table = handler_table([backend])  # raises if it implements no capability
        assert table.capabilities[backend.name]

    # --- discovery ---------------------------------------------------------------------

    async def _scan(self, backend: Any) -> dict[str, Device]:
        if not isinstance(backend, Discovery):
            pytest.skip(f"backend {backend.name} does not discover devices")
        devices = await backend.scan()
        assert all(isinstance(d, Device) for d in devices)
        names = [d.name for d in devices]
        assert len(names) == len(set(names)), f"duplicate device names: {sorted(names)}"
        return _by_name(devices)

    @pytest.mark.asyncio
    async def test_scan_returns_publishable_devices(self, backend: Any) -> None:
        from dranet_core.kube.slices import prepare_devices

        devices = await self._scan(backend)
        _, rejected = prepare_devices(devices.values())
        assert rejected == [], f"the API would reject: {rejected}"
        # a device this backend can act on carries its facet; one without facets is listed
        # for the scheduler only (a PCI function whose netdev is elsewhere)
        foreign = sorted(n for n, d in devices.items() if d.facets and backend.name not in d.facets)
        assert foreign == [], f"devices with facets but none under {backend.name!r}: {foreign}"

    @pytest.mark.asyncio
    async def test_scan_is_stable(self, backend: Any) -> None:
        first = await self._scan(backend)
        second = await self._scan(backend)
        assert sorted(first) == sorted(second)

    @pytest.mark.asyncio
    async def test_watch_runs_until_cancelled(self, backend: Any) -> None:
        if not isinstance(backend, Discovery):
            pytest.skip(f"backend {backend.name} does not discover devices")
        task = asyncio.create_task(backend.watch(lambda: None))
        await asyncio.sleep(0.05)
        assert not task.done(), f"watch returned early: {task.exception() if task.done() else ''}"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    # --- moves -------------------------------------------------------------------------

    async def _prepared(self, backend: Any, case: MoveCase | None) -> PreparedDevice:
        if not isinstance(backend, NamespaceMover) or case is None:
            pytest.skip(f"backend {backend.name} moves no device here (no move_case)")
        devices = await self._scan(backend)
        assert case.device in devices, f"{case.device} not discovered (have: {sorted(devices)})"
        device = devices[case.device]
        return PreparedDevice(
            pool=case.pool, device=device.name, request_names=("conformance",), facets=dict(device.facets)
        )

    @staticmethod
    def _pod(case: MoveCase) -> PodSandbox:
        return PodSandbox(
            uid="conformance-pod", name="conformance", namespace="default", netns=case.pod_netns
        )

    @pytest.mark.asyncio
    async def test_attach_detach_round_trip_restores(self, backend: Any, move_case: MoveCase | None) -> None:
        prepared = await self._prepared(backend, move_case)
        assert move_case is not None
        before = (await self._scan(backend))[prepared.device]
        pod = self._pod(move_case)
        snapshot = await backend.snapshot(prepared)
        try:
            await backend.attach(prepared, pod, snapshot)
        finally:
            await backend.detach(prepared, pod, snapshot)
        after = (await self._scan(backend))[prepared.device]
        assert after.attributes == before.attributes

    @pytest.mark.asyncio
    async def test_attach_and_detach_are_idempotent(self, backend: Any, move_case: MoveCase | None) -> None:
        prepared = await self._prepared(backend, move_case)
        assert move_case is not None
        before = (await self._scan(backend))[prepared.device]
        pod = self._pod(move_case)
        snapshot = await backend.snapshot(prepared)
        try:
            await backend.attach(prepared, pod, snapshot)
            await backend.attach(prepared, pod, snapshot)  # resumed after a crash: finishes the job
        finally:
            await backend.detach(prepared, pod, snapshot)
        await backend.detach(prepared, pod, snapshot)  # already home: only restores
        after = (await self._scan(backend))[prepared.device]
        assert after.attributes == before.attributes

    # --- ownership ---------------------------------------------------------------------

    @staticmethod
    def _owned(name: str, devices: dict[str, Device]) -> list[Device]:
        owned = [d for d in devices.values() if name in d.facets]
        if not owned:
            pytest.skip(f"backend {name} discovered no device of its own here")
        return owned

    @pytest.mark.asyncio
    async def test_per_device_capabilities_answer_for_every_owned_device(self, backend: Any) -> None:
        name = str(backend.name)
        if not isinstance(backend, ValidatesConfig | ResolvesConfig | AdjustsContainers):
            pytest.skip(f"backend {name} has no per-device capability besides moving")
        for device in self._owned(name, await self._scan(backend)):
            prepared = PreparedDevice(
                pool="conformance-node", device=device.name, request_names=("c",), facets=dict(device.facets)
            )
            with contextlib.suppress(DranetError):  # a refusal is an answer
                if isinstance(backend, ValidatesConfig):
                    backend.validate_config(device, NetworkConfig())
            with contextlib.suppress(DranetError):
                if isinstance(backend, ResolvesConfig):
                    config = await backend.resolve_config(device, NetworkConfig())
                    assert isinstance(config, NetworkConfig), f"{device.name}: resolve_config gave {config!r}"
            with contextlib.suppress(DranetError):
                if isinstance(backend, AdjustsContainers):
                    nodes = backend.device_nodes(prepared)
                    assert all(n.path.startswith("/dev/") for n in nodes), f"{device.name}: {nodes}"

    @pytest.mark.asyncio
    async def test_health_names_only_owned_devices(self, backend: Any) -> None:
        name = str(backend.name)
        if not isinstance(backend, ReportsHealth):
            pytest.skip(f"backend {name} reports no health")
        owned = {d.name for d in self._owned(name, await self._scan(backend))}
        report = await backend.health()
        assert all(isinstance(v, bool) for v in report.values()), report
        strangers = sorted(set(report) - owned)
        assert strangers == [], f"health names devices without a {name!r} facet: {strangers}"
