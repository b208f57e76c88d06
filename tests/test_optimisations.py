"""The speed work of issue 6 changes nothing a user sees: same files, same manifests.

One crawl runs with every optimisation reverted by settings (the bench's ``node-before``),
one with the defaults; their stores and manifests must be identical.
"""

from __future__ import annotations

import json

from crawling import demo_server, files_under, recorded_manifest, run_crawl, scratch_db

from benchmarks.configs import BEFORE_SETTINGS
from devtools import demo_hotels as catalogue
from hotelimages.keys import Keys
from hotelimages.sharding import hotel_dir

KEYS = Keys()
IDS = catalogue.hotel_ids(40)
VOLATILE = ("node", "store", "started_at", "finished_at")


def crawl(redis_server: str, db: int, base_url: str, store, settings: list[str]) -> dict[str, dict]:
    with scratch_db(redis_server, db) as (url, client):
        client.lpush(KEYS.start_ids, *IDS)
        proc = run_crawl(url, base_url, store, "node-opt", *settings)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return {h.decode(): recorded_manifest(client, h.decode()) for h in client.hkeys(KEYS.manifests)}


def test_optimised_node_stores_the_same_files_and_manifests(redis_server, tmp_path):
    with demo_server(len(IDS), "image_404:7,image_redirect:5") as base_url:
        before = crawl(redis_server, 4010, base_url, tmp_path / "before",
                       [f"{k}={v}" for k, v in BEFORE_SETTINGS.items()])
        after = crawl(redis_server, 4011, base_url, tmp_path / "after", [])
    assert files_under(tmp_path / "before") == files_under(tmp_path / "after")
    assert len(files_under(tmp_path / "after")) > 100
    assert sorted(before) == sorted(after) == sorted(IDS)
    for hid in IDS:
        a = {k: v for k, v in before[hid].items() if k not in VOLATILE}
        b = {k: v for k, v in after[hid].items() if k not in VOLATILE}
        assert a == b, hid
        on_disk = json.loads((tmp_path / "after" / hotel_dir(hid) / "manifest.json").read_text())
        assert on_disk == after[hid]


#: Every image fault of the demo server, on hotels spread over the crawl. A hotel's first matching
#: fault is the one served, so the rarest come first and each is served somewhere in 60 hotels.
ALL_IMAGE_FAULTS = ",".join(
    f"{name}:{every}" for name, every in zip(catalogue.IMAGE_FAULTS, (37, 31, 29, 23, 19, 17, 13, 11, 7, 5, 3),
                                             strict=True)
)
#: The demo server renders each image on first request, on one thread: fewer concurrent requests
#: and a timeout well above its answer times keep listings from timing out on a busy machine.
FAULT_SETTINGS = ["DOWNLOAD_TIMEOUT=2.5", "RETRY_TIMES=1", "DOWNLOAD_MAXSIZE=2000000", "REDIRECT_MAX_TIMES=3",
                  "CONCURRENT_REQUESTS_PER_DOMAIN=8"]


def test_direct_fetcher_records_what_scrapys_downloader_records(redis_server, tmp_path):
    """HOTELS_IMAGE_FETCHER=direct (our HTTP client) and =scrapy: same files, manifests and reasons, every fault."""
    ids = catalogue.hotel_ids(60)
    results = {}
    # One server for both crawls: image URLs (and the IDs derived from them) must be equal. The
    # direct fetcher goes first, so it is the one that meets the "500 once" answers and retries.
    with demo_server(len(ids), ALL_IMAGE_FAULTS, slow_seconds=6) as base_url:
        for db, fetcher in ((4012, "direct"), (4013, "scrapy")):
            with scratch_db(redis_server, db) as (url, client):
                client.lpush(KEYS.start_ids, *ids)
                proc = run_crawl(url, base_url, tmp_path / fetcher, "node-fetch", *FAULT_SETTINGS,
                                 f"HOTELS_IMAGE_FETCHER={fetcher}")
                assert proc.returncode == 0, proc.stderr[-2000:]
                done = [h.decode() for h in client.hkeys(KEYS.manifests)]
                results[fetcher] = {h: recorded_manifest(client, h) for h in done}
                assert client.hlen(KEYS.failed) == 0, client.hgetall(KEYS.failed)
            if fetcher == "direct":
                plan = catalogue.parse_faults(ALL_IMAGE_FAULTS)
                once = sum("f=image_500_once" in entry["url"]
                           for h in ids for entry in catalogue.listing_entries(base_url, h, plan))
                assert once and f"'hotelimages/fetch/status/500': {once}," in proc.stderr
    assert files_under(tmp_path / "scrapy") == files_under(tmp_path / "direct")
    assert len(files_under(tmp_path / "direct")) > 200
    assert sorted(results["scrapy"]) == sorted(results["direct"]) == sorted(ids)
    reasons = set()
    for hid in ids:
        a = {k: v for k, v in results["scrapy"][hid].items() if k not in VOLATILE}
        b = {k: v for k, v in results["direct"][hid].items() if k not in VOLATILE}
        assert a == b, (hid, a, b)
        reasons.update(f["reason"] for f in b.get("failed", []))
    assert reasons >= {
        "http_404", "truncated", "not_an_image", "timeout", "redirect_loop", "disallowed_scheme",
        "decompression_bomb", "too_large",
    }, reasons
