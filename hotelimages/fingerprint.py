"""Request fingerprints that keep two hotels' copies of one image URL apart.

Scrapy's media pipelines share download results between requests with the same
fingerprint. Two hotels (or two image IDs) may list the same URL, but each must
get its own file, so an image request's fingerprint includes where it goes.
"""

from __future__ import annotations

import hashlib
from typing import Any

from scrapy.utils.request import RequestFingerprinter

IMAGE_META_KEY = "hotel_image"


def image_fingerprint(hotel_id: str, category: str, image_id: str, url: str) -> bytes:
    """The fingerprint of one image of one hotel."""
    return hashlib.sha1("\0".join((hotel_id, category, image_id, url)).encode("utf-8")).digest()


class HotelRequestFingerprinter:
    """Scrapy's fingerprinter, except for image requests (see the module docstring)."""

    def __init__(self, crawler: Any = None):
        self._default = RequestFingerprinter(crawler)

    @classmethod
    def from_crawler(cls, crawler: Any) -> HotelRequestFingerprinter:
        return cls(crawler)

    def fingerprint(self, request: Any) -> bytes:
        key = request.meta.get(IMAGE_META_KEY)
        if key:
            return image_fingerprint(*key, request.url)
        return self._default.fingerprint(request)
