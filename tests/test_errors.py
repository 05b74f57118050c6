import pytest

from dranet_core.errors import (
    ConfigError,
    ConfigIssue,
    DeviceError,
    DranetError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    TemporaryError,
)


def test_protocol_error_is_abstract() -> None:
    with pytest.raises(TypeError, match="abstract"):
        ProtocolError("x")
    err = RemoteProtocolError("frame too large", limit="ttrpc max message size 4194304")
    assert isinstance(err, ProtocolError) and isinstance(err, DranetError)
    assert err.limit == "ttrpc max message size 4194304"
    assert not isinstance(LocalProtocolError("x"), RemoteProtocolError)


def test_config_error_joins_issues_with_paths() -> None:
    issues = [ConfigIssue("interface.mtu", "must be >= 68, got 40"), ConfigIssue("routes[0]", "bad")]
    err = ConfigError(issues)
    assert str(err) == "interface.mtu: must be >= 68, got 40; routes[0]: bad"
    assert not err.temporary
    pre = err.prefixed("config[1].parameters")
    assert [i.path for i in pre.issues] == [
        "config[1].parameters.interface.mtu",
        "config[1].parameters.routes[0]",
    ]


def test_device_error_names_device_and_step() -> None:
    err = DeviceError("eth1", "move", "File exists (EEXIST)", temporary=True)
    assert str(err) == "device eth1: move: File exists (EEXIST)"
    assert err.temporary


def test_temporary_error_delay() -> None:
    err = TemporaryError("api down", delay=2.5)
    assert err.temporary and err.delay == 2.5
