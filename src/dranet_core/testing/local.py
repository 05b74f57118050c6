"""A real driver on this machine with the kit's peers around it: run your backend end to end.

:func:`local_node` builds what ``dranet run`` builds (settings, the backends loaded from their
``dranet.backends`` entry points, :class:`~dranet_core.Driver`) and puts the kit's peers where
a node has the kubelet and the container runtime:

* the kit's :class:`~dranet_core.testing.kubelet.Kubelet` registers the driver and prepares
  and unprepares claims over gRPC, as the kubelet does;
* the kit's :class:`~dranet_core.testing.nri_runtime.RuntimePeer` is the container runtime:
  the driver connects to it over NRI, and a test starts and stops pods through
  :attr:`LocalNode.session`;
* claims come from memory (:class:`~dranet_core.testing.peers.MemoryClaimSource`, filled by
  :meth:`LocalNode.prepare` as a scheduler would allocate them) and ResourceSlices and claim
  status are kept locally (:class:`~dranet_core.testing.peers.DemoPublisher`).

So a backend is tested through the same path a node uses: discovery -> published devices ->
NodePrepareResources (config validation) -> RunPodSandbox (the movers) -> StopPodSandbox ->
NodeUnprepareResources. Point ``host_netns`` at a throwaway namespace (the ``node`` fixture)
so that the host's own interfaces are never touched. Needs root and the ``testing`` extra.

Example (a pytest-asyncio test; ``node`` and ``pod`` come from the kit's pytest plugin)::

    async with local_node(backends=["macvlan"], host_netns=node.path) as local:
        await local.wait_published("mv0")
        sandbox = FakePod(id="sb-1", name="web", uid="pod-1", netns=pod.path)
        result = await local.prepare("claim-1", ["mv0"], sandbox, config={"interface": {"name": "net1"}})
        assert result.error == ""
        assert (await local.session.run_pod_sandbox(sandbox)).code == 0   # mv0 is net1 in the pod
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from dranet_core.app import Driver
from dranet_core.backends import context_for, load_backends
from dranet_core.settings import (
    CheckpointSettings,
    HostSettings,
    InventorySettings,
    KubeletSettings,
    KubeSettings,
    NriSettings,
    ObservabilitySettings,
    Settings,
)
from dranet_core.testing.kubelet import Kubelet, kubelet_stubs
from dranet_core.testing.nri_runtime import FakePod, PeerSession, RuntimePeer
from dranet_core.testing.peers import DemoPublisher, MemoryClaimSource
from dranet_core.types import JSON, AllocationResult, Claim, ClaimRef, ConsumerRef, Device, OpaqueConfig

__all__ = ["LocalNode", "local_node"]

DRIVER = "dra.net"


@attrs.define
class LocalNode:
    """The running driver and its peers (see :func:`local_node`)."""

    driver: Driver
    kubelet: Kubelet
    runtime: RuntimePeer
    session: PeerSession
    """The runtime's connection to the driver's NRI plugin: ``run_pod_sandbox(pod)``,
    ``stop_pod_sandbox(pod)``, ``remove_pod_sandbox(pod)``, ``create_container(pod, ctr)``."""
    claims: MemoryClaimSource
    publisher: DemoPublisher
    node_name: str

    def published(self) -> dict[str, Device]:
        """The devices in the driver's last ResourceSlice publication, by name."""
        return {d.name: d for d in self.publisher.devices}

    async def wait_published(self, device: str, within: float = 30.0) -> Device:
        """Wait until ``device`` is published; raises TimeoutError naming what is published."""
        try:
            async with asyncio.timeout(within):
                while True:
                    self.publisher.published.clear()  # set again by the next publication
                    if device in self.published():
                        break
                    await self.publisher.published.wait()
        except TimeoutError:
            raise TimeoutError(
                f"device {device} not published within {within}s (published: {sorted(self.published())})"
            ) from None
        return self.published()[device]

    async def prepare(
        self, uid: str, devices: Sequence[str], pod: FakePod, *, config: Mapping[str, JSON] | None = None
    ) -> Any:
        """Allocate ``devices`` to a claim named and identified ``uid``, reserved for ``pod``
        (as the scheduler would, with ``config`` as the claim's opaque ``dra.net`` parameters),
        then prepare it through the kubelet. Returns the kubelet's per-claim result
        (``.error`` is empty on success)."""
        ref = ClaimRef(namespace=pod.namespace, name=uid, uid=uid)
        configs = (
            (OpaqueConfig(source="FromClaim", driver=DRIVER, parameters=dict(config)),) if config else ()
        )
        self.claims.claims[uid] = Claim(
            ref=ref,
            results=tuple(
                AllocationResult(request=f"r{i}", driver=DRIVER, pool=self.node_name, device=d)
                for i, d in enumerate(devices)
            ),
            configs=configs,
            reserved_for=(ConsumerRef(resource="pods", name=pod.name, uid=pod.uid),),
        )
        return await self.kubelet.prepare(ref.name, ref.uid, ref.namespace)

    async def unprepare(self, uid: str, namespace: str = "default") -> Any:
        """Unprepare claim ``uid`` through the kubelet; the kubelet's per-claim result."""
        return await self.kubelet.unprepare(uid, uid, namespace)


@contextlib.asynccontextmanager
async def local_node(
    *,
    backends: Sequence[str],
    host_netns: str,
    node_name: str = "local-node",
    device_filter: str = "true",
) -> AsyncIterator[LocalNode]:
    """Run the driver with the installed backends named in ``backends`` (entry points of
    ``dranet.backends``, as ``--backends``), treating ``host_netns`` as the host's network
    namespace, with the kit's kubelet and runtime peers, until the block exits (then the
    driver stops, backends with an ``aclose()`` are closed and the state directory is
    removed). ``device_filter`` is ``--filter``
    (default: publish every device)."""
    tmp = Path(tempfile.mkdtemp(prefix="dranet-local-"))  # short: unix socket paths are limited
    try:
        settings = Settings(
            kube=KubeSettings(node_name=node_name),
            kubelet=KubeletSettings(root_dir=tmp / "kubelet"),
            nri=NriSettings(socket_path=tmp / "nri.sock"),
            inventory=InventorySettings(filter=device_filter, min_poll_interval=0.2),
            checkpoint=CheckpointSettings(db_path=tmp / "dranet.db"),
            host=HostSettings(host_netns=Path(host_netns)),
            observability=ObservabilitySettings(bind_address=""),
            backends=tuple(backends),
        )
        publisher = DemoPublisher(tmp / "api", node_name=node_name)
        claims = MemoryClaimSource()
        loaded = load_backends(context_for(settings), enabled=settings.backends)
        driver = Driver(
            settings,
            backends=loaded,
            publisher=publisher,
            claim_source=claims,
        )
        runtime = RuntimePeer(str(settings.nri.socket_path))
        await runtime.start()
        stop = asyncio.Event()
        with kubelet_stubs() as stubs:
            kubelet = Kubelet(stubs, settings.kubelet.root_dir)
            task = asyncio.create_task(driver.run(stop=stop), name="local driver")
            try:
                await kubelet.register()
                session = await runtime.wait_ready()
                await driver.health.wait_ready()
                yield LocalNode(
                    driver=driver,
                    kubelet=kubelet,
                    runtime=runtime,
                    session=session,
                    claims=claims,
                    publisher=publisher,
                    node_name=node_name,
                )
            finally:
                stop.set()
                await task
                await runtime.aclose()
                for backend in loaded:  # their sockets (a process would just exit)
                    aclose = getattr(backend, "aclose", None)
                    if callable(aclose):
                        await aclose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
