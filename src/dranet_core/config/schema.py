"""JSON Schema (draft 2020-12) of the claim configuration, generated from the model.

Every object has ``additionalProperties: false``; types, integer ranges (the field's width
narrowed by ``minimum``/``maximum``), ``enum`` and reserved values (``not``), required and
non-empty fields, and the MAC address forms come from the field metadata that the
validator also reads. Three rules that relate fields are added by hand (and tested against
the validator): ``dhcp`` with ``addresses``, ``rules`` with ``interface.vrf``, and the
gateway required unless ``scope`` is 253.

What the schema cannot say, so it accepts a superset: IP and CIDR syntax and address
families, interface names beyond ASCII, the 15-*byte* name limit for non-ASCII names,
and that ``1500.0`` is not an integer (the decoder rejects it, as Go's does).
``scripts/gen_config_schema.py`` writes it to ``docs/config-schema.json``.
"""

from __future__ import annotations

from typing import Any, Final

from dranet_core.config.fields import FieldSpec, TypeSpec, fields_of, int_bounds
from dranet_core.config.formats import IFNAMSIZ_MAX, MAC_PATTERN
from dranet_core.config.model import InterfaceConfig, NetworkConfig, RouteConfig
from dranet_core.types import JSON

__all__ = ["SCHEMA_ID", "config_json_schema"]

SCHEMA_ID: Final = "https://dra.net/schemas/network-config.json"

# ASCII part exact; any non-ASCII character allowed (the validator checks Unicode classes).
_IFNAME_PATTERN: Final = r"^(?!\.\.?$)(?:[-_.0-9A-Za-z]|[^\x00-\x7F])*$"


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    t = schema["type"]
    schema["type"] = [t, "null"]
    if "enum" in schema:
        schema["enum"] = [*schema["enum"], None]  # an enum constrains every type, null included
    return schema


def _string_schema(spec: FieldSpec) -> dict[str, Any]:
    s: dict[str, Any] = {"type": "string"}
    if "choices" in spec.meta:
        s["enum"] = list(spec.meta["choices"])
    fmt = spec.meta.get("format")
    if fmt == "mac":
        s["pattern"] = MAC_PATTERN
    elif fmt == "ifname":
        s["maxLength"] = IFNAMSIZ_MAX
        s["pattern"] = _IFNAME_PATTERN
    elif fmt == "cidr":
        s["description"] = "IP prefix in CIDR form"
    elif fmt == "ip":
        s["description"] = "IP address"
    if spec.required:
        s["minLength"] = 1
    if "max_length" in spec.meta:
        s["maxLength"] = spec.meta["max_length"]
    return s


def _value_schema(spec: FieldSpec, tp: TypeSpec) -> dict[str, Any]:
    if tp.kind == "str":
        return _string_schema(spec)
    if tp.kind == "bool":
        return {"type": "boolean"}
    if tp.kind == "int":
        if "one_of" in spec.meta:
            return {"type": "integer", "enum": list(spec.meta["one_of"])}
        lo, hi = int_bounds(spec.meta)
        s: dict[str, Any] = {"type": "integer", "minimum": lo, "maximum": hi}
        if "not_in" in spec.meta:
            s["not"] = {"enum": list(spec.meta["not_in"])}
        return s
    if tp.kind == "list":
        assert tp.item is not None
        arr: dict[str, Any] = {"type": "array", "items": _value_schema(spec, tp.item)}
        if "max_items" in spec.meta:
            arr["maxItems"] = spec.meta["max_items"]
        return arr
    if tp.kind == "map":
        assert tp.item is not None
        return {"type": "object", "additionalProperties": _value_schema(spec, tp.item)}
    assert tp.cls is not None
    return _object_schema(tp.cls)


def _object_schema(cls: type) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required: list[str] = []
    for spec in fields_of(cls):
        s = _value_schema(spec, spec.type)
        if spec.required:
            required.append(spec.json)
        else:
            s = _nullable(s)
        if spec.doc:
            s = {"description": spec.doc, **s}
        props[spec.json] = s
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = required
    schema.update(_CROSS_FIELD.get(cls, {}))
    return schema


# Each "not" names "type": "object" so that it cannot match a null (unset) object.
_CROSS_FIELD: Final[dict[type, dict[str, Any]]] = {
    InterfaceConfig: {
        "not": {
            "description": "dhcp and addresses are mutually exclusive",
            "type": "object",
            "required": ["dhcp", "addresses"],
            "properties": {"dhcp": {"const": True}, "addresses": {"type": "array", "minItems": 1}},
        }
    },
    RouteConfig: {
        "if": {"required": ["scope"], "properties": {"scope": {"const": 253}}},
        "then": True,
        "else": {
            "description": "gateway is required unless scope is 253 (link)",
            "required": ["gateway"],
            "properties": {"gateway": {"type": "string", "minLength": 1}},
        },
    },
    NetworkConfig: {
        "not": {
            "description": "rules are not supported when interface.vrf is set",
            "type": "object",
            "required": ["interface", "rules"],
            "properties": {
                "interface": {
                    "type": "object",
                    "required": ["vrf"],
                    "properties": {"vrf": {"type": "object"}},
                },
                "rules": {"type": "array", "minItems": 1},
            },
        }
    },
}


def config_json_schema() -> dict[str, JSON]:
    """The JSON Schema of the opaque ``parameters`` object (a new dict on every call)."""
    root = _object_schema(NetworkConfig)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "dra.net NetworkConfig",
        "description": "Opaque device configuration (parameters) for the dra.net DRA driver.",
        **root,
    }
