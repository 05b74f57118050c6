"""The device filter: a CEL expression over a device's attributes, as the Go driver's ``--filter``.

The expression sees one variable, ``attributes``: a map from attribute name to a value object
with the fields of the Kubernetes ``DeviceAttribute`` (``StringValue``, ``IntValue``,
``BoolValue``, ``VersionValue``, and the list fields ``StringValues``, ``IntValues``,
``BoolValues``, ``VersionValues``). Exactly one field is set; the others are ``null``, as the
nil pointers and slices of the Go struct are. So the Go driver's expressions work unchanged::

    attributes["dra.net/type"].StringValue != "veth"
    attributes["dra.net/mtu"].IntValue >= 9000
    "dra.net/pciVendor" in attributes && attributes["dra.net/pciVendor"].StringValue.contains("Mellanox")
    0 in attributes["resource.kubernetes.io/numaNode"].IntValues   # list form (DRAListTypeAttributes)

The filter sees attributes in the form they are published in: a list attribute is a list only
with the ``DRAListTypeAttributes`` feature gate (``--feature-gates``), a scalar otherwise.

Semantics (the Go driver's, ``pkg/filter``):

* ``true`` keeps the device, ``false`` drops it;
* an evaluation error (a missing key, a type mismatch) **keeps** the device and is logged
  (fail-open: a typo must not unpublish a node's NICs);
* a result that is not a bool drops the device (logged);
* an empty expression keeps everything;
* an expression that does not parse is a :class:`~dranet_core.errors.SettingsError` naming
  the expression, raised by :meth:`DeviceFilter.compile`.

The CEL implementation is ``cel-expr-python`` (module ``cel_expr_python.cel``): Google's
C++ CEL runtime, the sibling of the cel-go the Go driver uses, with no Python dependencies
of its own. ``attributes`` is declared a map of string to ``dyn``: an expression is parsed
and its names checked at compile time, and a type error (a ``StringValue`` that is null)
shows up at evaluation, where fail-open keeps the device. It evaluates in ~30 µs.

The default expression (:data:`DEFAULT_FILTER`, whitespace aside) is evaluated in Python with
the same result, and the CEL library is imported only for another expression: a node that
keeps the default does not carry it in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from dranet_core.errors import SettingsError
from dranet_core.types import AttributeList, AttributeValue, Device, Version

__all__ = ["DEFAULT_FILTER", "DeviceFilter", "attribute_map", "uses_cel"]

log = logging.getLogger(__name__)

DEFAULT_FILTER: Final = '!("dra.net/type" in attributes) || attributes["dra.net/type"].StringValue != "veth"'
"""The Go driver's default: drop veths, keep every device without a type (IB-only)."""

_TYPE: Final = "dra.net/type"


class _DefaultProgram:
    """:data:`DEFAULT_FILTER` without CEL: false only for a string ``dra.net/type`` of ``veth``
    (a missing type, or a non-string one whose ``StringValue`` is null, keeps the device)."""

    __slots__ = ()

    def execute(self, context: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> bool:
        value = context["attributes"].get(_TYPE)
        return value is None or value["StringValue"] != "veth"


class _CelProgram:
    """A compiled CEL expression over ``attributes``; :meth:`execute` raises ``ValueError``
    with the runtime's message for an evaluation error (the runtime returns errors as
    values)."""

    __slots__ = ("_cel", "_expr")

    def __init__(self, expression: str) -> None:
        from cel_expr_python import cel  # only for an expression other than the default

        env = cel.NewEnv(variables={"attributes": cel.Type.Map(cel.Type.STRING, cel.Type.DYN)})
        self._cel = cel
        self._expr = env.compile(expression)

    def execute(self, context: Mapping[str, Any]) -> Any:
        result = self._expr.eval(data=context)
        if result.type() == self._cel.Type.ERROR:
            raise ValueError(str(result.value()))
        return result.value()


def _normal(expression: str) -> str:
    return " ".join(expression.split())


def uses_cel(expression: str) -> bool:
    """Whether :meth:`DeviceFilter.compile` needs the CEL library for ``expression`` (neither
    empty nor the default)."""
    return bool(expression.strip()) and _normal(expression) != _normal(DEFAULT_FILTER)


_LIST_FIELDS: Final = {
    "ints": "IntValues",
    "bools": "BoolValues",
    "strings": "StringValues",
    "versions": "VersionValues",
}


def _value_object(value: AttributeValue) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "StringValue": None,
        "IntValue": None,
        "BoolValue": None,
        "VersionValue": None,
        "StringValues": None,
        "IntValues": None,
        "BoolValues": None,
        "VersionValues": None,
    }
    if isinstance(value, AttributeList):
        obj[_LIST_FIELDS[value.kind]] = [v.value if isinstance(v, Version) else v for v in value.items]
    elif isinstance(value, bool):
        obj["BoolValue"] = value
    elif isinstance(value, int):
        obj["IntValue"] = value
    elif isinstance(value, Version):
        obj["VersionValue"] = value.value
    else:
        obj["StringValue"] = value
    return obj


def attribute_map(attributes: Mapping[str, AttributeValue]) -> dict[str, dict[str, Any]]:
    """The ``attributes`` variable for one device: name -> DeviceAttribute-like map."""
    return {name: _value_object(v) for name, v in attributes.items()}


class DeviceFilter:
    """A compiled device filter. Build with :meth:`compile`; ask with :meth:`matches`."""

    __slots__ = ("_program", "expression")

    def __init__(self, expression: str, program: Any) -> None:
        self.expression = expression
        self._program = program

    @classmethod
    def compile(cls, expression: str) -> DeviceFilter:
        """Compile ``expression``; an empty (or blank) one matches every device.

        Raises :class:`SettingsError` naming the expression if it does not parse.
        """
        if not expression.strip():
            return cls("", None)
        if not uses_cel(expression):
            return cls(expression, _DefaultProgram())
        try:
            program = _CelProgram(expression)
        except (ValueError, RuntimeError) as exc:
            reason = str(exc).removeprefix("INVALID_ARGUMENT: ").strip()
            raise SettingsError(f"filter: invalid CEL expression {expression!r}: {reason}") from exc
        return cls(expression, program)

    def matches(self, device: Device) -> bool:
        """Whether ``device`` passes the filter (see the module docstring for the rules)."""
        if self._program is None:
            return True
        try:
            result = self._program.execute({"attributes": attribute_map(device.attributes)})
        except Exception as exc:  # an error value of the runtime (ValueError), or its own failure
            log.warning(
                "filter %r: evaluation error on device %s, keeping it: %s", self.expression, device.name, exc
            )
            return True
        if not isinstance(result, bool):
            log.warning(
                "filter %r: non-bool result %r on device %s, dropping it",
                self.expression,
                result,
                device.name,
            )
            return False
        return result

    def __repr__(self) -> str:
        return f"DeviceFilter({self.expression!r})"
