"""The claim configuration API (opaque ``parameters`` for driver ``dra.net``)."""

from dranet_core.config.model import (
    EthtoolConfig,
    InterfaceConfig,
    NeighborConfig,
    NetworkConfig,
    RouteConfig,
    RuleConfig,
    VRFConfig,
)

__all__ = [
    "EthtoolConfig",
    "InterfaceConfig",
    "NeighborConfig",
    "NetworkConfig",
    "RouteConfig",
    "RuleConfig",
    "VRFConfig",
]
