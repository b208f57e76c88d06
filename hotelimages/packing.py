"""Packing a node's store into tar shards, each with an index and a sha256, for the trip to the central disk.

The shard format (tar, index, sha256 file) is described in :mod:`hotelimages.shards`;
hotels are found and read through :mod:`hotelimages.manifest`.

``<out>/packed.jsonl`` records every hotel packed (ID, sha1 of its manifest, shard), so a
second run packs only hotels that are new or whose manifest changed since.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tarfile
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from hotelimages import manifest as manifests
from hotelimages.manifest import MANIFEST_NAME, STATUSES
from hotelimages.progressbar import ProgressBar, format_bytes
from hotelimages.sharding import InvalidId
from hotelimages.shards import (
    COMPRESSIONS,
    INDEX_SUFFIX,
    SHA256_SUFFIX,
    HashingReader,
    HashingWriter,
    IndexEntry,
    ShardWriteError,
    sha256_line,
    shard_paths,
    sidecar,
    utc_stamp,
)
from hotelimages.storage import remove_temp_files, write_atomic

__all__ = ["ProgressBar", "format_bytes", "pack", "parse_size", "plan", "shard_paths"]

logger = logging.getLogger(__name__)

#: Largest shard (uncompressed tar bytes) unless told otherwise; a single larger hotel gets a shard of its own.
DEFAULT_MAX_SHARD_BYTES = 4 * 1024**3
#: The record of packed hotels inside the output folder.
PACKED_RECORD = "packed.jsonl"
#: Present in the output folder while a pack run works there.
LOCK_NAME = ".pack.lock"

_BLOCK = tarfile.BLOCKSIZE
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}

ProgressCallback = Callable[[int, int], None]


def parse_size(text: str) -> int:
    """Bytes from ``4G``, ``500MiB``, ``1.5g`` or ``123456``; binary units."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*", text.lower())
    if not m:
        raise ValueError(f"invalid size {text!r} (examples: 4G, 500M, 1048576)")
    value = int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])
    if value <= 0:
        raise ValueError(f"size must be positive, got {text!r}")
    return value


# Finding what to pack


@dataclass(frozen=True)
class PackMember:
    """One file of a hotel: its path in the store (POSIX, relative) and on disk."""

    path: str
    source: Path
    bytes: int
    expected_sha1: str  # from the manifest; for the manifest itself, its sha1 when it was read


