"""Parsing listing pages and queue entries, and checking a listing's images one by one."""

from __future__ import annotations

import json

import pytest

from hotelimages.items import FailedImage, ImageRef
from hotelimages.listing import (
    CheckedImages,
    ListingError,
    ListingPage,
    QueueEntry,
    check_images,
    parse_listing_json,
    parse_queue_entry,
    url_refusal,
)
from hotelimages.sharding import DEFAULT_ID_PATTERN, InvalidId

CATEGORIES = ("cover", "exterior", "interior", "reviews")


def check(raw_images, *, max_images=5000, image_hosts=()):
    return check_images(
        raw_images,
        categories=CATEGORIES,
        other_category="other",
        image_id_pattern=DEFAULT_ID_PATTERN,
        max_images=max_images,
        image_hosts=image_hosts,
    )


# ---------------------------------------------------------------- listing pages


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "listing_empty_body"),
        ("", "listing_empty_body"),
        (b"  \r\n\t ", "listing_empty_body"),
        (b"{", "listing_malformed_json"),
        (b"<html>503 Service Unavailable</html>", "listing_malformed_json"),
        (b'{"images": ["\xff\xfe"]}', "listing_malformed_json"),
        (b"[1, 2]", "listing_not_an_object"),
        (b'"just a string"', "listing_not_an_object"),
        (b"null", "listing_not_an_object"),
        (b'{"images": {"url": "http://x/1.jpg"}}', "listing_bad_images"),
        (b'{"images": "http://x/1.jpg"}', "listing_bad_images"),
        (b'{"images": [], "next": 2}', "listing_bad_next"),
        (b'{"images": [], "next": ["http://x/"]}', "listing_bad_next"),
    ],
)
def test_parse_listing_json_refuses_unusable_bodies(body, reason):
    with pytest.raises(ListingError) as info:
        parse_listing_json(body)
    assert info.value.reason == reason
    assert str(info.value).startswith(reason + ": ")


def test_parse_listing_json_good_document():
    body = json.dumps(
        {
            "hotel_id": 7892470,
            "images": [{"id": "1", "url": "http://img.example.com/1.jpg", "category": "cover"}],
            "next": "http://api.example.com/hotels/7892470/photos?page=2",
        }
    ).encode()
    assert parse_listing_json(body) == ListingPage(
        hotel_id="7892470",
        images=[{"id": "1", "url": "http://img.example.com/1.jpg", "category": "cover"}],
        next_url="http://api.example.com/hotels/7892470/photos?page=2",
    )


def test_parse_listing_json_accepts_str_and_fills_in_absent_fields():
    assert parse_listing_json('{"images": null, "next": ""}') == ListingPage(hotel_id=None, images=[], next_url=None)
    assert parse_listing_json("{}") == ListingPage(hotel_id=None, images=[], next_url=None)


def test_listing_error_keeps_reason_and_detail():
    exc = ListingError("listing_bad_next", "'next' must be a string")
    assert exc.reason == "listing_bad_next"
    assert exc.detail == "'next' must be a string"
    assert isinstance(exc, ValueError)


# ---------------------------------------------------------------- URL checks


@pytest.mark.parametrize(
    ("url", "hosts", "expected"),
    [
        ("http://img.example.com/1.jpg", (), None),
        ("HTTPS://IMG.EXAMPLE.COM/1.jpg", ("img.example.com",), None),
        ("https://a.b.img.example.com/1.jpg", ("img.example.com",), None),
        ("https://evilimg.example.com/1.jpg", ("img.example.com",), "host_not_allowed"),
        ("https://img.example.com.evil.net/1.jpg", ("img.example.com",), "host_not_allowed"),
        ("file:///etc/passwd", (), "disallowed_scheme"),
        ("javascript:alert(1)", (), "disallowed_scheme"),
        ("ftp://img.example.com/1.jpg", (), "disallowed_scheme"),
        ("data:image/png;base64,AAAA", (), "disallowed_scheme"),
        ("/relative/1.jpg", (), "disallowed_scheme"),
        ("http:///1.jpg", (), "malformed_url"),
        ("http://[::1/1.jpg", (), "malformed_url"),
        ("", (), "missing_url"),
        (None, (), "missing_url"),
        (42, (), "missing_url"),
    ],
)
def test_url_refusal(url, hosts, expected):
    assert url_refusal(url, hosts) == expected


# ---------------------------------------------------------------- image checks


