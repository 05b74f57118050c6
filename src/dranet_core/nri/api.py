"""The NRI protocol messages (generated from ``proto/nri/api.proto``) and service names.

Import the messages from here (``from dranet_core.nri import api``), not from the generated
package, so the generated layout can change without touching callers.
"""

from __future__ import annotations

from typing import Final

from dranet_core._generated.nri.pkg.api.v1alpha1 import (
    ConfigureRequest,
    ConfigureResponse,
    Container,
    ContainerAdjustment,
    ContainerEviction,
    ContainerUpdate,
    CreateContainerRequest,
    CreateContainerResponse,
    Empty,
    Event,
    LinuxContainerAdjustment,
    LinuxContainerUpdate,
    LinuxDevice,
    LinuxDeviceCgroup,
    LinuxNamespace,
    LinuxPodSandbox,
    LinuxResources,
    OptionalFileMode,
    OptionalInt64,
    OptionalUInt32,
    PodSandbox,
    RegisterPluginRequest,
    RemovePodSandboxRequest,
    RemovePodSandboxResponse,
    RunPodSandboxRequest,
    RunPodSandboxResponse,
    StateChangeEvent,
    StopPodSandboxRequest,
    StopPodSandboxResponse,
    SynchronizeRequest,
    SynchronizeResponse,
    UpdateContainersRequest,
    UpdateContainersResponse,
)

__all__ = [
    "PLUGIN_SERVICE",
    "RUNTIME_SERVICE",
    "ConfigureRequest",
    "ConfigureResponse",
    "Container",
    "ContainerAdjustment",
    "ContainerEviction",
    "ContainerUpdate",
    "CreateContainerRequest",
    "CreateContainerResponse",
    "Empty",
    "Event",
    "LinuxContainerAdjustment",
    "LinuxContainerUpdate",
    "LinuxDevice",
    "LinuxDeviceCgroup",
    "LinuxNamespace",
    "LinuxPodSandbox",
    "LinuxResources",
    "OptionalFileMode",
    "OptionalInt64",
    "OptionalUInt32",
    "PodSandbox",
    "RegisterPluginRequest",
    "RemovePodSandboxRequest",
    "RemovePodSandboxResponse",
    "RunPodSandboxRequest",
    "RunPodSandboxResponse",
    "StateChangeEvent",
    "StopPodSandboxRequest",
    "StopPodSandboxResponse",
    "SynchronizeRequest",
    "SynchronizeResponse",
    "UpdateContainersRequest",
    "UpdateContainersResponse",
]

PLUGIN_SERVICE: Final = "nri.pkg.api.v1alpha1.Plugin"
"""Served by the plugin on mux connection 1 (the runtime calls it)."""

RUNTIME_SERVICE: Final = "nri.pkg.api.v1alpha1.Runtime"
"""Served by the runtime on mux connection 2 (the plugin calls RegisterPlugin, UpdateContainers)."""
