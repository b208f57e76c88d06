"""The records that travel through the crawl: a hotel and the outcome of each of its images."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ImageRef:
    """One image of a listing, checked: a safe ID, an http(s) URL and a known category."""

    id: str
    url: str
    category: str


@dataclass(frozen=True)
class StoredImage:
    """An image stored under the hotel's folder."""

    id: str
    url: str
    category: str
    file: str
    bytes: int
    width: int
    height: int
    sha1: str


@dataclass(frozen=True)
class FailedImage:
    """An image that could not be stored, with a short reason code."""

    id: str | None
    url: str | None
    category: str | None
    reason: str


@dataclass
class HotelItem:
    """A claimed hotel on its way through the pipelines.

    ``failure`` is set when the hotel as a whole could not be done (bad ID,
    listing unavailable); the images pipeline then skips it and the manifest
    pipeline records it in ``hotels:failed``.
    """

    entry: bytes = field(repr=False)
    hotel_id: str
    started_at: str
    images: list[ImageRef] = field(default_factory=list)
    failed: list[FailedImage] = field(default_factory=list)
    stored: list[StoredImage] = field(default_factory=list)
    failure: str | None = None
    failure_detail: str = ""
    force: bool = False  # redo even if done: may replace a recorded manifest
    media_requests: list[Any] = field(default_factory=list, repr=False)
    #: (temporary, final) paths of downloaded images, renamed into place once the claim is checked.
    staged: list[tuple[str, str]] = field(default_factory=list, repr=False)

    def __repr__(self) -> str:
        # Scrapy logs items on errors; a listing may hold thousands of images.
        return (
            f"HotelItem(hotel_id={self.hotel_id[:80]!r}, images={len(self.images)}, stored={len(self.stored)}, "
            f"failed={len(self.failed)}, failure={self.failure!r})"
        )