def test_check_images_good_entries_are_kept_in_order():
    out = check(
        [
            {"id": "2", "url": "http://img.example.com/2.jpg", "category": "interior"},
            {"id": "1", "url": "http://img.example.com/1.jpg", "category": "cover"},
        ]
    )
    assert out == CheckedImages(
        images=[
            ImageRef("2", "http://img.example.com/2.jpg", "interior"),
            ImageRef("1", "http://img.example.com/1.jpg", "cover"),
        ],
        failed=[],
        other_count=0,
    )


def test_check_images_derives_a_missing_id_from_the_url():
    out = check(
        [
            {"url": "http://img.example.com/a/1.jpg", "category": "cover"},
            {"id": "", "url": "https://cdn.example.com/p/x.png", "category": "cover"},
            {"id": None, "url": "http://img.example.com/a/1.jpg", "category": "interior"},
        ]
    )
    assert out.images == [
        ImageRef("a664cac57d650354", "http://img.example.com/a/1.jpg", "cover"),
        ImageRef("1bd2effe50d1ee91", "https://cdn.example.com/p/x.png", "cover"),
        ImageRef("a664cac57d650354", "http://img.example.com/a/1.jpg", "interior"),
    ]
    assert out.failed == []


def test_check_images_converts_an_int_id():
    out = check([{"id": 26680713, "url": "http://img.example.com/1.jpg", "category": "cover"}])
    assert out.images == [ImageRef("26680713", "http://img.example.com/1.jpg", "cover")]


def test_check_images_refuses_a_bool_or_float_id():
    out = check(
        [
            {"id": True, "url": "http://img.example.com/1.jpg", "category": "cover"},
            {"id": 1.5, "url": "http://img.example.com/2.jpg", "category": "cover"},
        ]
    )
    assert out.images == []
    assert out.failed == [
        FailedImage(None, "http://img.example.com/1.jpg", "cover", "invalid_image_id"),
        FailedImage(None, "http://img.example.com/2.jpg", "cover", "invalid_image_id"),
    ]


def test_check_images_unknown_or_missing_category_goes_to_other_and_is_counted():
    out = check(
        [
            {"id": "1", "url": "http://img.example.com/1.jpg", "category": "Lobby"},
            {"id": "2", "url": "http://img.example.com/2.jpg"},
            {"id": "3", "url": "http://img.example.com/3.jpg", "category": None},
            {"id": "4", "url": "http://img.example.com/4.jpg", "category": ["cover"]},
            {"id": "5", "url": "http://img.example.com/5.jpg", "category": "cover"},
        ]
    )
    assert [img.category for img in out.images] == ["other", "other", "other", "other", "cover"]
    assert out.other_count == 4
    assert out.failed == []


def test_check_images_duplicate_id_with_a_different_url_fails():
    out = check(
        [
            {"id": "1", "url": "http://img.example.com/1.jpg", "category": "cover"},
            {"id": "1", "url": "http://img.example.com/other.jpg", "category": "cover"},
        ]
    )
    assert out.images == [ImageRef("1", "http://img.example.com/1.jpg", "cover")]
    assert out.failed == [FailedImage("1", "http://img.example.com/other.jpg", "cover", "duplicate_image_id")]


def test_check_images_duplicate_with_the_same_url_is_dropped_silently():
    entry = {"id": "1", "url": "http://img.example.com/1.jpg", "category": "cover"}
    out = check([entry, dict(entry), dict(entry)])
    assert out.images == [ImageRef("1", "http://img.example.com/1.jpg", "cover")]
    assert out.failed == []


def test_check_images_same_id_in_two_categories_is_not_a_duplicate():
    out = check(
        [
            {"id": "1", "url": "http://img.example.com/1.jpg", "category": "cover"},
            {"id": "1", "url": "http://img.example.com/2.jpg", "category": "interior"},
        ]
    )
    assert out.images == [
        ImageRef("1", "http://img.example.com/1.jpg", "cover"),
        ImageRef("1", "http://img.example.com/2.jpg", "interior"),
    ]


def test_check_images_ids_differing_only_in_case_are_duplicates():
    out = check(
        [
            {"id": "Ab1", "url": "http://img.example.com/1.jpg", "category": "cover"},
            {"id": "aB1", "url": "http://img.example.com/2.jpg", "category": "cover"},
        ]
    )
    assert out.images == [ImageRef("Ab1", "http://img.example.com/1.jpg", "cover")]
    assert out.failed == [FailedImage("aB1", "http://img.example.com/2.jpg", "cover", "duplicate_image_id")]


