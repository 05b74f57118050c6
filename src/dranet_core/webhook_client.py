"""HTTP to a Go-protocol webhook (``--webhook-url``): one session, one timeout per request.

The URL is ``http(s)://host:port`` or ``unix:///path`` (HTTP over a unix socket). Every call
answers the decoded JSON of a 200 answer; anything else is a :class:`WebhookError` whose
text is ``<METHOD> <url><path>: <what went wrong>`` (the status and the start of the body,
no answer in time, refused, not JSON) and whose ``temporary`` says whether asking again may
help (refused, timed out, 5xx) or not (4xx, an answer that is not JSON).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import aiohttp

__all__ = ["WebhookClient", "WebhookError"]


class WebhookError(Exception):
    """One webhook call failed (module docstring)."""

    def __init__(self, message: str, *, temporary: bool) -> None:
        super().__init__(message)
        self.temporary = temporary


class WebhookClient:
    """Calls to the webhook at ``url``, each bounded by ``request_seconds``."""

    def __init__(self, url: str, *, request_seconds: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.request_seconds = request_seconds
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"WebhookClient({self.url!r})"

    def _client(self) -> tuple[str, aiohttp.ClientSession]:
        unix = self.url.startswith("unix://")
        if self._session is None or self._session.closed:
            connector = aiohttp.UnixConnector(path=self.url[len("unix://") :]) if unix else None
            timeout = aiohttp.ClientTimeout(total=self.request_seconds)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return ("http://webhook" if unix else self.url), self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()

    async def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """``method <url><path>`` with ``body`` as JSON; the decoded answer (module docstring)."""
        base, session = self._client()
        where = f"{method} {self.url}{path}"
        try:
            async with session.request(method, base + path, json=body) as resp:
                text = await resp.text()
                if resp.status != 200:
                    raise WebhookError(
                        f"{where}: HTTP {resp.status}: {text.strip()[:200]}", temporary=resp.status >= 500
                    )
        except TimeoutError:
            raise WebhookError(
                f"{where}: no answer within {self.request_seconds:g}s", temporary=True
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise WebhookError(f"{where}: {exc}", temporary=True) from exc
        try:
            return json.loads(text)
        except ValueError as exc:
            raise WebhookError(f"{where}: the answer is not JSON ({exc})", temporary=False) from exc
