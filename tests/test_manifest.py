"""The per-hotel manifest: status, layout and serialisation, against literal values."""

from __future__ import annotations

import json
import re

import pytest

from hotelimages.items import FailedImage, StoredImage
from hotelimages.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    build_manifest,
    dumps,
    failure_record,
    hotel_status,
    utc_now,
)

CATEGORIES = ("cover", "exterior", "interior", "reviews")


@pytest.mark.parametrize(
    ("stored", "failed", "expected"),
    [(3, 0, "complete"), (0, 0, "empty"), (2, 1, "partial"), (0, 4, "failed")],
)
def test_hotel_status(stored, failed, expected):
    assert hotel_status(stored, failed) == expected


def stored(category: str, image_id: str, ext: str = "jpg", size: int = 100) -> StoredImage:
    return StoredImage(
        id=image_id,
        url=f"http://img.example.com/{image_id}.{ext}",
        category=category,
        file=f"{image_id}.{ext}",
        bytes=size,
        width=640,
        height=480,
        sha1="0" * 40,
    )


def build(stored_images, failed_images):
    return build_manifest(
        hotel_id="7892470",
        node="office-pc-12",
        store="D:/image",
        hotel_dir="6/8/c/2/7892470",
        stored=stored_images,
        failed=failed_images,
        categories=CATEGORIES,
        started_at="2026-11-30T08:00:00.000000Z",
        finished_at="2026-11-30T08:00:02.000000Z",
    )


def test_build_manifest_literal():
    manifest = build(
        [stored("interior", "20"), stored("cover", "3", "png", 7), stored("interior", "10", "webp", 5)],
        [FailedImage("99", "http://img.example.com/99.jpg", "exterior", "http_404")],
    )
    assert manifest == {
        "schema": 1,
        "hotel_id": "7892470",
        "node": "office-pc-12",
        "store": "D:/image",
        "dir": "6/8/c/2/7892470",
        "status": "partial",
        "images": {
            "cover": [
                {
                    "file": "3.png", "id": "3", "url": "http://img.example.com/3.png",
                    "bytes": 7, "width": 640, "height": 480, "sha1": "0" * 40,
                }
            ],
            "exterior": [],
            "interior": [
                {
                    "file": "10.webp", "id": "10", "url": "http://img.example.com/10.webp",
                    "bytes": 5, "width": 640, "height": 480, "sha1": "0" * 40,
                },
                {
                    "file": "20.jpg", "id": "20", "url": "http://img.example.com/20.jpg",
                    "bytes": 100, "width": 640, "height": 480, "sha1": "0" * 40,
                },
            ],
            "reviews": [],
        },
        "failed": [{"id": "99", "url": "http://img.example.com/99.jpg", "category": "exterior", "reason": "http_404"}],
        "started_at": "2026-11-30T08:00:00.000000Z",
        "finished_at": "2026-11-30T08:00:02.000000Z",
    }
    assert list(manifest) == [
        "schema", "hotel_id", "node", "store", "dir", "status", "images", "failed", "started_at", "finished_at",
    ]
    assert list(manifest["images"]) == ["cover", "exterior", "interior", "reviews"]


def test_build_manifest_files_are_sorted_by_name_as_strings():
    manifest = build([stored("cover", "9"), stored("cover", "10"), stored("cover", "1")], [])
    assert [f["file"] for f in manifest["images"]["cover"]] == ["1.jpg", "10.jpg", "9.jpg"]
    assert manifest["status"] == "complete"


def test_build_manifest_of_an_empty_hotel_lists_every_category():
    manifest = build([], [])
    assert manifest["status"] == "empty"
    assert manifest["images"] == {"cover": [], "exterior": [], "interior": [], "reviews": []}
    assert manifest["failed"] == []


def test_build_manifest_does_not_depend_on_input_order():
    images = [stored("interior", "20"), stored("cover", "3"), stored("other", "5"), stored("interior", "10")]
    assert build(images, []) == build(list(reversed(images)), [])


def test_build_manifest_puts_categories_outside_the_list_after_the_known_ones():
    manifest = build([stored("other", "5"), stored("cover", "1")], [])
    assert list(manifest["images"]) == ["cover", "exterior", "interior", "reviews", "other"]
    assert [f["file"] for f in manifest["images"]["other"]] == ["5.jpg"]


def test_build_manifest_keeps_failures_in_their_order_with_nones():
    failed = [
        FailedImage("2", "http://img.example.com/2.jpg", "cover", "http_404"),
        FailedImage(None, None, None, "malformed_image_entry"),
        FailedImage("1", "http://img.example.com/1.jpg", "cover", "truncated"),
    ]
    manifest = build([], failed)
    assert manifest["status"] == "failed"
    assert manifest["failed"] == [
        {"id": "2", "url": "http://img.example.com/2.jpg", "category": "cover", "reason": "http_404"},
        {"id": None, "url": None, "category": None, "reason": "malformed_image_entry"},
        {"id": "1", "url": "http://img.example.com/1.jpg", "category": "cover", "reason": "truncated"},
    ]


