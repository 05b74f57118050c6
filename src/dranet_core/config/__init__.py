"""The claim configuration API (opaque ``parameters`` for driver ``dra.net``).

Typical use at prepare time::

    config = resolve_config(claim.configs, request="nic", driver="dra.net")

which selects the configs for this driver and request, decodes each strictly, validates
each, merges them in API order (later wins), applies the defaults and validates the
result; every problem is reported in one :class:`~dranet_core.errors.ConfigError` whose
issues carry JSON paths. The pieces are public too: :func:`decode_config`,
:func:`validate_config`, :func:`validate_rdma_only`, :func:`merge_configs`,
:func:`apply_defaults`, :func:`configs_for_request`, :func:`encode_config` and
:func:`config_json_schema`.
"""

from dranet_core.config.codec import decode_config, encode_config
from dranet_core.config.defaults import apply_defaults, vrf_table_for
from dranet_core.config.merge import merge_configs
from dranet_core.config.model import (
    EthtoolConfig,
    InterfaceConfig,
    NeighborConfig,
    NetworkConfig,
    RdmaConfig,
    RouteConfig,
    RuleConfig,
    SriovConfig,
    SubinterfaceConfig,
    VRFConfig,
)
from dranet_core.config.resolve import ConfigMemo, configs_for_request, resolve_config
from dranet_core.config.schema import config_json_schema
from dranet_core.config.validation import config_issues, validate_config, validate_rdma_only

__all__ = [
    "ConfigMemo",
    "EthtoolConfig",
    "InterfaceConfig",
    "NeighborConfig",
    "NetworkConfig",
    "RdmaConfig",
    "RouteConfig",
    "RuleConfig",
    "SriovConfig",
    "SubinterfaceConfig",
    "VRFConfig",
    "apply_defaults",
    "config_issues",
    "config_json_schema",
    "configs_for_request",
    "decode_config",
    "encode_config",
    "merge_configs",
    "resolve_config",
    "validate_config",
    "validate_rdma_only",
    "vrf_table_for",
]