def test_check_images_disallowed_schemes():
    out = check(
        [
            {"id": "1", "url": "file:///etc/passwd", "category": "cover"},
            {"id": "2", "url": "javascript:alert(1)", "category": "cover"},
        ]
    )
    assert out.images == []
    assert out.failed == [
        FailedImage("1", "file:///etc/passwd", "cover", "disallowed_scheme"),
        FailedImage("2", "javascript:alert(1)", "cover", "disallowed_scheme"),
    ]


def test_check_images_missing_url():
    out = check(
        [
            {"id": "1", "category": "cover"},
            {"id": "2", "url": "", "category": "cover"},
            {"id": "3", "url": 17, "category": "cover"},
            {"category": "cover"},
        ]
    )
    assert out.images == []
    assert out.failed == [
        FailedImage("1", None, "cover", "missing_url"),
        FailedImage("2", "", "cover", "missing_url"),
        FailedImage("3", None, "cover", "missing_url"),
        FailedImage(None, None, "cover", "missing_url"),
    ]


def test_check_images_host_allow_list():
    hosts = ("img.example.com",)
    out = check(
        [
            {"id": "1", "url": "http://img.example.com/1.jpg", "category": "cover"},
            {"id": "2", "url": "http://eu.img.example.com/2.jpg", "category": "cover"},
            {"id": "3", "url": "http://attacker.example.net/3.jpg", "category": "cover"},
            {"id": "4", "url": "http://notimg.example.com/4.jpg", "category": "cover"},
        ],
        image_hosts=hosts,
    )
    assert out.images == [
        ImageRef("1", "http://img.example.com/1.jpg", "cover"),
        ImageRef("2", "http://eu.img.example.com/2.jpg", "cover"),
    ]
    assert out.failed == [
        FailedImage("3", "http://attacker.example.net/3.jpg", "cover", "host_not_allowed"),
        FailedImage("4", "http://notimg.example.com/4.jpg", "cover", "host_not_allowed"),
    ]


def test_check_images_max_images():
    raw = [{"id": str(i), "url": f"http://img.example.com/{i}.jpg", "category": "cover"} for i in range(4)]
    out = check(raw, max_images=2)
    assert out.images == [
        ImageRef("0", "http://img.example.com/0.jpg", "cover"),
        ImageRef("1", "http://img.example.com/1.jpg", "cover"),
    ]
    assert out.failed == [
        FailedImage("2", "http://img.example.com/2.jpg", "cover", "over_image_limit"),
        FailedImage("3", "http://img.example.com/3.jpg", "cover", "over_image_limit"),
    ]


def test_check_images_refused_entries_do_not_count_towards_max_images():
    raw = [
        {"id": "0", "url": "file:///x", "category": "cover"},
        {"id": "1", "url": "http://img.example.com/1.jpg", "category": "cover"},
        {"id": "1", "url": "http://img.example.com/1.jpg", "category": "cover"},
        {"id": "2", "url": "http://img.example.com/2.jpg", "category": "cover"},
    ]
    out = check(raw, max_images=2)
    assert [img.id for img in out.images] == ["1", "2"]
    assert [f.reason for f in out.failed] == ["disallowed_scheme"]


def test_check_images_hostile_id_is_refused_and_not_echoed():
    out = check(
        [
            {"id": "../x", "url": "http://img.example.com/1.jpg", "category": "cover"},
            {"id": "CON", "url": "http://img.example.com/2.jpg", "category": "cover"},
            {"id": "a\nb", "url": "http://img.example.com/3.jpg", "category": "cover"},
        ]
    )
    assert out.images == []
    assert out.failed == [
        FailedImage(None, "http://img.example.com/1.jpg", "cover", "invalid_image_id"),
        FailedImage(None, "http://img.example.com/2.jpg", "cover", "invalid_image_id"),
        FailedImage(None, "http://img.example.com/3.jpg", "cover", "invalid_image_id"),
    ]


def test_check_images_unprintable_or_long_id_is_not_echoed_with_a_refused_url():
    out = check(
        [
            {"id": "a\nb", "url": "file:///x", "category": "cover"},
            {"id": "x" * 65, "url": "file:///y", "category": "cover"},
        ]
    )
    assert out.failed == [
        FailedImage(None, "file:///x", "cover", "disallowed_scheme"),
        FailedImage(None, "file:///y", "cover", "disallowed_scheme"),
    ]


def test_check_images_hostile_id_is_not_echoed_with_a_refused_url():
    out = check([{"id": "../x", "url": "file:///etc/passwd", "category": "cover"}])
    assert out.failed == [FailedImage(None, "file:///etc/passwd", "cover", "disallowed_scheme")]


