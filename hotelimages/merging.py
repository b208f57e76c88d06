"""Merging packed shards into the central store: verify, then extract shard by shard, then catalogue.

Phase one reads each shard the store's ledger does not list as merged and checks it,
keeping nothing of it but its name, size and sha256:

- its sha256 must match the ``.sha256`` file next to it, and every member its index line
  (path, bytes, sha1);
- every member must be a regular file (or folder) whose path is relative, has no ``..``
  or other unsafe part, stays inside the store, and lies where the sharded layout puts
  it; links, devices and anything else are refused;
- each hotel must hold exactly the files its manifest lists, and its manifest.

A refused shard is reported with a reason and a message; by default one refused shard
stops the whole merge before any write. Phase two takes the store's lock and reads each
shard once more, writing each file under a temporary name and renaming it into place; a
hotel's central manifest is written only after all its files, so it marks the hotel as
merged and a rerun completes an interrupted merge. Then the shard is added to the ledger
(``.hotelimages/merged-shards.jsonl``), so later runs skip it without reading it.

Memory is bounded by one shard: the per-file state (index, manifests, the plan of each
hotel) lives for one shard at a time; what is kept across the store is on disk (central
manifests, the catalogue, the ledger).

The central manifest is the node's, with ``store`` set to the central store and a
``sources`` list of every node copy that arrived, ``kept`` marking the one in place: with
``prefer="first"`` the copy already there stays and a later one is a conflict that is
recorded; with ``prefer="newest"`` a copy with a later ``finished_at`` replaces it (new
files first, then the manifest, then the old files it no longer lists).
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

from filelock import FileLock, Timeout

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
from hotelimages.storage import TEMP_SUFFIX, remove_temp_files, write_atomic

logger = logging.getLogger(__name__)

#: Folder (inside the central store's state folder) that keeps a JSON report of every merge that changed something.
REPORTS_DIR = "merges"
#: The ledger of merged shards, inside the central store's state folder.
LEDGER_NAME = "merged-shards.jsonl"
#: The lock file that keeps a second merge out of a store (held through the OS, released with the process).
LOCK_NAME = "merge.lock"
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
    replaced: bool = False  # ``--prefer newest``: the other (newer) copy replaced the kept one


@dataclass
class MergeReport:
    """What a merge did; ``changed`` is False when a re-run found everything already merged."""

    central: str
    catalog: str
    shards: list[str]
    verified: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # shards the ledger knows as merged: not read
    refused: list[Refusal] = field(default_factory=list)
    merged: bool = False  # False if refused shards stopped it, or it only verified
    hotels_added: list[str] = field(default_factory=list)
    hotels_unchanged: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    manifests_written: int = 0
    files_written: int = 0
    files_unchanged: int = 0
    bytes_written: int = 0
    files_removed: int = 0  # old files of hotels replaced by a newer copy
    temp_files_removed: int = 0  # temporary files of an interrupted merge, cleaned up
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


PREFERENCES = ("first", "newest")


class NoShards(FileNotFoundError):
    """A merge given a wrong path, or a folder without shards: an error, not an empty success."""


class MergeBusy(OSError):
    """Another merge holds the central store's lock."""


@dataclass(frozen=True)
class LedgerEntry:
    """One merged shard as the central store's ledger records it."""

    name: str
    size: int
    sha256: str
    merged_at: str
    hotels: int = 0
    mtime_ns: int = 0  # the shard file's modification time when merged


