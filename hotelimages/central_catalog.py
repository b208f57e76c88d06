"""The central catalogue: one SQLite file that says where every hotel is and what it holds.

The manifests on disk are the truth; the catalogue is derived from them (``rebuild``
recreates it from a store) so that "where is hotel X, how many images per category,
how many bytes" is one query for all hotels at once instead of a walk over millions of
folders. (Named apart from ``devtools.demo_hotels``, the demo server's made-up hotels.)

Tables: ``hotels`` (one row per hotel), ``categories`` (images and bytes per hotel and
category), ``sources`` (every node copy of a hotel that reached the central store; more
than one row for a hotel is a conflict; ``kept`` marks the copy in the store, which is the
first one unless a ``merge --prefer newest`` replaced it), ``meta`` (the store's label).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotelimages import manifest as manifests

logger = logging.getLogger(__name__)

#: Folder of a store that holds hotelimages' own state (never a shard folder: those are one hex digit).
STATE_DIR = ".hotelimages"
#: The catalogue's file name inside STATE_DIR.
CATALOG_NAME = "catalog.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hotels (
    hotel_id TEXT PRIMARY KEY,
    dir TEXT NOT NULL,
    node TEXT NOT NULL,
    status TEXT NOT NULL,
    images INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    finished_at TEXT NOT NULL,
    manifest_sha1 TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS categories (
    hotel_id TEXT NOT NULL,
    category TEXT NOT NULL,
    images INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (hotel_id, category)
);
CREATE TABLE IF NOT EXISTS sources (
    hotel_id TEXT NOT NULL,
    node TEXT NOT NULL,
    shard TEXT NOT NULL,
    manifest_sha1 TEXT NOT NULL,
    kept INTEGER NOT NULL,
    same_files INTEGER NOT NULL,
    PRIMARY KEY (hotel_id, manifest_sha1)
);
"""


def default_catalog_path(store: str | Path) -> Path:
    """Where a store's catalogue lives unless told otherwise: ``<store>/.hotelimages/catalog.sqlite``."""
    return Path(store) / STATE_DIR / CATALOG_NAME


@dataclass(frozen=True)
class CategoryCount:
    """Images and bytes of one category of one hotel."""

    images: int
    bytes: int


@dataclass(frozen=True)
class HotelRecord:
    """One hotel as the catalogue knows it; ``path`` is where its folder is."""

    hotel_id: str
    path: str
    dir: str
    node: str
    status: str
    images: int
    bytes: int
    failed: int
    finished_at: str
    categories: dict[str, CategoryCount] = field(default_factory=dict)
    nodes: tuple[str, ...] = ()

    @property
    def conflict(self) -> bool:
        """True if more than one node copy of the hotel reached the store."""
        return len(self.nodes) > 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "hotel_id": self.hotel_id, "path": self.path, "dir": self.dir, "node": self.node,
            "status": self.status, "images": self.images, "bytes": self.bytes, "failed": self.failed,
            "finished_at": self.finished_at,
            "categories": {c: {"images": n.images, "bytes": n.bytes} for c, n in self.categories.items()},
            "nodes": list(self.nodes), "conflict": self.conflict,
        }


@dataclass(frozen=True)
class CatalogSummary:
    """Totals over the whole catalogue."""

    store: str
    hotels: int
    images: int
    bytes: int
    failed_images: int
    by_status: dict[str, int]
    by_category: dict[str, CategoryCount]
    by_node: dict[str, int]
    conflicts: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store, "hotels": self.hotels, "images": self.images, "bytes": self.bytes,
            "failed_images": self.failed_images, "by_status": self.by_status,
            "by_category": {c: {"images": n.images, "bytes": n.bytes} for c, n in self.by_category.items()},
            "by_node": self.by_node, "conflicts": self.conflicts,
        }


