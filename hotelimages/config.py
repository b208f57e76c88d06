"""Typed, validated view of hotelimages' settings, read in one place.

Components call ``HotelsConfig.from_settings(crawler.settings)``; a bad value
raises ``ValueError`` naming the setting and the value.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hotelimages import defaults
from hotelimages.activehours import Schedule, parse_active_hours, parse_bytes_per_sec
from hotelimages.keys import Keys
from hotelimages.redisconn import RedisTarget, redact_url, redis_target

#: Settings that an environment variable of the same name overrides (see settings.py).
#: The settings a node also reads from its environment (and so from ``--env-file``): where the queue,
#: the listings and the store are, the node's name, and what the owner of a lent PC limits.
ENV_SETTINGS = ("REDIS_URL", "HOTELS_REDIS_KEY", "HOTEL_LISTING_URL", "IMAGES_STORE", "NODE_ID",
                "HOTELS_MAX_BYTES_PER_SEC", "HOTELS_ACTIVE_HOURS")
#: Values of HOTELS_IMAGE_FETCHER (see defaults.py).
IMAGE_FETCHERS = ("direct", "scrapy")
#: Values of HOTELS_BREAKER_MODE (see defaults.py).
BREAKER_MODES = ("wait", "exit")
#: Values of HOTELS_UNKNOWN_SETTINGS (see defaults.py).
UNKNOWN_SETTINGS_MODES = ("error", "warn")
#: Environment variables that only the scripts read, and that are not settings (status --serve's password).
SCRIPT_ENV = ("HOTELS_CONSOLE_PASSWORD",)
#: Prefixes of our own setting names: any unknown name with one of them is a mistake.
OUR_PREFIXES = ("HOTELS_", "HOTEL_")
#: How alike (difflib ratio) an unknown name must be to a known one to count as a misspelling.
CLOSE_MATCH_CUTOFF = 0.85
#: Settings of Scrapy's media pipelines and of scrapy-redis that are not in Scrapy's default settings.
_OTHER_KNOWN = (
    "IMAGES_EXPIRES", "IMAGES_MIN_HEIGHT", "IMAGES_MIN_WIDTH", "IMAGES_RESULT_FIELD", "IMAGES_THUMBS",
    "IMAGES_URLS_FIELD", "FILES_EXPIRES", "FILES_RESULT_FIELD", "FILES_URLS_FIELD", "MEDIA_ALLOW_REDIRECTS",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION_NAME",
    "AWS_USE_SSL", "AWS_VERIFY", "GCS_PROJECT_ID", "FTP_USER", "FTP_PASSWORD", "FEED_STORAGE_FTP_ACTIVE",
    "REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_DB", "REDIS_PARAMS", "REDIS_ENCODING",
    "REDIS_DECODE_RESPONSES", "REDIS_START_URLS_KEY", "REDIS_START_URLS_AS_SET", "REDIS_START_URLS_AS_ZSET",
    "REDIS_ITEMS_KEY", "REDIS_ITEMS_SERIALIZER", "SCHEDULER_PERSIST", "SCHEDULER_FLUSH_ON_START",
    "SCHEDULER_IDLE_BEFORE_CLOSE", "SCHEDULER_QUEUE_KEY", "SCHEDULER_QUEUE_CLASS", "SCHEDULER_DUPEFILTER_KEY",
    "SCHEDULER_DUPEFILTER_CLASS", "DUPEFILTER_DEBUG", "DUPEFILTER_KEY", "STATS_KEY",
)


@functools.cache
def our_setting_names() -> frozenset[str]:
    """The names of hotelimages' own settings (everything in defaults.py)."""
    return frozenset(name for name in vars(defaults) if name.isupper())


@functools.cache
def known_setting_names() -> frozenset[str]:
    """Every setting name a node understands: ours, this project's Scrapy settings, Scrapy's and scrapy-redis's."""
    from scrapy.settings import default_settings  # noqa: PLC0415 - only needed here

    from hotelimages import settings as project_settings  # noqa: PLC0415 - reads the environment

    names = set(our_setting_names()) | set(_OTHER_KNOWN)
    for module in (default_settings, project_settings):
        names.update(name for name in vars(module) if name.isupper())
    return frozenset(names)


