"""A fake Kubernetes API server for tests (see README.md in this directory)."""

from .client import make_api_client, make_configuration, write_kubeconfig
from .schema import Cause, validate_claim_status, validate_resource_slice
from .server import FakeApiServer, Fault, RecordedRequest

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