class Catalog:
    """An open catalogue file; use as a context manager, or call ``close()``."""

    def __init__(self, path: str | Path, store_label: str | None = None, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"no catalogue at {self.path} (run a merge, or `hotelimages catalog rebuild`)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.executescript(_SCHEMA)
        if store_label is not None and self.store_label != store_label:
            with self._db:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('store', ?)", (store_label,))

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.commit()
        self.close()

    def close(self) -> None:
        self._db.close()

    @property
    def store_label(self) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'store'").fetchone()
        return row[0] if row else ""

    # Writing

    def upsert(self, manifest: dict[str, Any], manifest_sha1: str) -> bool:
        """Record a central manifest; returns False (and writes nothing) if it is already recorded as is.

        Changes are committed by ``commit()`` or on leaving the ``with`` block: one commit per
        batch, as a commit per hotel would cost a disk sync each. Since the manifests are
        the truth, a batch lost to a crash is recorded again by the next merge.
        """
        hotel_id = manifest["hotel_id"]
        row = self._db.execute("SELECT manifest_sha1 FROM hotels WHERE hotel_id = ?", (hotel_id,)).fetchone()
        if row and row[0] == manifest_sha1:
            return False
        per_category = {
            category: CategoryCount(len(files), sum(int(f["bytes"]) for f in files))
            for category, files in manifest.get("images", {}).items()
        }
        self._db.execute(
            "INSERT OR REPLACE INTO hotels VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                hotel_id, manifest["dir"], manifest.get("node", ""), manifest.get("status", ""),
                sum(c.images for c in per_category.values()), sum(c.bytes for c in per_category.values()),
                len(manifest.get("failed", [])), manifest.get("finished_at", ""), manifest_sha1,
            ),
        )
        self._db.execute("DELETE FROM categories WHERE hotel_id = ?", (hotel_id,))
        self._db.executemany(
            "INSERT INTO categories VALUES (?, ?, ?, ?)",
            [(hotel_id, c, n.images, n.bytes) for c, n in per_category.items()],
        )
        self._db.execute("DELETE FROM sources WHERE hotel_id = ?", (hotel_id,))
        self._db.executemany(
            "INSERT OR REPLACE INTO sources VALUES (?, ?, ?, ?, ?, ?)",
            [
                (hotel_id, s.get("node", ""), s.get("shard", ""), s.get("manifest_sha1", ""),
                 int(bool(s.get("kept", i == 0))), int(bool(s.get("same_files", True))))
                for i, s in enumerate(manifests.sources(manifest, manifest_sha1))
            ],
        )
        return True

    def commit(self) -> None:
        self._db.commit()

    # Reading

    def hotels(self, hotel_ids: Iterable[str] | None = None) -> Iterator[HotelRecord]:
        """The given hotels that the catalogue knows (all of them if None), by hotel ID."""
        store = self.store_label
        if hotel_ids is None:
            rows = self._db.execute("SELECT * FROM hotels ORDER BY hotel_id")
        else:
            ids = sorted(set(hotel_ids))
            rows = []
            for start in range(0, len(ids), 500):  # stay below SQLite's bound-parameter limit
                chunk = ids[start:start + 500]
                rows.extend(self._db.execute(
                    f"SELECT * FROM hotels WHERE hotel_id IN ({','.join('?' * len(chunk))}) ORDER BY hotel_id",
                    chunk,
                ).fetchall())
        for hotel_id, dir_, node, status, images, bytes_, failed, finished_at, _sha1 in list(rows):
            categories = {
                c: CategoryCount(n, b)
                for c, n, b in self._db.execute(
                    "SELECT category, images, bytes FROM categories WHERE hotel_id = ? ORDER BY category", (hotel_id,)
                )
            }
            nodes = tuple(
                r[0] for r in self._db.execute(
                    "SELECT node FROM sources WHERE hotel_id = ? ORDER BY kept DESC, node", (hotel_id,)
                )
            )
            yield HotelRecord(
                hotel_id=hotel_id, path=f"{store.rstrip('/')}/{dir_}" if store else dir_, dir=dir_, node=node,
                status=status, images=images, bytes=bytes_, failed=failed, finished_at=finished_at,
                categories=categories, nodes=nodes,
            )

    def conflicts(self) -> list[dict[str, Any]]:
        """Every hotel that reached the store from more than one node copy, with those copies."""
        out: dict[str, dict[str, Any]] = {}
        for hotel_id, node, shard, kept, same in self._db.execute(
            "SELECT hotel_id, node, shard, kept, same_files FROM sources WHERE hotel_id IN "
            "(SELECT hotel_id FROM sources GROUP BY hotel_id HAVING COUNT(*) > 1) ORDER BY hotel_id, kept DESC, node"
        ):
            entry = out.setdefault(hotel_id, {"hotel_id": hotel_id, "kept": None, "others": []})
            if kept:
                entry["kept"] = {"node": node, "shard": shard}
            else:
                entry["others"].append({"node": node, "shard": shard, "same_files": bool(same)})
        return list(out.values())

    def summary(self) -> CatalogSummary:
        """Totals: hotels, images and bytes, by status, category and node, and the count of conflicts."""
        hotels, images, bytes_, failed = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(images), 0), COALESCE(SUM(bytes), 0), COALESCE(SUM(failed), 0) FROM hotels"
        ).fetchone()
        by_status = dict(self._db.execute("SELECT status, COUNT(*) FROM hotels GROUP BY status ORDER BY status"))
        by_node = dict(self._db.execute("SELECT node, COUNT(*) FROM hotels GROUP BY node ORDER BY node"))
        by_category = {
            c: CategoryCount(n, b)
            for c, n, b in self._db.execute(
                "SELECT category, SUM(images), SUM(bytes) FROM categories GROUP BY category ORDER BY category"
            )
        }
        (conflicts,) = self._db.execute(
            "SELECT COUNT(*) FROM (SELECT hotel_id FROM sources GROUP BY hotel_id HAVING COUNT(*) > 1)"
        ).fetchone()
        return CatalogSummary(
            store=self.store_label, hotels=hotels, images=images, bytes=bytes_, failed_images=failed,
            by_status=by_status, by_category=by_category, by_node=by_node, conflicts=conflicts,
        )


def rebuild(store: str | Path, catalog_path: str | Path | None = None, store_label: str | None = None) -> int:
    """Recreate a store's catalogue from the manifests on disk; returns the number of hotels recorded."""
    store = Path(store)
    path = Path(catalog_path) if catalog_path else default_catalog_path(store)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.unlink(missing_ok=True)
    count = 0
    with Catalog(tmp, store_label or store.resolve().as_posix()) as catalog:
        for manifest_path in manifests.find_manifests(store):
            try:
                manifest, manifest_sha1 = manifests.read(manifest_path)
            except (OSError, manifests.ManifestError) as exc:
                logger.warning("Skipped unreadable manifest %(path)s: %(error)s", {"path": manifest_path, "error": exc})
                continue
            catalog.upsert(manifest, manifest_sha1)
            count += 1
    os.replace(tmp, path)
    logger.info("Rebuilt catalogue %(path)s with %(count)d hotels", {"path": path, "count": count})
    return count
