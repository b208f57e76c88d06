"""Regression tests for defects found in review: each one failed before its fix."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from scrapy.settings import Settings

from hotelimages.config import HotelsConfig
from hotelimages.imagecheck import ImageMeta, ImageRejected, inspect_image
from hotelimages.listing import check_images, url_refusal
from hotelimages.manifest import failure_record


def mpo_bytes() -> bytes:
    # Noise, so each picture is many kilobytes, as a phone's would be.
    first = Image.merge("RGB", [Image.effect_noise((400, 300), 60)] * 3)
    second = Image.merge("RGB", [Image.effect_noise((400, 300), 90)] * 3)
    buf = io.BytesIO()
    first.save(buf, "MPO", save_all=True, append_images=[second])
    return buf.getvalue()


def test_a_multi_picture_jpeg_is_a_jpeg():
    assert inspect_image(mpo_bytes()) == ImageMeta("JPEG", "jpg", 400, 300)


def test_a_multi_picture_jpeg_cut_short_is_truncated():
    body = mpo_bytes()
    with pytest.raises(ImageRejected) as info:
        inspect_image(body[: len(body) - 2000])
    assert info.value.reason == "truncated"


def test_an_unknown_allowed_format_is_a_setting_error():
    with pytest.raises(ValueError, match="HOTELS_ALLOWED_FORMATS.*JPG"):
        HotelsConfig.from_settings(Settings({"HOTELS_ALLOWED_FORMATS": "JPG,PNG"}))


def test_a_url_with_a_lone_surrogate_is_malformed():
    url = json.loads('"http://cdn.example.com/\\ud800.jpg"')
    assert url_refusal(url) == "malformed_url"
    out = check_images([{"id": "1", "url": url, "category": "cover"}], categories=("cover",),
                       other_category="other", image_id_pattern=r"[0-9]+", max_images=10)
    assert [f.reason for f in out.failed] == ["malformed_url"]
    json.dumps([f.__dict__ for f in out.failed], ensure_ascii=False).encode("utf-8")  # manifest-safe


def test_a_failure_record_keeps_a_json_entry_for_retry():
    entry = b'{"hotel_id": "7", "images": [{"url": "http://cdn.example.com/1.jpg"}]}'
    record = failure_record("7", "internal_error", "boom", "n1", "t", entry)
    assert record["entry"] == entry.decode()
    assert "entry" not in failure_record("7", "listing_http_404", "", "n1", "t", b"7")
    assert "entry" not in failure_record("x", "malformed_record", "", "n1", "t", b'{"hotel_id": ')


def test_a_hotel_item_repr_stays_short_for_huge_listings():
    from hotelimages.items import HotelItem, ImageRef

    item = HotelItem(b"7", "7", "t", images=[ImageRef(str(n), f"http://cdn.example.com/{n}.jpg", "cover")
                                             for n in range(5000)])
    assert repr(item) == "HotelItem(hotel_id='7', images=5000, stored=0, failed=0, failure=None)"
