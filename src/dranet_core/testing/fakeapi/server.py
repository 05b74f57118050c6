"""An HTTP-level fake Kubernetes API server for tests, good enough for kubernetes-asyncio.

Generic storage for any resource under ``/api/v1`` and ``/apis/<group>/<version>`` listed in
:data:`RESOURCES` (namespaced or cluster-scoped), with the semantics a driver depends on:

* ``resourceVersion`` is one global increasing counter; ``uid``, ``creationTimestamp`` and
  ``generation`` are assigned on create; ``generateName`` is honoured.
* GET one / list (``fieldSelector`` on any dotted path, basic ``labelSelector``) / watch
  (``?watch=true``: chunked newline-delimited JSON events from a ``resourceVersion``; an
  expired one gets a 410 ERROR event), POST (409 AlreadyExists), PUT (409 Conflict on a stale
  ``metadata.resourceVersion``), PATCH (merge, strategic-as-merge, JSON patch, server-side
  apply with ``fieldManager``/``force`` and per-manager ownership, see :mod:`.patching`),
  DELETE (one, with ``preconditions``; and collections), the ``status`` subresource.
* Deleting an object deletes the objects whose ``ownerReferences`` name its uid (GC).
* ResourceSlices and ResourceClaim status are validated (:mod:`.schema`) -> 422 Invalid.
  With :attr:`FakeApiServer.list_attributes` False (a cluster without the
  ``DRAListTypeAttributes`` feature gate) list-typed attribute values are dropped first, so a
  slice carrying one is refused as the real server refuses it.
* Every request is recorded (:class:`RecordedRequest`); faults can be injected
  (:meth:`FakeApiServer.fail_next`); the server can stop listening and come back on the same
  port (:meth:`go_down`, :meth:`come_back`); resource.k8s.io versions can be switched off.

Objects are stored as written: there is no conversion between API versions (a v1beta1
client that nests device fields under ``basic`` stores them that way).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar, cast

import yaml
from aiohttp import web

from .patching import (
    ApplyConflict,
    PatchError,
    json_patch,
    managed_fields_json,
    merge_patch,
    render_path,
    server_side_apply,
)
from .schema import Cause, drop_list_attributes, validate_claim_status, validate_resource_slice
from .selectors import SelectorError, parse_field_selector, parse_label_selector


@dataclass(frozen=True)
class ResourceInfo:
    """How the fake serves one resource type."""

    group: str
    plural: str
    kind: str
    namespaced: bool
    has_status: bool


RESOURCES: tuple[ResourceInfo, ...] = (
    ResourceInfo("", "nodes", "Node", False, True),
    ResourceInfo("", "namespaces", "Namespace", False, True),
    ResourceInfo("", "pods", "Pod", True, True),
    ResourceInfo("", "events", "Event", True, False),
    ResourceInfo("", "configmaps", "ConfigMap", True, False),
    ResourceInfo("events.k8s.io", "events", "Event", True, False),
    ResourceInfo("resource.k8s.io", "resourceslices", "ResourceSlice", False, False),
    ResourceInfo("resource.k8s.io", "resourceclaims", "ResourceClaim", True, True),
    ResourceInfo("resource.k8s.io", "resourceclaimtemplates", "ResourceClaimTemplate", True, False),
    ResourceInfo("resource.k8s.io", "deviceclasses", "DeviceClass", False, False),
)
_BY_PATH = {(r.group, r.plural): r for r in RESOURCES}
_BY_KIND = {r.kind: r for r in RESOURCES if r.group != "events.k8s.io"}
GROUP_VERSIONS: dict[str, tuple[str, ...]] = {
    "": ("v1",),
    "events.k8s.io": ("v1",),
    "resource.k8s.io": ("v1", "v1beta2", "v1beta1"),
}

Key = tuple[str, str, str]
"""(plural, namespace or "", name)."""

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})


@dataclass
class RecordedRequest:
    """One request as the fake saw it. ``body`` is parsed JSON/YAML (or raw text)."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any
    group: str | None = None
    version: str | None = None
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    status: int = 0

    @property
    def is_write(self) -> bool:
        return self.method in _WRITE_METHODS

    @property
    def is_watch(self) -> bool:
        return self.query.get("watch", "") in _TRUE


