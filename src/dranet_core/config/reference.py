"""The field reference of the claim configuration, generated from the model (for the docs).

``docs/configuration.md`` embeds :func:`field_table_markdown` between markers;
``scripts/gen_config_schema.py`` rewrites it and a test checks it is fresh.
"""

from __future__ import annotations

from collections.abc import Iterator

from dranet_core.config.fields import FieldSpec, TypeSpec, fields_of, int_bounds
from dranet_core.config.formats import IFNAMSIZ_MAX
from dranet_core.config.model import NetworkConfig

__all__ = ["field_rows", "field_table_markdown"]

_FORMATS = {
    "ifname": f"interface name: <= {IFNAMSIZ_MAX} bytes, letters, digits, `-` `_` `.`; not `.`/`..`",
    "cidr": "IP prefix `addr/len` (host bits allowed)",
    "ip": "IP address",
    "mac": "MAC (6, 8 or 20 octets; `:`/`-`/`.` forms)",
}


def _type_name(tp: TypeSpec, spec: FieldSpec) -> str:
    if tp.kind == "int":
        return f"integer ({spec.meta.get('kind', 'int64')})"
    if tp.kind == "str":
        return "string"
    if tp.kind == "bool":
        return "boolean"
    if tp.kind == "list":
        assert tp.item is not None
        return f"list of {_type_name(tp.item, spec)}"
    if tp.kind == "map":
        assert tp.item is not None
        return f"map string → {_type_name(tp.item, spec)}"
    return "object"


def _rules(spec: FieldSpec) -> str:
    meta = spec.meta
    out = []
    if spec.required:
        out.append("required, non-empty")
    if spec.type.kind == "int":
        if "one_of" in meta:
            out.append("one of " + ", ".join(map(str, meta["one_of"])))
        else:
            lo, hi = int_bounds(meta)
            out.append(f"{lo}..{hi}")
        if "not_in" in meta:
            out.append("not " + ", ".join(map(str, meta["not_in"])))
    if "choices" in meta:
        out.append("one of " + ", ".join(f"`{c}`" for c in meta["choices"]))
    fmt = meta.get("format")
    if fmt:
        out.append(_FORMATS[fmt])
    if "max_length" in meta:
        out.append(f"at most {meta['max_length']} characters")
    if "max_items" in meta:
        out.append(f"at most {meta['max_items']} entries")
    if spec.empty_is_unset:
        out.append('`""` = unset')
    return "; ".join(out)


def field_rows(cls: type = NetworkConfig, prefix: str = "") -> Iterator[tuple[str, str, str, str]]:
    """``(JSON path, type, rules, description)`` for every field, depth first."""
    for spec in fields_of(cls):
        path = f"{prefix}{spec.json}"
        tp = spec.type
        yield path, _type_name(tp, spec), _rules(spec), spec.doc
        if tp.kind == "object":
            assert tp.cls is not None
            yield from field_rows(tp.cls, path + ".")
        elif tp.kind == "list" and tp.item is not None and tp.item.kind == "object":
            assert tp.item.cls is not None
            yield from field_rows(tp.item.cls, path + "[].")


def field_table_markdown() -> str:
    """The field reference as a Markdown table."""
    lines = ["| field | type | rules | meaning |", "|---|---|---|---|"]
    for path, type_name, rules, doc in field_rows():
        lines.append(f"| `{path}` | {type_name} | {rules} | {doc} |")
    return "\n".join(lines) + "\n"
