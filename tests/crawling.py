"""Helpers for end-to-end tests: a real demo server process and real `scrapy crawl hotels` runs."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from devtools import demo_hotels as catalogue
from devtools.demo import ROOT, crawl_env, start_demo_server
from devtools.localredis import stop_process
from hotelimages.keys import Keys
from hotelimages.manifest import parse_done_record
from hotelimages.sharding import derive_image_id, hotel_dir

KNOWN = ("cover", "exterior", "interior", "reviews")
#: Manifest fields that differ between two crawls of the same hotels.
VOLATILE = ("node", "store", "started_at", "finished_at")


@contextmanager
def scratch_db(redis_server: str, db: int):
    """Database ``db`` of the test redis-server, emptied before and after; yields (url, client)."""
    url = f"{redis_server}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url, client
    finally:
        client.flushdb()
        client.close()


@contextmanager
def demo_server(hotels: int, faults: str = "", slow_seconds: float = 3.0):
    """A running demo server process; yields its base URL."""
    proc, url = start_demo_server(hotels, faults, slow_seconds)
    try:
        yield url
    finally:
        stop_process(proc)


def run_crawl(redis_url: str, base_url: str, store: Path, node_id: str = "test-node", *settings: str,
              timeout: float = 180) -> subprocess.CompletedProcess:
    """Run one node until the queue is drained; returns the finished process (log in .stderr)."""
    args = [sys.executable, "-m", "scrapy", "crawl", "hotels", "-s", "HOTELS_IDLE_CLOSE_SECONDS=1",
            "-s", "HOTELS_POLL_SECONDS=0.2"]
    for s in settings:
        args += ["-s", s]
    return subprocess.run(args, cwd=ROOT, env=crawl_env(redis_url, base_url, store, node_id),
                          capture_output=True, text=True, timeout=timeout)


def crawl_ids(redis_server: str, db: int, base_url: str, store: Path, node_id: str, ids: list[str],
              *settings: str) -> dict[str, dict]:
    """Queue ``ids`` in database ``db``, crawl them with one node (it must exit 0); the recorded manifests by hotel."""
    keys = Keys()
    with scratch_db(redis_server, db) as (url, client):
        client.lpush(keys.start_ids, *ids)
        proc = run_crawl(url, base_url, store, node_id, *settings)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return {h.decode(): recorded_manifest(client, h.decode(), keys) for h in client.hkeys(keys.manifests)}


def expected_files(hotel_id: str, base_url: str, skip_index: int | None = None,
                   faults: str = "") -> dict[str, str]:
    """Relative path -> sha1 of every file a crawl of a demo hotel stores (``faults`` as served)."""
    entries = catalogue.listing_entries(base_url, hotel_id, catalogue.parse_faults(faults))
    out = {}
    for index, (img, entry) in enumerate(zip(catalogue.hotel_images(hotel_id), entries, strict=True)):
        if index == skip_index:
            continue
        image_id = img.id or derive_image_id(entry["url"])
        category = img.category if img.category in KNOWN else "other"
        ext = catalogue.FORMAT_EXT[img.format]
        rel = f"{hotel_dir(hotel_id)}/{category}/{image_id}.{ext}"
        out[rel] = hashlib.sha1(catalogue.image_bytes(hotel_id, index)).hexdigest()
    return out


def recorded_manifest(client: redis.Redis, hotel_id: str, keys: Any = None) -> dict:
    """The full manifest of a done hotel as Redis records it.

    From the record itself when it holds one (an old full manifest, or HOTELS_REDIS_FULL_MANIFESTS),
    else from the ``manifest.json`` its compact record points to, whose sha1 must be the recorded one.
    """
    from hotelimages.keys import Keys  # noqa: PLC0415

    raw = client.hget((keys or Keys()).manifests, hotel_id)
    assert raw is not None, f"hotel {hotel_id} is not done"
    record = parse_done_record(raw)
    if record.manifest is not None:
        return record.manifest
    data = (Path(record.store) / record.dir / "manifest.json").read_bytes()
    assert hashlib.sha1(data).hexdigest() == record.sha1, f"manifest.json of {hotel_id} is not the recorded one"
    return json.loads(data)


def files_under(store: Path) -> dict[str, str]:
    """Relative path -> sha1 of every image file under a store (manifests and merge state left out)."""
    return {
        p.relative_to(store).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in store.rglob("*")
        if p.is_file() and p.name != "manifest.json" and ".hotelimages" not in p.relative_to(store).parts
    }
