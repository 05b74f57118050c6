"""dranet_core: the library for writing Kubernetes network drivers on DRA and NRI.

It defines four interfaces — :class:`~dranet_core.discovery.Discovery`,
:class:`~dranet_core.allocation.Allocator`, :class:`~dranet_core.mover.NamespaceMover` and
:class:`~dranet_core.status.StatusPublisher` — and the protocol layers around them: kubelet
plugin registration and the DRA gRPC service, NRI (ttrpc over a multiplexed unix socket), and
the Kubernetes API. Backends (``dranet_backends`` and third parties) are found through the
``dranet.backends`` entry-point group.
"""

from dranet_core.allocation import Allocator
from dranet_core.discovery import Discovery
from dranet_core.mover import AttachResult, NamespaceMover
from dranet_core.status import StatusPublisher

__all__ = ["Allocator", "AttachResult", "Discovery", "NamespaceMover", "StatusPublisher"]
