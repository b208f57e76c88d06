"""The one place Redis clients are made, and URLs made safe to log.

Connection settings are read as scrapy-redis reads them (``scrapy_redis.connection``):
``REDIS_URL`` if set, else ``REDIS_HOST``/``REDIS_PORT``/``REDIS_DB``; ``REDIS_PARAMS`` are extra
client arguments over scrapy-redis's own defaults and ours (``defaults.REDIS_PARAMS``);
``REDIS_ENCODING`` and ``REDIS_DECODE_RESPONSES`` as in scrapy-redis. With none of the URL,
host, port or database set, ``defaults.REDIS_URL`` is used. ``redis_target`` resolves the
settings once into a ``RedisTarget``; ``sync_client`` and ``async_client`` build a blocking
or an asyncio client from that same target through ``scrapy_redis.connection.get_redis``, so
the node's asyncio clients and the scripts' blocking ones always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import redis
import redis.asyncio
from scrapy.settings import BaseSettings
from scrapy_redis import connection as scrapy_redis_connection
from scrapy_redis import defaults as scrapy_redis_defaults

from hotelimages import defaults

#: Settings that name the server (any of them set means defaults.REDIS_URL is not used).
_SERVER_SETTINGS = ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_DB")
#: Query parameters of a Redis URL whose values are never shown (``?password=``, and look-alikes).
_SECRET_PARAM_WORDS = ("pass", "pwd", "secret", "token", "key", "auth", "user", "cred")


@dataclass(frozen=True)
class RedisTarget:
    """Where and how to connect: a URL (may be empty when host and port say it) and client arguments."""

    url: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The server, fit for a log line (no password)."""
        if self.url:
            return redact_url(self.url)
        p = self.params
        return f"redis://{p.get('host', 'localhost')}:{p.get('port', 6379)}/{p.get('db', 0)}"


class _Recorded:
    """Stands in for a client class so that scrapy-redis's resolution hands back its arguments."""

    def __init__(self, url: str = "", **params: Any):
        self.url = url
        self.params = params

    @classmethod
    def from_url(cls, url: str, **params: Any) -> _Recorded:
        return cls(url, **params)


def redis_target(settings: Any) -> RedisTarget:
    """Resolve Scrapy settings (or a plain dict of them) into a ``RedisTarget``, as scrapy-redis does."""
    if not hasattr(settings, "getdict"):
        settings = BaseSettings(dict(settings))
    own = settings.getdict("REDIS_PARAMS")
    view = BaseSettings({name: settings.get(name) for name in scrapy_redis_connection.SETTINGS_PARAMS_MAP})
    if not any(settings.get(name) for name in _SERVER_SETTINGS):
        view.set("REDIS_URL", defaults.REDIS_URL)
    view.set("REDIS_PARAMS", {**defaults.REDIS_PARAMS, **own, "redis_cls": _Recorded})
    recorded = scrapy_redis_connection.get_redis_from_settings(view)
    params = dict(recorded.params)
    if "retry_on_timeout" not in own and params.get("retry_on_timeout") == scrapy_redis_defaults.REDIS_PARAMS.get(
        "retry_on_timeout"
    ):
        # scrapy-redis's default; redis-py >= 6 retries timeouts anyway and warns about the argument.
        params.pop("retry_on_timeout", None)
    return RedisTarget(str(recorded.url or ""), params)


def url_target(url: str, params: dict[str, Any] | None = None) -> RedisTarget:
    """A ``RedisTarget`` for a URL given on a command line, with ``defaults.REDIS_PARAMS`` unless ``params``."""
    return redis_target({"REDIS_URL": url, "REDIS_PARAMS": dict(defaults.REDIS_PARAMS if params is None else params)})


def _client(cls: type, target: RedisTarget) -> Any:
    return scrapy_redis_connection.get_redis(redis_cls=cls, url=target.url or None, **target.params)


def async_client(target: RedisTarget | str, params: dict[str, Any] | None = None) -> redis.asyncio.Redis:
    """An asyncio client (bytes in, bytes out unless REDIS_DECODE_RESPONSES) for code on Scrapy's event loop."""
    if isinstance(target, str):
        target = url_target(target, params)
    return _client(redis.asyncio.Redis, target)


def sync_client(target: RedisTarget | str, params: dict[str, Any] | None = None) -> redis.Redis:
    """A blocking client (bytes in, bytes out unless REDIS_DECODE_RESPONSES) for scripts."""
    if isinstance(target, str):
        target = url_target(target, params)
    return _client(redis.Redis, target)


def _secret_param(name: str) -> bool:
    name = name.lower()
    return any(word in name for word in _SECRET_PARAM_WORDS)


def redact_url(url: str) -> str:
    """``url`` made fit for logs and reports: no user name or password, in either form.

    ``user:password@`` becomes ``***@``, and the value of a query parameter such as
    ``?password=...`` (which redis-py accepts, and the ``unix://`` form needs) becomes ``***``.
    A string that is not a URL (say ``user:pw@host:6379`` without a scheme) keeps only what
    follows its last ``@``.
    """
    text = str(url)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or not parts.scheme or "://" not in text:
        head, at, tail = text.rpartition("@")
        tail = tail.split("?", 1)[0] + ("?***" if "?" in tail else "")
        return f"***@{tail}" if at else tail
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = "&".join(f"{k}=***" if _secret_param(k) else f"{k}={v}" for k, v in pairs)
    # Not urlunsplit: it drops the "//" of "unix:///path" when there is no netloc.
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "") + (
        f"#{parts.fragment}" if parts.fragment else "")