@dataclass(frozen=True)
class UnknownSetting:
    """A setting or environment variable name that a node would ignore, and the known name it is like."""

    name: str
    suggestion: str | None
    #: ``setting`` or ``environment variable``
    kind: str = "setting"

    def message(self) -> str:
        """``unknown setting X; did you mean Y?``"""
        if self.kind == "environment variable" and self.suggestion == self.name:
            return (f"environment variable {self.name} is not read by a node; give the node the same value "
                    f"as a setting (-s {self.name}=... or in the scrapyd job)")
        text = f"unknown {self.kind} {self.name}"
        return f"{text}; did you mean {self.suggestion}?" if self.suggestion else f"{text} (not a setting of ours)"


def _closest(name: str, candidates: Iterable[str], cutoff: float) -> str | None:
    found = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=cutoff)
    return found[0] if found else None


def unknown_settings(names: Iterable[str]) -> list[UnknownSetting]:
    """The setting names among ``names`` that look like ours or like a known setting but are not known.

    A name is flagged if it starts with ``HOTELS_``/``HOTEL_``, or if difflib finds a known name
    at least ``CLOSE_MATCH_CUTOFF`` alike; other unknown names (a middleware's own) pass.
    """
    known, ours = known_setting_names(), our_setting_names()
    found = []
    for name in names:
        if name in known:
            continue
        if name.startswith(OUR_PREFIXES):
            found.append(UnknownSetting(name, _closest(name, ours, 0.6)))
            continue
        close = _closest(name, known, CLOSE_MATCH_CUTOFF)
        if close:
            found.append(UnknownSetting(name, close))
    return found


def unknown_environment(environ: Mapping[str, str], settings: Any = None) -> list[UnknownSetting]:
    """Environment variables that look meant for a node but that it does not read.

    A node reads only ``ENV_SETTINGS`` from the environment: ``IMAGE_STORE`` or
    ``HOTEL_LISTING_ULR`` (alike to one of those), or any other ``HOTELS_*`` name, is flagged.
    A setting such as ``HOTELS_KEY_PREFIX`` that the scripts read from the environment but a node
    does not is flagged only if the node's setting (from ``settings``) has another value.
    """
    read = set(ENV_SETTINGS) | set(SCRIPT_ENV)
    found = []
    for name in sorted(environ):
        if name in read:
            continue
        if name in our_setting_names():
            if settings is not None and str(_get(settings, name)) == str(environ[name]):
                continue
            found.append(UnknownSetting(name, name, "environment variable"))
        elif name.startswith(OUR_PREFIXES):
            found.append(UnknownSetting(name, _closest(name, read | our_setting_names(), 0.6), "environment variable"))
        else:
            close = _closest(name, read, CLOSE_MATCH_CUTOFF)
            if close:
                found.append(UnknownSetting(name, close, "environment variable"))
    return found


def user_setting_names(settings: Any) -> list[str]:
    """Names of the settings given by the project, the command line or a scrapyd job (not Scrapy's defaults)."""
    from scrapy.settings import SETTINGS_PRIORITIES  # noqa: PLC0415 - only needed here

    if not hasattr(settings, "getpriority"):
        return list(settings)
    return [name for name in settings.attributes if settings.getpriority(name) >= SETTINGS_PRIORITIES["project"]]


def check_names(settings: Any, environ: Mapping[str, str] | None = None) -> tuple[list[str], list[str]]:
    """(errors, warnings): unknown settings (and environment variables), per HOTELS_UNKNOWN_SETTINGS."""
    mode = str(_get(settings, "HOTELS_UNKNOWN_SETTINGS")).strip().lower()
    if mode not in UNKNOWN_SETTINGS_MODES:
        return [f"setting HOTELS_UNKNOWN_SETTINGS must be one of {', '.join(UNKNOWN_SETTINGS_MODES)}, "
                f"got {mode!r}"], []
    found = unknown_settings(user_setting_names(settings))
    if environ is not None:
        found += unknown_environment(environ, settings)
    messages = [u.message() for u in found]
    if mode == "warn":
        return [], messages
    return [m + " (HOTELS_UNKNOWN_SETTINGS=warn makes this a warning)" for m in messages], []


