"""Typed, validated view of hotelimages' settings, read in one place.

Components call ``HotelsConfig.from_settings(crawler.settings)``; a bad value
raises ``ValueError`` naming the setting and the value.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from hotelimages import defaults
from hotelimages.keys import Keys
from hotelimages.redisconn import RedisTarget, redis_target

#: Settings that an environment variable of the same name overrides (see settings.py).
ENV_SETTINGS = ("REDIS_URL", "HOTELS_REDIS_KEY", "HOTEL_LISTING_URL", "IMAGES_STORE", "NODE_ID")
#: Values of HOTELS_IMAGE_FETCHER (see defaults.py).
IMAGE_FETCHERS = ("direct", "scrapy")


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
        FetchOptions.from_settings(settings)  # a bad fetcher setting stops the node at start
        return cls(
            redis=redis_target(settings),
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
