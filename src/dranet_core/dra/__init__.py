"""The kubelet side: plugin registration and the DRA gRPC service (v1 and v1beta1).

* :class:`KubeletPlugin` — both servers and their lifecycle (``start``/``run``/``shutdown``,
  ``health``).
* :class:`ClaimPreparer` — what the servicer calls; :class:`DefaultPreparer` composes a
  :class:`ClaimSource`, an Allocator and an inventory callable.
"""

from dranet_core.dra.plugin import DEFAULT_KUBELET_ROOT, KubeletPlugin, PluginPaths
from dranet_core.dra.preparer import ClaimSource, DefaultPreparer, PrepareErrorHook, UnprepareHook
from dranet_core.dra.registration import SUPPORTED_VERSIONS, RegistrationHealth
from dranet_core.dra.servicer import ClaimPreparer, DraService, PrepareOutcome, PrepareResult

__all__ = [
    "DEFAULT_KUBELET_ROOT",
    "SUPPORTED_VERSIONS",
    "ClaimPreparer",
    "ClaimSource",
    "DefaultPreparer",
    "DraService",
    "KubeletPlugin",
    "PluginPaths",
    "PrepareErrorHook",
    "PrepareOutcome",
    "PrepareResult",
    "RegistrationHealth",
    "UnprepareHook",
]
