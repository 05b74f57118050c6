"""A fake Kubernetes API server for tests: an aiohttp app that kubernetes-asyncio talks to.

See ``README.md`` in this package for what it serves and how to drive faults. Needs the
``testing`` extra (aiohttp).
"""

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
