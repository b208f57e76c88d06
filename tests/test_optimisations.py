"""The speed work of issue 6 changes nothing a user sees: same files, same manifests.

One crawl runs with every optimisation reverted by settings (the bench's ``node-before``),
one with the defaults; their stores and manifests must be identical.
"""

from __future__ import annotations

import json

import redis
from crawling import demo_server, files_under, run_crawl

from hotelimages.bench.configs import BEFORE_SETTINGS
from hotelimages.demo import catalogue
from hotelimages.keys import Keys
from hotelimages.sharding import hotel_dir

KEYS = Keys()
IDS = catalogue.hotel_ids(40)
VOLATILE = ("node", "store", "started_at", "finished_at")


def crawl(redis_server: str, db: int, base_url: str, store, settings: list[str]) -> dict[str, dict]:
    url = f"{redis_server}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.lpush(KEYS.start_ids, *IDS)
    proc = run_crawl(url, base_url, store, "node-opt", *settings)
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifests = {h.decode(): json.loads(m) for h, m in client.hgetall(KEYS.manifests).items()}
    client.flushdb()
    client.close()
    return manifests


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