@dataclass
class HotelToPack:
    """A settled hotel found in the store, with everything that goes into its shard."""

    hotel_id: str
    dir: str
    manifest_sha1: str
    finished_at: str
    node: str
    status: str
    members: list[PackMember]

    @property
    def bytes(self) -> int:
        return sum(m.bytes for m in self.members)

    def tar_size(self) -> int:
        """Upper bound of the hotel's bytes in a tar: a header (and room for a PAX one) plus padded data."""
        return sum(2 * _BLOCK + -(-m.bytes // _BLOCK) * _BLOCK for m in self.members)


@dataclass(frozen=True, slots=True)
class PlannedHotel:
    """A hotel a pack run will pack: what is kept of it until its turn, so memory does not grow with its files.

    Its files are listed again (``read_hotel``) when it is written.
    """

    hotel_id: str
    manifest_path: Path
    manifest_sha1: str
    node: str
    bytes: int


@dataclass(frozen=True)
class SkippedHotel:
    """A hotel folder that was not packed, and why (``reason`` is a short code)."""

    path: str
    hotel_id: str | None
    reason: str
    detail: str


def read_hotel(store: Path, manifest_path: Path) -> HotelToPack:
    """The hotel of one manifest, checked against its folder; raises ValueError saying what is wrong."""
    data = manifest_path.read_bytes()
    manifest = manifests.loads(data)
    rel = manifests.check_place(manifest, manifest_path.parent.relative_to(store).as_posix())
    members: list[PackMember] = []
    for listed in manifests.listed_files(manifest, rel):
        source = store / listed.path
        try:
            size = source.stat().st_size
        except FileNotFoundError:
            raise ValueError(f"missing image file {listed.path}") from None
        if size != listed.bytes:
            raise ValueError(f"image file {listed.path} has {size} bytes, the manifest says {listed.bytes}")
        members.append(PackMember(listed.path, source, size, listed.sha1))
    manifest_sha1 = hashlib.sha1(data).hexdigest()
    members.append(PackMember(f"{rel}/{MANIFEST_NAME}", manifest_path, len(data), manifest_sha1))
    return HotelToPack(
        hotel_id=manifest["hotel_id"], dir=rel, manifest_sha1=manifest_sha1,
        finished_at=str(manifest.get("finished_at", "")), node=str(manifest.get("node", "")),
        status=str(manifest.get("status", "")), members=members,
    )


def load_packed_record(out: Path) -> dict[str, str]:
    """Hotel ID -> sha1 of the manifest last packed for it, from ``<out>/packed.jsonl``."""
    record: dict[str, str] = {}
    path = out / PACKED_RECORD
    if not path.is_file():
        return record
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                entry = json.loads(line)
                record[entry["hotel_id"]] = entry["manifest_sha1"]
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash: the hotel is packed again, which merging tolerates
    return record


# Packing


@dataclass(frozen=True)
class ShardInfo:
    """One finished shard and its sidecar files."""

    path: Path
    index: Path
    sha256_file: Path
    sha256: str
    hotels: int
    members: int
    bytes: int  # size of the shard file


@dataclass
class PackResult:
    """What a pack run did."""

    store: Path
    out: Path
    shards: list[ShardInfo] = field(default_factory=list)
    hotels_packed: list[str] = field(default_factory=list)
    hotels_repacked: list[str] = field(default_factory=list)  # packed before, manifest changed since
    hotels_already_packed: int = 0
    hotels_filtered: int = 0  # excluded by status or --since
    skipped: list[SkippedHotel] = field(default_factory=list)
    files: int = 0
    bytes: int = 0  # file bytes packed
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": str(self.store), "out": str(self.out),
            "shards": [
                {"path": str(s.path), "sha256": s.sha256, "hotels": s.hotels, "members": s.members, "bytes": s.bytes}
                for s in self.shards
            ],
            "hotels_packed": len(self.hotels_packed), "hotels_repacked": self.hotels_repacked,
            "hotels_already_packed": self.hotels_already_packed, "hotels_filtered": self.hotels_filtered,
            "skipped": [s.__dict__ for s in self.skipped],
            "files": self.files, "bytes": self.bytes, "seconds": round(self.seconds, 3),
        }


class _ShardWriter:
    """Writes one shard under a temporary name; ``finish`` adds the index and sha256 and renames it into place."""

    def __init__(self, out: Path, name: str, mode: str):
        self.final = out / name
        self.tmp = out / f".{name}.part"
        self._file = open(self.tmp, "wb")
        self._sha256 = hashlib.sha256()
        self._writer = HashingWriter(self._file, self._sha256)
        self.tar = tarfile.open(fileobj=self._writer, mode=mode, format=tarfile.PAX_FORMAT)  # type: ignore[call-overload]
        self.index: list[IndexEntry] = []
        self.hotels: list[HotelToPack] = []
        self.added = 0  # file bytes added, for progress

    @property
    def offset(self) -> int:
        return self.tar.offset

    def add_hotel(self, hotel: HotelToPack, on_bytes: Callable[[int], None]) -> None:
        for member in hotel.members:
            with open(member.source, "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_size != member.bytes:
                    raise ValueError(f"{member.path} changed size while packing")
                info = tarfile.TarInfo(member.path)
                info.size = member.bytes
                info.mtime = int(st.st_mtime)
                info.mode = 0o644
                reader = HashingReader(f, hashlib.sha1())
                self.tar.addfile(info, reader)
            sha1 = reader.hasher.hexdigest()
            if sha1 != member.expected_sha1:
                raise ValueError(f"{member.path} has sha1 {sha1}, expected {member.expected_sha1} (changed?)")
            self.index.append(IndexEntry(member.path, member.bytes, sha1, hotel.hotel_id))
            self.added += member.bytes
            on_bytes(member.bytes)
        self.hotels.append(hotel)

    def finish(self) -> ShardInfo:
        self.tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        digest = self._sha256.hexdigest()
        index = sidecar(self.final, INDEX_SUFFIX)
        sha_file = sidecar(self.final, SHA256_SUFFIX)
        write_atomic(index, "".join(e.to_line() for e in self.index).encode("utf-8"), fsync=True)
        write_atomic(sha_file, sha256_line(digest, self.final.name), fsync=True)
        os.replace(self.tmp, self.final)
        return ShardInfo(
            path=self.final, index=index, sha256_file=sha_file, sha256=digest, hotels=len(self.hotels),
            members=len(self.index), bytes=self._writer.count,
        )

    def abort(self) -> None:
        try:
            self.tar.close()
        except Exception:  # noqa: BLE001 - the shard is being thrown away anyway
            pass
        self._file.close()
        self.tmp.unlink(missing_ok=True)


class PackLock:
    """Keeps two pack runs out of one output folder (they would clean up each other's temporary files)."""

    def __init__(self, out: Path):
        self.path = out / LOCK_NAME

    def __enter__(self) -> PackLock:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if not self._stale():
                    raise RuntimeError(
                        f"another pack run is using {self.path.parent} ({self.path} exists); "
                        "if no pack is running, delete that file"
                    ) from None
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return self
        raise RuntimeError(f"could not take the lock {self.path}")

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)

    def _stale(self) -> bool:
        """True if the lock's process is gone; only knowable on POSIX (os.kill on Windows would end it)."""
        if os.name != "posix":
            return False
        try:
            pid = int(self.path.read_text().strip())
            os.kill(pid, 0)
        except (ValueError, OSError) as exc:
            return not isinstance(exc, PermissionError)
        return False


def _free_shard_name(out: Path, stem: str, ext: str, number: int) -> tuple[str, int]:
    """The first shard name from ``number`` on that no shard or sidecar uses yet."""
    while True:
        name = f"{stem}-{number:04d}{ext}"
        if not any((out / n).exists() for n in (name, name + INDEX_SUFFIX, name + SHA256_SUFFIX)):
            return name, number
        number += 1


def plan(
    store: str | Path,
    out: str | Path,
    *,
    statuses: Iterable[str] = STATUSES,
    since: str | datetime | None = None,
    repack: bool = False,
) -> tuple[list[PlannedHotel], PackResult]:
    """Which hotels of ``store`` a pack run would pack, in store order, and the result so far."""
    store, out = Path(store), Path(out)
    if not store.is_dir():
        raise FileNotFoundError(f"store {store} is not a folder")
    statuses = set(statuses)
    unknown = statuses - set(STATUSES)
    if unknown:
        raise ValueError(f"unknown status {sorted(unknown)}; known: {', '.join(STATUSES)}")
    since_dt = manifests.parse_time(since) if isinstance(since, str) else since
    if since_dt is not None and since_dt.tzinfo is None:
        since_dt = since_dt.replace(tzinfo=UTC)
    record = {} if repack else load_packed_record(out)
    result = PackResult(store=store, out=out)
    todo: list[PlannedHotel] = []
    for manifest_path in manifests.find_manifests(store):
        rel = manifest_path.parent.relative_to(store).as_posix()
        try:
            hotel = read_hotel(store, manifest_path)
        except (ValueError, KeyError, TypeError, InvalidId) as exc:
            result.skipped.append(SkippedHotel(rel, None, "bad_hotel", str(exc)))
            logger.warning("Not packing %(path)s: %(error)s", {"path": rel, "error": exc})
            continue
        if hotel.status not in statuses:
            result.hotels_filtered += 1
            continue
        if since_dt is not None:
            try:
                finished = manifests.parse_time(hotel.finished_at)
            except ValueError:
                finished = None
            if finished is None or finished < since_dt:
                result.hotels_filtered += 1
                continue
        packed_sha1 = record.get(hotel.hotel_id)
        if packed_sha1 == hotel.manifest_sha1:
            result.hotels_already_packed += 1
            continue
        if packed_sha1 is not None:
            result.hotels_repacked.append(hotel.hotel_id)
        todo.append(PlannedHotel(hotel.hotel_id, manifest_path, hotel.manifest_sha1, hotel.node, hotel.bytes))
    return todo, result


def pack(
    store: str | Path,
    out: str | Path,
    *,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    compression: str = "none",
    statuses: Iterable[str] = STATUSES,
    since: str | datetime | None = None,
    repack: bool = False,
    name: str | None = None,
    progress: ProgressCallback | None = None,
) -> PackResult:
    """Pack the settled hotels of ``store`` not packed yet into shards in ``out``.

    ``statuses`` limits which manifests count (default: every settled hotel, so the
    central store matches the node's); ``since`` keeps only hotels finished at or after
    that time; ``repack`` ignores the record of packed hotels. ``name`` prefixes the shard
    files (default: the node name of the first manifest). A hotel whose files do not
    match its manifest is skipped and reported, not packed.
    """
    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r}; choose from {', '.join(COMPRESSIONS)}")
    if max_shard_bytes < 2 * tarfile.RECORDSIZE:
        raise ValueError(f"max shard size must be at least {2 * tarfile.RECORDSIZE} bytes, got {max_shard_bytes}")
    started = time.monotonic()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with PackLock(out):
        remove_temp_files(out)  # a killed pack run's own (the lock is held)
        todo, result = plan(store, out, statuses=statuses, since=since, repack=repack)
        _write_shards(todo, result, max_shard_bytes, compression, name, progress)
    result.seconds = time.monotonic() - started
    logger.info(
        "Packed %(hotels)d hotels (%(files)d files, %(bytes)s) into %(shards)d shards in %(seconds).1fs",
        {"hotels": len(result.hotels_packed), "files": result.files, "bytes": format_bytes(result.bytes),
         "shards": len(result.shards), "seconds": result.seconds},
    )
    return result


