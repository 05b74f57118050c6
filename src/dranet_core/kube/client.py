"""Building a kubernetes-asyncio ``ApiClient`` and talking to ``resource.k8s.io`` portably.

* :func:`load_api_client` — from a kubeconfig file, or the in-cluster service account when
  no path is given (the Go driver's ``--kubeconfig=""`` meaning).
* :func:`probe_resource_api_version` — which of ``v1``, ``v1beta2``, ``v1beta1`` the server
  serves, in that order of preference (resource.k8s.io/v1 is GA in 1.34; older clusters
  have only the betas). One GET of ``/apis/resource.k8s.io``.
* :func:`resource_api` — the kubernetes-asyncio API class for a version (their method names
  are the same: ``create_resource_slice``, ``patch_namespaced_resource_claim_status``, ...).
* :func:`api_error` — translate an exception from a request into :class:`KubeApiError`
  (``status`` 0 when no response came back), deciding whether it is temporary.

Nothing here retries: callers (the publisher's loops, the claim source) own their policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any, Final

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

from dranet_core.errors import KubeApiError, SettingsError
from dranet_core.kube.apiversion import RESOURCE_API_VERSIONS

__all__ = [
    "RESOURCE_API_GROUP",
    "RESOURCE_API_VERSIONS",
    "api_error",
    "call_raw",
    "is_temporary_status",
    "load_api_client",
    "node_provider_id",
    "probe_resource_api_version",
    "resource_api",
]

RESOURCE_API_GROUP: Final = "resource.k8s.io"

_TEMPORARY_STATUSES: Final = frozenset({0, 408, 425, 429, 500, 502, 503, 504})


async def load_api_client(kubeconfig: str | Path = "", *, context: str | None = None) -> ApiClient:
    """An ``ApiClient`` from ``kubeconfig``, or from the in-cluster service account when empty.

    Raises :class:`SettingsError` (naming ``--kubeconfig``) when the file is missing or
    invalid, or when no path is given outside a cluster. The caller closes the client.
    """
    cfg = Configuration()
    try:
        if kubeconfig:
            path = Path(kubeconfig)
            if not await asyncio.to_thread(path.is_file):
                raise SettingsError(f"--kubeconfig: {str(path)!r} does not exist or is not a file")
            await config.load_kube_config(config_file=str(path), context=context, client_configuration=cfg)
        else:
            if "KUBERNETES_SERVICE_HOST" not in os.environ:
                raise SettingsError(
                    "--kubeconfig: empty, and not running in a cluster (KUBERNETES_SERVICE_HOST unset)"
                )
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except ConfigException as exc:
        raise SettingsError(f"--kubeconfig: {exc}") from exc
    return ApiClient(configuration=cfg)


def resource_api(api_client: ApiClient, version: str) -> Any:
    """``ResourceV1Api`` / ``ResourceV1beta2Api`` / ``ResourceV1beta1Api`` for ``version``."""
    classes = {
        "v1": client.ResourceV1Api,
        "v1beta2": client.ResourceV1beta2Api,
        "v1beta1": client.ResourceV1beta1Api,
    }
    if version not in classes:
        raise ValueError(f"unsupported {RESOURCE_API_GROUP} version {version!r}")
    return classes[version](api_client)


def is_temporary_status(status: int) -> bool:
    """Whether retrying a request that got ``status`` may succeed (0 = no response).

    403 counts as temporary: RBAC can be fixed while the driver runs.
    """
    return status in _TEMPORARY_STATUSES or status == 403


def api_error(operation: str, exc: BaseException) -> KubeApiError:
    """Classify an exception raised by a kubernetes-asyncio call (to be raised ``from exc``)."""
    if isinstance(exc, KubeApiError):
        return exc
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        reason = str(exc.reason or "")
        body = exc.body if isinstance(exc.body, str) else ""
        if body:
            reason = f"{reason}: {body[:500]}"
        return KubeApiError(operation, status, reason, temporary=is_temporary_status(status))
    if isinstance(exc, aiohttp.ClientError | TimeoutError | OSError):
        return KubeApiError(operation, 0, f"{type(exc).__name__}: {exc}", temporary=True)
    return KubeApiError(operation, 0, f"{type(exc).__name__}: {exc}", temporary=False)


async def probe_resource_api_version(
    api_client: ApiClient,
    *,
    preferred: tuple[str, ...] = RESOURCE_API_VERSIONS,
    request_timeout: float = 10.0,
) -> str:
    """The first of ``preferred`` that the server serves for resource.k8s.io.

    Raises :class:`KubeApiError`: temporary when the server cannot be reached or answers
    5xx; permanent (status 404) when it serves none of ``preferred``.
    """
    op = f"discover {RESOURCE_API_GROUP} versions"
    try:
        group = await client.ResourceApi(api_client).get_api_group(_request_timeout=request_timeout)
    except ApiException as exc:
        if exc.status == 404:
            reason = f"the server does not serve {RESOURCE_API_GROUP}"
            raise KubeApiError(op, 404, reason, temporary=False) from exc
        raise api_error(op, exc) from exc
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise api_error(op, exc) from exc
    served = {v.version for v in (group.versions or [])}
    for version in preferred:
        if version in served:
            return version
    raise KubeApiError(
        op, 404, f"the server serves {sorted(served)}, none of {list(preferred)}", temporary=False
    )


def _forget_response(method: Any, resp: Any) -> None:
    """Drop the API client's reference to ``resp`` (its ``last_response``): the response keeps
    its whole body, which would stay in memory until the next call (a ResourceSlice list of a
    large node is hundreds of KiB)."""
    api_client = getattr(getattr(method, "__self__", None), "api_client", None)
    if api_client is not None and getattr(api_client, "last_response", None) is resp:
        api_client.last_response = None


async def call_raw(
    operation: str, method: Any, *args: Any, request_timeout: float | None = None, **kwargs: Any
) -> Any:
    """Call a kubernetes-asyncio API ``method`` and return the decoded JSON response body.

    Responses are not deserialised into models (faster, and immune to the client's strict
    response validation); request bodies still are whatever the caller built (models or
    dicts). Any failure raises :class:`KubeApiError` (status 0 when no response came back).
    """
    try:
        resp = await method(*args, _preload_content=False, _request_timeout=request_timeout, **kwargs)
        async with resp:
            data = await resp.read()
            status = resp.status
    except (TimeoutError, aiohttp.ClientError, OSError, ApiException) as exc:
        raise api_error(operation, exc) from exc
    _forget_response(method, resp)
    text = data.decode("utf-8", errors="replace")
    if not 200 <= status <= 299:
        reason = text[:500]
        with contextlib.suppress(ValueError, AttributeError):
            reason = json.loads(text).get("message", reason)
        raise KubeApiError(operation, status, reason, temporary=is_temporary_status(status))
    try:
        return json.loads(text) if text else None
    except ValueError as exc:
        reason = f"response is not JSON: {text[:200]!r}"
        raise KubeApiError(operation, status, reason, temporary=True) from exc


async def node_provider_id(api: ApiClient, node_name: str, *, request_timeout: float = 2.0) -> str:
    """The Node's ``spec.providerID`` ('' when unset); raises :class:`KubeApiError`. Asked
    once at start for cloud auto-detection, so an API server that does not answer delays the
    start by at most ``request_timeout`` seconds."""
    node = await call_raw(
        f"get node {node_name}",
        client.CoreV1Api(api).read_node,
        node_name,
        request_timeout=request_timeout,
    )
    spec = node.get("spec") if isinstance(node, dict) else None
    return str(spec.get("providerID") or "") if isinstance(spec, dict) else ""