def test_check_images_entries_that_are_not_objects():
    out = check(["http://img.example.com/1.jpg", None, 3])
    assert out.images == []
    assert out.failed == [FailedImage(None, None, None, "malformed_image_entry")] * 3


# ---------------------------------------------------------------- queue entries


def test_parse_queue_entry_bare_id():
    assert parse_queue_entry(b"7892470", DEFAULT_ID_PATTERN) == QueueEntry("7892470", None)


def test_parse_queue_entry_strips_whitespace():
    assert parse_queue_entry(b" 7892470\r\n", DEFAULT_ID_PATTERN) == QueueEntry("7892470", None)


def test_parse_queue_entry_json_record_with_inline_images():
    raw = json.dumps(
        {"hotel_id": "7892470", "images": [{"id": "1", "url": "http://img.example.com/1.jpg"}]}
    ).encode()
    assert parse_queue_entry(raw, DEFAULT_ID_PATTERN) == QueueEntry(
        "7892470", [{"id": "1", "url": "http://img.example.com/1.jpg"}]
    )


def test_parse_queue_entry_json_record_without_images_fetches_the_listing():
    assert parse_queue_entry(b'{"hotel_id": "7"}', DEFAULT_ID_PATTERN) == QueueEntry("7", None)


def test_parse_queue_entry_json_record_with_empty_images_is_an_empty_hotel():
    assert parse_queue_entry(b'{"hotel_id": "7", "images": []}', DEFAULT_ID_PATTERN) == QueueEntry("7", [])


def test_parse_queue_entry_json_record_with_an_int_hotel_id():
    assert parse_queue_entry(b'{"hotel_id": 7892470}', DEFAULT_ID_PATTERN) == QueueEntry("7892470", None)


def test_parse_queue_entry_force_flag():
    assert parse_queue_entry(b'{"hotel_id": "7", "force": true}', DEFAULT_ID_PATTERN) == QueueEntry("7", None, True)
    assert parse_queue_entry(b'{"hotel_id": "7", "force": "yes"}', DEFAULT_ID_PATTERN).force is False


@pytest.mark.parametrize("raw", [b'{"hotel_id": ', b"{not json}", b'{"id": "7"}'])
def test_parse_queue_entry_malformed_record(raw):
    with pytest.raises(ListingError) as info:
        parse_queue_entry(raw, DEFAULT_ID_PATTERN)
    assert info.value.reason == "malformed_record"


def test_parse_queue_entry_record_with_bad_images_is_a_listing_error():
    with pytest.raises(ListingError) as info:
        parse_queue_entry(b'{"hotel_id": "7", "images": "x"}', DEFAULT_ID_PATTERN)
    assert info.value.reason == "listing_bad_images"


@pytest.mark.parametrize(
    "raw",
    [b"../x", b"a/b", b"", b"CON", b'{"hotel_id": "../x"}', b'{"hotel_id": true}', b'{"hotel_id": null}', b"[1]"],
)
def test_parse_queue_entry_invalid_id(raw):
    with pytest.raises(InvalidId) as info:
        parse_queue_entry(raw, DEFAULT_ID_PATTERN)
    assert info.value.reason == "invalid_hotel_id"


def test_parse_queue_entry_non_utf8_bytes_are_an_invalid_id():
    with pytest.raises(InvalidId) as info:
        parse_queue_entry(b"78\xff\xfe92", DEFAULT_ID_PATTERN)
    assert info.value.reason == "invalid_hotel_id"
    assert "78\ufffd\ufffd92" in str(info.value)


def test_parse_queue_entry_non_utf8_bytes_with_a_permissive_pattern_are_replaced():
    # errors="replace": a non-UTF-8 entry becomes U+FFFD characters rather than an exception.
    assert parse_queue_entry(b"78\xff92", ".*") == QueueEntry("78\ufffd92", None)


def test_parse_queue_entry_uses_the_given_pattern():
    assert parse_queue_entry(b"123", r"[0-9]+") == QueueEntry("123", None)
    with pytest.raises(InvalidId):
        parse_queue_entry(b"abc", r"[0-9]+")


def test_a_url_with_a_lone_surrogate_is_malformed():
    url = json.loads('"http://cdn.example.com/\\ud800.jpg"')
    assert url_refusal(url) == "malformed_url"
    out = check_images([{"id": "1", "url": url, "category": "cover"}], categories=("cover",),
                       other_category="other", image_id_pattern=r"[0-9]+", max_images=10)
    assert [f.reason for f in out.failed] == ["malformed_url"]
    json.dumps([f.__dict__ for f in out.failed], ensure_ascii=False).encode("utf-8")  # manifest-safe
