"""The per-hotel manifest: its schema and how it is built (pure functions).

Example::

    {"schema": 1, "hotel_id": "7892470", "node": "office-pc-12", "store": "D:/image",
     "dir": "6/8/c/2/7892470", "status": "complete",
     "images": {"cover": [{"file": "26680713.jpg", "id": "26680713", "url": "http://...",
                           "bytes": 171234, "width": 1024, "height": 768, "sha1": "..."}]},
     "failed": [], "started_at": "2026-11-30T08:00:00Z", "finished_at": "2026-11-30T08:00:02Z"}
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from dataclasses import asdict, dataclass, field
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

    A JSON record's entry is kept whole (``entry``), so ``scripts/retry_failed`` can push
    it back with its inline images.
    """
    record = {"hotel_id": hotel_id, "reason": reason, "detail": detail[:500], "node": node, "at": at}
    text = entry.decode("utf-8", errors="replace").strip()
    if text.startswith("{") and reason != "malformed_record":
        record["entry"] = text
    return record


# ---------------------------------------------------------------- the done record kept in Redis

#: Version of the compact done record (the value of ``hotels:manifests``, a JSON array whose first
#: element is this number); version 1 was the full manifest itself (a JSON object).
DONE_RECORD_VERSION = 2
#: Fields of a version-2 record, before the optional compressed manifest.
DONE_RECORD_FIELDS = 10


@dataclass(frozen=True)
class DoneRecord:
    """What Redis knows of a done hotel, read from a compact record or an old full manifest.

    ``manifest`` is the full manifest when the value holds one (an old version-1 value, or a
    compact record written with ``HOTELS_REDIS_FULL_MANIFESTS``), else None: it is then in
    ``<store>/<dir>/manifest.json`` on the node. ``version`` is 1 for a full manifest, 2 for a
    compact record, 0 for a value that is neither (still a done hotel).
    """

    version: int
    node: str = ""
    store: str = ""
    dir: str = ""
    status: str = ""
    categories: dict[str, int] = field(default_factory=dict)
    bytes: int = 0
    failed: int = 0
    sha1: str = ""
    finished_at: int = 0
    manifest: dict[str, Any] | None = None

    @property
    def images(self) -> int:
        return sum(self.categories.values())


def _epoch(iso: str) -> int:
    try:
        return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())
    except (AttributeError, ValueError):
        return 0


def done_record(manifest: Manifest | dict[str, Any], text: str | bytes | None = None, *, full: bool = False) -> str:
    """The compact done record of a manifest, as stored in ``hotels:manifests`` (version 2).

    A JSON array, positional to stay small (~190 bytes for typical labels, whatever the photo count)::

        [2, node, store, dir, status, {category: images}, bytes, failed images, sha1, finished_at]

    ``sha1`` is that of ``text``, the manifest exactly as written to ``manifest.json`` (default:
    ``dumps(manifest)``); ``finished_at`` is in Unix seconds; categories without images are left
    out. With ``full`` an 11th element holds the whole manifest, zlib-compressed and base64-encoded.
    """
    if text is None:
        text = dumps(manifest)
    raw = text.encode("utf-8") if isinstance(text, str) else text
    images = manifest.get("images") or {}
    record: list[Any] = [
        DONE_RECORD_VERSION,
        manifest.get("node", ""),
        manifest.get("store", ""),
        manifest.get("dir", ""),
        manifest.get("status", ""),
        {cat: len(files) for cat, files in images.items() if files},
        sum(int(f.get("bytes", 0)) for files in images.values() for f in files),
        len(manifest.get("failed") or ()),
        hashlib.sha1(raw).hexdigest(),  # noqa: S324 - a content fingerprint, not security
        _epoch(str(manifest.get("finished_at", ""))),
    ]
    if full:
        record.append(base64.b64encode(zlib.compress(raw, 6)).decode("ascii"))
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def parse_done_record(raw: bytes | str) -> DoneRecord:
    """Read a ``hotels:manifests`` value: a compact record (v2) or an old full manifest (v1).

    Never raises: a value that is neither is a done hotel whose details are unknown (version 0).
    """
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return DoneRecord(0)
    if isinstance(data, list) and len(data) >= DONE_RECORD_FIELDS and isinstance(data[0], int):
        manifest = None
        if len(data) > DONE_RECORD_FIELDS and isinstance(data[DONE_RECORD_FIELDS], str):
            try:
                manifest = json.loads(zlib.decompress(base64.b64decode(data[DONE_RECORD_FIELDS])))
            except (ValueError, zlib.error):
                manifest = None
        try:
            counts = {str(k): int(v) for k, v in data[5].items()} if isinstance(data[5], dict) else {}
            return DoneRecord(
                version=data[0], node=str(data[1]), store=str(data[2]), dir=str(data[3]), status=str(data[4]),
                categories=counts, bytes=int(data[6]), failed=int(data[7]), sha1=str(data[8]),
                finished_at=int(data[9]), manifest=manifest,
            )
        except (TypeError, ValueError):
            return DoneRecord(0)
    if not isinstance(data, dict):
        return DoneRecord(0)
    if "images" in data or "schema" in data or "status" in data:
        images = data.get("images") if isinstance(data.get("images"), dict) else {}
        text = raw if isinstance(raw, bytes) else raw.encode("utf-8")
        return DoneRecord(
            version=1,
            node=str(data.get("node", "")),
            store=str(data.get("store", "")),
            dir=str(data.get("dir", "")),
            status=str(data.get("status", "")),
            categories={str(c): len(files) for c, files in images.items() if files},
            bytes=sum(int(f.get("bytes", 0)) for files in images.values() for f in files),
            failed=len(data.get("failed") or ()),
            sha1=hashlib.sha1(text).hexdigest(),  # noqa: S324 - the file's fingerprint
            finished_at=_epoch(str(data.get("finished_at", ""))),
            manifest=data,
        )
    return DoneRecord(0)
