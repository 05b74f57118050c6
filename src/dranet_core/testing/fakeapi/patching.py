"""Patch semantics of the fake API server: JSON merge patch, JSON patch, server-side apply.

Server-side apply is modelled on structured-merge-diff, reduced to what a DRA driver meets:

* An applied configuration *owns* a set of field paths: every leaf it sets, and for each
  element of a list-map (``status.devices`` keyed by driver/pool/device/shareID,
  ``conditions`` keyed by type, ...) an item marker plus the item's fields. Other lists are
  atomic (a leaf).
* Applying with manager M: a leaf M sets that another manager owns *with a different value*
  is a conflict (409) unless ``force``; with ``force`` ownership moves to M.
* Fields M owned before but not in this apply are removed from the object, unless another
  manager still owns them. So one manager's apply replaces only its own list-map entries.
* The configuration is then merged in: maps recursively, list-maps by key, the rest replaced.

Ownership is tracked per ``(manager, subresource)``; non-apply writes don't take ownership
(documented simplification: the real server records them as ``Update`` managers).
"""

from __future__ import annotations

import copy
import json
from typing import Any

Segment = str | tuple[tuple[str, Any], ...]
Path = tuple[Segment, ...]

LIST_MAP_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("metadata", "ownerReferences"): ("uid",),
    ("status", "conditions"): ("type",),
    ("status", "devices"): ("driver", "pool", "device", "shareID"),
    ("status", "devices", "*", "conditions"): ("type",),
    ("status", "reservedFor"): ("uid",),
}
"""Schema paths (list items written as ``*``) of lists merged by key; every other list is atomic."""

_IGNORED_TOP = {"apiVersion", "kind"}
_TRACKED_METADATA = {"labels", "annotations", "ownerReferences", "finalizers"}


class ApplyConflict(Exception):
    """Server-side apply found fields owned by other managers (HTTP 409)."""

    def __init__(self, conflicts: list[tuple[str, Path]]) -> None:
        self.conflicts = conflicts
        super().__init__(
            f"Apply failed with {len(conflicts)} conflict(s): "
            + "; ".join(f'conflict with "{m}": {render_path(p)}' for m, p in conflicts)
        )


class PatchError(Exception):
    """A patch that cannot be applied (HTTP 422/400)."""


def render_path(path: Path) -> str:
    out = []
    for seg in path:
        if isinstance(seg, str):
            out.append("." + seg)
        else:
            out.append("[" + ",".join(f"{k}={v!r}" for k, v in seg) + "]")
    return "".join(out)