def test_dumps_is_compact_and_round_trips():
    manifest = build([stored("cover", "1")], [FailedImage(None, "http://img.example.com/é.jpg", "cover", "http_404")])
    text = dumps(manifest)
    assert json.loads(text) == manifest
    assert ", " not in text and ": " not in text
    assert "é" in text  # not escaped
    assert text.startswith('{"schema":1,"hotel_id":"7892470","node":"office-pc-12",')


def test_dumps_literal():
    assert dumps({"b": 1, "a": [None, "ü"]}) == '{"b":1,"a":[null,"ü"]}'


def test_failure_record_truncates_detail_to_500():
    record = failure_record("7892470", "listing_http_503", "x" * 2000, "office-pc-12", "2026-11-30T08:00:00Z")
    assert record == {
        "hotel_id": "7892470",
        "reason": "listing_http_503",
        "detail": "x" * 500,
        "node": "office-pc-12",
        "at": "2026-11-30T08:00:00Z",
    }


def test_failure_record_keeps_a_short_detail():
    assert failure_record("1", "r", "short", "n", "t")["detail"] == "short"


def test_utc_now_format():
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", utc_now())


def test_constants():
    assert SCHEMA_VERSION == 1
    assert MANIFEST_NAME == "manifest.json"


def test_a_failure_record_keeps_a_json_entry_for_retry():
    entry = b'{"hotel_id": "7", "images": [{"url": "http://cdn.example.com/1.jpg"}]}'
    record = failure_record("7", "internal_error", "boom", "n1", "t", entry)
    assert record["entry"] == entry.decode()
    assert "entry" not in failure_record("7", "listing_http_404", "", "n1", "t", b"7")
    assert "entry" not in failure_record("x", "malformed_record", "", "n1", "t", b'{"hotel_id": ')


# Reading back: the one parser


def sample(**changes) -> dict:
    manifest = {
        "schema": 1, "hotel_id": "7892470", "node": "n", "store": "/s", "dir": "6/8/c/2/7892470",
        "status": "complete", "failed": [], "started_at": "", "finished_at": "2026-11-30T08:00:02Z",
        "images": {
            "rooms": [{"file": "b.jpg", "bytes": 2, "sha1": "b" * 40}],
            "cover": [{"file": "z.jpg", "bytes": 3, "sha1": "c" * 40}, {"file": "a.jpg", "bytes": 1, "sha1": "a" * 40}],
        },
    }
    manifest.update(changes)
    return manifest


def test_loads_and_listed_files_in_a_stable_order():
    from hotelimages.manifest import ListedFile, listed_files, loads

    m = loads(json.dumps(sample()).encode())
    assert listed_files(m) == [
        ListedFile("6/8/c/2/7892470/cover/a.jpg", 1, "a" * 40),
        ListedFile("6/8/c/2/7892470/cover/z.jpg", 3, "c" * 40),
        ListedFile("6/8/c/2/7892470/rooms/b.jpg", 2, "b" * 40),
    ]
    assert listed_files(m, "x")[0].path == "x/cover/a.jpg"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "unreadable manifest"),
        (b"[]", "images mapping"),
        (json.dumps(sample(hotel_id="..")).encode(), "invalid hotel id"),
        (json.dumps(sample(images={"../x": []})).encode(), "invalid category id"),
        (json.dumps(sample(images={"cover": [{"file": "a/b.jpg", "bytes": 1, "sha1": "a"}]})).encode(),
         "invalid file id"),
        (json.dumps(sample(images={"cover": [{"file": "a.jpg"}]})).encode(), "malformed image entry"),
        (json.dumps(sample(images={"cover": {"file": "a.jpg"}})).encode(), "not a list"),
    ],
)
def test_loads_refuses_unusable_manifests(data: bytes, message: str):
    from hotelimages.manifest import ManifestError, loads

    with pytest.raises(ManifestError, match=message):
        loads(data)


def test_check_place_wants_the_sharded_path():
    from hotelimages.manifest import ManifestError, check_place

    assert check_place(sample(), "6/8/c/2/7892470") == "6/8/c/2/7892470"
    with pytest.raises(ManifestError, match="not at its sharded path"):
        check_place(sample(), "0/0/0/0/7892470")
    with pytest.raises(ManifestError, match="manifest says dir"):
        check_place(sample(dir="elsewhere"), "6/8/c/2/7892470")


def test_find_manifests_lists_hotel_folders_only(tmp_path):
    from hotelimages.manifest import find_manifests

    for rel in ("a/1", "b/2", ".hotelimages/3", "a/1/cover/deeper"):
        (tmp_path / rel).mkdir(parents=True, exist_ok=True)
        (tmp_path / rel / MANIFEST_NAME).write_text("{}")
    assert [p.relative_to(tmp_path).as_posix() for p in find_manifests(tmp_path)] == [
        "a/1/manifest.json", "b/2/manifest.json",
    ]


def test_parse_time_is_aware_utc():
    from hotelimages.manifest import parse_time

    assert parse_time("2026-11-30T08:00:00Z").isoformat() == "2026-11-30T08:00:00+00:00"
    assert parse_time("2026-11-30").isoformat() == "2026-11-30T00:00:00+00:00"
