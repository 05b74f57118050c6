"""``--cloud-provider-options`` once checked: what the start-up log says about them."""

from __future__ import annotations

import logging

import pytest

from dranet_core.cloud.options import parse_provider_options, warn_unused_options


def test_values_may_hold_commas_and_equals_and_spaces_are_trimmed() -> None:
    assert parse_provider_options(["", " oke.rdma-child-ipv4-cidr = 10.192.0.0/14 "]) == {
        "oke": {"rdma-child-ipv4-cidr": "10.192.0.0/14"}
    }


def test_the_oke_option_on_oke_is_accepted_but_said_to_change_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    options = parse_provider_options(["oke.rdma-child-ipv4-cidr=10.192.0.0/14"])
    with caplog.at_level(logging.WARNING, logger="dranet_core.cloud"):
        warn_unused_options(options, "OKE")
    assert caplog.messages == [
        "--cloud-provider-options: oke.rdma-child-ipv4-cidr=10.192.0.0/14 is accepted but ignored: "
        "it sets the range of the oke-rdma profile, which this driver does not have"
    ]


def test_options_of_another_provider_are_ignored_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    options = parse_provider_options(["oke.rdma-child-ipv4-cidr=10.192.0.0/14"])
    with caplog.at_level(logging.WARNING, logger="dranet_core.cloud"):
        warn_unused_options(options, "NONE")
        warn_unused_options({}, "GCE")
    assert caplog.messages == [
        "--cloud-provider-options: ignoring the oke.* options, because the cloud provider is NONE"
    ]
