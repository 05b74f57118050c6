"""Build kubernetes-asyncio clients (or a kubeconfig file) that talk to the fake API server."""

from __future__ import annotations

from pathlib import Path

import yaml
from kubernetes_asyncio.client import ApiClient, Configuration


def make_configuration(url: str) -> Configuration:
    """A client Configuration for ``url`` (plain HTTP, no auth, quick retries)."""
    cfg = Configuration(host=url)
    cfg.verify_ssl = False
    return cfg


def make_api_client(url: str) -> ApiClient:
    """A kubernetes-asyncio ``ApiClient`` for the fake at ``url``; the caller closes it."""
    return ApiClient(configuration=make_configuration(url))


def write_kubeconfig(path: Path, url: str, *, context: str = "fake") -> Path:
    """Write a kubeconfig pointing at ``url`` (for code that loads one) and return its path."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": url}}],
        "users": [{"name": context, "user": {"token": "fake-token"}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }
    path.write_text(yaml.safe_dump(doc))
    return path
