"""The shard format that pack writes and merge reads: a tar, its index, its sha256 file.

A shard ``<name>.tar`` (or ``.tar.gz``, ``.tar.bz2``, ``.tar.xz``) holds whole hotels at
their sharded paths (images, then the hotel's ``manifest.json``). Next to it:

- ``<name>.tar.index.jsonl``: one JSON line per member: ``path``, ``bytes``, ``sha1``, ``hotel_id``;
- ``<name>.tar.sha256``: the shard's sha256 in ``sha256sum`` format, written last, so a
  shard without it is unfinished.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from hotelimages.sharding import InvalidId, validate_path_part

INDEX_SUFFIX = ".index.jsonl"
SHA256_SUFFIX = ".sha256"
#: Compression name -> (tarfile stream mode, shard file extension).
COMPRESSIONS = {
    "none": ("w|", ".tar"),
    "gz": ("w|gz", ".tar.gz"),
    "bz2": ("w|bz2", ".tar.bz2"),
    "xz": ("w|xz", ".tar.xz"),
}
#: The file name endings of shards.
SHARD_EXTENSIONS = tuple(ext for _, ext in COMPRESSIONS.values())
#: Bytes read or written at a time.
CHUNK = 1024 * 1024


class ShardRefused(Exception):
    """A shard that must not be merged; ``reason`` is a short code, the message says what and where."""

    def __init__(self, shard: Path, reason: str, message: str):
        super().__init__(f"{shard}: {message}")
        self.shard = shard
        self.reason = reason


class ShardWriteError(OSError):
    """Writing a shard failed (disk full, output gone): fatal for the run, unlike a bad source file."""


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One line of a shard's index."""

    path: str
    bytes: int
    sha1: str
    hotel_id: str

    def to_line(self) -> str:
        return json.dumps(
            {"path": self.path, "bytes": self.bytes, "sha1": self.sha1, "hotel_id": self.hotel_id},
            separators=(",", ":"),
        ) + "\n"


def sidecar(shard: Path, suffix: str) -> Path:
    """The index or sha256 file next to a shard."""
    return shard.with_name(shard.name + suffix)


def utc_stamp() -> str:
    """A compact UTC time for file names: shard names and merge reports, e.g. ``20261130T080000Z``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def sha256_line(digest: str, shard_name: str) -> bytes:
    """The content of a ``.sha256`` file, as ``sha256sum`` writes it."""
    return f"{digest}  {shard_name}\n".encode()


def sha1_file(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class HashingReader:
    """A read-only file wrapper that hashes and counts what passes through it."""

    def __init__(self, raw: IO[bytes], hasher: Any):
        self.raw = raw
        self.hasher = hasher
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.hasher.update(data)
        self.count += len(data)
        return data


class HashingWriter:
    """A write-only file wrapper that hashes and counts what passes through it."""

    def __init__(self, raw: IO[bytes], hasher: Any):
        self.raw = raw
        self.hasher = hasher
        self.count = 0

    def write(self, data: bytes) -> int:
        try:
            self.raw.write(data)
        except OSError as exc:
            raise ShardWriteError(exc.errno, f"cannot write the shard: {exc.strerror or exc}") from exc
        self.hasher.update(data)
        self.count += len(data)
        return len(data)


def iter_index(shard: Path) -> Iterator[IndexEntry]:
    """A shard's index lines in order, checked; raises ShardRefused if it is missing or malformed."""
    path = sidecar(shard, INDEX_SUFFIX)
    if not path.is_file():
        raise ShardRefused(
            shard, "incomplete", f"no index {path.name} next to the shard: it was not finished or copied"
        )
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                entry = IndexEntry(str(raw["path"]), int(raw["bytes"]), str(raw["sha1"]), str(raw["hotel_id"]))
                validate_path_part(entry.hotel_id, "hotel")
                if entry.bytes < 0 or not re.fullmatch(r"[0-9a-f]{40}", entry.sha1):
                    raise ValueError("bad bytes or sha1")
            except (ValueError, KeyError, TypeError, InvalidId) as exc:
                raise ShardRefused(shard, "bad_index", f"{path.name} line {number} is malformed ({exc})") from None
            yield entry


def read_index(shard: Path) -> dict[str, IndexEntry]:
    """A shard's index, path -> entry; raises ShardRefused if it is missing, malformed or lists a path twice."""
    entries: dict[str, IndexEntry] = {}
    for entry in iter_index(shard):
        if entry.path in entries:
            raise ShardRefused(shard, "bad_index", f"{sidecar(shard, INDEX_SUFFIX).name} lists {entry.path!r} twice")
        entries[entry.path] = entry
    return entries


def read_sha256(shard: Path) -> str:
    """The digest in a shard's ``.sha256`` file; raises ShardRefused if it is missing or malformed."""
    path = sidecar(shard, SHA256_SUFFIX)
    if not path.is_file():
        raise ShardRefused(shard, "incomplete", f"no {path.name} next to the shard: it was not finished or copied")
    m = re.match(r"\s*([0-9a-fA-F]{64})\b", path.read_text(encoding="utf-8", errors="replace"))
    if not m:
        raise ShardRefused(shard, "bad_sha256", f"{path.name} does not start with a sha256 digest")
    return m.group(1).lower()


def shard_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Shard files from a mix of shard files and folders of shards (a folder gives its ``*.tar*`` shards, sorted)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(
                sorted(
                    q for q in p.iterdir()
                    if q.is_file() and not q.name.startswith(".") and q.name.endswith(SHARD_EXTENSIONS)
                )
            )
        else:
            found.append(p)
    return found