def _write_shards(
    todo: list[PlannedHotel],
    result: PackResult,
    max_shard_bytes: int,
    compression: str,
    name: str | None,
    progress: ProgressCallback | None,
) -> None:
    out = result.out
    mode, ext = COMPRESSIONS[compression]
    # Room for the end-of-archive blocks and record padding, and for a compressor's overhead on
    # incompressible data: the limit is on the shard file, which is what gets copied.
    budget = max_shard_bytes - tarfile.RECORDSIZE - (0 if compression == "none" else max_shard_bytes // 256 + 65536)
    total = sum(h.bytes for h in todo)
    done = 0

    def on_bytes(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total)

    if progress:
        progress(0, total)
    stem = f"{_safe_name(name or (todo[0].node if todo else '') or 'node')}-{utc_stamp()}"
    number = 1
    queue: deque[PlannedHotel | HotelToPack] = deque(todo)
    writer: _ShardWriter | None = None
    record = open(out / PACKED_RECORD, "a", encoding="utf-8", newline="\n")
    try:
        while queue:
            hotel = _listed(queue.popleft(), result, on_bytes)
            if hotel is None:
                continue
            size = hotel.tar_size()
            if writer is not None and writer.hotels and writer.offset + size > budget:
                _finish(writer, result, record)
                writer = None
            if writer is None:
                shard_name, number = _free_shard_name(out, stem, ext, number)
                writer = _ShardWriter(out, shard_name, mode)
            if size > budget:
                logger.warning(
                    "Hotel %(hotel)s (%(size)s) is larger than the shard limit; it gets a shard of its own",
                    {"hotel": hotel.hotel_id, "size": format_bytes(size)},
                )
            try:
                writer.add_hotel(hotel, on_bytes)
            except (OSError, ValueError) as exc:
                if isinstance(exc, ShardWriteError):
                    raise
                # The tar already holds part of this hotel: drop the shard and pack its other hotels again.
                logger.warning("Not packing hotel %(hotel)s: %(error)s", {"hotel": hotel.hotel_id, "error": exc})
                result.skipped.append(SkippedHotel(hotel.dir, hotel.hotel_id, "changed_or_corrupt", str(exc)))
                done -= writer.added
                queue.extendleft(reversed(writer.hotels))
                writer.abort()
                writer = None
        if writer is not None and writer.hotels:
            _finish(writer, result, record)
            writer = None
    finally:
        if writer is not None:
            writer.abort()
        record.close()
    packed = set(result.hotels_packed)
    result.hotels_repacked = [h for h in result.hotels_repacked if h in packed]


def _listed(
    hotel: PlannedHotel | HotelToPack, result: PackResult, on_bytes: Callable[[int], None]
) -> HotelToPack | None:
    """A planned hotel with its files listed again from its manifest; None (and reported) if it became unusable."""
    if isinstance(hotel, HotelToPack):
        return hotel  # put back after a dropped shard: already listed
    try:
        return read_hotel(result.store, hotel.manifest_path)
    except (OSError, ValueError, KeyError, TypeError, InvalidId) as exc:
        rel = hotel.manifest_path.parent.relative_to(result.store).as_posix()
        logger.warning("Not packing %(path)s: %(error)s", {"path": rel, "error": exc})
        result.skipped.append(SkippedHotel(rel, hotel.hotel_id, "changed_or_corrupt", str(exc)))
        on_bytes(hotel.bytes)
        return None


def _finish(writer: _ShardWriter, result: PackResult, record: IO[str]) -> None:
    shard = writer.finish()
    result.shards.append(shard)
    for hotel in writer.hotels:
        result.hotels_packed.append(hotel.hotel_id)
        result.files += len(hotel.members)
        result.bytes += hotel.bytes
        record.write(json.dumps(
            {"hotel_id": hotel.hotel_id, "manifest_sha1": hotel.manifest_sha1, "shard": shard.path.name},
            separators=(",", ":"),
        ) + "\n")
    record.flush()
    logger.info(
        "Wrote shard %(shard)s: %(hotels)d hotels, %(size)s",
        {"shard": shard.path.name, "hotels": shard.hotels, "size": format_bytes(shard.bytes)},
    )


def _safe_name(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "node"
    return cleaned[:64]