class Ledger:
    """``<central>/.hotelimages/merged-shards.jsonl``: the shards merged into a store, one JSON line each.

    A shard whose ``.sha256`` file, size and modification time match an entry is known to
    be merged, so a rerun skips it without reading it (a shard file rewritten since, or
    copied without its times, is verified once more). One line per shard (a few thousand for the whole
    job), appended after the shard's hotels are settled and catalogued.
    """

    def __init__(self, path: Path):
        self.path = path
        self._by_sha256: dict[str, LedgerEntry] = {}
        if path.is_file():
            with open(path, encoding="utf-8") as f:
                for line in f:
                    try:
                        raw = json.loads(line)
                        entry = LedgerEntry(
                            str(raw["name"]), int(raw["size"]), str(raw["sha256"]), str(raw["merged_at"]),
                            int(raw.get("hotels", 0)), int(raw.get("mtime_ns", 0)),
                        )
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by a crash: that shard is verified and merged again
                    self._by_sha256[entry.sha256] = entry

    def known(self, shard: Path, sha256: str) -> LedgerEntry | None:
        """The entry of a merged shard with this sha256, the size and modification time of ``shard``, or None."""
        entry = self._by_sha256.get(sha256)
        if entry is None:
            return None
        st = shard.stat()
        return entry if (entry.size, entry.mtime_ns) == (st.st_size, st.st_mtime_ns) else None

    def add(self, shard: Path, sha256: str, hotels: int) -> None:
        st = shard.stat()
        entry = LedgerEntry(shard.name, st.st_size, sha256, utc_now(), hotels, st.st_mtime_ns)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8", newline="\n") as f:
            f.write(json.dumps(asdict(entry), separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._by_sha256[sha256] = entry


def ledger_path(central: str | Path) -> Path:
    return Path(central) / STATE_DIR / LEDGER_NAME


def lock_path(central: str | Path) -> Path:
    return Path(central) / STATE_DIR / LOCK_NAME


@dataclass
class _CentralHotel:
    manifest: dict[str, Any]
    sources: list[dict[str, Any]]
    files: dict[str, str]  # path -> sha1


def _load_central(paths: StorePaths, folder: str) -> _CentralHotel | None:
    path = paths(f"{folder}/{MANIFEST_NAME}")
    if not path.is_file():
        return None
    manifest, manifest_sha1 = manifest_format.read(path)
    files = {f.path: f.sha1 for f in manifest_format.listed_files(manifest, folder)}
    return _CentralHotel(manifest, manifest_format.sources(manifest, manifest_sha1), files)


def _kept(sources: list[dict[str, Any]]) -> dict[str, Any]:
    """The source whose copy is in the store: marked ``kept``, else the first (manifests merged before the flag)."""
    return next((s for s in sources if s.get("kept")), sources[0])


def _free_bytes(path: Path) -> int:
    while not path.exists() and path.parent != path:
        path = path.parent
    return shutil.disk_usage(path).free


def _newer(candidate: str, kept: str) -> bool:
    """True if ``candidate`` (a manifest's finished_at) is later than ``kept``; unreadable times are not newer."""
    try:
        return manifest_format.parse_time(candidate) > manifest_format.parse_time(kept)
    except (ValueError, TypeError, AttributeError):
        return False


@dataclass
class _HotelPlan:
    """What phase two does with one hotel of a shard, from the index and the central store (no shard read)."""

    hotel_id: str
    dir: str
    manifest_path: str
    manifest_sha1: str
    files: dict[str, IndexEntry]
    central: _CentralHotel | None
    action: str  # new | unchanged | conflict | candidate (prefer newest: decided when its manifest is read)
    pending: dict[str, Path] = field(default_factory=dict)  # candidate files written under temporary names
    manifest: dict[str, Any] | None = None
    left: int = 0  # members (files and manifest) not seen yet

    @property
    def writes(self) -> bool:
        return self.action in ("new", "candidate")

    def file_sha1s(self) -> dict[str, str]:
        return {path: e.sha1 for path, e in self.files.items()}


class _ShardMerge:
    """Phase two for one verified shard: one streaming read that writes files and settles hotels.

    Memory is the shard's index and the plans of its hotels; nothing is kept once the
    shard is done. A hotel is settled (central manifest, catalogue row) as soon as its last
    member has been read, which in shards made by pack is its manifest.
    """

    def __init__(self, paths: StorePaths, label: str, shard: Path, sha256: str, prefer: str,
                 report: MergeReport, catalog: Catalog, on_bytes: Callable[[int], None]):
        self.paths, self.label, self.shard, self.sha256 = paths, label, shard, sha256
        self.prefer, self.report, self.catalog, self.on_bytes = prefer, report, catalog, on_bytes
        self.by_path: dict[str, tuple[_HotelPlan, IndexEntry]] = {}
        self.plans: dict[str, _HotelPlan] = {}
        self._plan()

    def _plan(self) -> None:
        grouped: dict[str, list[IndexEntry]] = {}
        for entry in read_index(self.shard).values():
            grouped.setdefault(entry.hotel_id, []).append(entry)
        for hotel_id, entries in grouped.items():
            manifest_entry = next((e for e in entries if e.path.rsplit("/", 1)[-1] == MANIFEST_NAME), None)
            if manifest_entry is None:
                raise ShardRefused(self.shard, "changed", f"hotel {hotel_id!r} lost its manifest since verification")
            folder = manifest_entry.path.rpartition("/")[0]
            central = _load_central(self.paths, folder)
            if central is None:
                action = "new"
            elif self._known(central, manifest_entry.sha1):
                action = "unchanged"
            else:
                action = "candidate" if self.prefer == "newest" else "conflict"
            plan = _HotelPlan(
                hotel_id=hotel_id, dir=folder, manifest_path=manifest_entry.path, manifest_sha1=manifest_entry.sha1,
                files={e.path: e for e in entries if e is not manifest_entry}, central=central, action=action,
                left=len(entries),
            )
            self.plans[hotel_id] = plan
            for entry in entries:
                self.by_path[entry.path] = (plan, entry)

    def _known(self, central: _CentralHotel, manifest_sha1: str) -> bool:
        """True if this copy needs nothing: it is the one in place, or a conflict recorded before that stays one."""
        kept = _kept(central.sources)
        if kept.get("manifest_sha1") == manifest_sha1:
            return True
        recorded = next((s for s in central.sources if s.get("manifest_sha1") == manifest_sha1), None)
        if recorded is None:
            return False
        return self.prefer == "first" or not _newer(
            str(recorded.get("finished_at", "")), str(central.manifest.get("finished_at", ""))
        )

    def clean_and_check_space(self, central: Path) -> None:
        """Remove a killed merge's temporary files in the hotels to write, then check the free space.

        Files an interrupted run already put in place (right name and size) are not counted.
        """
        needed = 0
        for plan in self.plans.values():
            folder = self.paths(f"{plan.dir}/{MANIFEST_NAME}").parent
            if folder.is_dir():
                self.report.temp_files_removed += remove_temp_files(folder)
            if not plan.writes:
                continue
            for path, entry in plan.files.items():
                try:
                    if self.paths(path).stat().st_size == entry.bytes:
                        continue
                except FileNotFoundError:
                    pass
                needed += entry.bytes
        free = _free_bytes(central)
        if needed > free:
            raise OSError(
                f"not enough free space under {central}: shard {self.shard.name} needs up to "
                f"{format_bytes(needed)}, {format_bytes(free)} are free",
            )

    def run(self) -> None:
        sha256 = hashlib.sha256()
        made: set[Path] = set()
        try:
            with open(self.shard, "rb") as f:
                reader = HashingReader(f, sha256)
                with tarfile.open(fileobj=reader, mode="r|*") as tar:  # type: ignore[call-overload]
                    for member in tar:
                        if not member.isreg():
                            continue
                        found = self.by_path.get(member.name)
                        if found is None:
                            raise ShardRefused(self.shard, "changed", f"{member.name!r} appeared since verification")
                        plan, entry = found
                        if member.name == plan.manifest_path:
                            self._read_manifest(tar, member, plan)
                        elif plan.writes:
                            self._write(tar, member, plan, entry, made)
                        else:
                            self.on_bytes(entry.bytes)
                        plan.left -= 1
                        if plan.left == 0:
                            self._settle(plan)
                while reader.read(CHUNK):
                    pass
            if sha256.hexdigest() != self.sha256:
                raise ShardRefused(self.shard, "changed", "the shard changed since it was verified")
            unsettled = [p.hotel_id for p in self.plans.values() if p.left]
            if unsettled:
                raise ShardRefused(self.shard, "changed", f"hotel {unsettled[0]!r} is incomplete in the shard")
        finally:
            for plan in self.plans.values():
                for tmp in plan.pending.values():
                    tmp.unlink(missing_ok=True)

    def _read_manifest(self, tar: tarfile.TarFile, member: tarfile.TarInfo, plan: _HotelPlan) -> None:
        data = tar.extractfile(member).read()  # type: ignore[union-attr]  # size checked when verified
        if hashlib.sha1(data).hexdigest() != plan.manifest_sha1:
            raise ShardRefused(self.shard, "changed", f"{member.name!r} changed since the shard was verified")
        plan.manifest = manifest_format.loads(data)

    def _write(self, tar: tarfile.TarFile, member: tarfile.TarInfo, plan: _HotelPlan, entry: IndexEntry,
               made: set[Path]) -> None:
        """Write one image: into place for a new hotel, under a temporary name for a candidate."""
        target = self.paths(member.name)
        if (
            target.is_file() and not target.is_symlink()
            and target.stat().st_size == entry.bytes and sha1_file(target) == entry.sha1
        ):
            self.report.files_unchanged += 1  # left by an interrupted merge, or the same in both copies
            self.on_bytes(entry.bytes)
            return
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
                raise ShardRefused(self.shard, "changed", f"{member.name!r} changed since the shard was verified")
            os.utime(tmp, (member.mtime, member.mtime))
            if plan.action == "candidate":
                plan.pending[member.name] = tmp  # counted as written if it replaces the copy in place
            else:
                os.replace(tmp, target)
                self.report.files_written += 1
                self.report.bytes_written += entry.bytes
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.on_bytes(entry.bytes)

    def _source(self, plan: _HotelPlan, same_files: bool, kept: bool) -> dict[str, Any]:
        manifest = plan.manifest or {}
        return {
            "node": manifest.get("node", ""),
            "store": manifest.get("store", ""),
            "shard": self.shard.name,
            "shard_sha256": self.sha256,
            "manifest_sha1": plan.manifest_sha1,
            "status": manifest.get("status", ""),
            "finished_at": manifest.get("finished_at", ""),
            "same_files": same_files,
            "kept": kept,
            "merged_at": utc_now(),
        }

    def _settle(self, plan: _HotelPlan) -> None:
        """Write or update a hotel's central manifest once its files are in place, and its catalogue row."""
        report, state = self.report, plan.central
        assert plan.manifest is not None
        path = self.paths(f"{plan.dir}/{MANIFEST_NAME}")
        if state is None:
            manifest = dict(plan.manifest)
            manifest["store"] = self.label
            manifest["sources"] = [self._source(plan, same_files=True, kept=True)]
            report.hotels_added.append(plan.hotel_id)
        elif plan.action == "unchanged":
            report.hotels_unchanged += 1
            if self.catalog.upsert(state.manifest, sha1_file(path)):
                report.catalog_updated += 1
            return
        else:
            same = state.files == plan.file_sha1s()
            kept = _kept(state.sources)
            replace = plan.action == "candidate" and _newer(
                str(plan.manifest.get("finished_at", "")), str(state.manifest.get("finished_at", ""))
            )
            if not replace and any(s.get("manifest_sha1") == plan.manifest_sha1 for s in state.sources):
                plan.action = "unchanged"  # an older copy, recorded as a conflict before
                self._drop_pending(plan)
                self._settle(plan)
                return
            report.conflicts.append(Conflict(
                hotel_id=plan.hotel_id, kept_node=str(kept.get("node", "")), kept_shard=str(kept.get("shard", "")),
                other_node=str(plan.manifest.get("node", "")), other_shard=self.shard.name, same_files=same,
                replaced=replace,
            ))
            if replace:
                manifest = self._replace(plan, state, path, same)
            else:
                self._drop_pending(plan)
                logger.warning(
                    "Hotel %(hotel)s arrived again from node %(node)s (%(same)s); kept the copy from %(kept)s",
                    {"hotel": plan.hotel_id, "node": plan.manifest.get("node"),
                     "same": "same files" if same else "different files", "kept": kept.get("node")},
                )
                manifest = dict(state.manifest)
                manifest["sources"] = [*state.sources, self._source(plan, same_files=same, kept=False)]
        data = dumps(manifest).encode("utf-8")
        write_atomic(path, data)
        report.manifests_written += 1
        if state is not None and plan.action == "candidate" and manifest["sources"][-1].get("kept"):
            self._remove_old_files(state, plan)
        if self.catalog.upsert(manifest, hashlib.sha1(data).hexdigest()):
            report.catalog_updated += 1

    @staticmethod
    def _drop_pending(plan: _HotelPlan) -> None:
        for tmp in plan.pending.values():
            tmp.unlink(missing_ok=True)
        plan.pending.clear()

    def _replace(self, plan: _HotelPlan, state: _CentralHotel, path: Path, same: bool) -> dict[str, Any]:
        """Put a newer copy's files in place (``--prefer newest``); returns its central manifest."""
        assert plan.manifest is not None
        for name, tmp in plan.pending.items():
            os.replace(tmp, self.paths(name))
            self.report.files_written += 1
            self.report.bytes_written += plan.files[name].bytes
        plan.pending.clear()
        logger.warning(
            "Hotel %(hotel)s: the copy from node %(node)s finished at %(new)s replaces the one finished at %(old)s",
            {"hotel": plan.hotel_id, "node": plan.manifest.get("node"), "new": plan.manifest.get("finished_at"),
             "old": state.manifest.get("finished_at")},
        )
        manifest = dict(plan.manifest)
        manifest["store"] = self.label
        history = [{**s, "kept": False} for s in state.sources if s.get("manifest_sha1") != plan.manifest_sha1]
        manifest["sources"] = [*history, self._source(plan, same_files=same, kept=True)]
        return manifest

    def _remove_old_files(self, state: _CentralHotel, plan: _HotelPlan) -> None:
        """Delete the replaced copy's files the new manifest does not list (its manifest is already written)."""
        for old in sorted(set(state.files) - set(plan.files)):
            try:
                self.paths(old).unlink()
            except FileNotFoundError:
                continue
            self.report.files_removed += 1


def merge(
    shards: Iterable[str | Path],
    central: str | Path,
    *,
    catalog_path: str | Path | None = None,
    store_label: str | None = None,
    keep_going: bool = False,
    verify_only: bool = False,
    prefer: str = "first",
    reverify: bool = False,
    progress: MergeProgress | None = None,
) -> MergeReport:
    """Verify ``shards`` (files, or folders of them) and merge them into the ``central`` store.

    Shards the store's ledger lists as merged (same sha256 file and size) are skipped
    without being read, unless ``reverify``. Every other shard is verified before anything
    is written; if one is refused, nothing is merged unless ``keep_going``, which merges the
    others. ``prefer`` says which copy of a hotel that arrives again wins: ``first`` (the one
    in the store) or ``newest`` (the later ``finished_at``). ``store_label`` is what central
    manifests record as ``store`` (default: the store's absolute path). The catalogue
    (default ``<central>/.hotelimages/catalog.sqlite``) is updated for every merged hotel,
    and a JSON report is kept under ``<central>/.hotelimages/merges/`` when anything changed.

    Raises NoShards (exit 2 in the script) if a path names no shard, MergeBusy if another
    merge holds the store's lock, OSError if the disk has no room for a shard's files.
    """
    if prefer not in PREFERENCES:
        raise ValueError(f"unknown preference {prefer!r}; choose from {', '.join(PREFERENCES)}")
    started = time.monotonic()
    central = Path(central)
    if central.exists() and not central.is_dir():
        raise NotADirectoryError(f"central store {central} is not a folder")
    shards = [Path(p) for p in shards]
    for given in shards:
        if not given.exists():
            raise NoShards(f"no such shard or folder: {given}")
        if given.is_dir() and not shard_paths([given]):
            raise NoShards(f"no shard (*.tar, *.tar.gz, ...) in the folder {given}")
    shard_files = shard_paths(shards)
    if not shard_files:
        raise NoShards("no shard given")
    catalog_file = Path(catalog_path) if catalog_path else default_catalog_path(central)
    label = store_label or central.resolve().as_posix()
    report = MergeReport(central=str(central), catalog=str(catalog_file), shards=[str(p) for p in shard_files])
    ledger = Ledger(ledger_path(central))
    verified = _verify_all(shard_files, central, None if verify_only else ledger, reverify, report, progress)
    if verify_only or (report.refused and not keep_going) or not verified:
        report.merged = not verify_only and not (report.refused and not keep_going) and bool(report.skipped)
        report.seconds = time.monotonic() - started
        return report  # nothing to write: the store is not touched, not even by the lock
    lock_path(central).parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path(central), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise MergeBusy(
            f"another merge is using {central} (it holds {lock_path(central)}); wait for it to end"
        ) from None
    try:
        ledger = Ledger(ledger_path(central))  # again: a merge that held the lock may have merged some of these
        _merge_verified(verified, central, catalog_file, label, prefer, reverify, ledger, report, progress)
    finally:
        lock.release()
    report.seconds = time.monotonic() - started
    if report.changed:
        reports = central / STATE_DIR / REPORTS_DIR
        reports.mkdir(parents=True, exist_ok=True)
        report.report_file = str(reports / f"{utc_stamp()}-{os.getpid()}.json")
        write_atomic(report.report_file, json.dumps(report.to_dict(), indent=1).encode("utf-8"))
    report.seconds = time.monotonic() - started
    logger.info(
        "Merged %(shards)d shards (%(skipped)d skipped as merged before): %(added)d hotels added, "
        "%(unchanged)d unchanged, %(conflicts)d conflicts, %(files)d files (%(bytes)s) written",
        {"shards": len(report.verified), "skipped": len(report.skipped), "added": len(report.hotels_added),
         "unchanged": report.hotels_unchanged, "conflicts": len(report.conflicts), "files": report.files_written,
         "bytes": format_bytes(report.bytes_written)},
    )
    return report


def _verify_all(
    shard_files: list[Path], central: Path, ledger: Ledger | None, reverify: bool, report: MergeReport,
    progress: MergeProgress | None,
) -> list[tuple[Path, str, int]]:
    """Phase one: verify every shard the ledger does not know; keeps (path, sha256, size) of each, nothing more."""
    todo: list[Path] = []
    for path in shard_files:
        if ledger is not None and not reverify and path.is_file():
            try:
                known = ledger.known(path, read_sha256(path))
                if known is not None:
                    report.skipped.append(str(path))
                    report.hotels_unchanged += known.hotels
                    continue
            except ShardRefused:
                pass  # no usable sha256 file: verification says why
        todo.append(path)
    total = sum(p.stat().st_size for p in todo if p.is_file())
    base = 0
    verified: list[tuple[Path, str, int]] = []
    for path in todo:
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
            verified.append((path, shard.sha256, shard.bytes))
            report.verified.append({"shard": str(path), "sha256": shard.sha256, "hotels": len(shard.hotels),
                                    "members": shard.members, "bytes": shard.bytes})
        base += path.stat().st_size if path.is_file() else 0
    return verified


def _merge_verified(
    verified: list[tuple[Path, str, int]], central: Path, catalog_file: Path, label: str, prefer: str,
    reverify: bool, ledger: Ledger, report: MergeReport, progress: MergeProgress | None,
) -> None:
    """Phase two, under the store's lock: each verified shard in turn, read once more, written, catalogued, ledgered."""
    todo = []
    for path, sha256, size in verified:
        known = None if reverify else ledger.known(path, sha256)
        if known is not None:
            report.skipped.append(str(path))
            report.hotels_unchanged += known.hotels
        else:
            todo.append((path, sha256, size))
    total = sum(size for _, _, size in todo)
    done = 0

    def on_bytes(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress("extract", done, total)

    if progress:
        progress("extract", 0, total)
    with Catalog(catalog_file, label) as catalog:
        for path, sha256, size in todo:
            before = done
            # A StorePaths per shard: its cache of resolved folders would otherwise grow with the store.
            step = _ShardMerge(StorePaths(central), label, path, sha256, prefer, report, catalog, on_bytes)
            step.clean_and_check_space(central)
            step.run()
            catalog.commit()
            ledger.add(path, sha256, len(step.plans))
            done = before + size  # progress counts the shard's size, whatever its files' bytes
            if progress:
                progress("extract", done, total)
        report.merged = True
