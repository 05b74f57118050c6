"""``--cloud-provider-hint``: which metadata service to read once at start, and how a failure ends.

:func:`fetch_cloud_attributes` reads the hinted provider's instance metadata service once
(``--cloud-metadata-url`` replaces the provider's well-known address, ``--cloud-metadata-timeout``
bounds all of the provider's requests together) and returns the attributes it publishes
(:class:`~dranet_core.cloud.attributes.CloudAttributes`). It never raises: a failure (refused,
timed out, a status other than 200, a body that is not the expected JSON) is one warning
line naming the provider, the request and the reason, and the driver runs on without that
provider's attributes. Hints are case-insensitive; empty and ``NONE`` mean no provider (there
is no auto-detection); an unknown hint is one warning.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from dranet_core.cloud import alibaba, aws, azure, gce, oke
from dranet_core.cloud.attributes import CloudAttributes
from dranet_core.cloud.imds import MetadataClient, MetadataError

__all__ = ["PROVIDERS", "fetch_cloud_attributes"]

log = logging.getLogger("dranet_core.cloud")

Fetch = Callable[[MetadataClient, Path], Awaitable[CloudAttributes]]

PROVIDERS: dict[str, tuple[str, Fetch]] = {
    "gce": (gce.DEFAULT_URL, gce.fetch),
    "aws": (aws.DEFAULT_URL, aws.fetch),
    "azure": (azure.DEFAULT_URL, azure.fetch),
    "oke": (oke.DEFAULT_URL, oke.fetch),
    "alibaba": (alibaba.DEFAULT_URL, alibaba.fetch),
}
"""Lower-case hint -> (the provider's metadata address, how to read it)."""


async def fetch_cloud_attributes(
    hint: str, url: str = "", *, seconds: float = 5.0, sysfs: Path = Path("/sys")
) -> CloudAttributes:
    """Ask the ``hint`` provider's metadata service once; never raises (module docstring)."""
    key = hint.strip().lower()
    if key in ("", "none"):
        return CloudAttributes()
    if key not in PROVIDERS:
        log.warning("--cloud-provider-hint=%s is not supported by this driver: no cloud attributes", hint)
        return CloudAttributes()
    default, fetch = PROVIDERS[key]
    try:
        async with aiohttp.ClientSession() as session:
            found = await fetch(MetadataClient(session, url or default, seconds), sysfs)
    except MetadataError as exc:
        log.warning("cloud provider %s: %s; no cloud attributes", hint, exc)
        return CloudAttributes()
    log.info("cloud provider %s: %s", hint, found)
    return found
