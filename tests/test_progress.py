"""The progress extension: its log line, its heartbeat and history in a real Redis."""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace

import pytest
import redis
import redis.asyncio
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from hotelimages import progress
from hotelimages.keys import Keys

KEYS = Keys()


class Stats:
    """The one method of a Scrapy stats collector the extension reads."""

    def __init__(self, values: dict[str, int]):
        self.values = values

    def get_value(self, key: str, default: int = 0) -> int:
        return self.values.get(key, default)


def test_counts_and_rates_from_scrapy_stats_keys():
    stats = Stats({
        "hotelimages/hotels/complete": 5, "hotelimages/hotels/partial": 2, "hotelimages/hotels/failed": 1,
        "hotelimages/hotels/empty": 1, "hotelimages/hotels/rejected": 3, "hotelimages/hotels/failed_whole": 2,
        "hotelimages/images/stored": 100,
        "hotelimages/images/bytes": 20_000_000, "hotelimages/images/failed": 4,
    })
    counts = progress.Counts.from_stats(stats)
    assert (counts.hotels, counts.failures, counts.images, counts.bytes) == (9, 9, 100, 20_000_000)
    rates = progress.Rates.between(progress.Counts(), counts, 10.0)
    assert rates == progress.Rates(images_per_s=10.0, mb_per_s=2.0, hotels_per_s=0.9)
    msg, args = progress.progress_message(counts, rates, 10.0, 7)
    assert msg % args == (
        "Progress: 9 hotels done (complete 5, partial 2, failed 1, empty 1), 2 failed as a whole, 3 rejected; "
        "100 images, 20.0 MB; "
        "last 10s: 10.0 img/s, 2.00 MB/s, 0.9 hotels/s; 4 image failures; 7 in flight"
    )


def test_from_crawler_reads_typed_settings(redis_url):
    with pytest.raises(NotConfigured):
        progress.HotelsProgress.from_crawler(get_crawler(settings_dict={"HOTELS_PROGRESS_INTERVAL": 0}))
    with pytest.raises(ValueError, match="HOTELS_PROGRESS_HISTORY_LENGTH must be >= 1, got 0"):
        progress.HotelsProgress.from_crawler(get_crawler(settings_dict={"HOTELS_PROGRESS_HISTORY_LENGTH": 0}))
    ext = progress.HotelsProgress.from_crawler(get_crawler(settings_dict={
        "REDIS_URL": redis_url, "NODE_ID": "pc7", "HOTELS_PROGRESS_INTERVAL": "5", "HOTELS_KEY_PREFIX": "h2",
    }))
    assert (ext.interval, ext.node_id, ext.keys.prefix, ext.history_length) == (5.0, "pc7", "h2", 2880)
    assert ext.owner == "pc7" and ext.in_flight == 0


def make_ext(redis_url: str, values: dict[str, int], **kwargs) -> progress.HotelsProgress:
    return progress.HotelsProgress(Stats(values), redis.asyncio.Redis.from_url(redis_url), KEYS, "pc1", **kwargs)


def test_tick_publishes_heartbeat_and_history(redis_url, redis_client, caplog, tmp_path):
    redis_client.hset(KEYS.manifests, mapping={"a": "{}", "b": "{}"})
    redis_client.lpush(KEYS.start_ids, "c", "d", "e")
    values = {"hotelimages/hotels/complete": 2, "hotelimages/images/stored": 10, "hotelimages/images/bytes": 5000}
    ext = make_ext(redis_url, values, interval=10, history_length=2, store=str(tmp_path))

    async def run():
        await ext.tick()  # before the spider has a lease manager: published under NODE_ID
        ext.node = SimpleNamespace(leases=SimpleNamespace(
            owner="pc1/42-abcd", in_flight={b"c", b"d"}, recorded_reasons={"image/http_404": 1}))
        values["hotelimages/hotels/complete"] = 3
        values["hotelimages/images/stored"] = 13
        values["hotelimages/images/failed"] = 1
        await ext.tick()
        await ext.tick()
        await ext.client.aclose()

    with caplog.at_level(logging.INFO, logger="hotelimages.progress"):
        asyncio.run(run())
    assert "Progress: 3 hotels done (complete 3," in caplog.text
    assert redis_client.keys("hotels:node:*") == [b"hotels:node:pc1/42-abcd"]
    assert redis_client.keys("hotels:history:*") == [b"hotels:history:pc1/42-abcd"]
    beat = {k.decode(): v.decode() for k, v in redis_client.hgetall(KEYS.node("pc1/42-abcd")).items()}
    assert set(beat) == set(progress.HEARTBEAT_FIELDS)
    assert (beat["node_id"], beat["owner"], beat["hotels"], beat["images"], beat["bytes"]) == (
        "pc1", "pc1/42-abcd", "3", "13", "5000")
    assert float(beat["image_failure_rate"]) == 0.0  # the last tick: nothing new
    assert 0 < int(beat["disk_free"]) <= int(beat["disk_total"])
    assert (beat["in_flight"], beat["state"], beat["interval"]) == ("2", "running", "10")
    assert 29 <= redis_client.ttl(KEYS.node("pc1/42-abcd")) <= 30  # 3 x 10 s
    history = [json.loads(x) for x in redis_client.lrange("hotels:history:pc1/42-abcd", 0, -1)]
    assert len(history) == 2  # capped
    assert {k: history[0][k] for k in ("hotels", "images", "bytes", "done", "pending", "reasons")} == {
        "hotels": 3, "images": 13, "bytes": 5000, "done": 2, "pending": 3, "reasons": {"image/http_404": 1}}
    assert history[0]["t"] >= history[1]["t"] > 1.7e9
    assert redis_client.ttl("hotels:history:pc1/42-abcd") > 6 * 24 * 3600


def test_redis_outage_is_logged_once_and_never_raises(redis_url, caplog):
    dead = redis_url.rsplit(":", 1)[0] + ":1/0"  # nothing listens on port 1
    ext = progress.HotelsProgress(Stats({}), redis.asyncio.Redis.from_url(dead), KEYS, "pc1", interval=1)

    async def run():
        for _ in range(3):
            await ext.tick()
        ext.client = redis.asyncio.Redis.from_url(redis_url)
        await ext.tick()
        await ext.client.aclose()

    with caplog.at_level(logging.INFO, logger="hotelimages.progress"):
        asyncio.run(run())
    assert caplog.text.count("heartbeat not published") == 1
    assert caplog.text.count("published again") == 1


def test_spider_closed_leaves_history_and_removes_heartbeat(redis_url, redis_client):
    ext = make_ext(redis_url, {}, interval=0.05)

    async def run():
        ext.node = SimpleNamespace(leases=SimpleNamespace(owner="pc1/9-x", in_flight=set()))
        ext.spider_opened(SimpleNamespace())
        await asyncio.sleep(0.12)
        assert redis_client.exists(KEYS.node("pc1/9-x"))
        await ext.spider_closed(SimpleNamespace(), "finished")

    asyncio.run(run())
    assert not redis_client.exists(KEYS.node("pc1/9-x"))
    last = json.loads(redis_client.lindex("hotels:history:pc1/9-x", 0))
    assert last["state"] == "closed:finished"
    assert redis_client.llen("hotels:history:pc1/9-x") >= 3
