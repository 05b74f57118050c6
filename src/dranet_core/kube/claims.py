"""The claim source: read the ResourceClaim behind a kubelet reference from the API server.

:class:`ApiClaimSource` GETs ``resource.k8s.io/<version>/namespaces/<ns>/resourceclaims/<name>``
with the ApiClient the driver built, using ``v1`` and falling back to ``v1beta2`` and
``v1beta1`` when the server does not serve v1 (found once from API discovery, re-probed if a
version disappears). The raw JSON is parsed here (no generated models: fewer
allocations, and v1beta1's nested ``basic`` layout does not matter for claims).

The answer is parsed strictly (:func:`~dranet_core.config.codec.loads_strict`): duplicate keys
in a claim's opaque parameters are remembered and rejected when the config is decoded, and a
hostile nesting depth is an error for that claim, not a crash. A claim that cannot be read
(the API server does not answer within ``request_timeout``, an HTTP error) is a
:class:`~dranet_core.errors.ClaimReadError`: ``reading claim ns/name: <reason>``.

Checks, each a :class:`~dranet_core.errors.ClaimError` for that claim only: the claim exists,
its UID is the one the kubelet sent (else it was deleted and re-created), it is allocated.
The returned :class:`~dranet_core.types.Claim` carries only this driver's allocation results
(and, when ``pool`` is given, only this node's pool) and only this driver's opaque configs that
apply to at least one of those requests, in API order; plus ``reservedFor``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from dranet_core.config.codec import loads_strict
from dranet_core.errors import ClaimError, ClaimReadError, KubeApiError
from dranet_core.kube.apiversion import RESOURCE_API_VERSIONS, ResourceApiVersion
from dranet_core.types import AllocationResult, Claim, ClaimRef, ConsumerRef, OpaqueConfig

__all__ = ["RESOURCE_API_VERSIONS", "ApiClaimSource", "claim_from_json"]

log = logging.getLogger(__name__)

POD_CLAIM_NAME_ANNOTATION = "resource.kubernetes.io/pod-claim-name"
"""Set on a claim made from a ResourceClaimTemplate: the claim's name in the pod spec."""


def _list(obj: Any, key: str) -> list[Any]:
    v = obj.get(key) if isinstance(obj, dict) else None
    return v if isinstance(v, list) else []


def _dict(obj: Any, key: str) -> dict[str, Any]:
    v = obj.get(key) if isinstance(obj, dict) else None
    return v if isinstance(v, dict) else {}


def claim_from_json(ref: ClaimRef, data: dict[str, Any], *, driver: str, pool: str | None = None) -> Claim:
    """Build the Claim from a ResourceClaim JSON object (any served version).

    Raises ClaimError if the UID differs from ``ref.uid`` or the claim is not allocated.
    """
    uid = _dict(data, "metadata").get("uid")
    if uid != ref.uid:
        raise ClaimError(
            str(ref), f"the API server has a claim of that name with UID {uid}; it was deleted and re-created"
        )
    status = _dict(data, "status")
    allocation = status.get("allocation")
    if not isinstance(allocation, dict):
        raise ClaimError(str(ref), "claim is not allocated (status.allocation is empty)")
    devices = _dict(allocation, "devices")
    results: list[AllocationResult] = []
    for r in _list(devices, "results"):
        if not isinstance(r, dict) or r.get("driver") != driver:
            continue
        if pool is not None and r.get("pool") != pool:
            continue
        results.append(
            AllocationResult(
                request=str(r.get("request", "")),
                driver=driver,
                pool=str(r.get("pool", "")),
                device=str(r.get("device", "")),
                admin_access=bool(r.get("adminAccess") or False),
                share_id=r.get("shareID") or None,
            )
        )
    requests = [r.request for r in results]
    configs: list[OpaqueConfig] = []
    for c in _list(devices, "config"):
        opaque = _dict(c, "opaque")
        if opaque.get("driver") != driver:
            continue
        cfg = OpaqueConfig(
            source=str(c.get("source", "")),
            requests=tuple(str(x) for x in _list(c, "requests")),
            driver=driver,
            parameters=opaque.get("parameters"),
        )
        if any(cfg.applies_to(req) for req in requests):
            configs.append(cfg)
    consumers = tuple(
        ConsumerRef(
            api_group=str(c.get("apiGroup", "") or ""),
            resource=str(c.get("resource", "")),
            name=str(c.get("name", "")),
            uid=str(c.get("uid", "")),
        )
        for c in _list(status, "reservedFor")
        if isinstance(c, dict)
    )
    pod_claim = _dict(_dict(data, "metadata"), "annotations").get(POD_CLAIM_NAME_ANNOTATION)
    return Claim(
        ref=ref,
        results=tuple(results),
        configs=tuple(configs),
        reserved_for=consumers,
        pod_claim_name=pod_claim if isinstance(pod_claim, str) and pod_claim else None,
    )


