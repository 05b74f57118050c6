"""The fake Kubernetes API server, from the testing kit (:mod:`dranet_core.testing.fakeapi`)."""

from dranet_core.testing.fakeapi import (
    Cause,
    FakeApiServer,
    Fault,
    RecordedRequest,
    make_api_client,
    make_configuration,
    validate_claim_status,
    validate_resource_slice,
    write_kubeconfig,
)

__all__ = [
    "Cause",
    "FakeApiServer",
    "Fault",
    "RecordedRequest",
    "make_api_client",
    "make_configuration",
    "validate_claim_status",
    "validate_resource_slice",
    "write_kubeconfig",
]
