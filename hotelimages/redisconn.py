"""The one place Redis clients are made, and URLs made safe to log."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio


def redact_url(url: str) -> str:
    """``url`` with any user name and password replaced by ``***``, for logs and reports."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable redis url>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def async_client(url: str, params: dict[str, Any] | None = None) -> redis.asyncio.Redis:
    """An asyncio client (bytes in, bytes out) for code running on Scrapy's event loop."""
    return redis.asyncio.Redis.from_url(url, **(params or {}))


def sync_client(url: str, params: dict[str, Any] | None = None) -> redis.Redis:
    """A blocking client (bytes in, bytes out) for scripts."""
    return redis.Redis.from_url(url, **(params or {}))
