"""Hostile input: each case ends as a recorded reason, with real processes (one crawl, one test per case)."""

from __future__ import annotations

import json

import pytest
import redis
from crawling import demo_server, recorded_manifest, run_crawl, scratch_db

from devtools import demo_hotels as catalogue
from devtools.localredis import LocalRedis
from hotelimages.keys import Keys

KEYS = Keys()
FAULTS = {
    "listing_empty": 41, "listing_redirect_loop": 43, "listing_gzip_bomb": 47, "listing_huge": 53,
    "image_redirect_loop": 59, "image_redirect_file": 61, "image_gzip_bomb": 67, "image_huge": 71,
    "image_bomb": 73, "image_html": 79,
}
SPEC = ",".join(f"{k}:{v}" for k, v in FAULTS.items())
IDS = catalogue.hotel_ids(90)


def hotel_with(fault: str) -> str:
    """A hotel of the catalogue that carries this fault and no other."""
    return next(h for h in IDS if catalogue.faults_for(h, FAULTS) == [fault])


@pytest.fixture(scope="module")
def crawled(redis_server, tmp_path_factory):
    """One crawl of a catalogue with every hostile case in it; yields a Redis client of its database."""
    store = tmp_path_factory.mktemp("hostile") / "store"
    with scratch_db(redis_server, 4000) as (url, client):
        with demo_server(len(IDS), SPEC) as base_url:
            client.lpush(KEYS.start_ids, *IDS)
            proc = run_crawl(url, base_url, store, "node-hostile", "DOWNLOAD_MAXSIZE=2097152",
                             "HOTELS_MAX_IMAGES=50", "REDIRECT_MAX_TIMES=3")
        assert proc.returncode == 0, proc.stderr[-3000:]
        yield client, store, proc.stderr


def failed_reason(client: redis.Redis, hotel_id: str) -> str:
    return json.loads(client.hget(KEYS.failed, hotel_id))["reason"]


def image_reasons(client: redis.Redis, hotel_id: str) -> list[str]:
    return sorted({f["reason"] for f in recorded_manifest(client, hotel_id)["failed"]})


def test_empty_listing_body(crawled):
    assert failed_reason(crawled[0], hotel_with("listing_empty")) == "listing_empty_body"


def test_listing_redirect_loop(crawled):
    assert failed_reason(crawled[0], hotel_with("listing_redirect_loop")) == "listing_redirect_loop"


def test_listing_compressed_body_bomb(crawled):
    assert failed_reason(crawled[0], hotel_with("listing_gzip_bomb")) == "listing_decompression_bomb"


def test_listing_with_thousands_of_images_is_cut_at_the_limit(crawled):
    client = crawled[0]
    manifest = recorded_manifest(client, hotel_with("listing_huge"))
    assert manifest["status"] == "partial"
    assert sum(len(files) for files in manifest["images"].values()) == 50
    assert {f["reason"] for f in manifest["failed"]} == {"over_image_limit"}
    assert len(manifest["failed"]) == 2000 - 50


def test_image_redirect_loop(crawled):
    assert image_reasons(crawled[0], hotel_with("image_redirect_loop")) == ["redirect_loop"]


def test_image_redirect_to_a_file_url_is_not_followed(crawled):
    assert image_reasons(crawled[0], hotel_with("image_redirect_file")) == ["disallowed_scheme"]


def test_image_compressed_body_bomb(crawled):
    assert image_reasons(crawled[0], hotel_with("image_gzip_bomb")) == ["decompression_bomb"]


def test_image_larger_than_download_maxsize(crawled):
    assert image_reasons(crawled[0], hotel_with("image_huge")) == ["too_large"]


def test_image_decompression_bomb(crawled):
    assert image_reasons(crawled[0], hotel_with("image_bomb")) == ["decompression_bomb"]


def test_html_instead_of_an_image(crawled):
    assert image_reasons(crawled[0], hotel_with("image_html")) == ["not_an_image"]


def test_every_other_hotel_completes(crawled):
    client = crawled[0]
    for hid in IDS:
        if catalogue.faults_for(hid, FAULTS):
            continue
        assert recorded_manifest(client, hid)["status"] == "complete", hid
    assert client.llen(KEYS.start_ids) == 0 and client.zcard(KEYS.leases) == 0


def test_redis_password_is_never_logged(tmp_path):
    password = "s3cr3t-pw-4711"
    with LocalRedis(password=password) as server, demo_server(3) as base_url:
        client = redis.Redis.from_url(server.url)
        client.lpush(KEYS.start_ids, *catalogue.hotel_ids(3))
        proc = run_crawl(server.url, base_url, tmp_path / "store", "node-pw", "LOG_LEVEL=DEBUG")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert client.hlen(KEYS.manifests) == 3
        client.close()
    assert password not in proc.stderr and password not in proc.stdout
    assert f"redis://***@127.0.0.1:{server.port}/0" in proc.stderr
