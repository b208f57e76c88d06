"""Compact done records in hotels:manifests (issue 13.1): size, parsing, and every reader with old and new values."""

from __future__ import annotations

import asyncio
import hashlib
import json
from types import SimpleNamespace

import pytest
import redis.asyncio as aioredis

from hotelimages import claims, status
from hotelimages import manifest as mf
from hotelimages.claims import BoundScripts, LeaseManager
from hotelimages.config import HotelsConfig
from hotelimages.items import FailedImage, StoredImage
from hotelimages.keys import Keys
from hotelimages.pipelines.manifests import ManifestPipeline

KEYS = Keys()
CATS = ("cover", "exterior", "interior", "reviews")
OWNER = "pc1/1-aaaa"


def url_of(i: int) -> str:
    """A 100-character image URL, as real CDN URLs are."""
    head = "https://cdn.example-hotel-images.com/photos/2026/11/"
    return head + "x" * (100 - len(head) - 12) + f"{i:08d}.jpg"


def make_manifest(photos: int, hotel_id: str = "7892470", node: str = "office-pc-12",
                  store: str = "/srv/hotelimages/store", failed: int = 0, finished: str | None = None) -> dict:
    stored = [
        StoredImage(id=str(26_680_713 + i), url=url_of(i), category=CATS[i % 4], file=f"{26_680_713 + i}.jpg",
                    bytes=190_000 + i, width=1024, height=768, sha1=hashlib.sha1(str(i).encode()).hexdigest())
        for i in range(photos)
    ]
    fails = [FailedImage(id=f"f{i}", url=url_of(10_000 + i), category="cover", reason="http_404")
             for i in range(failed)]
    now = finished or mf.utc_now()
    return dict(mf.build_manifest(
        hotel_id=hotel_id, node=node, store=store, hotel_dir=f"6/8/c/2/{hotel_id}", stored=stored, failed=fails,
        categories=(*CATS, "other"), started_at=now, finished_at=now,
    ))


def test_record_size_does_not_depend_on_the_photo_count():
    sizes = {}
    for photos in (1, 20, 120, 1000):
        m = make_manifest(photos)
        sizes[photos] = len(mf.done_record(m).encode())
        assert len(mf.dumps(m)) > 200 * photos  # the full manifest grows with every photo
    # A bound whatever the photo count; once every category has photos (20 and up) only the digits
    # of the counts and byte totals change.
    assert max(sizes.values()) <= 200, sizes
    assert max(sizes[20], sizes[120], sizes[1000]) - min(sizes[20], sizes[120], sizes[1000]) <= 12, sizes


def test_compact_and_old_full_values_read_alike():
    m = make_manifest(120, failed=3)
    text = mf.dumps(m)
    old = mf.parse_done_record(text)
    new = mf.parse_done_record(mf.done_record(m, text))
    full = mf.parse_done_record(mf.done_record(m, text, full=True))
    assert (old.version, new.version, full.version) == (1, 2, 2)
    for rec in (old, new, full):
        assert (rec.node, rec.store, rec.dir, rec.status) == ("office-pc-12", "/srv/hotelimages/store",
                                                              "6/8/c/2/7892470", "partial")
        assert rec.images == 120 and rec.categories == {c: 30 for c in CATS}
        assert rec.bytes == sum(190_000 + i for i in range(120)) and rec.failed == 3
        assert rec.sha1 == hashlib.sha1(text.encode()).hexdigest()
        assert rec.finished_at == old.finished_at > 0
    assert new.manifest is None
    assert old.manifest == m and full.manifest == m
    assert len(mf.done_record(m, text, full=True)) < len(text) / 4  # compressed
    assert mf.parse_done_record(b"not json").version == 0
    assert mf.parse_done_record(b"[1,2]").version == 0


def run(redis_url: str, steps):
    async def main():
        client = aioredis.from_url(redis_url)
        try:
            return await steps(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


@pytest.fixture
def mixed(redis_client):
    """One hotel recorded by the old version (full manifest), one by this one (compact record)."""
    old, new = make_manifest(120, "1001"), make_manifest(20, "1002", failed=2)
    redis_client.hset(KEYS.manifests, mapping={"1001": mf.dumps(old), "1002": mf.done_record(new)})
    redis_client.hset(KEYS.stats, mapping={
        "hotels/complete": 1, "hotels/partial": 1, "images/stored": 140,
        "images/bytes": sum(190_000 + i for i in range(120)) + sum(190_000 + i for i in range(20)),
        "images/failed": 2,
    })
    return old, new


def stats(client) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(KEYS.stats).items()}


def test_done_check_before_claiming_sees_both_kinds(redis_url, mixed):
    async def steps(client):
        return await LeaseManager(client, KEYS, OWNER, 120).done_among(["1001", "1002", "1003"])

    assert run(redis_url, steps) == {"1001", "1002"}


def test_push_dedupe_skips_both_kinds(redis_client, mixed):
    from hotelimages.idfiles import parse_lines
    from hotelimages.push import load_ids

    report = load_ids(redis_client, KEYS, parse_lines(["1001\n", "1002\n", "1003\n"], "stdin", r"[0-9]+"))
    assert report.pushed == 1
    assert redis_client.lrange(KEYS.start_ids, 0, -1) == [b"1003"]
    done = claims.push_batch(BoundScripts(redis_client, KEYS), ["1001", "1002", "1004"], ["1001", "1002", "1004"])
    assert done == [1, 2]


