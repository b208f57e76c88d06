"""The per-hotel manifest: its schema and how it is built (pure functions).

Example::

    {"schema": 1, "hotel_id": "7892470", "node": "office-pc-12", "store": "D:/image",
     "dir": "6/8/c/2/7892470", "status": "complete",
     "images": {"cover": [{"file": "26680713.jpg", "id": "26680713", "url": "http://...",
                           "bytes": 171234, "width": 1024, "height": 768, "sha1": "..."}]},
     "failed": [], "started_at": "2026-11-30T08:00:00Z", "finished_at": "2026-11-30T08:00:02Z"}
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TypedDict

from hotelimages.items import FailedImage, StoredImage

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
STATUSES = ("complete", "partial", "failed", "empty")


class ManifestFile(TypedDict):
    file: str
    id: str
    url: str
    bytes: int
    width: int
    height: int
    sha1: str


class ManifestFailure(TypedDict):
    id: str | None
    url: str | None
    category: str | None
    reason: str


class Manifest(TypedDict):
    schema: int
    hotel_id: str
    node: str
    store: str
    dir: str
    status: str
    images: dict[str, list[ManifestFile]]
    failed: list[ManifestFailure]
    started_at: str
    finished_at: str


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string with a ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hotel_status(stored: int, failed: int) -> str:
    """``complete``, ``partial``, ``failed`` or ``empty`` from the counts of stored and failed images."""
    if failed == 0:
        return "complete" if stored else "empty"
    return "partial" if stored else "failed"


def build_manifest(
    *,
    hotel_id: str,
    node: str,
    store: str,
    hotel_dir: str,
    stored: list[StoredImage],
    failed: list[FailedImage],
    categories: tuple[str, ...],
    started_at: str,
    finished_at: str,
) -> Manifest:
    """The manifest of a settled hotel; images grouped by category, in a stable order."""
    images: dict[str, list[ManifestFile]] = {c: [] for c in categories}
    for img in sorted(stored, key=lambda s: (s.category, s.file)):
        images.setdefault(img.category, []).append(
            ManifestFile(
                file=img.file, id=img.id, url=img.url, bytes=img.bytes,
                width=img.width, height=img.height, sha1=img.sha1,
            )
        )
    return Manifest(
        schema=SCHEMA_VERSION,
        hotel_id=hotel_id,
        node=node,
        store=store,
        dir=hotel_dir,
        status=hotel_status(len(stored), len(failed)),
        images=images,
        failed=[ManifestFailure(**asdict(f)) for f in failed],
        started_at=started_at,
        finished_at=finished_at,
    )


def dumps(manifest: Manifest | dict[str, Any]) -> str:
    """The one serialisation used on disk and in Redis."""
    return json.dumps(manifest, ensure_ascii=False, separators=(",", ":"), sort_keys=False)


def failure_record(hotel_id: str, reason: str, detail: str, node: str, at: str, entry: bytes = b"") -> dict[str, str]:
    """The value stored in ``hotels:failed`` for a hotel that could not be done.

    A JSON record's entry is kept whole (``entry``), so ``hotelimages retry-failed`` can push
    it back with its inline images.
    """
    record = {"hotel_id": hotel_id, "reason": reason, "detail": detail[:500], "node": node, "at": at}
    text = entry.decode("utf-8", errors="replace").strip()
    if text.startswith("{") and reason != "malformed_record":
        record["entry"] = text
    return record
