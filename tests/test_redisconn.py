"""Redis clients built from settings as scrapy-redis reads them, against a real Redis."""

from __future__ import annotations

import asyncio
import warnings
from urllib.parse import urlsplit

import pytest
import redis
import redis.asyncio
from scrapy.settings import Settings

from hotelimages.config import HotelsConfig
from hotelimages.redisconn import async_client, redact_url, redis_target, sync_client


def test_without_url_host_or_port_the_default_url_is_used():
    target = redis_target(Settings({}))
    assert target.url == "redis://127.0.0.1:6379/0"
    assert target.params["socket_connect_timeout"] == 10  # ours over scrapy-redis's 30


def test_host_port_and_db_are_used_when_no_url_is_set():
    target = redis_target(Settings({"REDIS_HOST": "db.lan", "REDIS_PORT": "6390", "REDIS_DB": "4"}))
    assert target.url == ""
    assert (target.params["host"], target.params["port"], target.params["db"]) == ("db.lan", "6390", "4")
    assert target.label == "redis://db.lan:6390/4"


def test_the_url_wins_over_host_and_port_as_in_scrapy_redis():
    target = redis_target(Settings({"REDIS_URL": "redis://:pw@q:6379/2", "REDIS_HOST": "other"}))
    client = sync_client(target)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("q", 6379, 2)
    assert target.label == "redis://***@q:6379/2" == redact_url(target.url)


def test_redis_params_reach_both_clients_and_no_deprecated_argument_is_passed():
    target = redis_target(Settings({"REDIS_URL": "redis://q:6379/0", "REDIS_PARAMS": {"socket_timeout": 7}}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        blocking, aio = sync_client(target), async_client(target)
    assert blocking.connection_pool.connection_kwargs["socket_timeout"] == 7
    assert aio.connection_pool.connection_kwargs["socket_timeout"] == 7
    assert isinstance(aio, redis.asyncio.Redis) and not isinstance(blocking, redis.asyncio.Redis)


def test_redis_host_and_port_are_honoured_by_the_node_clients(redis_url, redis_client):
    parts = urlsplit(redis_url)
    db = parts.path.lstrip("/") or "0"
    settings = Settings({"REDIS_HOST": parts.hostname, "REDIS_PORT": str(parts.port), "REDIS_DB": db})
    cfg = HotelsConfig.from_settings(settings)
    sync_client(cfg.redis).set("written-through-host-port", b"sync")

    async def read_async() -> bytes:
        client = async_client(cfg.redis)
        try:
            await client.set("async-through-host-port", b"async")
            return await client.get("written-through-host-port")
        finally:
            await client.aclose()

    assert asyncio.run(read_async()) == b"sync"
    assert redis_client.get("async-through-host-port") == b"async"


def test_a_wrong_port_is_not_silently_replaced_by_the_default(redis_url):
    parts = urlsplit(redis_url)
    params = {"socket_connect_timeout": 2}
    settings = Settings({"REDIS_HOST": parts.hostname, "REDIS_PORT": "1", "REDIS_PARAMS": params})
    client = sync_client(redis_target(settings))
    with pytest.raises(redis.ConnectionError):
        client.ping()