@pytest.mark.parametrize("hotel_id", ["1001", "1002"])
def test_forced_redo_over_either_kind_keeps_the_counters_exact(redis_url, redis_client, mixed, hotel_id):
    redo = make_manifest(10, hotel_id)
    before = stats(redis_client)
    old = mf.parse_done_record(redis_client.hget(KEYS.manifests, hotel_id))
    redis_client.lpush(KEYS.start_ids, hotel_id)

    async def steps(client):
        lm = LeaseManager(client, KEYS, OWNER, 120)
        await lm.claim(1)
        return await lm.record(
            hotel_id.encode(), hotel_id, manifest_json=mf.done_record(redo), images=10,
            nbytes=sum(190_000 + i for i in range(10)), failed_images=0, force=True, status="complete",
        )

    assert run(redis_url, steps) is True
    after = stats(redis_client)
    assert after["images/stored"] == before["images/stored"] - old.images + 10
    assert after["images/bytes"] == before["images/bytes"] - old.bytes + sum(190_000 + i for i in range(10))
    assert after["images/failed"] == before["images/failed"] - old.failed
    assert after[f"hotels/{old.status}"] == before[f"hotels/{old.status}"] - 1 + (old.status == "complete")
    assert sum(after.get(f"hotels/{s}", 0) for s in mf.STATUSES) == redis_client.hlen(KEYS.manifests) == 2
    assert mf.parse_done_record(redis_client.hget(KEYS.manifests, hotel_id)).images == 10


def test_an_unforced_second_result_is_dropped_for_either_kind(redis_url, redis_client, mixed):
    redis_client.lpush(KEYS.start_ids, "1001", "1002")
    before = redis_client.hgetall(KEYS.manifests), stats(redis_client)

    async def steps(client):
        lm = LeaseManager(client, KEYS, OWNER, 120)
        await lm.claim(2)
        return [
            await lm.record(hid.encode(), hid, manifest_json=mf.done_record(make_manifest(1, hid)), images=1,
                            status="complete")
            for hid in ("1001", "1002")
        ]

    assert run(redis_url, steps) == [False, False]
    assert (redis_client.hgetall(KEYS.manifests), stats(redis_client)) == before


def test_status_reads_both_kinds(redis_client, mixed):
    fleet = status.gather(redis_client, KEYS)
    assert fleet.done == 2
    assert fleet.counter("images/stored") == 140
    assert fleet.redis_memory["used_memory"] > 0
    assert "not done: failed as a whole 0  rejected 0" in status.render_text(fleet)


def test_retry_failed_moves_failed_hotels_and_leaves_done_ones(redis_client, mixed):
    redis_client.hset(KEYS.failed, "1003", json.dumps({"hotel_id": "1003", "reason": "listing_http_503"}))
    report = claims.retry_failed(redis_client, KEYS)
    assert report.moved == 1
    assert redis_client.lrange(KEYS.start_ids, 0, -1) == [b"1003"]
    assert redis_client.hlen(KEYS.manifests) == 2


def pipeline_for(redis_url: str, client, store: str, node: str = "office-pc-12", full: bool = False):
    cfg = HotelsConfig(node_id=node, redis_full_manifests=full)
    node_state = SimpleNamespace(leases=LeaseManager(client, KEYS, OWNER, 120))
    return ManifestPipeline(node_state, SimpleNamespace(inc_value=lambda *a: None), cfg, store)


@pytest.mark.parametrize("kind", ["compact", "full", "old"])
def test_a_dropped_result_keeps_the_manifest_that_redis_records(redis_url, redis_client, tmp_path, kind):
    """Two processes of one node, same store: the loser's file must end as the recorded manifest."""
    store = str(tmp_path)
    recorded = make_manifest(3, "1001", store=store, finished="2026-01-01T00:00:00.000000Z")
    ours = make_manifest(3, "1001", store=store, finished="2026-01-01T00:00:09.000000Z")
    recorded_text, ours_text = mf.dumps(recorded).encode(), mf.dumps(ours).encode()
    value = {"compact": mf.done_record(recorded, recorded_text), "full": mf.done_record(recorded, full=True),
             "old": recorded_text}[kind]
    redis_client.hset(KEYS.manifests, "1001", value)
    path = tmp_path / "manifest.json"
    path.write_bytes(ours_text)  # we overwrote the winner's file before learning we lost

    async def steps(client):
        pipe = pipeline_for(redis_url, client, store)
        await pipe._keep_recorded_manifest("1001", path, ours_text, recorded_text)

    run(redis_url, steps)
    assert path.read_bytes() == recorded_text


def test_a_dropped_result_of_another_node_removes_our_file(redis_url, redis_client, tmp_path):
    store = str(tmp_path)
    redis_client.hset(KEYS.manifests, "1001", mf.done_record(make_manifest(3, "1001", node="pc-9", store=store)))
    path = tmp_path / "manifest.json"
    ours = mf.dumps(make_manifest(3, "1001", store=store)).encode()
    path.write_bytes(ours)

    async def steps(client):
        await pipeline_for(redis_url, client, store)._keep_recorded_manifest("1001", path, ours, None)

    run(redis_url, steps)
    assert not path.exists()


def test_full_manifests_in_redis_are_opt_in_and_compressed(redis_url, redis_client, tmp_path):
    """HOTELS_REDIS_FULL_MANIFESTS: the record carries the manifest, zlib+base64."""
    assert HotelsConfig.from_settings({}).redis_full_manifests is False
    assert HotelsConfig.from_settings({"HOTELS_REDIS_FULL_MANIFESTS": "1"}).redis_full_manifests is True
    m = make_manifest(120)
    value = mf.done_record(m, full=True)
    assert json.loads(value)[10] and mf.parse_done_record(value).manifest == m
