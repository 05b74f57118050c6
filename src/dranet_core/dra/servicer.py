"""The kubelet DRA service (v1 and v1beta1 from one implementation), a thin adapter.

It converts the kubelet's messages to :class:`~dranet_core.types.ClaimRef` values, calls a
:class:`ClaimPreparer`, and converts the outcome back. Contracts toward the kubelet:

* every claim UID of a request has an entry in the response map; one bad claim gets its own
  ``error`` string and never fails the call (a preparer that raises turns into that error
  for every claim of the call, not into a gRPC error);
* request names in the response are the parent request (``req/sub`` -> ``req``);
* once :meth:`DraService.drain` was called (shutdown), new prepares are refused per claim
  with a retryable error, while unprepares keep working.

This module imports nothing from backends, netlink or kubernetes_asyncio.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeAlias, runtime_checkable

import attrs

from dranet_core._generated.k8s.io.kubelet.pkg.apis.dra import v1 as dra_v1
from dranet_core._generated.k8s.io.kubelet.pkg.apis.dra import v1beta1 as dra_v1beta1
from dranet_core.plans import ClaimPlan
from dranet_core.types import ClaimRef

__all__ = [
    "ClaimPreparer",
    "DraService",
    "DraV1Servicer",
    "DraV1beta1Servicer",
    "PrepareOutcome",
    "PrepareResult",
]

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class PrepareOutcome:
    """A successfully prepared claim: its plan and optional CDI device ids per device name."""

    plan: ClaimPlan
    cdi_device_ids: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)


PrepareResult: TypeAlias = PrepareOutcome | str
"""Per claim: the outcome, or an error message for the kubelet."""


@runtime_checkable
class ClaimPreparer(Protocol):
    """What the servicer calls. Keys of the results are claim UIDs.

    ``prepare`` returns, per claim, a :class:`PrepareOutcome` or an error string;
    ``unprepare`` returns, per claim, ``None`` (done, or was not prepared) or an error string.
    Missing UIDs are reported to the kubelet as errors (it retries them).
    """

    async def prepare(self, claims: Sequence[ClaimRef]) -> Mapping[str, PrepareResult]:
        """Prepare each claim independently."""
        ...

    async def unprepare(self, claims: Sequence[ClaimRef]) -> Mapping[str, str | None]:
        """Unprepare each claim independently (from namespace/name/UID alone)."""
        ...


def _refs(claims: Sequence[Any]) -> list[ClaimRef]:
    return [ClaimRef(namespace=c.namespace, name=c.name, uid=c.uid) for c in claims]


def _parent(request: str) -> str:
    return request.split("/", 1)[0]


class DraService:
    """The version-independent core both gRPC services delegate to."""

    def __init__(self, preparer: ClaimPreparer) -> None:
        self.preparer = preparer
        self.draining = False

    def drain(self) -> None:
        """Refuse new prepares from now on (shutdown); unprepares still run."""
        self.draining = True

    async def prepare(self, refs: Sequence[ClaimRef]) -> dict[str, PrepareResult]:
        """Prepare ``refs``; returns an entry for every UID."""
        if self.draining:
            return {r.uid: "driver is shutting down; retry later" for r in refs}
        try:
            got = dict(await self.preparer.prepare(refs))
        except Exception as exc:
            log.exception("prepare of %s failed", [str(r) for r in refs])
            return {r.uid: f"internal error: {exc}" for r in refs}
        return {r.uid: got.get(r.uid, "internal error: the preparer returned no result") for r in refs}

    async def unprepare(self, refs: Sequence[ClaimRef]) -> dict[str, str]:
        """Unprepare ``refs``; returns an error string ("" = ok) for every UID."""
        try:
            got = dict(await self.preparer.unprepare(refs))
        except Exception as exc:
            log.exception("unprepare of %s failed", [str(r) for r in refs])
            return {r.uid: f"internal error: {exc}" for r in refs}
        out: dict[str, str] = {}
        for r in refs:
            if r.uid not in got:
                out[r.uid] = "internal error: the preparer returned no result"
            else:
                out[r.uid] = got[r.uid] or ""
        return out


def _device_fields(outcome: PrepareOutcome) -> list[dict[str, Any]]:
    out = []
    for d in outcome.plan.devices:
        names: list[str] = []
        for n in d.request_names:
            if _parent(n) not in names:
                names.append(_parent(n))
        out.append(
            {
                "request_names": names,
                "pool_name": d.pool,
                "device_name": d.device,
                "cdi_device_ids": list(outcome.cdi_device_ids.get(d.device, ())),
                "share_id": d.share_id,
            }
        )
    return out


class DraV1Servicer(dra_v1.DraPluginBase):
    """``k8s.io.kubelet.pkg.apis.dra.v1.DRAPlugin`` (advertised as ``v1.DRAPlugin``)."""

    def __init__(self, core: DraService) -> None:
        self.core = core

    async def node_prepare_resources(
        self, message: dra_v1.NodePrepareResourcesRequest
    ) -> dra_v1.NodePrepareResourcesResponse:
        results = await self.core.prepare(_refs(message.claims))
        claims: dict[str, dra_v1.NodePrepareResourceResponse] = {}
        for uid, res in results.items():
            if isinstance(res, str):
                claims[uid] = dra_v1.NodePrepareResourceResponse(error=res)
            else:
                claims[uid] = dra_v1.NodePrepareResourceResponse(
                    devices=[dra_v1.Device(**f) for f in _device_fields(res)]
                )
        return dra_v1.NodePrepareResourcesResponse(claims=claims)

    async def node_unprepare_resources(
        self, message: dra_v1.NodeUnprepareResourcesRequest
    ) -> dra_v1.NodeUnprepareResourcesResponse:
        results = await self.core.unprepare(_refs(message.claims))
        return dra_v1.NodeUnprepareResourcesResponse(
            claims={uid: dra_v1.NodeUnprepareResourceResponse(error=e) for uid, e in results.items()}
        )


class DraV1beta1Servicer(dra_v1beta1.DraPluginBase):
    """``k8s.io.kubelet.pkg.apis.dra.v1beta1.DRAPlugin`` (advertised as ``v1beta1.DRAPlugin``)."""

    def __init__(self, core: DraService) -> None:
        self.core = core

    async def node_prepare_resources(
        self, message: dra_v1beta1.NodePrepareResourcesRequest
    ) -> dra_v1beta1.NodePrepareResourcesResponse:
        results = await self.core.prepare(_refs(message.claims))
        claims: dict[str, dra_v1beta1.NodePrepareResourceResponse] = {}
        for uid, res in results.items():
            if isinstance(res, str):
                claims[uid] = dra_v1beta1.NodePrepareResourceResponse(error=res)
            else:
                devices = []
                for f in _device_fields(res):
                    f.pop("share_id")  # v1beta1 has no share_id
                    devices.append(dra_v1beta1.Device(**f))
                claims[uid] = dra_v1beta1.NodePrepareResourceResponse(devices=devices)
        return dra_v1beta1.NodePrepareResourcesResponse(claims=claims)

    async def node_unprepare_resources(
        self, message: dra_v1beta1.NodeUnprepareResourcesRequest
    ) -> dra_v1beta1.NodeUnprepareResourcesResponse:
        results = await self.core.unprepare(_refs(message.claims))
        return dra_v1beta1.NodeUnprepareResourcesResponse(
            claims={uid: dra_v1beta1.NodeUnprepareResourceResponse(error=e) for uid, e in results.items()}
        )
