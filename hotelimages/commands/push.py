"""Push hotel IDs (plain lines, a CSV column or JSON lines) onto the Redis pending list.

    hotelimages push ids.txt more.txt          # one ID per line
    cat ids.txt | hotelimages push             # or from stdin ("-")
    hotelimages push --csv-column hotel_id hotels.csv
    hotelimages push --jsonl listings.jsonl    # {"hotel_id": ..., "images": [...]} per line

Hotels already done, pending or leased are skipped unless --force; malformed IDs are counted and shown.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Iterator

import redis

from hotelimages import defaults, idfiles, push
from hotelimages.commands import UsageError, connect
from hotelimages.redisconn import redact_url

OPTIONS = ("redis", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", default=["-"], help="input files; '-' or none for stdin")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--csv-column", metavar="NAME", help="read a CSV with a header row, IDs from column NAME")
    fmt.add_argument("--jsonl", action="store_true", help="read JSON records with inline listings, one per line")
    parser.add_argument("--id-pattern", default=defaults.HOTELS_ID_PATTERN, help="regular expression of a hotel ID")
    parser.add_argument("--force", action="store_true", help="push even hotels that are done, pending or leased")
    parser.add_argument("--dry-run", action="store_true", help="count only; write nothing")
    parser.add_argument("--batch-size", type=int, default=push.BATCH_SIZE)


def records(args: argparse.Namespace) -> Iterator[idfiles.Candidate | idfiles.Rejected]:
    """Every record of the input files, in order ('-' is stdin).

    Files may be UTF-8 (with or without a BOM) or UTF-16 with a BOM, with any line ends.
    """
    for name in args.files:
        source = (sys.stdin.buffer, "<stdin>") if name == "-" else (name, None)
        yield from idfiles.read_records(
            *source, csv_column=args.csv_column, jsonl=args.jsonl, pattern=args.id_pattern
        )


def run(args: argparse.Namespace) -> int:
    missing = [name for name in args.files if name != "-" and not os.path.isfile(name)]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    client, keys = connect(args)
    print(f"push: {redact_url(args.redis_url)} list {keys.start_ids}", file=sys.stderr)
    try:
        report = push.load_ids(
            client, keys, records(args), force=args.force, dry_run=args.dry_run, batch_size=args.batch_size
        )
    except (OSError, ValueError, redis.RedisError) as exc:
        print(f"push: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({**dataclasses.asdict(report), "per_second": report.per_second}, indent=1))
    else:
        print(push.format_load_report(report))
    return 0
