"""Query the central catalogue: where hotels are, their images per category and bytes (docs/PACK_MERGE.md).

    hotelimages catalog --store F:/central where 7892470 42
    hotelimages catalog --store F:/central hotels --format jsonl
    hotelimages catalog --store F:/central summary --json
    hotelimages catalog --store F:/central rebuild         # from the store's manifests

Exit code 1 from `where` if a hotel is not in the catalogue.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hotelimages.central_catalog import Catalog, HotelRecord, default_catalog_path, rebuild
from hotelimages.commands import SHARED, UsageError, store_of
from hotelimages.packing import format_bytes

OPTIONS = ("store",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalog", type=Path, help="a catalogue file (instead of the one of --store)")
    sub = parser.add_subparsers(dest="query", required=True, metavar="QUERY")
    p = sub.add_parser("where", help="folder, status, images and bytes of the given hotels")
    p.add_argument("hotel_ids", nargs="+")
    p = sub.add_parser("hotels", help="every hotel (or the given ones) with images per category and bytes",
                       parents=[SHARED["json"]()])
    p.add_argument("hotel_ids", nargs="*")
    p.add_argument("--format", choices=["tsv", "jsonl"], default="tsv", help="--json is the same as --format jsonl")
    p = sub.add_parser("summary", help="totals by status, category and node", parents=[SHARED["json"]()])
    sub.add_parser("conflicts", help="hotels that arrived from more than one node (JSON lines)")
    p = sub.add_parser("rebuild", help="recreate the catalogue from the store's manifests (needs --store)")
    p.add_argument("--store-label", help="what paths are reported under (default: the store's absolute path)")


def tsv(records: list[HotelRecord], categories: list[str]) -> None:
    print("\t".join(["hotel_id", "path", "status", "node", "images", "bytes", *categories, "nodes"]))
    for r in records:
        counts = [str(r.categories[c].images if c in r.categories else 0) for c in categories]
        row = [r.hotel_id, r.path, r.status, r.node, str(r.images), str(r.bytes), *counts, ",".join(r.nodes)]
        print("\t".join(row))


def run(args: argparse.Namespace) -> int:
    if args.store is not None and args.catalog is not None:
        raise UsageError("give --store or --catalog, not both")
    store = store_of(args, required=args.catalog is None or args.query == "rebuild")
    if args.query == "rebuild":
        if args.catalog is not None:
            raise UsageError("rebuild needs --store")
        path = default_catalog_path(store)
        count = rebuild(store, path, args.store_label)
        print(f"catalogued {count} hotels in {path}")
        return 0
    path = args.catalog or default_catalog_path(store)
    try:
        catalog = Catalog(path, create=False)
    except FileNotFoundError as exc:
        print(f"catalog: {exc}", file=sys.stderr)
        return 2
    with catalog:
        if args.query == "where":
            found = {r.hotel_id: r for r in catalog.hotels(args.hotel_ids)}
            for hotel_id in args.hotel_ids:
                r = found.get(hotel_id)
                if r is None:
                    print(f"{hotel_id}: not in the catalogue", file=sys.stderr)
                    continue
                per_category = " ".join(f"{c}={n.images}" for c, n in r.categories.items())
                print(f"{r.hotel_id}\t{r.path}\t{r.status}\t{r.images} images\t{r.bytes} bytes\t{per_category}"
                      + ("\tCONFLICT " + ",".join(r.nodes) if r.conflict else ""))
            return 0 if len(found) == len(set(args.hotel_ids)) else 1
        if args.query == "hotels":
            records = list(catalog.hotels(args.hotel_ids or None))
            if args.format == "jsonl" or args.json:
                for r in records:
                    print(json.dumps(r.to_dict(), ensure_ascii=False))
            else:
                tsv(records, sorted(catalog.summary().by_category))
            return 0
        if args.query == "summary":
            s = catalog.summary()
            if args.json:
                print(json.dumps(s.to_dict(), indent=1))
                return 0
            print(f"store: {s.store}")
            print(f"hotels: {s.hotels}  images: {s.images}  bytes: {s.bytes} ({format_bytes(s.bytes)})  "
                  f"failed images: {s.failed_images}  conflicts: {s.conflicts}")
            print("by status: " + ", ".join(f"{k}={v}" for k, v in s.by_status.items()))
            print("by node: " + ", ".join(f"{k}={v}" for k, v in s.by_node.items()))
            for c, n in s.by_category.items():
                print(f"  {c}: {n.images} images, {format_bytes(n.bytes)}")
            return 0
        for conflict in catalog.conflicts():
            print(json.dumps(conflict))
        return 0
