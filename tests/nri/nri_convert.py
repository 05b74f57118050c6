"""Conversions between NRI protocol messages and core types: the test oracle the fast decoder
is checked against (the driver decodes with dranet_core.nri._decode)."""

from __future__ import annotations

from dranet_core.nri import api
from dranet_core.nri.handlers import ContainerInfo
from dranet_core.types import DeviceNode, PodSandbox

__all__ = ["container_from_nri", "linux_device", "pod_from_nri"]

NETWORK_NAMESPACE = "network"


def pod_from_nri(pod: api.PodSandbox | None) -> PodSandbox:
    """An NRI PodSandbox as a core PodSandbox.

    ``netns`` is the path of the ``linux.namespaces`` entry of type ``network``; None when
    there is none (host-network pod, or the runtime dropped it because the netns is gone) or
    its path is empty.
    """
    if pod is None:
        return PodSandbox(uid="", name="", namespace="")
    netns = None
    if pod.linux is not None:
        for ns in pod.linux.namespaces:
            if ns.type == NETWORK_NAMESPACE:
                netns = ns.path or None
                break
    return PodSandbox(
        uid=pod.uid, name=pod.name, namespace=pod.namespace, id=pod.id, netns=netns, ips=tuple(pod.ips)
    )


def container_from_nri(ctr: api.Container | None) -> ContainerInfo:
    """An NRI Container as a ContainerInfo (empty fields when absent)."""
    if ctr is None:
        return ContainerInfo(id="", name="", pod_sandbox_id="")
    return ContainerInfo(id=ctr.id, name=ctr.name, pod_sandbox_id=ctr.pod_sandbox_id)


def linux_device(node: DeviceNode) -> api.LinuxDevice:
    """A DeviceNode as the NRI LinuxDevice of a container adjustment."""
    return api.LinuxDevice(
        path=node.path,
        type=node.type,
        major=node.major,
        minor=node.minor,
        file_mode=None if node.file_mode is None else api.OptionalFileMode(value=node.file_mode),
        uid=None if node.uid is None else api.OptionalUInt32(value=node.uid),
        gid=None if node.gid is None else api.OptionalUInt32(value=node.gid),
    )
