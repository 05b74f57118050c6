"""HTTP to an instance metadata service, every request inside one start-up deadline.

:class:`MetadataClient` sends the requests of one provider's start-up read to ``base`` (the
provider's well-known address, or ``--cloud-metadata-url``). All its requests share one
deadline (``--cloud-metadata-timeout``): each gets what is left of it. Every failure (refused,
timed out, a status other than 200, a body that is not the JSON object expected) is a
:class:`MetadataError` whose text names the request and what went wrong, so a provider can
keep what it read before one request failed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

__all__ = ["MetadataClient", "MetadataError"]


class MetadataError(Exception):
    """One metadata request failed; the text is ``<METHOD> <url>: <reason>``."""


class MetadataClient:
    """Requests to one metadata service within ``seconds`` in total (module docstring)."""

    def __init__(self, session: aiohttp.ClientSession, base: str, seconds: float) -> None:
        self._session = session
        self.base = base.rstrip("/")
        self.seconds = seconds
        self._deadline = time.monotonic() + seconds

    async def text(self, path: str, headers: Mapping[str, str], *, method: str = "GET") -> str:
        """The body of ``method <base><path>`` (stripped); only a 200 answer counts."""
        url = self.base + path
        where = f"{method} {url}"
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise MetadataError(f"{where}: no answer within {self.seconds:g}s")
        try:
            timeout = aiohttp.ClientTimeout(total=left)
            async with self._session.request(method, url, headers=dict(headers), timeout=timeout) as resp:
                body = await resp.text()
                if resp.status != 200:
                    raise MetadataError(f"{where}: HTTP {resp.status}: {body.strip()[:200]}")
        except TimeoutError:
            raise MetadataError(f"{where}: no answer within {self.seconds:g}s") from None
        except (aiohttp.ClientError, OSError, UnicodeDecodeError) as exc:
            raise MetadataError(f"{where}: {exc or type(exc).__name__}") from exc
        return body.strip()

    async def json_object(self, path: str, headers: Mapping[str, str]) -> dict[str, Any]:
        """The JSON object ``GET <base><path>`` answers; anything else is a MetadataError."""
        body = await self.text(path, headers)
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise MetadataError(f"GET {self.base}{path}: the answer is not JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise MetadataError(f"GET {self.base}{path}: the answer is not a JSON object")
        return doc