class _HttpError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status} {reason}")
        self.status = status
        self.reason = reason


class ApiClaimSource:
    """Reads claims through a ``kubernetes_asyncio.client.ApiClient`` (built by the driver).

    ``pool`` (the node name) restricts results to this node's pool; None keeps every pool
    of the driver.
    """

    def __init__(
        self,
        api_client: Any,
        *,
        driver_name: str,
        pool: str | None = None,
        versions: Sequence[str] = RESOURCE_API_VERSIONS,
        request_timeout: float = 10.0,
        api_versions: ResourceApiVersion | None = None,
    ) -> None:
        self.api_client = api_client
        self.shared_versions = api_versions
        self.driver_name = driver_name
        self.pool = pool
        self.versions = tuple(versions)
        self.request_timeout = request_timeout
        self._version: str | None = None

    async def served_version(self) -> str:
        """The first of ``versions`` the API server serves for resource.k8s.io (cached)."""
        if self._version is not None:
            return self._version
        if self.shared_versions is not None:
            try:
                return await self.shared_versions.get()
            except KubeApiError as exc:
                if exc.status == 404:
                    raise ClaimError("resource.k8s.io", exc.reason) from exc
                log.warning("resource.k8s.io discovery failed (%s); assuming %s", exc, self.versions[0])
                return self.versions[0]
        served: list[str] = []
        try:
            raw = await self._get("/apis/resource.k8s.io")
            served = [str(v.get("version")) for v in _list(raw, "versions") if isinstance(v, dict)]
        except _HttpError as exc:
            if exc.status == 404:
                raise ClaimError("resource.k8s.io", "the API server does not serve resource.k8s.io") from exc
            log.warning("resource.k8s.io discovery failed (%s); assuming %s", exc, self.versions[0])
        except Exception as exc:  # discovery failing is not fatal: try the preferred version
            log.warning("resource.k8s.io discovery failed (%s); assuming %s", exc, self.versions[0])
        for v in self.versions:
            if v in served:
                self._version = v
                return v
        if served:
            raise ClaimError("resource.k8s.io", f"API server serves none of {list(self.versions)} ({served})")
        return self.versions[0]

    async def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET ``path`` as JSON; raises :class:`_HttpError` for a status >= 400."""
        resp = await self.api_client.call_api(
            path,
            "GET",
            path_params=params,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=self.request_timeout,
        )
        body = await resp.read()
        status = int(getattr(resp, "status", 200))
        if status >= 400:
            raise _HttpError(status, str(getattr(resp, "reason", "") or ""))
        return loads_strict(body)

    async def get(self, ref: ClaimRef) -> Claim:
        """Fetch and check the claim; raises ClaimError for this claim only (a
        :class:`~dranet_core.errors.ClaimReadError` when it could not be read)."""
        from kubernetes_asyncio.client.exceptions import ApiException

        version = await self.served_version()
        path = f"/apis/resource.k8s.io/{version}/namespaces/{{namespace}}/resourceclaims/{{name}}"
        try:
            data = await self._get(path, {"namespace": ref.namespace, "name": ref.name})
        except (ApiException, _HttpError) as exc:
            if exc.status == 404:
                if await self._version_gone(version):
                    return await self.get(ref)
                raise ClaimError(str(ref), "claim not found in the API server") from exc
            reason = f"the API server answered HTTP {exc.status} {exc.reason or ''}".rstrip()
            raise ClaimReadError(ref.namespace, ref.name, reason) from exc
        except ClaimError:
            raise
        except TimeoutError as exc:
            reason = f"the API server did not answer within {self.request_timeout:g}s"
            raise ClaimReadError(ref.namespace, ref.name, reason) from exc
        except ValueError as exc:  # not JSON, or nested too deeply
            reason = f"the API server's answer is not JSON this driver reads: {exc}"
            raise ClaimReadError(ref.namespace, ref.name, reason) from exc
        except Exception as exc:
            text = str(exc).strip()
            reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            raise ClaimReadError(ref.namespace, ref.name, reason) from exc
        if not isinstance(data, dict):
            raise ClaimError(str(ref), "the API server returned something that is not a ResourceClaim")
        return claim_from_json(ref, data, driver=self.driver_name, pool=self.pool)

    async def _version_gone(self, version: str) -> bool:
        """After a 404: re-probe discovery; True if another version should be tried."""
        self._version = None
        if self.shared_versions is not None:
            self.shared_versions.forget(version)
        try:
            now = await self.served_version()
        except ClaimError:
            return False
        return now != version
