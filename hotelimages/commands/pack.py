"""Pack a node's settled hotels into tar shards, each with an index and a sha256 (docs/PACK_MERGE.md).

    hotelimages pack --store D:/image --out E:/shards --max-size 4G
    hotelimages pack D:/image --out E:/shards --since 2026-11-30T08:00Z   # the store given positionally

Hotels packed before are left out (a record in --out) unless they changed or --repack.
Exit code 1 if some hotel could not be packed (listed as NOT PACKED).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from hotelimages.commands import UsageError, store_of
from hotelimages.manifest import STATUSES
from hotelimages.packing import COMPRESSIONS, DEFAULT_MAX_SHARD_BYTES, ProgressBar, format_bytes, pack, parse_size

OPTIONS = ("store", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store_arg", nargs="?", type=Path, metavar="STORE",
                        help="the node's image store, as --store (IMAGES_STORE)")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for the shards, their index and sha256 files, and the record of packed hotels")
    parser.add_argument("--max-size", type=parse_size, default=DEFAULT_MAX_SHARD_BYTES,
                        help="largest shard, e.g. 4G (default), 700M; a bigger single hotel gets its own shard")
    parser.add_argument("--compress", choices=sorted(COMPRESSIONS), default="none",
                        help="compress shards (default none: images are already compressed)")
    parser.add_argument("--since", help="only hotels finished at or after this ISO time, e.g. 2026-11-30T08:00Z")
    parser.add_argument("--status", default=",".join(STATUSES),
                        help=f"comma-separated statuses to pack (default: all settled: {','.join(STATUSES)})")
    parser.add_argument("--repack", action="store_true", help="ignore the record of packed hotels and pack them all")
    parser.add_argument("--name", help="shard file name prefix (default: the node name in the manifests)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.store_arg is not None and args.store is not None:
        raise UsageError("give the store once: as STORE or as --store")
    store = args.store_arg if args.store_arg is not None else store_of(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    bar = None if args.quiet else ProgressBar("pack")
    try:
        result = pack(
            store, args.out, max_shard_bytes=args.max_size, compression=args.compress,
            statuses=[s for s in args.status.split(",") if s], since=args.since, repack=args.repack,
            name=args.name, progress=bar,
        )
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"pack: {exc}", file=sys.stderr)
        return 2
    finally:
        if bar:
            bar.close()
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        rate = result.bytes / result.seconds if result.seconds else 0
        print(f"packed {len(result.hotels_packed)} hotels ({result.files} files, {format_bytes(result.bytes)}) "
              f"into {len(result.shards)} shards in {result.seconds:.1f}s ({format_bytes(rate)}/s)")
        print(f"already packed: {result.hotels_already_packed}, left out by --status/--since: {result.hotels_filtered}"
              + (f", packed again after a change: {len(result.hotels_repacked)}" if result.hotels_repacked else ""))
        for shard in result.shards:
            print(f"  {shard.path}  {shard.hotels} hotels  {format_bytes(shard.bytes)}  sha256 {shard.sha256}")
        for skipped in result.skipped:
            print(f"  NOT PACKED {skipped.path}: {skipped.detail}")
    return 1 if result.skipped else 0
