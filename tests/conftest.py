"""Shared fixtures: a real redis-server (or REDIS_URL if set) with a fresh database per test."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
import redis
from crawling import scratch_db

from devtools.localredis import LocalRedis

#: The checkout; pyproject's ``pythonpath`` puts it on the import path (benchmarks/, devtools/ are not installed).
ROOT = Path(__file__).resolve().parent.parent

_db_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def redis_server():
    """A redis-server this test session started (or the one REDIS_URL names, never flushed whole)."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"].rsplit("/", 1)[0]
        return
    server = LocalRedis().start()
    yield f"redis://127.0.0.1:{server.port}"
    server.close()


@pytest.fixture
def redis_url(redis_server):
    """A URL of an empty database of its own for this test; emptied again afterwards."""
    with scratch_db(redis_server, next(_db_numbers)) as (url, _client):
        yield url


@pytest.fixture
def redis_client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
