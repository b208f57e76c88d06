"""Merging packed shards into the central store: verify everything first, then extract, then catalogue.

For each shard, before anything in the central store is touched:

- its sha256 must match the ``.sha256`` file next to it, and every member its index line
  (path, bytes, sha1);
- every member must be a regular file (or folder) whose path is relative, has no ``..``
  or other unsafe part, stays inside the store, and lies where the sharded layout puts
  it; links, devices and anything else are refused;
- each hotel must hold exactly the files its manifest lists, and its manifest.

A refused shard is reported with a reason and a message; by default one refused shard
stops the whole merge before any write. Extraction writes each file under a temporary
name and renames it into place; a hotel's central manifest is written only after all
its files, so it marks the hotel as merged and a re-run completes an interrupted merge.

The central manifest is the node's, with ``store`` set to the central store and a
``sources`` list of every node copy that arrived: the first is kept, a later copy from
another node (or a changed copy) is a conflict that is recorded, not written over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tarfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hotelimages import manifest as manifest_format
from hotelimages.central_catalog import STATE_DIR, Catalog, default_catalog_path
from hotelimages.manifest import MANIFEST_NAME, dumps, utc_now
from hotelimages.progressbar import format_bytes
from hotelimages.sharding import InvalidId, resolve_in_store, validate_path_part
from hotelimages.shards import (
    CHUNK,
    SHA256_SUFFIX,
    HashingReader,
    IndexEntry,
    ShardRefused,
    read_index,
    read_sha256,
    sha1_file,
    shard_paths,
    sidecar,
    utc_stamp,
)
from hotelimages.storage import TEMP_SUFFIX, write_atomic

logger = logging.getLogger(__name__)

#: Folder (inside the central store's state folder) that keeps a JSON report of every merge that changed something.
REPORTS_DIR = "merges"
#: A manifest larger than this in a shard is refused rather than read into memory.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


#: ``progress(phase, done_bytes, total_bytes)``, phase ``verify`` or ``extract``.
MergeProgress = Callable[[str, int, int], None]


@dataclass
class ShardHotel:
    """One hotel inside a verified shard."""

    hotel_id: str
    dir: str
    manifest: dict[str, Any]
    manifest_sha1: str
    files: dict[str, IndexEntry]  # image path -> index entry; the manifest member is not among them

    @property
    def bytes(self) -> int:
        return sum(e.bytes for e in self.files.values())

    def file_sha1s(self) -> dict[str, str]:
        return {path: e.sha1 for path, e in self.files.items()}


@dataclass
class VerifiedShard:
    """A shard that passed every check, with its hotels in shard order."""

    path: Path
    sha256: str
    bytes: int
    members: int
    hotels: dict[str, ShardHotel]


@dataclass(frozen=True)
class Refusal:
    """A shard that was refused, and why."""

    shard: str
    reason: str
    message: str


@dataclass(frozen=True)
class Conflict:
    """A hotel that reached the central store a second time with a different manifest."""

    hotel_id: str
    kept_node: str
    kept_shard: str
    other_node: str
    other_shard: str
    same_files: bool  # the other copy has the same files with the same bytes


@dataclass
class MergeReport:
    """What a merge did; ``changed`` is False when a re-run found everything already merged."""

    central: str
    catalog: str
    shards: list[str]
    verified: list[dict[str, Any]] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    merged: bool = False  # False if refused shards stopped it, or it only verified
    hotels_added: list[str] = field(default_factory=list)
    hotels_unchanged: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    manifests_written: int = 0
    files_written: int = 0
    files_unchanged: int = 0
    bytes_written: int = 0
    catalog_updated: int = 0
    report_file: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.refused

    @property
    def changed(self) -> bool:
        return bool(self.files_written or self.manifests_written or self.catalog_updated)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(ok=self.ok, changed=self.changed, seconds=round(self.seconds, 3))
        return out


# Verifying


class StorePaths:
    """Absolute paths of members under a store, checked like ``resolve_in_store`` but cached per folder.

    Resolving every path costs a system call per path part; members of a hotel share
    their folders, so each folder is resolved (and a link in the store that leads
    outside is caught) once. A member's own name is never followed: files are renamed
    into place, which replaces a link rather than writing through it.
    """

    def __init__(self, store: Path):
        self.store = store
        self._folders: dict[str, Path] = {}

    def __call__(self, relpath: str) -> Path:
        folder, _, name = relpath.rpartition("/")
        resolved = self._folders.get(folder)
        if resolved is None:
            resolved = self._folders[folder] = resolve_in_store(self.store, folder or ".")
        target = resolved / name
        if target.parent != resolved or name in ("", ".", ".."):
            raise ValueError(f"path {relpath!r} leaves the store {str(self.store)!r}")
        return target


def check_member_name(name: str, store: Path | StorePaths) -> list[str]:
    """The parts of a safe member path; raises ValueError saying why a path is unsafe."""
    if not name:
        raise ValueError("empty member name")
    if name.startswith("/") or "\\" in name or re.match(r"[A-Za-z]:", name):
        raise ValueError(f"absolute or non-POSIX member path {name!r}")
    parts = name.split("/")
    for part in parts:
        try:
            validate_path_part(part)
        except InvalidId as exc:
            raise ValueError(f"unsafe member path {name!r}: {exc}") from None
    # raises ValueError if a link already in the store would lead outside
    store(name) if isinstance(store, StorePaths) else resolve_in_store(store, name)
    return parts


def verify_shard(
    shard: str | Path, store: str | Path, progress: Callable[[int], None] | None = None
) -> VerifiedShard:
    """Check a shard completely without writing anything; returns its hotels or raises ShardRefused.

    One read of the shard computes its sha256 and every member's sha1; the store is only
    used to check that no member path would lead outside it.
    """
    shard, store = Path(shard), Path(store)
    if not shard.is_file():
        raise ShardRefused(shard, "missing", "no such shard file")
    expected_sha256 = read_sha256(shard)
    index = read_index(shard)
    seen: set[str] = set()
    manifests: dict[str, tuple[str, bytes]] = {}  # hotel id -> (member path, bytes)
    size = shard.stat().st_size
    sha256 = hashlib.sha256()
    problem: ShardRefused | None = None
    with open(shard, "rb") as f:
        reader = HashingReader(f, sha256)
        try:
            _scan_members(shard, store, reader, index, seen, manifests, progress)
        except ShardRefused as exc:
            problem = exc
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            problem = ShardRefused(shard, "bad_tar", f"not a readable tar archive ({type(exc).__name__}: {exc})")
        while reader.read(CHUNK):  # the rest, so the digest covers the whole file
            pass
    actual = sha256.hexdigest()
    if actual != expected_sha256:
        # Reported first: whatever else went wrong, a digest mismatch is the cause.
        raise ShardRefused(
            shard, "sha256_mismatch",
            f"sha256 is {actual}, {sidecar(shard, SHA256_SUFFIX).name} says {expected_sha256}: "
            "the shard is corrupt or incomplete; copy it again",
        )
    if problem is not None:
        raise problem
    missing = sorted(set(index) - seen)
    if missing:
        raise ShardRefused(
            shard, "incomplete", f"{len(missing)} members listed in the index are not in the tar, e.g. {missing[0]!r}"
        )
    hotels = _check_hotels(shard, index, manifests)
    if progress:
        progress(size)
    return VerifiedShard(path=shard, sha256=actual, bytes=size, members=len(seen), hotels=hotels)


def _scan_members(
    shard: Path,
    store: Path,
    reader: HashingReader,
    index: dict[str, IndexEntry],
    seen: set[str],
    manifests: dict[str, tuple[str, bytes]],
    progress: Callable[[int], None] | None,
) -> None:
    paths = StorePaths(store)
    with tarfile.open(fileobj=reader, mode="r|*") as tar:  # type: ignore[call-overload]
        for member in tar:
            name = member.name
            try:
                check_member_name(name, paths)
            except ValueError as exc:
                raise ShardRefused(shard, "unsafe_member", str(exc)) from None
            if member.isdir():
                continue
            if not member.isreg() or member.issparse():
                kind = "link" if (member.issym() or member.islnk()) else "device or special file"
                raise ShardRefused(
                    shard, "unsafe_member", f"member {name!r} is a {kind}; only regular files are merged"
                )
            if name in seen:
                raise ShardRefused(shard, "bad_tar", f"member {name!r} appears twice")
            seen.add(name)
            entry = index.get(name)
            if entry is None:
                raise ShardRefused(shard, "not_in_index", f"member {name!r} is not in the index")
            if member.size != entry.bytes:
                raise ShardRefused(
                    shard, "index_mismatch", f"member {name!r} has {member.size} bytes, the index says {entry.bytes}"
                )
            is_manifest = name.rsplit("/", 1)[-1] == MANIFEST_NAME
            if is_manifest and member.size > MAX_MANIFEST_BYTES:
                raise ShardRefused(shard, "bad_manifest", f"manifest {name!r} is implausibly large")
            sha1 = hashlib.sha1()
            kept = bytearray()
            data = tar.extractfile(member)
            assert data is not None  # a regular file
            while chunk := data.read(CHUNK):
                sha1.update(chunk)
                if is_manifest:
                    kept += chunk
            if sha1.hexdigest() != entry.sha1:
                raise ShardRefused(
                    shard, "index_mismatch", f"member {name!r} has sha1 {sha1.hexdigest()}, the index says {entry.sha1}"
                )
            if is_manifest:
                if entry.hotel_id in manifests:
                    raise ShardRefused(shard, "bad_manifest", f"hotel {entry.hotel_id!r} has two manifests")
                manifests[entry.hotel_id] = (name, bytes(kept))
            if progress:
                progress(reader.count)


def _check_hotels(
    shard: Path, index: dict[str, IndexEntry], manifests: dict[str, tuple[str, bytes]]
) -> dict[str, ShardHotel]:
    by_hotel: dict[str, list[IndexEntry]] = {}
    for entry in index.values():
        by_hotel.setdefault(entry.hotel_id, []).append(entry)
    hotels: dict[str, ShardHotel] = {}
    for hotel_id, entries in by_hotel.items():
        if hotel_id not in manifests:
            raise ShardRefused(shard, "bad_manifest", f"hotel {hotel_id!r} has no {MANIFEST_NAME} in the shard")
        manifest_path, data = manifests[hotel_id]
        folder = manifest_path.rpartition("/")[0]
        try:
            manifest = manifest_format.loads(data)
            if manifest["hotel_id"] != hotel_id:
                raise ValueError(f"it names hotel {manifest['hotel_id']!r}")
            manifest_format.check_place(manifest, folder)
            listed = {f.path: (f.bytes, f.sha1) for f in manifest_format.listed_files(manifest, folder)}
        except ValueError as exc:
            raise ShardRefused(shard, "bad_manifest", f"manifest {manifest_path!r} is unusable: {exc}") from None
        files = {e.path: e for e in entries if e.path != manifest_path}
        if set(files) != set(listed):
            extra = sorted(set(files) - set(listed))
            absent = sorted(set(listed) - set(files))
            raise ShardRefused(
                shard, "bad_manifest",
                f"hotel {hotel_id!r}: shard files and manifest disagree (not in manifest: {extra[:3]}, "
                f"missing from shard: {absent[:3]})",
            )
        for path, (size, sha1) in listed.items():
            if (files[path].bytes, files[path].sha1) != (size, sha1):
                raise ShardRefused(shard, "bad_manifest", f"{path!r} does not match its manifest entry")
        hotels[hotel_id] = ShardHotel(
            hotel_id=hotel_id, dir=folder, manifest=manifest,
            manifest_sha1=hashlib.sha1(data).hexdigest(), files=files,
        )
    return hotels


# Merging


@dataclass
class _CentralHotel:
    manifest: dict[str, Any]
    sources: list[dict[str, Any]]
    files: dict[str, str]  # path -> sha1


def _load_central(paths: StorePaths, hotel: ShardHotel) -> _CentralHotel | None:
    path = paths(f"{hotel.dir}/{MANIFEST_NAME}")
    if not path.is_file():
        return None
    manifest, manifest_sha1 = manifest_format.read(path)
    files = {f.path: f.sha1 for f in manifest_format.listed_files(manifest, hotel.dir)}
    return _CentralHotel(manifest, manifest_format.sources(manifest, manifest_sha1), files)


def _source(shard: VerifiedShard, hotel: ShardHotel, same_files: bool) -> dict[str, Any]:
    return {
        "node": hotel.manifest.get("node", ""),
        "store": hotel.manifest.get("store", ""),
        "shard": shard.path.name,
        "shard_sha256": shard.sha256,
        "manifest_sha1": hotel.manifest_sha1,
        "status": hotel.manifest.get("status", ""),
        "finished_at": hotel.manifest.get("finished_at", ""),
        "same_files": same_files,
        "merged_at": utc_now(),
    }


def _free_bytes(path: Path) -> int:
    while not path.exists() and path.parent != path:
        path = path.parent
    return shutil.disk_usage(path).free


def _extract(
    paths: StorePaths, shard: VerifiedShard, new: set[str], report: MergeReport, on_bytes: Callable[[int], None]
) -> None:
    """Write the image files of the ``new`` hotels of a verified shard, each atomically."""
    manifest_members = {f"{h.dir}/{MANIFEST_NAME}" for h in shard.hotels.values()}
    made: set[Path] = set()
    wanted = {path: e for h in shard.hotels.values() if h.hotel_id in new for path, e in h.files.items()}
    with open(shard.path, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:  # type: ignore[call-overload]
        for member in tar:
            if member.name in manifest_members or member.name not in wanted or not member.isreg():
                continue
            entry = wanted[member.name]
            target = paths(member.name)
            if (
                target.is_file() and not target.is_symlink()
                and target.stat().st_size == entry.bytes and sha1_file(target) == entry.sha1
            ):
                report.files_unchanged += 1  # left by an interrupted merge, or a hotel's previous copy
                on_bytes(entry.bytes)
                continue
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            tmp = target.with_name(f".{target.name}.{os.getpid()}{TEMP_SUFFIX}")
            sha1 = hashlib.sha1()
            data = tar.extractfile(member)
            assert data is not None
            try:
                with open(tmp, "wb") as out:
                    while chunk := data.read(CHUNK):
                        sha1.update(chunk)
                        out.write(chunk)
                if sha1.hexdigest() != entry.sha1:
                    raise ShardRefused(shard.path, "changed", f"{member.name!r} changed since the shard was verified")
                os.replace(tmp, target)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            os.utime(target, (member.mtime, member.mtime))
            report.files_written += 1
            report.bytes_written += entry.bytes
            on_bytes(entry.bytes)


def merge(
    shards: Iterable[str | Path],
    central: str | Path,
    *,
    catalog_path: str | Path | None = None,
    store_label: str | None = None,
    keep_going: bool = False,
    verify_only: bool = False,
    progress: MergeProgress | None = None,
) -> MergeReport:
    """Verify ``shards`` (files, or folders of them) and merge them into the ``central`` store.

    Every shard is verified before anything is written; if one is refused, nothing is
    merged unless ``keep_going``, which merges the others. ``store_label`` is what central
    manifests record as ``store`` (default: the store's absolute path). The catalogue
    (default ``<central>/.hotelimages/catalog.sqlite``) is updated for every merged hotel,
    and a JSON report is kept under ``<central>/.hotelimages/merges/`` when anything changed.
    """
    started = time.monotonic()
    central = Path(central)
    if central.exists() and not central.is_dir():
        raise NotADirectoryError(f"central store {central} is not a folder")
    shard_files = shard_paths(shards)
    catalog_file = Path(catalog_path) if catalog_path else default_catalog_path(central)
    label = store_label or central.resolve().as_posix()
    report = MergeReport(central=str(central), catalog=str(catalog_file), shards=[str(p) for p in shard_files])

    total = sum(p.stat().st_size for p in shard_files if p.is_file())
    base = 0
    verified: list[VerifiedShard] = []
    for path in shard_files:
        def on_verify(done: int, base: int = base) -> None:
            if progress:
                progress("verify", base + done, total)
        try:
            shard = verify_shard(path, central, on_verify)
        except ShardRefused as exc:
            report.refused.append(Refusal(str(path), exc.reason, str(exc)))
            logger.error("Refused shard %(shard)s (%(reason)s): %(error)s",
                         {"shard": path, "reason": exc.reason, "error": exc})
        else:
            verified.append(shard)
            report.verified.append({"shard": str(path), "sha256": shard.sha256, "hotels": len(shard.hotels),
                                    "members": shard.members, "bytes": shard.bytes})
        base += path.stat().st_size if path.is_file() else 0
    if verify_only or (report.refused and not keep_going) or not verified:
        report.seconds = time.monotonic() - started
        return report

    paths = StorePaths(central)
    current: dict[str, _CentralHotel | None] = {}
    for shard in verified:
        for hotel in shard.hotels.values():
            if hotel.hotel_id not in current:
                current[hotel.hotel_id] = _load_central(paths, hotel)
    # Bytes to extract: the first copy of each hotel not yet in the store.
    firsts: dict[str, int] = {}
    for shard in verified:
        for hotel in shard.hotels.values():
            if current[hotel.hotel_id] is None:
                firsts.setdefault(hotel.hotel_id, hotel.bytes)
    to_write = sum(firsts.values())
    if to_write > _free_bytes(central):
        raise OSError(
            f"not enough free space under {central}: the merge needs up to {format_bytes(to_write)}, "
            f"{format_bytes(_free_bytes(central))} are free"
        )
    done = 0

    def on_extract(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress("extract", done, to_write)

    if progress:
        progress("extract", 0, to_write)
    central.mkdir(parents=True, exist_ok=True)
    with Catalog(catalog_file, label) as catalog:
        for shard in verified:
            new = {h.hotel_id for h in shard.hotels.values() if current[h.hotel_id] is None}
            if new:
                _extract(paths, shard, new, report, on_extract)
            for hotel in shard.hotels.values():
                _settle_hotel(paths, label, shard, hotel, current, report, catalog)
            catalog.commit()
        report.merged = True
    if report.changed:
        reports = central / STATE_DIR / REPORTS_DIR
        reports.mkdir(parents=True, exist_ok=True)
        report.report_file = str(reports / f"{utc_stamp()}-{os.getpid()}.json")
        report.seconds = time.monotonic() - started
        write_atomic(report.report_file, json.dumps(report.to_dict(), indent=1).encode("utf-8"))
    report.seconds = time.monotonic() - started
    logger.info(
        "Merged %(shards)d shards: %(added)d hotels added, %(unchanged)d unchanged, %(conflicts)d conflicts, "
        "%(files)d files (%(bytes)s) written",
        {"shards": len(verified), "added": len(report.hotels_added), "unchanged": report.hotels_unchanged,
         "conflicts": len(report.conflicts), "files": report.files_written,
         "bytes": format_bytes(report.bytes_written)},
    )
    return report


def _settle_hotel(
    paths: StorePaths,
    label: str,
    shard: VerifiedShard,
    hotel: ShardHotel,
    current: dict[str, _CentralHotel | None],
    report: MergeReport,
    catalog: Catalog,
) -> None:
    """Write or update a hotel's central manifest once its files are in place, and its catalogue row."""
    state = current[hotel.hotel_id]
    if state is None:
        manifest = dict(hotel.manifest)
        manifest["store"] = label
        manifest["sources"] = [_source(shard, hotel, same_files=True)]
        report.hotels_added.append(hotel.hotel_id)
    elif any(s.get("manifest_sha1") == hotel.manifest_sha1 for s in state.sources):
        report.hotels_unchanged += 1
        manifest = state.manifest
    else:
        same = state.files == hotel.file_sha1s()
        kept = state.sources[0]
        report.conflicts.append(Conflict(
            hotel_id=hotel.hotel_id, kept_node=str(kept.get("node", "")), kept_shard=str(kept.get("shard", "")),
            other_node=str(hotel.manifest.get("node", "")), other_shard=shard.path.name, same_files=same,
        ))
        logger.warning(
            "Hotel %(hotel)s arrived again from node %(node)s (%(same)s); kept the copy from %(kept)s",
            {"hotel": hotel.hotel_id, "node": hotel.manifest.get("node"),
             "same": "same files" if same else "different files", "kept": kept.get("node")},
        )
        manifest = dict(state.manifest)
        manifest["sources"] = [*state.sources, _source(shard, hotel, same_files=same)]
    path = paths(f"{hotel.dir}/{MANIFEST_NAME}")
    if state is not None and manifest is state.manifest:
        manifest_sha1 = sha1_file(path)
    else:
        data = dumps(manifest).encode("utf-8")
        write_atomic(path, data)
        report.manifests_written += 1
        current[hotel.hotel_id] = _CentralHotel(
            manifest, manifest["sources"], state.files if state else hotel.file_sha1s()
        )
        manifest_sha1 = hashlib.sha1(data).hexdigest()
    if catalog.upsert(manifest, manifest_sha1):
        report.catalog_updated += 1
