"""The CEL device filter: Go driver expressions, fail-open on errors, non-bool drops."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from dranet_core.errors import SettingsError
from dranet_core.filter import DEFAULT_FILTER, DeviceFilter, attribute_map
from dranet_core.types import AttributeList, Device, Version


def dev(name: str, **attrs: object) -> Device:
    return Device(name=name, attributes={f"dra.net/{k}": v for k, v in attrs.items()})


VETH = dev("veth0", type="veth", ifName="veth0", mtu=1500, virtual=True)
NIC = dev(
    "pci-0000-00-03-0",
    type="device",
    ifName="eth1",
    mtu=9000,
    virtual=False,
    pciVendor="Mellanox Technologies",
)
IB_ONLY = dev("pci-0000-8a-00-0", pciAddress="0000:8a:00.0", rdma=True)


def test_default_filter_drops_veth_keeps_others() -> None:
    f = DeviceFilter.compile(DEFAULT_FILTER)
    assert f.matches(VETH) is False
    assert f.matches(NIC) is True
    assert f.matches(IB_ONLY) is True  # no type at all: kept


def test_empty_filter_keeps_everything() -> None:
    for expr in ("", "   "):
        f = DeviceFilter.compile(expr)
        assert all(f.matches(d) for d in (VETH, NIC, IB_ONLY))


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # unguarded: IB_ONLY has no such attribute, the eval error keeps it (fail-open)
        ('attributes["dra.net/mtu"].IntValue >= 9000', {"pci-0000-00-03-0", "pci-0000-8a-00-0"}),
        ('attributes["dra.net/virtual"].BoolValue == false', {"pci-0000-00-03-0", "pci-0000-8a-00-0"}),
        (
            '"dra.net/pciVendor" in attributes && '
            'attributes["dra.net/pciVendor"].StringValue.contains("Mellanox")',
            {"pci-0000-00-03-0"},
        ),
        (
            '"dra.net/ifName" in attributes && '
            'attributes["dra.net/ifName"].StringValue.matches("^veth[0-9]+$")',
            {"veth0"},
        ),
        ('"dra.net/rdma" in attributes && attributes["dra.net/rdma"].BoolValue', {"pci-0000-8a-00-0"}),
        # unset fields are null, like nil pointers of the Go struct
        ('attributes["dra.net/mtu"].StringValue == null', {"veth0", "pci-0000-00-03-0", "pci-0000-8a-00-0"}),
    ],
)
def test_custom_expressions(expr: str, expected: set[str]) -> None:
    f = DeviceFilter.compile(expr)
    kept = {d.name for d in (VETH, NIC, IB_ONLY) if f.matches(d)}
    assert kept == expected


def test_eval_error_keeps_device_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    f = DeviceFilter.compile('attributes["dra.net/nope"].StringValue == "x"')
    with caplog.at_level(logging.WARNING, logger="dranet_core.filter"):
        assert f.matches(NIC) is True
    assert "evaluation error" in caplog.text and NIC.name in caplog.text


def test_non_bool_result_drops_device(caplog: pytest.LogCaptureFixture) -> None:
    f = DeviceFilter.compile('attributes["dra.net/mtu"].IntValue + 1')
    with caplog.at_level(logging.WARNING, logger="dranet_core.filter"):
        assert f.matches(NIC) is False
    assert "non-bool" in caplog.text


@pytest.mark.parametrize("bad", ["attributes[", '"a" +', "foo(", "&&"])
def test_compile_error_names_expression(bad: str) -> None:
    with pytest.raises(SettingsError) as ei:
        DeviceFilter.compile(bad)
    assert repr(bad) in str(ei.value)


def test_attribute_map_shapes() -> None:
    m = attribute_map(
        {"a/b": True, "a/c": 3, "a/d": "x", "a/e": Version("1.2.3"), "a/f": AttributeList((0, 1))}
    )
    nulls = dict.fromkeys(("StringValue", "IntValue", "BoolValue", "VersionValue"), None)
    nulls.update(dict.fromkeys(("StringValues", "IntValues", "BoolValues", "VersionValues"), None))
    assert m["a/b"] == {**nulls, "BoolValue": True}
    assert m["a/c"]["IntValue"] == 3 and m["a/c"]["BoolValue"] is None
    assert m["a/d"]["StringValue"] == "x"
    assert m["a/e"]["VersionValue"] == "1.2.3"
    assert m["a/f"] == {**nulls, "IntValues": [0, 1]}  # the Go struct's IntValues, as the filter sees it


def test_list_values_usable_as_in_go() -> None:
    d = Device(name="x", attributes={"resource.kubernetes.io/numaNode": AttributeList((1, 0))})
    assert DeviceFilter.compile('0 in attributes["resource.kubernetes.io/numaNode"].IntValues').matches(d)
    assert not DeviceFilter.compile('2 in attributes["resource.kubernetes.io/numaNode"].IntValues').matches(d)
    assert DeviceFilter.compile('attributes["resource.kubernetes.io/numaNode"].IntValues[0] == 1').matches(d)


def test_version_value_usable() -> None:
    d = Device(name="x", attributes={"dra.net/fw": Version("1.2.3")})
    assert DeviceFilter.compile('attributes["dra.net/fw"].VersionValue == "1.2.3"').matches(d)
    assert not DeviceFilter.compile('attributes["dra.net/fw"].VersionValue == "2.0.0"').matches(d)


def test_repr_shows_expression() -> None:
    assert repr(DeviceFilter.compile("true")) == "DeviceFilter('true')"


DEFAULT_CASES = (
    VETH,
    NIC,
    IB_ONLY,
    dev("odd0", type=7),
    dev("odd1", type=True),
    dev("odd2", type=Version("1.0.0")),
    dev("odd3", type="Veth"),
    dev("odd4", type=""),
)


def test_default_filter_in_python_agrees_with_cel() -> None:
    # the default, whitespace aside, runs in Python; the same logic with " && true" through
    # CEL: both must agree on every kind of type value
    native = DeviceFilter.compile(DEFAULT_FILTER)
    spaced = "  " + DEFAULT_FILTER.replace(" ", " \n  ")
    via_cel = DeviceFilter.compile(spaced + " && true")
    assert type(native._program).__name__ == "_DefaultProgram"
    assert type(via_cel._program).__name__ != "_DefaultProgram"
    assert type(DeviceFilter.compile(spaced)._program).__name__ == "_DefaultProgram"
    for device in DEFAULT_CASES:
        assert native.matches(device) is via_cel.matches(device), device.name


def test_default_filter_does_not_load_cel_and_another_does() -> None:
    code = (
        "import sys\n"
        "from dranet_core.filter import DEFAULT_FILTER, DeviceFilter\n"
        "DeviceFilter.compile(DEFAULT_FILTER)\n"
        "print('cel_expr_python' in sys.modules)\n"
        "DeviceFilter.compile('attributes.size() > 0')\n"
        "print('cel_expr_python' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
