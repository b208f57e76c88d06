"""Verify shards and merge them into the central store, updating its catalogue (docs/PACK_MERGE.md).

    hotelimages merge E:/shards --store F:/central            # every shard in the folder
    hotelimages merge E:/shards/pc12-0001.tar --verify-only --store F:/central

A refused shard (bad sha256, hostile path, broken manifest) stops the merge before anything is
written, unless --keep-going. Exit code 1 if a shard was refused.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from hotelimages.commands import store_of
from hotelimages.merging import MergeReport, merge
from hotelimages.packing import ProgressBar, format_bytes

OPTIONS = ("store", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shards", nargs="+", type=Path, help="shard files, or folders holding shards")
    parser.add_argument("--catalog", type=Path, help="catalogue file (default <store>/.hotelimages/catalog.sqlite)")
    parser.add_argument("--store-label", help="what central manifests record as store (default: its absolute path)")
    parser.add_argument("--keep-going", action="store_true", help="merge the good shards even if some are refused")
    parser.add_argument("--verify-only", action="store_true", help="check the shards, write nothing")
    parser.add_argument("--prefer", choices=["first", "newest"], default="first",
                        help="a hotel that arrives again: keep the copy in the store (first, default) or the one "
                             "finished last (newest), e.g. after a forced redo")
    parser.add_argument("--reverify", action="store_true",
                        help="read and merge again shards the store's ledger lists as merged")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def print_report(report: MergeReport) -> None:
    verified = sum(v["bytes"] for v in report.verified)
    print(f"verified {len(report.verified)} shards ({format_bytes(verified)}), refused {len(report.refused)}, "
          f"skipped {len(report.skipped)} merged before (ledger; --reverify reads them again)")
    for refusal in report.refused:
        print(f"  REFUSED [{refusal.reason}] {refusal.message}")
    if report.refused and not report.merged:
        print("nothing merged: the store is untouched (fix or remove the refused shards, or use --keep-going)")
        return
    if not report.merged:
        print("verified only: the store is untouched")
        return
    rate = report.bytes_written / report.seconds if report.seconds else 0
    print(f"added {len(report.hotels_added)} hotels, {report.hotels_unchanged} already merged, "
          f"{len(report.conflicts)} conflicts; wrote {report.files_written} files "
          f"({format_bytes(report.bytes_written)}, {format_bytes(rate)}/s), {report.manifests_written} manifests, "
          f"{report.catalog_updated} catalogue rows in {report.seconds:.1f}s")
    for c in report.conflicts:
        if c.replaced:
            print(f"  CONFLICT hotel {c.hotel_id}: the newer copy from {c.other_node} ({c.other_shard}) replaced "
                  f"the one from {c.kept_node} ({c.kept_shard}), {'same' if c.same_files else 'DIFFERENT'} files")
            continue
        print(f"  CONFLICT hotel {c.hotel_id}: kept the copy from {c.kept_node} ({c.kept_shard}), "
              f"also from {c.other_node} ({c.other_shard}), {'same' if c.same_files else 'DIFFERENT'} files")
    if not report.changed:
        print("nothing changed: every hotel in these shards was already in the store")
    if report.report_file:
        print(f"report: {report.report_file}")


def run(args: argparse.Namespace) -> int:
    store = store_of(args)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    bar: ProgressBar | None = None

    def progress(phase: str, done: int, total: int) -> None:
        nonlocal bar
        if bar is None or bar.label != phase:
            if bar:
                bar.close()
            bar = ProgressBar(phase)
        bar(done, total)

    try:
        report = merge(
            args.shards, store, catalog_path=args.catalog, store_label=args.store_label,
            keep_going=args.keep_going, verify_only=args.verify_only, prefer=args.prefer, reverify=args.reverify,
            progress=None if args.quiet else progress,
        )
    except OSError as exc:
        print(f"merge: {exc}", file=sys.stderr)
        return 2
    finally:
        if bar:
            bar.close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        print_report(report)
    return 0 if report.ok else 1