def check_redis_url(url: str) -> None:
    """Raise ValueError (showing the URL without its password) unless ``url`` is a Redis URL redis-py takes."""
    if not url:
        return
    problem = ""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        problem = f" ({exc})"
        parts = None
    if parts is None or parts.scheme not in ("redis", "rediss", "unix") or "://" not in url:
        raise ValueError(
            f"setting REDIS_URL must look like redis://[:password@]host:6379/0 (or rediss://, unix:///path)"
            f"{problem}, got {redact_url(url)!r}"
        )


def env_overrides(environ: dict[str, str] | os._Environ) -> dict[str, str]:
    """The settings that the environment sets, for ``settings.py``."""
    return {name: environ[name] for name in ENV_SETTINGS if environ.get(name)}


def _get(settings: Any, name: str) -> Any:
    value = settings.get(name)
    return getattr(defaults, name) if value is None else value


def _int(settings: Any, name: str, minimum: int = 0) -> int:
    raw = _get(settings, name)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"setting {name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"setting {name} must be >= {minimum}, got {value}")
    return value


def _float(settings: Any, name: str, minimum: float = 0.0) -> float:
    raw = _get(settings, name)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"setting {name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ValueError(f"setting {name} must be >= {minimum}, got {value}")
    return value


def _bool(settings: Any, name: str) -> bool:
    raw = _get(settings, name)
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"setting {name} must be a boolean, got {raw!r}")


def _list(settings: Any, name: str) -> list[str]:
    raw = _get(settings, name)
    if isinstance(raw, str):
        raw = [part for part in re.split(r"[,\s]+", raw) if part]
    return [str(x) for x in raw]


def _pattern(settings: Any, name: str) -> str:
    raw = str(_get(settings, name))
    try:
        re.compile(raw)
    except re.error as exc:
        raise ValueError(f"setting {name} is not a valid regular expression ({exc}): {raw!r}") from None
    return raw


def _formats(settings: Any, name: str) -> tuple[str, ...]:
    from PIL import Image  # noqa: PLC0415 - only needed here

    Image.init()
    formats = tuple(f.upper() for f in _list(settings, name))
    unknown = [f for f in formats if f not in Image.OPEN]
    if unknown or not formats:
        shown = unknown or formats
        raise ValueError(f"setting {name} must name Pillow formats (e.g. JPEG, PNG, WEBP, GIF), got {shown}")
    return formats


