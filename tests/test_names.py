"""Device names: PCI and interface names, the examples of the Go driver, and injectivity."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dranet_core.names import device_name_for_interface, device_name_for_pci, interface_name_for_device
from dranet_core.types import Device, is_dns_label


@pytest.mark.parametrize(
    ("addr", "name"),
    [
        ("0000:8a:00.0", "pci-0000-8a-00-0"),
        ("0000:00:1f.6", "pci-0000-00-1f-6"),
        ("0000:AF:00.7", "pci-0000-af-00-7"),
        ("10000:01:00.1", "pci-10000-01-00-1"),  # VMD domains have 5 hex digits
    ],
)
def test_pci(addr: str, name: str) -> None:
    assert device_name_for_pci(addr) == name


@pytest.mark.parametrize("addr", ["", "8a:00.0", "0000:8a:00", "0000:8a:00.8", "0000-8a-00-0", "00:8a:00.0"])
def test_pci_rejects(addr: str) -> None:
    with pytest.raises(ValueError, match="not a PCI address"):
        device_name_for_pci(addr)


@pytest.mark.parametrize(
    ("ifname", "name"),
    [
        ("eth0", "eth0"),
        ("ens1f0np0", "ens1f0np0"),
        ("a-b", "a-b"),
        # the Go driver's examples
        ("eth:0", "net-mv2gqorq"),
        ("ETH0", "net-ivkeqma"),
        ("eth_int", "net-mv2gqx3jnz2a"),
        # not DNS labels: leading/trailing '-', dots
        ("-eth", "net-fvsxi2a"),
        ("eth0.100", "net-mv2gqmbogeyda"),
    ],
)
def test_interface(ifname: str, name: str) -> None:
    assert device_name_for_interface(ifname) == name
    assert interface_name_for_device(name) == ifname


def test_base32_by_hand() -> None:
    # RFC 4648 base32 written out: 5-bit groups of the bytes, zero-padded, into the alphabet
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    bits = "".join(f"{b:08b}" for b in b"eth:0")
    bits += "0" * (-len(bits) % 5)
    by_hand = "".join(alphabet[int(bits[i : i + 5], 2)] for i in range(0, len(bits), 5))
    assert by_hand == "mv2gqorq"
    assert device_name_for_interface("eth:0") == "net-" + by_hand


@pytest.mark.parametrize("ifname", ["net-a", "net-mv2gqorq", "pci-0000-8a-00-0", "net-", "pci-x"])
def test_reserved_prefixes_are_always_encoded(ifname: str) -> None:
    name = device_name_for_interface(ifname)
    assert name.startswith("net-") and name != ifname
    assert interface_name_for_device(name) == ifname


def test_collision_guard() -> None:
    # Without the guard an interface literally named "net-mv2gqorq" would get the same device
    # name as an interface named "eth:0", and one named "pci-0000-8a-00-0" the PCI device's.
    assert device_name_for_interface("net-mv2gqorq") != device_name_for_interface("eth:0")
    assert device_name_for_interface("pci-0000-8a-00-0") != device_name_for_pci("0000:8a:00.0")


def test_empty_name() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        device_name_for_interface("")


def test_too_long_to_encode() -> None:
    assert len(device_name_for_interface("x" * 35 + "_")) <= 63
    with pytest.raises(ValueError, match="too long"):
        device_name_for_interface("X" * 37)


# "net-ivkeqmb": "ETH0" is "ivkeqma"; a 'b' sets a padding bit, so no name encodes to it
@pytest.mark.parametrize("device", ["pci-0000-8a-00-0", "net-0", "net-ivkeqmb", "Foo", "net-", "net-a1"])
def test_interface_name_for_foreign_devices(device: str) -> None:
    assert interface_name_for_device(device) is None


_ifnames = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=15).filter(
    lambda s: len(s.encode()) <= 15
)


@given(_ifnames)
def test_every_name_is_a_valid_device_name_and_inverts(ifname: str) -> None:
    name = device_name_for_interface(ifname)
    assert is_dns_label(name)
    Device(name=name)  # accepted by the API-level model
    assert interface_name_for_device(name) == ifname


@given(_ifnames, _ifnames)
def test_injective(a: str, b: str) -> None:
    if a != b:
        assert device_name_for_interface(a) != device_name_for_interface(b)


@given(_ifnames)
def test_never_collides_with_pci(ifname: str) -> None:
    assert not device_name_for_interface(ifname).startswith("pci-")


def test_encoding_matches_stdlib_base32() -> None:
    raw = "ÉTH0".encode()
    assert device_name_for_interface("ÉTH0") == "net-" + base64.b32encode(raw).decode().rstrip("=").lower()