@dataclass
class Fault:
    """An injected failure for the next ``remaining`` matching requests."""

    method: str | None
    path_prefix: str
    status: int
    remaining: int
    hang: float | None = None
    close: bool = False
    message: str = "injected fault"


@dataclass
class _Event:
    rv: int
    type: str
    plural: str
    obj: dict[str, Any]


class HttpError(Exception):
    """Abort a request with a Kubernetes ``Status`` body."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _generate_suffix() -> str:
    # the API server's alphabet for generateName (no vowels, no confusable digits)
    return "".join(random.choices("bcdfghjklmnpqrstvwxz2456789", k=5))


@dataclass
class _Route:
    info: ResourceInfo
    version: str
    namespace: str | None
    name: str | None
    subresource: str | None


class FakeApiServer:
    """The fake. Start with :meth:`start` (or the ``fake_api`` fixture), stop with :meth:`close`."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.served_versions: dict[str, set[str]] = {g: set(v) for g, v in GROUP_VERSIONS.items()}
        self.list_attributes = True
        """The cluster takes list-typed device attributes (False: the feature gate is off)."""
        self._store: dict[Key, dict[str, Any]] = {}
        self._owners: dict[Key, dict[str, Any]] = {}
        self._log: list[_Event] = []
        self._rv = 0
        self._compacted = 0
        self._faults: list[Fault] = []
        self._changed = asyncio.Event()
        self._down = asyncio.Event()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.host = "127.0.0.1"
        self.port = 0

    # ----------------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def is_up(self) -> bool:
        return self._runner is not None

    async def start(self, port: int = 0) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        site = web.TCPSite(runner, self.host, port or self.port, reuse_address=True)
        await site.start()
        self._runner = runner
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]
        self._down = asyncio.Event()
        self._release = asyncio.Event()

    async def go_down(self) -> None:
        """Stop listening and drop every connection (watches end, hung requests are cut)."""
        if self._runner is None:
            return
        self._down.set()
        self._release.set()
        self._notify()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def come_back(self) -> None:
        """Listen again on the same port, with the same stored objects."""
        if self._runner is None:
            await self.start(self.port)

    async def close(self) -> None:
        await self.go_down()

    # ----------------------------------------------------------------------- test helpers

    @property
    def objects(self) -> dict[Key, dict[str, Any]]:
        """All stored objects by (plural, namespace or "", name); copies."""
        return {k: _copy(v) for k, v in self._store.items()}

    @property
    def resource_version(self) -> int:
        return self._rv

    def list_objects(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return [
            _copy(v)
            for (p, ns, _), v in sorted(self._store.items())
            if p == plural and (namespace is None or ns == namespace)
        ]

    def get_object(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        obj = self._store.get((plural, namespace or "", name))
        return _copy(obj) if obj is not None else None

    def put_object(self, obj: dict[str, Any], *, plural: str | None = None) -> dict[str, Any]:
        """Store ``obj`` as is (create or replace, no validation); returns the stored copy.

        ``plural`` defaults from ``kind``. uid, resourceVersion and creationTimestamp are
        filled in when missing; watchers see ADDED or MODIFIED.
        """
        info = _BY_KIND[obj["kind"]] if plural is None else self._info_for_plural(plural)
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        key = (info.plural, meta.get("namespace", "") if info.namespaced else "", meta["name"])
        old = self._store.get(key)
        meta.setdefault("uid", (old or {}).get("metadata", {}).get("uid") or str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta.setdefault("generation", 1)
        self._commit(key, obj, "MODIFIED" if old else "ADDED")
        return copy.deepcopy(obj)

    def delete_object(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """Delete as another client would (watchers see DELETED; dependents are collected)."""
        return self._delete_key((plural, namespace or "", name))

    def compact(self) -> None:
        """Forget the event history: watches from an older resourceVersion get 410 Expired."""
        self._compacted = self._rv
        self._log.clear()

    def serve_versions(self, group: str, *versions: str) -> None:
        """Serve only ``versions`` of ``group`` (others answer 404 and leave discovery)."""
        self.served_versions[group] = set(versions)

    def fail_next(
        self,
        method: str | None,
        path_prefix: str = "",
        *,
        status: int = 500,
        count: int = 1,
        hang: float | None = None,
        close: bool = False,
        message: str = "injected fault",
    ) -> Fault:
        """Make the next ``count`` requests matching (method, path prefix) fail.

        ``method`` None matches every method; ``path_prefix`` matches the URL path (without
        query). The failure is ``status`` with a Status body; or with ``hang`` seconds the
        request is held that long (or until :meth:`go_down`) before failing; with ``close``
        the connection is closed with no response.
        """
        fault = Fault(method.upper() if method else None, path_prefix, status, count, hang, close, message)
        self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self._faults.clear()

    def clear_requests(self) -> None:
        self.requests.clear()

    def writes(self, resource: str | None = None, *, method: str | None = None) -> list[RecordedRequest]:
        """Recorded write requests (POST/PUT/PATCH/DELETE), optionally of one resource."""
        return [
            r
            for r in self.requests
            if r.is_write
            and (resource is None or r.resource == resource)
            and (method is None or r.method == method.upper())
        ]

    def count_writes(self, resource: str | None = None, *, method: str | None = None) -> int:
        return len(self.writes(resource, method=method))

    def requests_for(
        self, resource: str | None = None, *, method: str | None = None, subresource: str | None = None
    ) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if (resource is None or r.resource == resource)
            and (method is None or r.method == method.upper())
            and (subresource is None or r.subresource == subresource)
        ]

    # ----------------------------------------------------------------------- storage core

    def _info_for_plural(self, plural: str) -> ResourceInfo:
        for r in RESOURCES:
            if r.plural == plural:
                return r
        raise KeyError(plural)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _commit(self, key: Key, obj: dict[str, Any], event: str) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._store[key] = obj
        self._log.append(_Event(self._rv, event, key[0], _copy(obj)))
        self._notify()

    def _delete_key(self, key: Key) -> dict[str, Any] | None:
        obj = self._store.pop(key, None)
        if obj is None:
            return None
        self._owners.pop(key, None)
        self._rv += 1
        gone = _copy(obj)
        gone["metadata"]["resourceVersion"] = str(self._rv)
        self._log.append(_Event(self._rv, "DELETED", key[0], gone))
        self._notify()
        uid = obj["metadata"].get("uid")
        dependents = [
            k
            for k, o in self._store.items()
            if any(ref.get("uid") == uid for ref in o["metadata"].get("ownerReferences") or [])
        ]
        for dep in dependents:
            self._delete_key(dep)
        return gone

    # ----------------------------------------------------------------------- HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
        rec = RecordedRequest(request.method, request.path, dict(request.query), ctype, None)
        self.requests.append(rec)
        try:
            rec.body = _parse_body(raw, ctype)
            route = self._route(request.path, rec)
            fault = self._take_fault(rec)
            if fault is not None:
                return await self._inject(request, rec, fault)
            if route is None:
                return self._json(rec, 200, self._discovery(request.path))
            return await self._dispatch(request, rec, route)
        except HttpError as err:
            return self._json(rec, err.code, status_body(err.code, err.reason, err.message, err.details))

    def _json(self, rec: RecordedRequest, code: int, body: Any) -> web.Response:
        rec.status = code
        return web.Response(status=code, text=json.dumps(body), content_type="application/json")

    def _take_fault(self, rec: RecordedRequest) -> Fault | None:
        for fault in self._faults:
            if (fault.method is None or fault.method == rec.method) and rec.path.startswith(
                fault.path_prefix
            ):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    async def _inject(self, request: web.Request, rec: RecordedRequest, fault: Fault) -> web.StreamResponse:
        if fault.hang is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._release.wait(), fault.hang)
        if fault.close or self._down.is_set():
            rec.status = -1
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError  # aiohttp drops the request quietly
        reason = {
            409: "Conflict",
            404: "NotFound",
            410: "Expired",
            422: "Invalid",
            429: "TooManyRequests",
            500: "InternalError",
            503: "ServiceUnavailable",
            504: "Timeout",
        }.get(fault.status, "Unknown")
        return self._json(rec, fault.status, status_body(fault.status, reason, fault.message))

    def _route(self, path: str, rec: RecordedRequest) -> _Route | None:
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            if path.rstrip("/") in ("/api", "/apis", "/version") or (
                parts[:1] == ["apis"] and len(parts) == 2
            ):
                return None
            raise HttpError(404, "NotFound", "the server could not find the requested resource")
        if version not in self.served_versions.get(group, set()):
            raise HttpError(404, "NotFound", f"the server could not find the requested resource ({path})")
        if not rest:
            return None
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        info = _BY_PATH.get((group, rest[0]))
        if info is None or (namespace is not None and not info.namespaced) or len(rest) > 3:
            raise HttpError(404, "NotFound", f"the server could not find the requested resource ({path})")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and (sub != "status" or not info.has_status):
            raise HttpError(404, "NotFound", f"subresource {sub!r} of {info.plural} not found")
        rec.group, rec.version, rec.resource = group, version, info.plural
        rec.namespace, rec.name, rec.subresource = namespace, name, sub
        return _Route(info, version, namespace, name, sub)

    def _discovery(self, path: str) -> dict[str, Any]:
        path = path.rstrip("/")
        if path == "/version":
            return {"major": "1", "minor": "36", "gitVersion": "v1.36.0-fake"}
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"]}
        if path == "/apis":
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [self._group_doc(g) for g in GROUP_VERSIONS if g and self.served_versions[g]],
            }
        parts = [p for p in path.split("/") if p]
        if len(parts) == 2:
            group = parts[1]
            if group not in GROUP_VERSIONS or not self.served_versions.get(group):
                raise HttpError(404, "NotFound", f"group {group} not found")
            return {"kind": "APIGroup", "apiVersion": "v1", **self._group_doc(group)}
        group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
        resources = []
        for r in RESOURCES:
            if r.group == group:
                resources.append(
                    {
                        "name": r.plural,
                        "namespaced": r.namespaced,
                        "kind": r.kind,
                        "verbs": [
                            "create",
                            "delete",
                            "deletecollection",
                            "get",
                            "list",
                            "patch",
                            "update",
                            "watch",
                        ],
                    }
                )
                if r.has_status:
                    resources.append(
                        {
                            "name": f"{r.plural}/status",
                            "namespaced": r.namespaced,
                            "kind": r.kind,
                            "verbs": ["get", "patch", "update"],
                        }
                    )
        gv = version if not group else f"{group}/{version}"
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}

    def _group_doc(self, group: str) -> dict[str, Any]:
        versions = [v for v in GROUP_VERSIONS[group] if v in self.served_versions[group]]
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

    async def _dispatch(
        self, request: web.Request, rec: RecordedRequest, route: _Route
    ) -> web.StreamResponse:
        m = request.method
        if m == "GET" and route.name is None:
            if rec.is_watch:
                return await self._watch(request, rec, route)
            return self._json(rec, 200, self._list(rec, route))
        if m == "GET":
            return self._json(rec, 200, self._out(self._get(route), route))
        if m == "POST" and route.name is None:
            return self._json(rec, 201, self._out(self._create(rec, route), route))
        if m == "PUT" and route.name is not None:
            return self._json(rec, 200, self._out(self._replace(rec, route), route))
        if m == "PATCH" and route.name is not None:
            return self._json(rec, 200, self._out(self._patch(rec, route), route))
        if m == "DELETE" and route.name is not None:
            return self._json(rec, 200, self._out(self._delete(rec, route), route))
        if m == "DELETE":
            return self._json(rec, 200, self._delete_collection(rec, route))
        raise HttpError(405, "MethodNotAllowed", f"{m} is not supported on {request.path}")

    # ----------------------------------------------------------------------- verbs

    def _key(self, route: _Route, name: str | None = None) -> Key:
        return (route.info.plural, route.namespace or "", name or route.name or "")

    def _out(self, obj: dict[str, Any], route: _Route) -> dict[str, Any]:
        """``obj`` as served by ``route``'s version, for serialising at once: a shallow copy
        (the stored object is neither changed nor handed out)."""
        out = dict(obj)
        out["apiVersion"] = f"{route.info.group}/{route.version}" if route.info.group else route.version
        out["kind"] = route.info.kind
        return out

    def _get(self, route: _Route) -> dict[str, Any]:
        obj = self._store.get(self._key(route))
        if obj is None:
            raise self._not_found(route)
        return obj

    def _not_found(self, route: _Route, name: str | None = None) -> HttpError:
        name = name or route.name or ""
        group = route.info.group
        what = f"{route.info.plural}.{group}" if group else route.info.plural
        return HttpError(
            404,
            "NotFound",
            f'{what} "{name}" not found',
            {"name": name, "group": group, "kind": route.info.plural},
        )

    def _matching(self, rec: RecordedRequest, route: _Route) -> Iterable[tuple[Key, dict[str, Any]]]:
        try:
            fsel = parse_field_selector(rec.query.get("fieldSelector"))
            lsel = parse_label_selector(rec.query.get("labelSelector"))
        except SelectorError as err:
            raise HttpError(400, "BadRequest", str(err)) from err
        for key, obj in sorted(self._store.items()):
            if key[0] != route.info.plural or (route.namespace is not None and key[1] != route.namespace):
                continue
            if fsel(obj) and lsel(obj):
                yield key, obj

    def _list(self, rec: RecordedRequest, route: _Route) -> dict[str, Any]:
        items = [self._out(obj, route) for _, obj in self._matching(rec, route)]
        gv = f"{route.info.group}/{route.version}" if route.info.group else route.version
        return {
            "apiVersion": gv,
            "kind": f"{route.info.kind}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    def _body_object(self, rec: RecordedRequest) -> dict[str, Any]:
        if not isinstance(rec.body, dict):
            raise HttpError(400, "BadRequest", "request body must be a JSON object")
        return _copy(rec.body)

    def _validate(self, route: _Route, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        causes: list[Cause] = []
        if route.info.plural == "resourceslices":
            if not self.list_attributes:
                drop_list_attributes(obj, route.version)
            causes = validate_resource_slice(obj, route.version)
            if old is not None:
                for path in (("driver",), ("pool", "name"), ("nodeName",)):
                    a, b = _dig(old.get("spec"), path), _dig(obj.get("spec"), path)
                    if a != b:
                        causes.append(Cause("spec." + ".".join(path), "field is immutable"))
        elif (
            route.info.plural == "resourceclaims"
            and old is not None
            and old.get("status") != obj.get("status")
        ):
            causes = validate_claim_status(obj)
        if causes:
            name = obj.get("metadata", {}).get("name") or obj.get("metadata", {}).get("generateName", "")
            group = route.info.group
            msg = f'{route.info.kind}.{group} "{name}" is invalid: ' + "; ".join(map(str, causes))
            details = {
                "name": name,
                "group": group,
                "kind": route.info.kind,
                "causes": [
                    {"reason": "FieldValueInvalid", "message": c.message, "field": c.field} for c in causes
                ],
            }
            raise HttpError(422, "Invalid", msg, details)

    def _create(self, rec: RecordedRequest, route: _Route) -> dict[str, Any]:
        obj = self._body_object(rec)
        meta = obj.setdefault("metadata", {})
        if route.info.namespaced:
            if route.namespace is None:
                raise HttpError(400, "BadRequest", "a namespace is required to create this resource")
            if meta.get("namespace") not in (None, route.namespace):
                raise HttpError(400, "BadRequest", "the namespace of the object does not match the request")
            meta["namespace"] = route.namespace
        if not meta.get("name"):
            if not meta.get("generateName"):
                self._validate(route, obj, None)
                raise HttpError(
                    422, "Invalid", "metadata.name: Required value: name or generateName is required"
                )
            for _ in range(8):
                meta["name"] = meta["generateName"] + _generate_suffix()
                if self._key(route, meta["name"]) not in self._store:
                    break
        key = self._key(route, meta["name"])
        if key in self._store:
            raise HttpError(
                409,
                "AlreadyExists",
                f'{route.info.plural} "{meta["name"]}" already exists',
                {"name": meta["name"], "group": route.info.group, "kind": route.info.plural},
            )
        self._validate(route, obj, None)
        meta.pop("resourceVersion", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        meta["generation"] = 1
        meta.pop("managedFields", None)
        obj["apiVersion"] = f"{route.info.group}/{route.version}" if route.info.group else route.version
        obj["kind"] = route.info.kind
        if route.info.plural in ("resourceclaims", "pods"):
            obj.pop("status", None)  # reset on create, as the real strategies do
        self._commit(key, obj, "ADDED")
        return obj

    def _check_rv(self, route: _Route, sent: Any, current: dict[str, Any]) -> None:
        if sent not in (None, "") and str(sent) != current["metadata"]["resourceVersion"]:
            raise HttpError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {route.info.plural} "{route.name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                {"name": route.name, "group": route.info.group, "kind": route.info.plural},
            )

    def _finish_update(
        self, route: _Route, old: dict[str, Any], new: dict[str, Any], managed: list[Any] | None = None
    ) -> dict[str, Any]:
        """Keep server-owned metadata, bump generation on spec change, validate, store.

        A write that changes nothing (but timestamps) stores nothing and keeps the
        resourceVersion, as the real server does.
        """
        meta = new.setdefault("metadata", {})
        for k in ("uid", "creationTimestamp", "name", "namespace", "managedFields"):
            if k in old["metadata"]:
                meta[k] = old["metadata"][k]
            else:
                meta.pop(k, None)
        if managed is not None:
            meta["managedFields"] = managed
        body_changed = {k: v for k, v in new.items() if k not in ("metadata", "status")} != {
            k: v for k, v in old.items() if k not in ("metadata", "status")
        }
        meta["generation"] = old["metadata"].get("generation", 1) + (1 if body_changed else 0)
        self._validate(route, new, old)
        if _comparable(new) == _comparable(old):
            return old
        self._commit(self._key(route), new, "MODIFIED")
        return new

    def _merge_subresource(self, route: _Route, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        """A write to /status changes only status; a main write of a status-bearing kind keeps status."""
        if route.subresource == "status":
            merged = copy.deepcopy(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            merged["metadata"] = new.get("metadata", merged["metadata"])
            return merged
        if route.info.has_status:
            new = copy.deepcopy(new)
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        return new

    def _replace(self, rec: RecordedRequest, route: _Route) -> dict[str, Any]:
        obj = self._body_object(rec)
        old = self._get(route)
        if (obj.get("metadata") or {}).get("name") not in (None, route.name):
            raise HttpError(400, "BadRequest", "the name of the object does not match the name on the URL")
        self._check_preconditions(route, obj.get("metadata") or {}, old, patch=False)
        obj["apiVersion"], obj["kind"] = old.get("apiVersion"), old.get("kind")
        new = self._merge_subresource(route, old, obj)
        return self._finish_update(route, old, new)

    def _patch(self, rec: RecordedRequest, route: _Route) -> dict[str, Any]:
        key = self._key(route)
        if rec.content_type == "application/apply-patch+yaml":
            return self._apply(rec, route, key)
        old = self._get(route)
        try:
            if rec.content_type == "application/json-patch+json":
                patched = json_patch(old, rec.body)
            elif rec.content_type in (
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ):
                if not isinstance(rec.body, dict):
                    raise PatchError("merge patch body must be a JSON object")
                self._check_preconditions(route, rec.body.get("metadata") or {}, old, patch=True)
                patched = merge_patch(old, rec.body)
            else:
                raise HttpError(415, "UnsupportedMediaType", f"unsupported patch type {rec.content_type!r}")
        except PatchError as err:
            raise HttpError(422, "Invalid", str(err)) from err
        patched.setdefault("metadata", {})["resourceVersion"] = old["metadata"]["resourceVersion"]
        new = self._merge_subresource(route, old, patched)
        return self._finish_update(route, old, new)

    def _check_apply_request(self, rec: RecordedRequest, route: _Route) -> tuple[str, dict[str, Any]]:
        manager = rec.query.get("fieldManager")
        if not manager:
            raise HttpError(
                400,
                "BadRequest",
                "PatchOptions.meta.k8s.io is invalid: fieldManager: Required value: "
                "is required for apply patch",
            )
        config = self._body_object(rec)
        if not config.get("apiVersion") or not config.get("kind"):
            raise HttpError(400, "BadRequest", "apply patch must set apiVersion and kind")
        if config["kind"] != route.info.kind:
            raise HttpError(400, "BadRequest", f"kind {config['kind']!r} does not match {route.info.kind}")
        name = (config.get("metadata") or {}).get("name")
        if name not in (None, route.name):
            raise HttpError(400, "BadRequest", "the name of the object does not match the name on the URL")
        return manager, config

    def _check_preconditions(
        self, route: _Route, sent: dict[str, Any], old: dict[str, Any], *, patch: bool
    ) -> None:
        """``metadata.resourceVersion`` must match (409). A different ``metadata.uid`` is a failed
        precondition on PUT (409) and, as the real server does for patches, an attempt to
        change an immutable field on PATCH (422)."""
        self._check_rv(route, sent.get("resourceVersion"), old)
        uid = old["metadata"].get("uid")
        if sent.get("uid") in (None, "", uid):
            return
        if not patch:
            msg = f"Precondition failed: UID in precondition: {sent['uid']}, UID in object meta: {uid}"
            raise HttpError(409, "Conflict", msg)
        name = route.name or ""
        raise HttpError(
            422,
            "Invalid",
            f'{route.info.kind}.{route.info.group} "{name}" is invalid: metadata.uid: '
            f"Invalid value: {sent['uid']!r}: field is immutable",
            {
                "name": name,
                "group": route.info.group,
                "kind": route.info.kind,
                "causes": [
                    {"reason": "FieldValueInvalid", "message": "field is immutable", "field": "metadata.uid"}
                ],
            },
        )

    def _apply(self, rec: RecordedRequest, route: _Route, key: Key) -> dict[str, Any]:
        manager, config = self._check_apply_request(rec, route)
        force = rec.query.get("force", "") in _TRUE
        old = self._store.get(key)
        if old is None:
            if route.subresource:
                raise self._not_found(route)
            old = {
                "apiVersion": config["apiVersion"],
                "kind": route.info.kind,
                "metadata": {
                    "name": route.name,
                    **({"namespace": route.namespace} if route.namespace else {}),
                },
            }
        if route.subresource == "status":
            config = {"status": config.get("status") or {}}
        elif route.info.has_status:
            config = {k: v for k, v in config.items() if k != "status"}
        if key in self._store:
            self._check_preconditions(route, rec.body.get("metadata") or {}, old, patch=True)
        owner_key = f"{manager}/{route.subresource}" if route.subresource else manager
        owners = self._owners.get(key, {})
        try:
            new, new_owners = server_side_apply(old, config, manager=owner_key, force=force, owners=owners)
        except ApplyConflict as err:
            raise HttpError(
                409,
                "Conflict",
                str(err),
                {
                    "causes": [
                        {"reason": "FieldManagerConflict", "message": f'conflict with "{m}"', "field": f}
                        for m, f in ((m, render_path(p)) for m, p in err.conflicts)
                    ]
                },
            ) from err
        managed = [
            {
                "manager": k.split("/")[0],
                "operation": "Apply",
                "apiVersion": config.get("apiVersion") or f"{route.info.group}/{route.version}".lstrip("/"),
                "time": _now(),
                "fieldsType": "FieldsV1",
                "fieldsV1": managed_fields_json(f),
                **({"subresource": "status"} if k.endswith("/status") else {}),
            }
            for k, f in sorted(new_owners.items())
        ]
        if key not in self._store:
            self._validate(route, new, None)
            meta = new["metadata"]
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1, managedFields=managed)
            self._owners[key] = new_owners
            self._commit(key, new, "ADDED")
            return new
        result = self._finish_update(route, old, new, managed)
        self._owners[key] = new_owners
        return result

    def _delete(self, rec: RecordedRequest, route: _Route) -> dict[str, Any]:
        old = self._get(route)
        pre = (rec.body or {}).get("preconditions") if isinstance(rec.body, dict) else None
        if pre:
            if pre.get("uid") not in (None, old["metadata"]["uid"]):
                raise HttpError(
                    409,
                    "Conflict",
                    f"Precondition failed: UID in precondition: {pre['uid']}, "
                    f"UID in object meta: {old['metadata']['uid']}",
                )
            self._check_rv(route, pre.get("resourceVersion"), old)
        gone = self._delete_key(self._key(route))
        assert gone is not None
        return gone

    def _delete_collection(self, rec: RecordedRequest, route: _Route) -> dict[str, Any]:
        for key, _ in list(self._matching(rec, route)):
            self._delete_key(key)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}

    def _event_matches(self, ev: _Event, route: _Route) -> bool:
        ns = ev.obj["metadata"].get("namespace", "")
        return ev.plural == route.info.plural and (route.namespace is None or ns == route.namespace)

    async def _watch(self, request: web.Request, rec: RecordedRequest, route: _Route) -> web.StreamResponse:
        try:
            fsel = parse_field_selector(rec.query.get("fieldSelector"))
            lsel = parse_label_selector(rec.query.get("labelSelector"))
        except SelectorError as err:
            raise HttpError(400, "BadRequest", str(err)) from err
        since_text = rec.query.get("resourceVersion", "")
        timeout = float(rec.query["timeoutSeconds"]) if rec.query.get("timeoutSeconds") else None
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        rec.status = 200

        async def send(kind: str, obj: dict[str, Any]) -> None:
            await resp.write((json.dumps({"type": kind, "object": obj}) + "\n").encode())

        if since_text in ("", "0"):
            since = self._rv
            for _, obj in list(self._matching(rec, route)):
                await send("ADDED", self._out(obj, route))
        else:
            since = int(since_text)
            if since < self._compacted:
                await send(
                    "ERROR",
                    status_body(410, "Expired", f"too old resource version: {since} ({self._compacted})"),
                )
                await resp.write_eof()
                return resp
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        while not self._down.is_set():
            for ev in [e for e in self._log if e.rv > since]:
                since = ev.rv
                if self._event_matches(ev, route) and fsel(ev.obj) and lsel(ev.obj):
                    await send(ev.type, self._out(ev.obj, route))
            if self._log and self._log[-1].rv > since:
                continue  # more happened while we were writing
            changed = self._changed
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                break
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp


_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
_T = TypeVar("_T")


def _copy(obj: _T) -> _T:
    """A deep copy of JSON data (dicts, lists, scalars), several times faster than
    ``copy.deepcopy``; anything else is deep-copied the usual way."""
    kind = type(obj)
    if kind is dict:
        return cast(_T, {k: _copy(v) for k, v in cast(dict[Any, Any], obj).items()})
    if kind is list:
        return cast(_T, [_copy(v) for v in cast(list[Any], obj)])
    if kind in _SCALARS:
        return obj
    return copy.deepcopy(obj)


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    out = _copy(obj)
    meta = out.get("metadata") or {}
    meta.pop("resourceVersion", None)
    for entry in meta.get("managedFields") or []:
        entry.pop("time", None)
    return out


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(p)
    return obj


def _parse_body(raw: bytes, ctype: str) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        if ctype.endswith("yaml"):
            return yaml.safe_load(text)
        return json.loads(text)
    except (ValueError, yaml.YAMLError) as err:
        raise HttpError(400, "BadRequest", f"cannot parse request body: {err}") from err
