import pytest

from dranet_core.types import Device, Version, validate_qualified_name


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
