"""dranet_core: the library for writing Kubernetes network drivers on DRA and NRI.

Everything a driver or backend author needs is importable from here; the submodules are the
implementation. ``import dranet_core`` is cheap: the composition (:class:`Driver` and
friends) and the testing kit are loaded on first use.

**Interfaces a backend implements** (each completely or not at all; the driver finds out
which once, at load time): :class:`Discovery` (find devices, notice changes),
:class:`NamespaceMover` (move a device into a pod's network namespace and back),
:class:`ValidatesConfig` (reject a claim config a device cannot take, at prepare time),
:class:`AdjustsContainers` (device nodes for the pod's containers), :class:`ReportsHealth`
(per-device health), :class:`ResolvesConfig` (fill a config in from the node, e.g. a DHCP
lease), :class:`RunsInBackground` (a long-lived loop the driver supervises),
and optionally :class:`ReportsExclusions` (devices left out, and why, for ``dranet
inventory``). Every backend is a :class:`Backend`: an object with a ``name``.

**Ownership** (one rule, :mod:`dranet_core.ownership`): a device is one :class:`Device`
whose ``facets`` map backend names to that backend's private JSON, and a backend owns a
device exactly when the device carries a facet under the backend's name. The driver calls
every per-device capability (move, validate, resolve, adjust, health) only for the devices
the backend owns (movers in backend order to attach, reversed to detach); a backend never
filters devices itself; :func:`owns` states the rule. A claim config section named after a
backend (``sriov``, ``rdma``) on a device that backend does not own is refused by the
driver, naming section and device.

**Loading**: backends are entry points of the ``dranet.backends`` group
(:data:`ENTRY_POINT_GROUP`) whose object is a factory ``create(context: BackendContext) ->
Backend``. A factory declares its options with :func:`backend_options` (each a
:class:`BackendOption` with a parser such as :func:`parse_seconds`) and reads them with
:meth:`BackendContext.option`; the driver rejects unknown keys and bad values of
``--backend-option <backend>.<key>=<value>`` by name before anything starts.

**Interfaces the driver implements**: :class:`Allocator` (claims to plans) and
:class:`StatusPublisher` (ResourceSlices, claim status, events;
:class:`LocalStatusPublisher` keeps them in memory).

**Value types**: :class:`Device`, :class:`DeviceNode`, :class:`PodSandbox`,
:class:`ClaimRef`, :class:`Claim`, :class:`PreparedDevice`, :class:`ClaimPlan`,
:class:`AttachResult`, :class:`ExcludedDevice`, :class:`NetworkConfig`, :class:`Condition`;
:func:`device_name_for_interface` and :func:`device_name_for_pci` give devices their
stable names; ``AttributeValue`` is the type of a device attribute value (``str | int | bool |``
:class:`Version`) and ``JSON`` of facets and snapshots; :data:`DRIVER_DOMAIN` is ``dra.net``.

**Errors**: one tree under :class:`DranetError`; see :mod:`dranet_core.errors`.

**Composition**: :class:`Settings` (one frozen group per concern), :class:`Driver` (one
node's driver from settings, backends, a StatusPublisher and a ClaimSource),
:func:`run_driver` (the reference driver against the API server), :func:`load_backends` and
:func:`handler_table`.

**Testing**: :mod:`dranet_core.testing` (install ``dranet[testing]``) holds the fake API
server, the kubelet and NRI runtime peers, throwaway network namespaces and the backend
conformance suite.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dranet_core.allocation import Allocator
from dranet_core.backends import (
    ENTRY_POINT_GROUP,
    BackendContext,
    BackendOption,
    BackendOptionError,
    backend_options,
    load_backends,
    parse_bool,
    parse_choice,
    parse_path,
    parse_path_list,
    parse_seconds,
)
from dranet_core.capabilities import (
    AdjustsContainers,
    Backend,
    HandlerTable,
    ReportsHealth,
    ResolvesConfig,
    RunsInBackground,
    ValidatesConfig,
    handler_table,
)
from dranet_core.config.model import NetworkConfig
from dranet_core.discovery import Discovery, ExcludedDevice, ReportsExclusions
from dranet_core.errors import (
    BackendError,
    ConfigError,
    DeviceError,
    DranetError,
    PermanentError,
    SettingsError,
    TemporaryError,
)
from dranet_core.mover import AttachResult, NamespaceMover
from dranet_core.names import device_name_for_interface, device_name_for_pci
from dranet_core.ownership import owns
from dranet_core.plans import ClaimPlan, PreparedDevice
from dranet_core.settings import Settings
from dranet_core.status import StatusPublisher
from dranet_core.types import (
    DRIVER_DOMAIN,
    JSON,
    AttributeValue,
    Claim,
    ClaimRef,
    Condition,
    Device,
    DeviceNode,
    PodSandbox,
    Version,
)

if TYPE_CHECKING:
    from dranet_core.app import Driver, run_driver
    from dranet_core.kube.local import LocalStatusPublisher

__all__ = [
    "DRIVER_DOMAIN",
    "ENTRY_POINT_GROUP",
    "JSON",
    "AdjustsContainers",
    "Allocator",
    "AttachResult",
    "AttributeValue",
    "Backend",
    "BackendContext",
    "BackendError",
    "BackendOption",
    "BackendOptionError",
    "Claim",
    "ClaimPlan",
    "ClaimRef",
    "Condition",
    "ConfigError",
    "Device",
    "DeviceError",
    "DeviceNode",
    "Discovery",
    "DranetError",
    "Driver",
    "ExcludedDevice",
    "HandlerTable",
    "LocalStatusPublisher",
    "NamespaceMover",
    "NetworkConfig",
    "PermanentError",
    "PodSandbox",
    "PreparedDevice",
    "ReportsExclusions",
    "ReportsHealth",
    "RunsInBackground",
    "SettingsError",
    "Settings",
    "StatusPublisher",
    "TemporaryError",
    "ValidatesConfig",
    "ResolvesConfig",
    "owns",
    "Version",
    "backend_options",
    "device_name_for_interface",
    "device_name_for_pci",
    "handler_table",
    "load_backends",
    "parse_bool",
    "parse_choice",
    "parse_path",
    "parse_path_list",
    "parse_seconds",
    "run_driver",
]

_LAZY = {
    "Driver": "dranet_core.app",
    "run_driver": "dranet_core.app",
    "LocalStatusPublisher": "dranet_core.kube.local",
}
"""Names whose modules are heavy (gRPC, NRI, the API client): imported on first use."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dranet_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
