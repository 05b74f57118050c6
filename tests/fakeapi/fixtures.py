"""pytest fixtures for the fake API server (imported by ``tests/conftest.py``), from the testing kit."""

from dranet_core.testing.pytest_plugin import fake_api, fake_api_client

__all__ = ["fake_api", "fake_api_client"]
