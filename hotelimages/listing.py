"""Parsing and checking of hotel photo listings (pure functions).

The listing contract: ``{"hotel_id": "...", "images": [{"id", "url", "category"}, ...],
"next": "<url>" | null}``. The spider's ``parse_listing`` method calls
``parse_listing_json``; a different source only needs that method changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hotelimages.items import FailedImage, ImageRef
from hotelimages.sharding import InvalidId, derive_image_id, validate_id

ALLOWED_SCHEMES = ("http", "https")


class ListingError(ValueError):
    """A listing that cannot be used at all; ``reason`` is the code recorded for the hotel."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class ListingPage:
    """One page of a listing, not yet checked image by image."""

    hotel_id: str | None
    images: list[Any] = field(default_factory=list)
    next_url: str | None = None


@dataclass
class CheckedImages:
    """A hotel's images after checking: what to fetch, what is refused, how many went to ``other``."""

    images: list[ImageRef] = field(default_factory=list)
    failed: list[FailedImage] = field(default_factory=list)
    other_count: int = 0


def parse_listing_document(data: Any) -> ListingPage:
    """Check the shape of a decoded listing document; raises ListingError."""
    if not isinstance(data, dict):
        raise ListingError("listing_not_an_object", f"expected a JSON object, got {type(data).__name__}")
    images = data.get("images", [])
    if images is None:
        images = []
    if not isinstance(images, list):
        raise ListingError("listing_bad_images", f"'images' must be a list, got {type(images).__name__}")
    next_url = data.get("next")
    if next_url is not None and not isinstance(next_url, str):
        raise ListingError("listing_bad_next", f"'next' must be a string or null, got {next_url!r:.80}")
    hotel_id = data.get("hotel_id")
    return ListingPage(hotel_id=None if hotel_id is None else str(hotel_id), images=images, next_url=next_url or None)


def parse_listing_json(body: bytes | str) -> ListingPage:
    """Decode and check one listing page; raises ListingError."""
    if not body or not body.strip():
        raise ListingError("listing_empty_body", "the listing response has no body")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ListingError("listing_malformed_json", str(exc)[:200]) from None
    return parse_listing_document(data)


def url_refusal(url: Any, image_hosts: tuple[str, ...] = ()) -> str | None:
    """Why ``url`` must not be fetched (a reason code), or None if it may be."""
    if not isinstance(url, str) or not url:
        return "missing_url"
    if not _encodable(url):  # a lone surrogate from JSON would break the request and the manifest
        return "malformed_url"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "malformed_url"
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        return "disallowed_scheme"
    host = (parts.hostname or "").lower()
    if not host:
        return "malformed_url"
    if image_hosts and not any(host == h or host.endswith("." + h) for h in image_hosts):
        return "host_not_allowed"
    return None


def refused_redirect(response: Any) -> str | None:
    """The ``Location`` of a 3xx response that points where we must not go (e.g. ``file://``), else None.

    Scrapy's RedirectMiddleware does not follow such redirects; the 3xx then reaches us.
    """
    if not 300 <= response.status < 400:
        return None
    location = response.headers.get(b"Location", b"").decode("latin-1")
    if location and url_refusal(response.urljoin(location)):
        return location
    return None


def _shown_url(url: Any) -> str | None:
    """A refused entry's URL as a manifest can hold it (None if it is no string or not encodable)."""
    return url if isinstance(url, str) and _encodable(url) else None


def check_images(
    raw_images: list[Any],
    *,
    categories: tuple[str, ...],
    other_category: str,
    image_id_pattern: str,
    max_images: int,
    image_hosts: tuple[str, ...] = (),
) -> CheckedImages:
    """Turn raw listing entries into images to fetch and refused images with reasons."""
    out = CheckedImages()
    seen: dict[tuple[str, str], str] = {}
    for raw in raw_images:
        if not isinstance(raw, dict):
            out.failed.append(FailedImage(None, None, None, "malformed_image_entry"))
            continue
        url = raw.get("url")
        category = raw.get("category")
        if category not in categories:
            category = other_category
            out.other_count += 1
        raw_id = raw.get("id")
        if isinstance(raw_id, int) and not isinstance(raw_id, bool):
            raw_id = str(raw_id)
        refusal = url_refusal(url, image_hosts)
        if raw_id is None or raw_id == "":
            image_id = derive_image_id(url) if isinstance(url, str) else None
        else:
            image_id = raw_id
        if refusal:
            out.failed.append(FailedImage(_safe_id(image_id, image_id_pattern), _shown_url(url), category, refusal))
            continue
        try:
            validate_id(image_id, image_id_pattern, "image")
        except InvalidId as exc:
            out.failed.append(FailedImage(None, _shown_url(url), category, exc.reason))
            continue
        key = (category, image_id.casefold())  # Windows and macOS file names ignore case
        if key in seen:
            if seen[key] != url:
                out.failed.append(FailedImage(image_id, url, category, "duplicate_image_id"))
            continue
        if len(out.images) >= max_images:
            out.failed.append(FailedImage(image_id, url, category, "over_image_limit"))
            continue
        seen[key] = url
        out.images.append(ImageRef(image_id, url, category))
    return out


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _safe_id(value: Any, pattern: str) -> str | None:
    """An ID fit to show in a manifest, or None (the manifest never echoes hostile strings)."""
    try:
        return validate_id(value, pattern, "image")
    except InvalidId:
        return None


@dataclass
class QueueEntry:
    """What one entry of the pending list asks for: a hotel, with its images inline or not."""

    hotel_id: str
    inline_images: list[Any] | None = None
    force: bool = False  # redo even if the hotel is already done (``"force": true`` in a record)


def parse_queue_entry(raw: bytes, id_pattern: str) -> QueueEntry:
    """Decode one pending-list entry (a bare ID or a JSON record); raises ListingError or InvalidId.

    A record is ``{"hotel_id": ..., "images": [...]}`` (listing inline) or
    ``{"hotel_id": ...}`` (listing fetched); ``"force": true`` redoes a done hotel.
    """
    text = raw.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ListingError("malformed_record", str(exc)[:200]) from None
        if not isinstance(data, dict) or "hotel_id" not in data:
            raise ListingError("malformed_record", "a JSON record needs a 'hotel_id'")
        hotel_id = data["hotel_id"]
        if isinstance(hotel_id, int) and not isinstance(hotel_id, bool):
            hotel_id = str(hotel_id)
        validate_id(hotel_id, id_pattern, "hotel")
        force = data.get("force") is True
        if "images" not in data:  # a record without a listing: fetch it like a bare ID
            return QueueEntry(hotel_id, None, force)
        page = parse_listing_document(data)
        return QueueEntry(hotel_id, page.images, force)
    validate_id(text, id_pattern, "hotel")
    return QueueEntry(text)
