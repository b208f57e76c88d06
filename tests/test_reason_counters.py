"""Fleet-wide failure reasons: counted by the record script, atomically with the hotel's outcome."""

from __future__ import annotations

import json

from test_claims import KEYS, OWNER_A, OWNER_B, expire, run

from hotelimages.claims import LeaseManager, reason_counts


def manifest(status: str, *reasons: str) -> str:
    failed = [{"id": str(i), "url": "u", "category": "cover", "reason": r} for i, r in enumerate(reasons)]
    return json.dumps({"hotel_id": "7892470", "status": status, "failed": failed})


def test_reason_counts_of_a_manifest_and_of_a_failure_record():
    assert reason_counts("manifest", manifest("partial", "http_404", "timeout", "http_404")) == {
        "image/http_404": 2, "image/timeout": 1,
    }
    assert reason_counts("manifest", manifest("complete")) == {}
    assert reason_counts("manifest", "not read", {"truncated": 2, "x": 0}) == {"image/truncated": 2}
    assert reason_counts("failed", '{"reason": "listing_http_404"}') == {"hotel/listing_http_404": 1}
    assert reason_counts("failed", "not json") == {"hotel/unknown": 1}
    assert reason_counts("failed", json.dumps({"reason": "r" * 500})) == {"hotel/" + "r" * 64: 1}


def test_recorded_outcomes_count_reasons_fleet_wide_and_per_node(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"1", b"2", b"3")

    async def steps(client):
        a = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        b = LeaseManager(client, KEYS, OWNER_B, lease_seconds=120)
        await a.claim(2)
        await b.claim(1)
        await a.record(b"3", "3", manifest_json=manifest("partial", "http_404", "timeout"), failed_images=2)
        await a.record(b"2", "2", manifest_json=manifest("partial", "x"), image_reasons={"http_404": 1})
        await b.record(b"1", "1", failed_json='{"reason": "listing_http_404"}')
        return a.recorded_reasons, b.recorded_reasons

    by_a, by_b = run(redis_url, steps)
    assert redis_client.hgetall(KEYS.reasons) == {
        b"image/http_404": b"2", b"image/timeout": b"1", b"hotel/listing_http_404": b"1",
    }
    assert redis_client.hgetall(KEYS.node_reasons("office-pc-12")) == {b"image/http_404": b"2", b"image/timeout": b"1"}
    assert redis_client.hgetall(KEYS.node_reasons("office-pc-13")) == {b"hotel/listing_http_404": b"1"}
    assert by_a == {"image/http_404": 2, "image/timeout": 1}
    assert by_b == {"hotel/listing_http_404": 1}


def test_a_dropped_duplicate_result_counts_no_reasons(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"7892470")

    async def steps(client):
        a = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        b = LeaseManager(client, KEYS, OWNER_B, lease_seconds=120)
        await a.claim(1)
        expire(redis_client, b"7892470")
        await b.requeue_expired()
        await b.claim(1)
        await b.record(b"7892470", "7892470", manifest_json=manifest("partial", "timeout"))
        late = await a.record(b"7892470", "7892470", manifest_json=manifest("partial", "http_404"))
        return late, a.recorded_reasons

    late, by_a = run(redis_url, steps)
    assert late is False and by_a == {}
    assert redis_client.hgetall(KEYS.reasons) == {b"image/timeout": b"1"}
