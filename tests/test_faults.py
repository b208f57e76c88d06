"""Injected faults end as recorded reasons while the other hotels complete (real processes)."""

from __future__ import annotations

import json

from crawling import demo_server, expected_files, files_under, recorded_manifest, run_crawl

from devtools import demo_hotels as catalogue
from hotelimages.keys import Keys
from hotelimages.sharding import hotel_dir

KEYS = Keys()
FAULTS = (
    "listing_404:7,listing_malformed:13,listing_500_once:11,image_404:17,image_truncated:23,"
    "image_html:29,image_slow:19,image_500_once:31,image_redirect:3"
)
IMAGE_REASONS = {"image_404": "http_404", "image_truncated": "truncated", "image_html": "not_an_image",
                 "image_slow": "timeout"}


def expected_outcome(hotel_id: str, faults: dict[str, int]) -> tuple[str, str | None]:
    """(status, reason) that the fault plan of the demo server must produce for a hotel."""
    found = catalogue.faults_for(hotel_id, faults)
    if "listing_404" in found:
        return "failed", "listing_http_404"
    if "listing_malformed" in found:
        return "failed", "listing_malformed_json"
    image_faults = [f for f in found if f in catalogue.IMAGE_FAULTS]
    if not image_faults or image_faults[0] not in IMAGE_REASONS:
        return "complete", None
    status = "partial" if len(catalogue.hotel_images(hotel_id)) > 1 else "failed"
    return status, IMAGE_REASONS[image_faults[0]]


def test_each_fault_is_recorded_and_the_rest_complete(redis_client, redis_url, tmp_path):
    faults = catalogue.parse_faults(FAULTS)
    ids = catalogue.hotel_ids(110)
    hostile = ["../../etc", "a/b", "", "x" * 65, "CON", "h\u00f4tel"]
    store = tmp_path / "store"
    with demo_server(len(ids), FAULTS, slow_seconds=4) as base_url:
        redis_client.lpush(KEYS.start_ids, *ids, *hostile)
        redis_client.lpush(KEYS.start_ids, json.dumps({"hotel_id": "inline1", "images": [
            {"id": "../../x", "url": f"{base_url}/img/{ids[0]}/0/a.jpg", "category": "cover"},
            {"id": "ok1", "url": "file:///etc/passwd", "category": "cover"},
            {"id": "ok2", "url": f"{base_url}/img/{ids[0]}/0/a.jpg", "category": "cover"},
        ]}))
        redis_client.lpush(KEYS.start_ids, '{"hotel_id": "broken", "images": [')
        proc = run_crawl(redis_url, base_url, store, "node-faults", "DOWNLOAD_TIMEOUT=1.5", "RETRY_TIMES=1")

    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = {"complete": 0, "partial": 0, "failed": 0}
    for hid in ids:
        status, reason = expected_outcome(hid, faults)
        seen[status] += 1
        if reason and reason.startswith("listing_"):
            record = json.loads(redis_client.hget(KEYS.failed, hid))
            assert record["reason"] == reason, hid
            assert not redis_client.hexists(KEYS.manifests, hid)
            continue
        manifest = recorded_manifest(redis_client, hid)
        assert manifest["status"] == status, (hid, manifest)
        assert [f["reason"] for f in manifest["failed"]] == ([reason] if reason else []), hid
    assert all(seen.values()), seen  # the plan covers every outcome

    # Faulty images are absent, every other image is stored with the served bytes.
    expected = {}
    for hid in ids:
        status, reason = expected_outcome(hid, faults)
        if reason and reason.startswith("listing_"):
            continue
        skip = catalogue.faulty_image_index(hid) if reason else None
        expected.update(expected_files(hid, base_url, skip, FAULTS))
    stored = files_under(store)
    inline = {k: v for k, v in stored.items() if "/inline1/" in k}
    assert {k: v for k, v in stored.items() if "/inline1/" not in k} == expected

    # Hostile IDs are recorded as rejected and never became paths.
    for bad in hostile:
        record = json.loads(redis_client.hget(KEYS.failed, bad[:200]))
        assert record["reason"] == "invalid_hotel_id", bad
    assert json.loads(redis_client.hget(KEYS.failed, '{"hotel_id": "broken", "images": ['))["reason"] == (
        "malformed_record"
    )
    inline_manifest = recorded_manifest(redis_client, "inline1")
    assert sorted(f["reason"] for f in inline_manifest["failed"]) == ["disallowed_scheme", "invalid_image_id"]
    assert list(inline) == [f"{hotel_dir('inline1')}/cover/ok2.jpg"]
    for path in store.rglob("*"):
        assert path.resolve().is_relative_to(store.resolve())
        assert not path.name.endswith(".part")
    assert redis_client.llen(KEYS.start_ids) == 0 and redis_client.zcard(KEYS.leases) == 0
