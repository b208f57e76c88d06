"""Shared fixtures: a real redis-server (or REDIS_URL if set) with a fresh database per test."""

from __future__ import annotations

import itertools
import os

import pytest
import redis
from crawling import scratch_db
from support import ROOT  # noqa: F401 - where tests found it before

from devtools.localredis import LocalRedis

_db_numbers = itertools.count(1)

# The checkout stands in for `pip install -e .` (which scripts/dev.sh does for its venv): processes the
# tests start (scripts/ wrappers, `python -m hotelimages.cli`) import it. Tests of an installed copy
# start their processes without PYTHONPATH.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)


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
