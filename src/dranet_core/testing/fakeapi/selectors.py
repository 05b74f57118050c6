"""Field and label selectors as the API server parses them (the common subset).

Field selectors: ``a=b``, ``a==b``, ``a!=b`` joined by commas; the field is a dotted path
into the object (``spec.nodeName``, ``metadata.name``); a missing field compares as ``""``.
Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``, ``k notin (a,b)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]


class SelectorError(ValueError):
    """A selector string the fake cannot parse (the server answers 400)."""


def _lookup(obj: dict[str, Any], dotted: str) -> str:
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return ""
        cur = cur[part]
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return "" if cur is None else str(cur)


def parse_field_selector(text: str | None) -> Predicate:
    """A predicate for ``fieldSelector``; an empty selector matches everything."""
    terms: list[tuple[str, str, bool]] = []
    for raw in (text or "").split(","):
        term = raw.strip()
        if not term:
            continue
        if "!=" in term:
            field, value = term.split("!=", 1)
            terms.append((field.strip(), value.strip(), False))
        elif "==" in term:
            field, value = term.split("==", 1)
            terms.append((field.strip(), value.strip(), True))
        elif "=" in term:
            field, value = term.split("=", 1)
            terms.append((field.strip(), value.strip(), True))
        else:
            raise SelectorError(f"invalid field selector term {term!r}")

    def match(obj: dict[str, Any]) -> bool:
        return all((_lookup(obj, f) == v) == eq for f, v, eq in terms)

    return match


_SET_TERM = re.compile(r"^\s*(\S+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_terms(text: str) -> list[str]:
    terms, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    terms.append(cur)
    return [t.strip() for t in terms if t.strip()]


def _label_term(term: str) -> Predicate:
    m = _SET_TERM.match(term)
    if m:
        key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if "!=" in term:
        key, value = (s.strip() for s in term.split("!=", 1))
        return lambda labels: labels.get(key) != value
    if "=" in term:
        key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
        return lambda labels: labels.get(key) == value
    if term.startswith("!"):
        key = term[1:].strip()
        return lambda labels: key not in labels
    if re.match(r"^[A-Za-z0-9_./-]+$", term):
        return lambda labels: term in labels
    raise SelectorError(f"invalid label selector term {term!r}")


def parse_label_selector(text: str | None) -> Predicate:
    """A predicate for ``labelSelector`` over ``metadata.labels``."""
    preds = [_label_term(t) for t in _split_terms(text or "")]

    def match(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(p(labels) for p in preds)

    return match
