"""JSON Schemas the metadata tests validate against (jsonschema, draft 7).

* ``CDI_SCHEMA``: the Container Device Interface spec schema as the CDI project publishes it
  (schema/schema.json with the definitions of schema/defs.json inlined), plus the CDI name
  rules of its spec and parser (``kind`` = ``vendor/class``; device names), which the schema
  itself leaves to the parser.
* ``METADATA_SCHEMA``: one object of the device metadata stream, written from the field table
  of the DeviceMetadata type (metadata.resource.k8s.io v1alpha1 = v1beta1): ``metadata`` has only
  name, namespace, uid and generation; attributes are in the ResourceSlice form with exactly
  one value field; ``networkData`` limits (interfaceName <= 256, hardwareAddress <= 128, ips as
  CIDR strings).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import jsonschema

_DEFS: dict[str, Any] = {
    "uint32": {"type": "integer", "minimum": 0, "maximum": 4294967295},
    "int64": {"type": "integer", "minimum": -9223372036854775808, "maximum": 9223372036854775807},
    "ArrayOfStrings": {"type": "array", "items": {"type": "string"}},
    "FileName": {"type": "string"},
    "FilePath": {"type": "string"},
    "Env": {"$ref": "#/definitions/ArrayOfStrings"},
    "mapStringString": {"type": "object", "patternProperties": {".{1,}": {"type": "string"}}},
    "DeviceNode": {
        "type": "object",
        "properties": {
            "path": {"$ref": "#/definitions/FilePath"},
            "hostPath": {"$ref": "#/definitions/FilePath"},
            "permissions": {"type": "string"},
            "type": {"type": "string"},
            "major": {"$ref": "#/definitions/int64"},
            "minor": {"$ref": "#/definitions/int64"},
            "uid": {"$ref": "#/definitions/uint32"},
            "gid": {"$ref": "#/definitions/uint32"},
        },
        "required": ["path"],
    },
    "Mount": {
        "type": "object",
        "properties": {
            "hostPath": {"$ref": "#/definitions/FilePath"},
            "containerPath": {"$ref": "#/definitions/FilePath"},
            "options": {"$ref": "#/definitions/ArrayOfStrings"},
            "type": {"type": "string"},
        },
        "required": ["hostPath", "containerPath"],
    },
    "Hook": {
        "type": "object",
        "properties": {
            "hookName": {"type": "string"},
            "path": {"$ref": "#/definitions/FilePath"},
            "args": {"$ref": "#/definitions/ArrayOfStrings"},
            "env": {"$ref": "#/definitions/ArrayOfStrings"},
            "timeout": {"$ref": "#/definitions/uint32"},
        },
        "required": ["hookName", "path"],
    },
    "containerEdits": {
        "type": "object",
        "properties": {
            "env": {"$ref": "#/definitions/Env"},
            "deviceNodes": {"type": "array", "items": {"$ref": "#/definitions/DeviceNode"}},
            "mounts": {"type": "array", "items": {"$ref": "#/definitions/Mount"}},
            "hooks": {"type": "array", "items": {"$ref": "#/definitions/Hook"}},
            "intelRdt": {
                "type": "object",
                "properties": {
                    "closID": {"$ref": "#/definitions/FileName"},
                    "l3CacheSchema": {"type": "string"},
                    "memBwSchema": {"type": "string"},
                    "enableCMT": {"type": "boolean"},
                    "enableMBM": {"type": "boolean"},
                },
            },
        },
    },
    "annotations": {"$ref": "#/definitions/mapStringString"},
}

CDI_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "description": "Configuration Schema for the Container Device Interface",
    "definitions": _DEFS,
    "type": "object",
    "properties": {
        "cdiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "annotations": {"$ref": "#/definitions/annotations"},
        "devices": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "annotations": {"$ref": "#/definitions/annotations"},
                    "containerEdits": {"$ref": "#/definitions/containerEdits"},
                },
                "required": ["name", "containerEdits"],
                "additionalProperties": False,
            },
        },
        "containerEdits": {"$ref": "#/definitions/containerEdits"},
    },
    "required": ["cdiVersion", "kind", "devices"],
    "additionalProperties": False,
}

# CDI names (spec "kind" rules and pkg/parser): vendor and class start with a letter, end
# alphanumeric, and hold letters, digits, '-', '_', '.'; device names start and end
# alphanumeric and may also hold ':'.
CDI_KIND_PATTERN = r"^[A-Za-z]([A-Za-z0-9_.-]*[A-Za-z0-9])?/[A-Za-z]([A-Za-z0-9_.-]*[A-Za-z0-9])?$"
CDI_DEVICE_NAME_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?$"

_ATTRIBUTE = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
    "properties": {
        "string": {"type": "string", "maxLength": 64},
        "int": {"type": "integer"},
        "bool": {"type": "boolean"},
        "version": {"type": "string", "maxLength": 64},
        "strings": {"type": "array", "items": {"type": "string"}},
        "ints": {"type": "array", "items": {"type": "integer"}},
        "bools": {"type": "array", "items": {"type": "boolean"}},
        "versions": {"type": "array", "items": {"type": "string"}},
    },
}

METADATA_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "requests"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {
            "enum": ["metadata.resource.k8s.io/v1beta1", "metadata.resource.k8s.io/v1alpha1"],
        },
        "kind": {"const": "DeviceMetadata"},
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "namespace", "uid", "generation"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "namespace": {"type": "string", "minLength": 1},
                "uid": {"type": "string", "minLength": 1},
                "generation": {"type": "integer", "minimum": 1},
            },
        },
        "podClaimName": {"type": "string", "minLength": 1},
        "requests": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "devices"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "devices": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["driver", "pool", "name"],
                            "properties": {
                                "driver": {"type": "string", "minLength": 1},
                                "pool": {"type": "string", "minLength": 1},
                                "name": {"type": "string", "minLength": 1},
                                "attributes": {"type": "object", "additionalProperties": _ATTRIBUTE},
                                "networkData": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "properties": {
                                        "interfaceName": {"type": "string", "maxLength": 256},
                                        "ips": {
                                            "type": "array",
                                            "maxItems": 16,
                                            "items": {"type": "string", "format": "cidr"},
                                        },
                                        "hardwareAddress": {"type": "string", "maxLength": 128},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}


def _is_cidr(value: object) -> bool:
    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.ip_interface(value)
    except ValueError:
        return False
    return True


_FORMATS = jsonschema.FormatChecker()
_FORMATS.checks("cidr")(_is_cidr)


def validate_cdi_spec(spec: Any) -> None:
    """Raise jsonschema.ValidationError (or AssertionError for a name) unless ``spec`` is valid CDI."""
    import re

    jsonschema.Draft7Validator(CDI_SCHEMA).validate(spec)
    assert re.match(CDI_KIND_PATTERN, spec["kind"]), spec["kind"]
    for dev in spec["devices"]:
        assert re.match(CDI_DEVICE_NAME_PATTERN, dev["name"]), dev["name"]


def validate_metadata(doc: Any) -> None:
    """Raise jsonschema.ValidationError unless ``doc`` is a valid DeviceMetadata object."""
    jsonschema.Draft7Validator(METADATA_SCHEMA, format_checker=_FORMATS).validate(doc)
