"""A driver composed from the library, run on one machine with no cluster (as root).

It builds what ``dranet run`` builds -- settings, backends from their entry points, the
:class:`~dranet_core.Driver` -- but swaps the cluster for in-process stand-ins from the testing
kit: claims come from memory, ResourceSlices and claim status go to YAML files, and the
kubelet (gRPC, grpcio) and the container runtime (NRI) are the kit's peers, in this process.
Needs the ``testing`` extra (``pip install 'dranet[testing]'``). The "node" and the "pod" are
throwaway network namespaces; the host's own interfaces are never touched.

    sudo python examples/custom_driver/local_driver.py

Swap any piece the same way: your own backends (objects implementing Discovery,
NamespaceMover, ...), your own StatusPublisher, another ClaimSource.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
from pathlib import Path

from dranet_core import Driver, Settings, load_backends
from dranet_core.backends import context_for
from dranet_core.observability import setup_logging
from dranet_core.settings import (
    CheckpointSettings,
    HostSettings,
    InventorySettings,
    KubeletSettings,
    KubeSettings,
    NriSettings,
    ObservabilitySettings,
)
from dranet_core.testing.kubelet import Kubelet, kubelet_stubs
from dranet_core.testing.netns import can_use_netns, throwaway_netns, veth_pair
from dranet_core.testing.nri_runtime import FakePod, RuntimePeer
from dranet_core.testing.peers import DemoPublisher, MemoryClaimSource
from dranet_core.types import AllocationResult, Claim, ClaimRef, ConsumerRef, OpaqueConfig

log = logging.getLogger("custom_driver")

ONLY_MACVLANS = '"dra.net/type" in attributes && attributes["dra.net/type"].StringValue == "macvlan"'


async def run(tmp: Path, node_netns: str, pod_netns: str) -> None:
    settings = Settings(
        kube=KubeSettings(node_name="my-node"),
        kubelet=KubeletSettings(root_dir=tmp / "kubelet"),
        nri=NriSettings(socket_path=tmp / "nri.sock"),
        inventory=InventorySettings(filter=ONLY_MACVLANS, min_poll_interval=0.2),
        checkpoint=CheckpointSettings(db_path=tmp / "dranet.db"),
        host=HostSettings(host_netns=Path(node_netns)),
        observability=ObservabilitySettings(bind_address=""),
        backends=("netdev",),
    )
    publisher = DemoPublisher(tmp / "api", node_name="my-node")  # YAML files instead of the API
    claims = MemoryClaimSource()  # what a scheduler would have allocated
    driver = Driver(
        settings,
        backends=load_backends(context_for(settings), enabled=settings.backends),
        publisher=publisher,
        claim_source=claims,
    )
    runtime = RuntimePeer(str(settings.nri.socket_path))
    await runtime.start()  # the runtime listens first, as containerd does
    stop = asyncio.Event()
    with kubelet_stubs() as stubs:
        kubelet = Kubelet(stubs, settings.kubelet.root_dir)
        driver_task = asyncio.create_task(driver.run(stop=stop))
        try:
            await kubelet.register()
            session = await runtime.wait_ready()
            await driver.health.wait_ready()
            await publisher.published.wait()
            names = [d.name for d in publisher.devices]
            log.info("published devices: %s", ", ".join(names))

            pod = FakePod(id="sandbox-1", uid="pod-1", name="my-pod", netns=pod_netns)
            ref = ClaimRef(namespace="default", name="my-claim", uid="claim-1")
            claims.claims[ref.uid] = Claim(
                ref=ref,
                results=(AllocationResult(request="nic", driver="dra.net", pool="my-node", device=names[0]),),
                configs=(
                    OpaqueConfig(
                        source="FromClaim",
                        driver="dra.net",
                        parameters={"interface": {"name": "net1", "addresses": ["192.168.50.2/24"]}},
                    ),
                ),
                reserved_for=(ConsumerRef(resource="pods", name=pod.name, uid=pod.uid),),
            )
            result = await kubelet.prepare(ref.name, ref.uid)
            if result.error:
                raise RuntimeError(f"prepare failed: {result.error}")
            started = await session.run_pod_sandbox(pod)
            if started.code != 0:
                raise RuntimeError(f"RunPodSandbox failed: {started.message}")
            log.info("pod %s got %s as net1", pod.name, names[0])
            print(f"device {names[0]} is in the pod as net1")
            await session.stop_pod_sandbox(pod)
            await session.remove_pod_sandbox(pod)
            await kubelet.unprepare(ref.name, ref.uid)
            print(f"device {names[0]} is back on the node")
        finally:
            stop.set()
            await driver_task
            await runtime.aclose()


def main() -> int:
    setup_logging("text", verbosity=0)
    why = can_use_netns()
    if why is not None:
        print(f"local_driver: {why}", file=sys.stderr)
        return 1
    with (
        tempfile.TemporaryDirectory(prefix="custom-driver-") as tmp,
        throwaway_netns("node") as node,
        throwaway_netns("pod") as pod,
    ):
        veth_pair(node, "up0", "up0p")
        node.ip("link", "add", "mv0", "link", "up0", "type", "macvlan", "mode", "bridge")
        node.ip("link", "set", "mv0", "up")
        asyncio.run(run(Path(tmp), node.path, pod.path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
