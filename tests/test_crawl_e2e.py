"""End to end: a real redis-server, the demo server and a real `scrapy crawl hotels` process."""

from __future__ import annotations

import json

import pytest
from crawling import VOLATILE, crawl_ids, demo_server, expected_files, files_under, recorded_manifest, run_crawl

from benchmarks.configs import BEFORE_SETTINGS
from devtools import demo_hotels as catalogue
from hotelimages.keys import Keys
from hotelimages.sharding import hotel_dir

KEYS = Keys()
HOTELS = 120


@pytest.fixture(scope="module")
def base_url():
    with demo_server(HOTELS + 10) as url:
        yield url


def test_crawl_stores_every_image_at_its_sharded_path(redis_client, redis_url, base_url, tmp_path):
    ids = catalogue.hotel_ids(HOTELS)
    inline = ids[::4]  # every fourth hotel is pushed as a JSON record with its listing inline
    for hid in ids:
        if hid in inline:
            images = catalogue.listing_entries(base_url, hid)
            redis_client.lpush(KEYS.start_ids, json.dumps({"hotel_id": hid, "images": images}))
        else:
            redis_client.lpush(KEYS.start_ids, hid)
    store = tmp_path / "store"

    proc = run_crawl(redis_url, base_url, store, "node-e2e")

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Queue empty" in proc.stderr  # it ended by itself
    # Scrapy would keep every download result for the spider's life; ours drops them per hotel.
    assert "'hotelimages/media_cache_entries': 0," in proc.stderr
    expected = {}
    for hid in ids:
        expected.update(expected_files(hid, base_url))
    assert files_under(store) == expected
    assert redis_client.hlen(KEYS.manifests) == HOTELS
    assert redis_client.llen(KEYS.start_ids) == 0
    assert redis_client.zcard(KEYS.leases) == 0
    assert redis_client.hlen(KEYS.lease_owners) == 0
    assert redis_client.hlen(KEYS.failed) == 0
    for hid in ids:
        folder = store / hotel_dir(hid)
        on_disk = json.loads((folder / "manifest.json").read_text())
        in_redis = recorded_manifest(redis_client, hid)
        assert on_disk == in_redis
        assert on_disk["status"] == "complete"
        assert on_disk["node"] == "node-e2e"
        assert on_disk["dir"] == hotel_dir(hid)
        assert on_disk["store"] == str(store)
        listed = {
            f"{on_disk['dir']}/{cat}/{f['file']}": f["sha1"]
            for cat, files in on_disk["images"].items()
            for f in files
        }
        assert listed == {k: v for k, v in expected.items() if k.startswith(hotel_dir(hid) + "/")}
        for cat, files in on_disk["images"].items():
            for f in files:
                assert f["bytes"] == (folder / cat / f["file"]).stat().st_size
    stats = {k.decode(): int(v) for k, v in redis_client.hgetall(KEYS.stats).items()}
    assert stats["hotels/complete"] == HOTELS
    assert stats["images/stored"] == len(expected)
    # The node's own counters (counted per hotel) agree with what is on disk.
    assert f"'hotelimages/images/stored': {len(expected)}," in proc.stderr
    total = sum((store / rel).stat().st_size for rel in expected)
    assert f"'hotelimages/images/bytes': {total}," in proc.stderr


def test_hotel_already_done_is_not_downloaded_again(redis_client, redis_url, base_url, tmp_path):
    hid = catalogue.hotel_ids(1)[0]
    store = tmp_path / "store"
    redis_client.lpush(KEYS.start_ids, hid)
    assert run_crawl(redis_url, base_url, store).returncode == 0
    first = recorded_manifest(redis_client, hid)
    redis_client.lpush(KEYS.start_ids, hid)

    proc = run_crawl(redis_url, base_url, store)

    assert proc.returncode == 0
    assert "already done" in proc.stderr
    assert recorded_manifest(redis_client, hid) == first
    assert int(redis_client.hget(KEYS.stats, "hotels/skipped_done")) == 1
    assert redis_client.llen(KEYS.start_ids) == 0 and redis_client.zcard(KEYS.leases) == 0


