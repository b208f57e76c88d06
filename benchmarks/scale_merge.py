#!/usr/bin/env python3
"""Pack and merge at scale: a synthetic store of N hotels x M tiny files, packed, merged, merged again.

    python -m benchmarks.scale_merge --hotels 8500 --files 120 --workdir /tmp/scale-merge   # from the checkout

The store is written through the real manifest code (``build_manifest``, ``dumps``,
``image_relpath``), so pack and merge see what a node leaves. Each phase runs in a fresh
process so its peak RSS is its own. Shards are cut at ``--shard-members`` files (default
22,000: a 4 GiB shard of ~190 KB photos), so the memory per shard is a real shard's.
Prints files/s, MB/s, peak RSS of each phase and the time of the second (no-op) merge.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import shutil
import sys
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from hotelimages.items import StoredImage
from hotelimages.manifest import MANIFEST_NAME, build_manifest, dumps
from hotelimages.merging import merge
from hotelimages.packing import pack
from hotelimages.sharding import hotel_dir, image_relpath

CATEGORIES = ("cover", "rooms", "other")


def peak_rss_bytes() -> int:
    """This process's peak resident memory."""
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        return int(psutil.Process().memory_info().peak_wset)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def make_store(store: Path, hotels: int, files: int, file_bytes: int) -> tuple[int, int]:
    """Write ``hotels`` settled hotels of ``files`` tiny files each; returns (files, bytes)."""
    total_files = total_bytes = 0
    for h in range(hotels):
        hotel_id = str(1_000_000 + h)
        stored = []
        for i in range(files):
            category = CATEGORIES[i % len(CATEGORIES)]
            image_id = f"{hotel_id}{i:04d}"
            rel = image_relpath(hotel_id, category, image_id, "jpg")
            data = (f"{hotel_id}/{i}:".encode() * (file_bytes // 8 + 1))[:file_bytes]
            path = store / rel
            try:
                path.write_bytes(data)
            except FileNotFoundError:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            stored.append(StoredImage(
                id=image_id, url=f"https://cdn.example.com/{hotel_id}/{image_id}.jpg", category=category,
                file=f"{image_id}.jpg", bytes=len(data), width=1, height=1, sha1=hashlib.sha1(data).hexdigest(),
            ))
            total_files += 1
            total_bytes += len(data)
        manifest = build_manifest(
            hotel_id=hotel_id, node="bench", store=str(store), hotel_dir=hotel_dir(hotel_id), stored=stored,
            failed=[], categories=CATEGORIES, started_at="2026-12-01T00:00:00.000000Z",
            finished_at="2026-12-01T00:00:01.000000Z",
        )
        (store / hotel_dir(hotel_id) / MANIFEST_NAME).write_text(dumps(manifest), encoding="utf-8")
    return total_files, total_bytes


def _timed(phase: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run one phase in this (fresh) process: its seconds, peak RSS and a few counts."""
    started = time.monotonic()
    if phase == "pack":
        result = pack(**kwargs)
        counts = {"shards": len(result.shards), "files": result.files, "bytes": result.bytes}
    else:
        report = merge(**kwargs)
        counts = {"files": report.files_written, "bytes": report.bytes_written, "skipped": len(report.skipped),
                  "verified": len(report.verified), "hotels_added": len(report.hotels_added),
                  "ok": report.ok}
    return {"seconds": time.monotonic() - started, "peak_rss": peak_rss_bytes(), **counts}


def _in_fresh_process(phase: str, **kwargs: Any) -> dict[str, Any]:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_timed, phase, kwargs).result()


def run(workdir: Path, hotels: int, files: int, file_bytes: int = 200, shard_members: int = 22_000) -> dict[str, Any]:
    """The whole measurement in ``workdir`` (emptied first, left in place); returns its figures."""
    workdir = Path(workdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    store, shards, central = workdir / "store", workdir / "shards", workdir / "central"
    started = time.monotonic()
    n_files, n_bytes = make_store(store, hotels, files, file_bytes)
    made = time.monotonic() - started
    # A tar member of a tiny file costs a header block and a padded data block.
    per_member = 2 * tarfile.BLOCKSIZE + -(-file_bytes // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    max_shard = shard_members * per_member + tarfile.RECORDSIZE
    packed = _in_fresh_process("pack", store=store, out=shards, max_shard_bytes=max_shard)
    merged = _in_fresh_process("merge", shards=[shards], central=central)
    again = _in_fresh_process("merge", shards=[shards], central=central)
    figures = {
        "hotels": hotels, "files": n_files, "file_bytes": file_bytes, "store_bytes": n_bytes,
        "make_seconds": round(made, 1), "shard_members": shard_members,
        "pack": {**packed, "files_per_s": n_files / packed["seconds"], "mb_per_s": n_bytes / 1e6 / packed["seconds"]},
        "merge": {**merged, "files_per_s": n_files / merged["seconds"], "mb_per_s": n_bytes / 1e6 / merged["seconds"]},
        "second_merge": again,
    }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hotels", type=int, default=8_500)
    parser.add_argument("--files", type=int, default=120, help="files per hotel")
    parser.add_argument("--file-bytes", type=int, default=200)
    parser.add_argument("--shard-members", type=int, default=22_000)
    parser.add_argument("--workdir", type=Path, default=Path("scale-merge"))
    parser.add_argument("--keep", action="store_true", help="keep the store, shards and central store")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    f = run(args.workdir, args.hotels, args.files, args.file_bytes, args.shard_members)
    try:
        report(f, args.json)
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir)
    return 0


def report(f: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(f, indent=1), flush=True)
        return
    mib = 1024 * 1024
    print(f"store: {f['hotels']:,} hotels x {f['files'] // max(f['hotels'], 1)} files = {f['files']:,} files "
          f"of {f['file_bytes']} B ({f['store_bytes'] / 1e6:.1f} MB), written in {f['make_seconds']:.0f} s")
    p, m, a = f["pack"], f["merge"], f["second_merge"]
    print(f"pack:         {p['seconds']:8.1f} s  {p['files_per_s']:9,.0f} files/s  {p['mb_per_s']:6.2f} MB/s  "
          f"peak RSS {p['peak_rss'] / mib:6.1f} MiB  ({p['shards']} shards of <= {f['shard_members']:,} files)")
    print(f"merge:        {m['seconds']:8.1f} s  {m['files_per_s']:9,.0f} files/s  {m['mb_per_s']:6.2f} MB/s  "
          f"peak RSS {m['peak_rss'] / mib:6.1f} MiB  ({m['verified']} shards, {m['hotels_added']:,} hotels added)")
    print(f"second merge: {a['seconds']:8.1f} s  {a['skipped']} shards skipped by the ledger, {a['verified']} read  "
          f"peak RSS {a['peak_rss'] / mib:6.1f} MiB", flush=True)


if __name__ == "__main__":
    sys.exit(main())
