"""The sriov facet survives the checkpoint's JSON round trip; bad facets are named errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dranet_backends.sriov import SriovFacet

_opt_int = st.none() | st.integers(min_value=0, max_value=2**31)
_opt_str = st.none() | st.text(min_size=1, max_size=20)

facets = st.builds(
    SriovFacet,
    pci_address=st.from_regex(r"\A[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\Z"),
    driver=st.sampled_from(["vfio-pci", "uio_pci_generic", "igb_uio"]),
    iommu_group=_opt_int,
    pf=_opt_str,
    vf_index=_opt_int,
    pf_ifname=_opt_str,
    uio=st.lists(st.from_regex(r"\Auio[0-9]{1,3}\Z"), max_size=3).map(tuple),
)


@given(facets)
def test_round_trip_through_json(facet: SriovFacet) -> None:
    data = json.loads(json.dumps(facet.to_json()))
    assert SriovFacet.from_json(data) == facet
    assert SriovFacet.from_json({**data, "future_key": 1}) == facet  # unknown keys are ignored


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected an object, got list"),
        ({"driver": "vfio-pci"}, "missing or bad key 'pci_address'"),
        ({"pci_address": "0000:00:03.1"}, "missing or bad key 'driver'"),
        ({"pci_address": "0000:00:03.1", "driver": "vfio-pci", "iommu_group": "12"}, "iommu_group must be"),
        ({"pci_address": "0000:00:03.1", "driver": "vfio-pci", "iommu_group": True}, "iommu_group must be"),
        ({"pci_address": "0000:00:03.1", "driver": "vfio-pci", "pf": 3}, "pf must be a string"),
        ({"pci_address": "0000:00:03.1", "driver": "igb_uio", "uio": "uio0"}, "uio must be a list"),
    ],
)
def test_bad_facets_are_rejected_naming_the_key(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SriovFacet.from_json(data)