def item_key(item: Any, keys: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    if not isinstance(item, dict):
        return (("", json.dumps(item, sort_keys=True)),)
    return tuple((k, item.get(k)) for k in keys)


def _list_keys(schema: tuple[str, ...]) -> tuple[str, ...] | None:
    return LIST_MAP_KEYS.get(schema)


def fields_of(value: dict[str, Any], *, path: Path = (), schema: tuple[str, ...] = ()) -> set[Path]:
    """The set of field paths ``value`` (an applied configuration) sets."""
    out: set[Path] = set()
    for k, v in value.items():
        if not path and k in _IGNORED_TOP:
            continue
        if not path and k == "metadata":
            meta = {mk: mv for mk, mv in (v or {}).items() if mk in _TRACKED_METADATA}
            out |= fields_of(meta, path=("metadata",), schema=("metadata",))
            continue
        p, s = (*path, k), (*schema, k)
        keys = _list_keys(s)
        if keys is not None and isinstance(v, list):
            for item in v:
                ip = (*p, item_key(item, keys))
                out.add(ip)
                if isinstance(item, dict):
                    out |= fields_of(item, path=ip, schema=(*s, "*"))
        elif isinstance(v, dict) and v:
            out |= fields_of(v, path=p, schema=s)
        else:
            out.add(p)
    return out


def _get(obj: Any, path: Path) -> tuple[bool, Any]:
    cur = obj
    for seg in path:
        if isinstance(seg, str):
            if not isinstance(cur, dict) or seg not in cur:
                return False, None
            cur = cur[seg]
        else:
            if not isinstance(cur, list):
                return False, None
            keys = tuple(k for k, _ in seg)
            for item in cur:
                if item_key(item, keys) == seg:
                    cur = item
                    break
            else:
                return False, None
    return True, cur


def _delete(obj: Any, path: Path) -> None:
    found, parent = _get(obj, path[:-1])
    if not found:
        return
    last = path[-1]
    if isinstance(last, str):
        if isinstance(parent, dict):
            parent.pop(last, None)
    elif isinstance(parent, list):
        keys = tuple(k for k, _ in last)
        parent[:] = [i for i in parent if item_key(i, keys) != last]


def merge_applied(target: dict[str, Any], config: dict[str, Any], schema: tuple[str, ...] = ()) -> None:
    """Merge an applied configuration into ``target`` in place (maps deep, list-maps by key)."""
    for k, v in config.items():
        s = (*schema, k)
        keys = _list_keys(s)
        if keys is not None and isinstance(v, list) and isinstance(target.get(k), list):
            existing: list[Any] = target[k]
            for item in v:
                key = item_key(item, keys)
                for idx, cur in enumerate(existing):
                    if item_key(cur, keys) == key:
                        if isinstance(cur, dict) and isinstance(item, dict):
                            merge_applied(cur, item, (*s, "*"))
                        else:
                            existing[idx] = copy.deepcopy(item)
                        break
                else:
                    existing.append(copy.deepcopy(item))
        elif isinstance(v, dict) and isinstance(target.get(k), dict) and v:
            merge_applied(target[k], v, s)
        else:
            target[k] = copy.deepcopy(v)


def server_side_apply(
    current: dict[str, Any],
    config: dict[str, Any],
    *,
    manager: str,
    force: bool,
    owners: dict[str, set[Path]],
) -> tuple[dict[str, Any], dict[str, set[Path]]]:
    """Apply ``config`` as ``manager`` to a copy of ``current``.

    ``owners`` maps an ownership key (manager name) to its field set. Returns the new object
    and the new ownership map; raises :class:`ApplyConflict` on conflicts without force.
    """
    obj = copy.deepcopy(current)
    new_fields = fields_of(config)
    conflicts: list[tuple[str, Path]] = []
    for other, owned in owners.items():
        if other == manager:
            continue
        for p in new_fields & owned:
            if isinstance(p[-1], tuple):
                continue  # item markers are shared
            had, cur_value = _get(obj, p)
            _, new_value = _get(config, p)
            if had and cur_value != new_value:
                conflicts.append((other, p))
    if conflicts and not force:
        raise ApplyConflict(sorted(conflicts, key=lambda c: (c[0], render_path(c[1]))))
    new_owners = {m: set(f) for m, f in owners.items()}
    for other, p in conflicts:
        new_owners[other].discard(p)
    others: set[Path] = set().union(*(f for m, f in new_owners.items() if m != manager))
    removed = new_owners.get(manager, set()) - new_fields
    # shortest first: a removed list-map item takes its fields with it
    for p in sorted(removed, key=len):
        if any(o[: len(p)] == p for o in others):
            continue
        if len(p) >= 2 and isinstance(p[-2], tuple) and p[-1] in {k for k, _ in p[-2]}:
            continue  # never strip a key field off an item that stays
        _delete(obj, p)
    cfg = {k: v for k, v in config.items() if k not in _IGNORED_TOP and k != "metadata"}
    meta_cfg = {k: v for k, v in (config.get("metadata") or {}).items() if k in _TRACKED_METADATA}
    merge_applied(obj, cfg)
    if meta_cfg:
        merge_applied(obj.setdefault("metadata", {}), meta_cfg, ("metadata",))
    new_owners[manager] = new_fields
    return obj, {m: f for m, f in new_owners.items() if f}


def managed_fields_json(fields: set[Path]) -> dict[str, Any]:
    """Render a field set as ``fieldsV1`` JSON (``f:`` fields, ``k:`` list-map items)."""
    root: dict[str, Any] = {}
    for path in sorted(fields, key=lambda p: [render_path((s,)) for s in p]):
        cur = root
        for seg in path:
            if isinstance(seg, str):
                name = "f:" + seg
            else:
                name = "k:" + json.dumps(
                    {k: v for k, v in seg if v is not None}, sort_keys=True, separators=(",", ":")
                )
            cur = cur.setdefault(name, {})
        if isinstance(path[-1], tuple):
            cur.setdefault(".", {})
    return root


# --- JSON merge patch (RFC 7386) and JSON patch (RFC 6902) -----------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent_of(doc: Any, path: str) -> tuple[Any, str]:
    parts = _pointer(path)
    if not parts:
        raise PatchError("JSON patch on the document root is not supported")
    parent: Any = doc
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent.get(part)
        if parent is None:
            raise PatchError(f"path {path!r} does not exist")
    return parent, parts[-1]


def _json_patch_op(doc: Any, op: dict[str, Any]) -> None:
    parent, last = _parent_of(doc, op.get("path", ""))
    kind = op.get("op")
    if kind == "test":
        value = parent[int(last)] if isinstance(parent, list) else parent.get(last)
        if value != op.get("value"):
            raise PatchError(f"test failed at {op['path']!r}")
    elif kind in ("add", "replace") and isinstance(parent, list):
        if last == "-":
            parent.append(op["value"])
        elif kind == "add":
            parent.insert(int(last), op["value"])
        else:
            parent[int(last)] = op["value"]
    elif kind in ("add", "replace"):
        if kind == "replace" and last not in parent:
            raise PatchError(f"path {op['path']!r} does not exist")
        parent[last] = op["value"]
    elif kind == "remove":
        try:
            del parent[int(last) if isinstance(parent, list) else last]
        except (KeyError, IndexError) as exc:
            raise PatchError(f"path {op['path']!r} does not exist") from exc
    else:
        raise PatchError(f"unsupported JSON patch op {kind!r}")


def json_patch(target: Any, ops: Any) -> Any:
    """RFC 6902 ``add``, ``remove``, ``replace``, ``test`` (enough for clients we meet)."""
    doc = copy.deepcopy(target)
    if not isinstance(ops, list):
        raise PatchError("JSON patch must be a list of operations")
    for op in ops:
        _json_patch_op(doc, op)
    return doc
