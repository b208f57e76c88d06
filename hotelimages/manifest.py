"""The per-hotel manifest: its schema, how it is built (pure functions), read back and found in a store.

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
import os
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from hotelimages.items import FailedImage, StoredImage
from hotelimages.sharding import ANY_PART_PATTERN, InvalidId, hotel_dir, validate_path_part

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


def parse_time(text: str) -> datetime:
    """An aware UTC datetime from ISO 8601 text (``2026-11-30``, ``...T08:00:00Z``, with an offset)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


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


# Reading manifests back: the one parser, used by pack, merge, the catalogue and the demo


class ManifestError(ValueError):
    """A manifest that cannot be used: not JSON, missing fields, unsafe names, wrong place."""


@dataclass(frozen=True, slots=True)
class ListedFile:
    """One image a manifest lists: its path relative to the store, size and sha1."""

    path: str
    bytes: int
    sha1: str


def loads(data: bytes | str) -> dict[str, Any]:
    """A manifest's JSON as a dict with an ``images`` mapping and a safe ``hotel_id``; raises ManifestError.

    Names that become path parts (hotel ID, categories, file names) are checked with
    :func:`hotelimages.sharding.validate_path_part`, so :func:`listed_files` is safe to join.
    """
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise ManifestError(f"unreadable manifest: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("images"), dict):
        raise ManifestError("manifest is not an object with an images mapping")
    try:
        validate_path_part(manifest.get("hotel_id"), "hotel")
        for category, files in manifest["images"].items():
            validate_path_part(category, "category")
            if not isinstance(files, list):
                raise ManifestError(f"images of category {category!r} are not a list")
            for entry in files:
                validate_path_part(entry["file"], "file")
                int(entry["bytes"])
                str(entry["sha1"])
    except InvalidId as exc:
        raise ManifestError(str(exc)) from None
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ManifestError):
            raise
        raise ManifestError(f"malformed image entry ({type(exc).__name__}: {exc})") from None
    return manifest


def check_place(manifest: dict[str, Any], folder: str) -> str:
    """``folder`` if it is the sharded path of the manifest's hotel and what ``dir`` says; raises ManifestError."""
    hotel_id = manifest["hotel_id"]
    parts = folder.split("/")
    if parts[-1] != hotel_id or hotel_dir(hotel_id, len(parts) - 1, ANY_PART_PATTERN) != folder:
        raise ManifestError(f"hotel {hotel_id!r} is at {folder!r}, not at its sharded path")
    if manifest.get("dir", folder) != folder:
        raise ManifestError(f"manifest says dir {manifest.get('dir')!r} but lies in {folder!r}")
    return folder


def listed_files(manifest: dict[str, Any], folder: str | None = None) -> list[ListedFile]:
    """The images of a parsed manifest, by category then file name, with paths under ``folder`` (default its dir)."""
    base = manifest["dir"] if folder is None else folder
    return [
        ListedFile(f"{base}/{category}/{entry['file']}", int(entry["bytes"]), str(entry["sha1"]))
        for category in sorted(manifest["images"])
        for entry in sorted(manifest["images"][category], key=lambda e: e["file"])
    ]


def read(path: str | Path) -> tuple[dict[str, Any], str]:
    """A manifest file parsed, and the sha1 of its bytes (which identifies that copy)."""
    data = Path(path).read_bytes()
    return loads(data), hashlib.sha1(data).hexdigest()


def sources(manifest: dict[str, Any], manifest_sha1: str) -> list[dict[str, Any]]:
    """The node copies recorded in a central manifest, or the manifest itself as its only source."""
    recorded = manifest.get("sources")
    if isinstance(recorded, list) and recorded:
        return recorded
    return [{"node": manifest.get("node", ""), "shard": "", "manifest_sha1": manifest_sha1, "same_files": True}]


def find_manifests(store: str | Path) -> Iterator[Path]:
    """Every ``manifest.json`` of a store's hotel folders, in a stable order.

    A folder holding a manifest is a hotel folder, so its category folders are not
    listed: the walk costs one listing per shard folder, not one per image. Hidden
    folders (state, temporary files) are skipped.
    """
    stack = [Path(store)]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except FileNotFoundError:
            continue
        if any(e.name == MANIFEST_NAME and e.is_file(follow_symlinks=False) for e in entries):
            yield folder / MANIFEST_NAME
            continue
        stack.extend(
            Path(e.path) for e in reversed(entries)
            if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
        )
