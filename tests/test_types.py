import pytest

from dranet_core.types import (
    AttributeList,
    Device,
    Version,
    attribute_from_json,
    attribute_json,
    scalar_form,
    validate_qualified_name,
)


@pytest.mark.parametrize(
    "name",
    ["dra.net/ifName", "resource.kubernetes.io/pcieRoot", "ifName", "dra.net/" + "a" * 32, "_x"],
)
def test_valid_qualified_names(name: str) -> None:
    validate_qualified_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "dra.net/",
        "/ifName",
        "Dra.Net/ifName",
        "dra.net/if-name",
        "dra.net/" + "a" * 33,
        "1abc",
        "a" * 64 + ".net/x",
    ],
)
def test_invalid_qualified_names(name: str) -> None:
    with pytest.raises(ValueError, match="attribute name"):
        validate_qualified_name(name)


def test_string_attribute_limit() -> None:
    Device(name="eth0", attributes={"dra.net/alias": "x" * 64})
    with pytest.raises(ValueError, match="longer than 64"):
        Device(name="eth0", attributes={"dra.net/alias": "x" * 65})


def test_attribute_count_limit() -> None:
    attrs = {f"dra.net/a{i}": i for i in range(30)}
    Device(name="eth0", attributes=attrs, capacity={"dra.net/c0": "1", "dra.net/c1": "2"})
    with pytest.raises(ValueError, match="exceed the limit of 32"):
        Device(name="eth0", attributes=attrs, capacity={f"dra.net/c{i}": "1" for i in range(3)})


@pytest.mark.parametrize("name", ["eth0", "pci-0000-8a-00-0", "net-mv2gqorq"])
def test_device_names_ok(name: str) -> None:
    assert Device(name=name).name == name


@pytest.mark.parametrize("name", ["ETH0", "eth_0", "-eth0", "a" * 64, ""])
def test_device_names_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="DNS label"):
        Device(name=name)


def test_version_is_semver() -> None:
    assert str(Version("1.2.3-rc.1+build.5")) == "1.2.3-rc.1+build.5"
    with pytest.raises(ValueError, match="semver"):
        Version("1.2")


def test_merged_device_unions_facets_other_wins() -> None:
    a = Device(
        name="pci-0000-01-00-0",
        attributes={"dra.net/rdma": False, "dra.net/ifName": "eth1"},
        facets={"netdev": {"ifindex": 3}},
    )
    b = Device(name="pci-0000-01-00-0", attributes={"dra.net/rdma": True}, facets={"rdma": {"dev": "mlx5_0"}})
    m = a.merged(b)
    assert m.attributes == {"dra.net/rdma": True, "dra.net/ifName": "eth1"}
    assert set(m.facets) == {"netdev", "rdma"}
    with pytest.raises(ValueError, match="cannot merge"):
        a.merged(Device(name="other"))


@pytest.mark.parametrize(
    ("value", "body"),
    [
        (AttributeList((1, 0)), {"ints": [1, 0]}),
        (AttributeList((True, False)), {"bools": [True, False]}),
        (AttributeList(("a", "b")), {"strings": ["a", "b"]}),
        (AttributeList((Version("1.0.0"),)), {"versions": ["1.0.0"]}),
        (True, {"bool": True}),
        (3, {"int": 3}),
        ("x", {"string": "x"}),
        (Version("1.2.3"), {"version": "1.2.3"}),
    ],
)
def test_attribute_json_round_trip(value: object, body: dict[str, object]) -> None:
    assert attribute_json(value) == body  # type: ignore[arg-type]
    back = attribute_from_json(body)
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize(
    "items",
    [(), (1, "a"), (1, True), ("x" * 65,), (1.5,)],
    ids=["empty", "mixed", "int-bool", "long", "float"],
)
def test_a_list_attribute_is_non_empty_of_one_kind(items: tuple[object, ...]) -> None:
    with pytest.raises(ValueError, match="list attribute"):
        AttributeList(items)  # type: ignore[arg-type]


def test_list_kinds_are_not_equal_across_types_and_the_first_item_is_the_scalar_form() -> None:
    assert AttributeList((1,)) != AttributeList((True,))
    assert scalar_form(AttributeList((2, 0, 1))) == 2 and scalar_form(7) == 7
    assert str(AttributeList((True, False))) == "true,false"


@pytest.mark.parametrize(
    "raw", [{"ints": [1, "a"]}, {"ints": 1}, {"ints": []}, {"floats": [1.0]}, {"int": 1, "ints": [1]}]
)
def test_a_bad_json_attribute_is_a_value_error(raw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        attribute_from_json(raw)


def test_at_most_48_attribute_values_per_device_counting_list_items() -> None:
    Device(name="d", attributes={"dra.net/a": AttributeList(range(47)), "dra.net/b": 1})
    with pytest.raises(ValueError, match="49 attribute values exceed the limit of 48"):
        Device(name="d", attributes={"dra.net/a": AttributeList(range(48)), "dra.net/b": 1})
