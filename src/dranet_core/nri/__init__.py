"""The NRI side of the driver: hear pod sandbox and container events from the runtime.

Public API::

    from dranet_core.nri import NriPlugin, ContainerInfo
    plugin = NriPlugin(handler, socket_path="/var/run/nri/nri.sock")
    await plugin.run()          # supervised; cancel to stop
    await plugin.aclose()

``handler`` implements any of the protocols in :mod:`dranet_core.nri.handlers`.
"""

from dranet_core.nri.events import EventType
from dranet_core.nri.handlers import (
    ContainerInfo,
    CreateContainerHandler,
    RemovePodSandboxHandler,
    RunPodSandboxHandler,
    StopPodSandboxHandler,
    SynchronizeHandler,
    subscribed_events,
)
from dranet_core.nri.plugin import DEFAULT_SOCKET_PATH, NriHealth, NriPlugin

__all__ = [
    "DEFAULT_SOCKET_PATH",
    "ContainerInfo",
    "CreateContainerHandler",
    "EventType",
    "NriHealth",
    "NriPlugin",
    "RemovePodSandboxHandler",
    "RunPodSandboxHandler",
    "StopPodSandboxHandler",
    "SynchronizeHandler",
    "subscribed_events",
]