def test_forced_push_redoes_a_done_hotel(redis_client, redis_url, base_url, tmp_path):
    from hotelimages.idfiles import parse_lines
    from hotelimages.push import load_ids

    hid = catalogue.hotel_ids(1)[0]
    store = tmp_path / "store"
    redis_client.lpush(KEYS.start_ids, hid)
    assert run_crawl(redis_url, base_url, store).returncode == 0
    first = recorded_manifest(redis_client, hid)
    report = load_ids(redis_client, KEYS, parse_lines([hid + "\n"], "stdin", r"[0-9]+"), force=True)
    assert report.pushed == 1

    proc = run_crawl(redis_url, base_url, store)

    assert proc.returncode == 0
    again = recorded_manifest(redis_client, hid)
    assert again["finished_at"] > first["finished_at"]  # done again, not skipped
    assert again["images"] == first["images"]
    assert int(redis_client.hget(KEYS.stats, "hotels/complete")) == 1  # still one hotel
    assert "'hotelimages/images/uptodate'" in proc.stderr  # files on disk reused, not fetched again


@pytest.mark.parametrize("fetcher", ["direct", "scrapy"])
def test_media_requests_respect_per_host_concurrency_and_reuse_connections(redis_client, redis_url, tmp_path, fetcher):
    """Scrapy 2.19 started every queued image at once on a new connection; neither of our fetchers does."""
    import urllib.request

    ids = catalogue.hotel_ids(60)
    with demo_server(len(ids)) as url:
        redis_client.lpush(KEYS.start_ids, *ids)
        proc = run_crawl(redis_url, url, tmp_path / "store", "node-conn", "CONCURRENT_REQUESTS_PER_DOMAIN=8",
                         f"HOTELS_IMAGE_FETCHER={fetcher}")
        assert proc.returncode == 0, proc.stderr[-2000:]
        counts = json.loads(urllib.request.urlopen(f"{url}/stats").read())
    images = sum(len(catalogue.hotel_images(h)) for h in ids)
    assert redis_client.hlen(KEYS.manifests) == len(ids)
    assert int(redis_client.hget(KEYS.stats, "images/stored")) == images
    # At most 8 image downloads at a time to this host, each connection kept alive; a few spare
    # for timing at the edges. (Scrapy's Downloader, before BoundedDownloader: 354 for 330 images.)
    assert counts["image_connections"] <= 8 + 4, (counts, images)
    # Listings go through Scrapy's downloader: with the direct fetcher that is a second pool.
    assert counts["connections"] <= (8 + 8 if fetcher == "direct" else 8) + 4, (counts, images)
    assert ("'hotelimages/fetch/requests'" in proc.stderr) == (fetcher == "direct")


# ---------------------------------------------------------------- the speed settings change no output

#: The speed settings' crawl: 40 demo hotels, with and without the node's optimisations (bench's node-before).
OPT_IDS = catalogue.hotel_ids(40)


def test_optimised_node_stores_the_same_files_and_manifests(redis_server, tmp_path):
    with demo_server(len(OPT_IDS), "image_404:7,image_redirect:5") as base_url:
        before = crawl_ids(redis_server, 4010, base_url, tmp_path / "before", "node-opt", OPT_IDS,
                           *[f"{k}={v}" for k, v in BEFORE_SETTINGS.items()])
        after = crawl_ids(redis_server, 4011, base_url, tmp_path / "after", "node-opt", OPT_IDS)
    assert files_under(tmp_path / "before") == files_under(tmp_path / "after")
    assert len(files_under(tmp_path / "after")) > 100
    assert sorted(before) == sorted(after) == sorted(OPT_IDS)
    for hid in OPT_IDS:
        a = {k: v for k, v in before[hid].items() if k not in VOLATILE}
        b = {k: v for k, v in after[hid].items() if k not in VOLATILE}
        assert a == b, hid
        on_disk = json.loads((tmp_path / "after" / hotel_dir(hid) / "manifest.json").read_text())
        assert on_disk == after[hid]