@dataclass(frozen=True)
class HotelsConfig:
    """All of hotelimages' own settings for one process."""

    #: The Redis server and client arguments, resolved as scrapy-redis does (see ``redisconn``).
    redis: RedisTarget = field(default_factory=RedisTarget)
    keys: Keys = field(default_factory=Keys)
    listing_url: str = ""
    node_id: str = ""
    id_pattern: str = defaults.HOTELS_ID_PATTERN
    image_id_pattern: str = defaults.HOTELS_IMAGE_ID_PATTERN
    categories: tuple[str, ...] = tuple(defaults.HOTELS_CATEGORIES)
    other_category: str = defaults.HOTELS_OTHER_CATEGORY
    shard_depth: int = defaults.HOTELS_SHARD_DEPTH
    claim_batch: int = defaults.HOTELS_CLAIM_BATCH
    max_in_flight: int = defaults.HOTELS_MAX_IN_FLIGHT
    lease_seconds: int = defaults.HOTELS_LEASE_SECONDS
    heartbeat_seconds: float = defaults.HOTELS_HEARTBEAT_SECONDS
    idle_close_seconds: float = defaults.HOTELS_IDLE_CLOSE_SECONDS
    poll_seconds: float = defaults.HOTELS_POLL_SECONDS
    stop_grace_seconds: float = defaults.HOTELS_STOP_GRACE_SECONDS
    force: bool = defaults.HOTELS_FORCE
    max_listing_pages: int = defaults.HOTELS_MAX_LISTING_PAGES
    max_images: int = defaults.HOTELS_MAX_IMAGES
    allowed_formats: tuple[str, ...] = tuple(defaults.HOTELS_ALLOWED_FORMATS)
    full_decode: bool = defaults.HOTELS_FULL_DECODE
    max_image_pixels: int = defaults.HOTELS_MAX_IMAGE_PIXELS
    image_hosts: tuple[str, ...] = ()
    fsync: bool = defaults.HOTELS_FSYNC
    write_threads: int = defaults.HOTELS_WRITE_THREADS
    image_fetcher: str = defaults.HOTELS_IMAGE_FETCHER
    gc_threshold: int = defaults.HOTELS_GC_THRESHOLD
    progress_interval: float = defaults.HOTELS_PROGRESS_INTERVAL
    progress_history_length: int = defaults.HOTELS_PROGRESS_HISTORY_LENGTH
    progress_history_ttl: int = defaults.HOTELS_PROGRESS_HISTORY_TTL
    breaker_mode: str = defaults.HOTELS_BREAKER_MODE
    breaker_threshold: int = defaults.HOTELS_BREAKER_THRESHOLD
    breaker_same_failures: int = defaults.HOTELS_BREAKER_SAME_FAILURES
    breaker_wait_seconds: float = defaults.HOTELS_BREAKER_WAIT_SECONDS
    breaker_max_wait_seconds: float = defaults.HOTELS_BREAKER_MAX_WAIT_SECONDS
    rename_attempts: int = defaults.HOTELS_RENAME_ATTEMPTS
    max_bytes_per_sec: int = 0
    active_hours: Schedule = field(default_factory=Schedule)
    control_seconds: float = defaults.HOTELS_CONTROL_SECONDS
    store: str = ""
    require_listing_url: bool = defaults.HOTELS_REQUIRE_LISTING_URL
    store_min_free_mb: int = defaults.HOTELS_STORE_MIN_FREE_MB
    redis_full_manifests: bool = defaults.HOTELS_REDIS_FULL_MANIFESTS

    @classmethod
    def from_settings(cls, settings: Any) -> HotelsConfig:
        """Read and check every setting; raises ValueError naming a bad one."""
        listing_url = str(_get(settings, "HOTEL_LISTING_URL") or "")
        if listing_url and "{hotel_id}" not in listing_url:
            raise ValueError(f"setting HOTEL_LISTING_URL must contain {{hotel_id}}, got {listing_url!r}")
        categories = tuple(_list(settings, "HOTELS_CATEGORIES"))
        for name in (*categories, str(_get(settings, "HOTELS_OTHER_CATEGORY"))):
            if not re.fullmatch(r"[a-z0-9_-]{1,32}", name):
                raise ValueError(f"setting HOTELS_CATEGORIES/HOTELS_OTHER_CATEGORY: bad category name {name!r}")
        depth = _int(settings, "HOTELS_SHARD_DEPTH")
        if depth > 40:
            raise ValueError(f"setting HOTELS_SHARD_DEPTH must be <= 40, got {depth}")
        lease = _int(settings, "HOTELS_LEASE_SECONDS", 1)
        heartbeat = _float(settings, "HOTELS_HEARTBEAT_SECONDS", 0.1)
        if heartbeat >= lease:
            raise ValueError(
                f"setting HOTELS_HEARTBEAT_SECONDS ({heartbeat}) must be below HOTELS_LEASE_SECONDS ({lease})"
            )
        image_fetcher = str(_get(settings, "HOTELS_IMAGE_FETCHER")).strip().lower()
        if image_fetcher not in IMAGE_FETCHERS:
            raise ValueError(f"setting HOTELS_IMAGE_FETCHER must be one of {', '.join(IMAGE_FETCHERS)}, "
                             f"got {image_fetcher!r}")
        breaker_mode = str(_get(settings, "HOTELS_BREAKER_MODE")).strip().lower()
        if breaker_mode not in BREAKER_MODES:
            raise ValueError(f"setting HOTELS_BREAKER_MODE must be one of {', '.join(BREAKER_MODES)}, "
                             f"got {breaker_mode!r}")
        FetchOptions.from_settings(settings)  # a bad fetcher setting stops the node at start
        target = redis_target(settings)
        check_redis_url(target.url)
        from hotelimages.politeness import GatePolicy  # noqa: PLC0415 - it reads settings through this module

        GatePolicy.from_settings(settings)  # a bad budget stops the node at start
        return cls(
            redis=target,
            keys=Keys(str(_get(settings, "HOTELS_KEY_PREFIX")), str(_get(settings, "HOTELS_REDIS_KEY"))),
            listing_url=listing_url,
            node_id=str(_get(settings, "NODE_ID") or defaults.default_node_id()),
            id_pattern=_pattern(settings, "HOTELS_ID_PATTERN"),
            image_id_pattern=_pattern(settings, "HOTELS_IMAGE_ID_PATTERN"),
            categories=categories,
            other_category=str(_get(settings, "HOTELS_OTHER_CATEGORY")),
            shard_depth=depth,
            claim_batch=_int(settings, "HOTELS_CLAIM_BATCH", 1),
            max_in_flight=_int(settings, "HOTELS_MAX_IN_FLIGHT", 1),
            lease_seconds=lease,
            heartbeat_seconds=heartbeat,
            idle_close_seconds=_float(settings, "HOTELS_IDLE_CLOSE_SECONDS"),
            poll_seconds=_float(settings, "HOTELS_POLL_SECONDS", 0.01),
            stop_grace_seconds=_float(settings, "HOTELS_STOP_GRACE_SECONDS"),
            force=_bool(settings, "HOTELS_FORCE"),
            max_listing_pages=_int(settings, "HOTELS_MAX_LISTING_PAGES", 1),
            max_images=_int(settings, "HOTELS_MAX_IMAGES", 1),
            allowed_formats=_formats(settings, "HOTELS_ALLOWED_FORMATS"),
            full_decode=_bool(settings, "HOTELS_FULL_DECODE"),
            max_image_pixels=_int(settings, "HOTELS_MAX_IMAGE_PIXELS", 1),
            image_hosts=tuple(h.lower() for h in _list(settings, "HOTELS_IMAGE_HOSTS")),
            fsync=_bool(settings, "HOTELS_FSYNC"),
            write_threads=_int(settings, "HOTELS_WRITE_THREADS"),
            image_fetcher=image_fetcher,
            gc_threshold=_int(settings, "HOTELS_GC_THRESHOLD"),
            progress_interval=_float(settings, "HOTELS_PROGRESS_INTERVAL"),
            progress_history_length=_int(settings, "HOTELS_PROGRESS_HISTORY_LENGTH", 1),
            progress_history_ttl=_int(settings, "HOTELS_PROGRESS_HISTORY_TTL", 1),
            breaker_mode=breaker_mode,
            breaker_threshold=_int(settings, "HOTELS_BREAKER_THRESHOLD"),
            breaker_same_failures=_int(settings, "HOTELS_BREAKER_SAME_FAILURES"),
            breaker_wait_seconds=_float(settings, "HOTELS_BREAKER_WAIT_SECONDS", 0.1),
            breaker_max_wait_seconds=_float(settings, "HOTELS_BREAKER_MAX_WAIT_SECONDS", 0.1),
            rename_attempts=_int(settings, "HOTELS_RENAME_ATTEMPTS", 1),
            max_bytes_per_sec=parse_bytes_per_sec(str(_get(settings, "HOTELS_MAX_BYTES_PER_SEC") or 0)),
            active_hours=parse_active_hours(str(_get(settings, "HOTELS_ACTIVE_HOURS") or "")),
            control_seconds=_float(settings, "HOTELS_CONTROL_SECONDS", 0.1),
            store=str(settings.get("IMAGES_STORE") or ""),
            require_listing_url=_bool(settings, "HOTELS_REQUIRE_LISTING_URL"),
            store_min_free_mb=_int(settings, "HOTELS_STORE_MIN_FREE_MB"),
            redis_full_manifests=_bool(settings, "HOTELS_REDIS_FULL_MANIFESTS"),
        )


@dataclass(frozen=True)
class FetchOptions:
    """The direct image fetcher's own settings (``HOTELS_TLS_VERIFY`` ...), read and checked."""

    tls_verify: bool = defaults.HOTELS_TLS_VERIFY
    http2: bool = defaults.HOTELS_HTTP2
    dns_cache_seconds: int = defaults.HOTELS_DNS_CACHE_SECONDS
    connection_idle_seconds: float = defaults.HOTELS_CONNECTION_IDLE_SECONDS

    @classmethod
    def from_settings(cls, settings: Any) -> FetchOptions:
        """Read and check the fetcher's settings; raises ValueError naming a bad one."""
        return cls(
            tls_verify=_bool(settings, "HOTELS_TLS_VERIFY"),
            http2=_bool(settings, "HOTELS_HTTP2"),
            dns_cache_seconds=_int(settings, "HOTELS_DNS_CACHE_SECONDS"),
            connection_idle_seconds=_float(settings, "HOTELS_CONNECTION_IDLE_SECONDS", 0.1),
        )
