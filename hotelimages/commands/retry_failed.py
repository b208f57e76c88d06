"""Move hotels recorded in hotels:failed back onto the pending list, all or by reason.

    hotelimages retry-failed --dry-run             # counts by reason, nothing changed
    hotelimages retry-failed --reason listing_http_503 --reason timeout
    hotelimages retry-failed                       # every failed hotel
"""

from __future__ import annotations

import argparse
import json
import sys

import redis

from hotelimages import claims
from hotelimages.commands import connect
from hotelimages.redisconn import redact_url

OPTIONS = ("redis", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", action="append", default=[], help="only hotels failed for this reason (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="count only; change nothing")


def run(args: argparse.Namespace) -> int:
    client, keys = connect(args)
    print(f"retry-failed: {redact_url(args.redis_url)} list {keys.start_ids}", file=sys.stderr)
    try:
        report = claims.retry_failed(client, keys, reasons=args.reason, dry_run=args.dry_run)
    except redis.RedisError as exc:
        print(f"retry-failed: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"by_reason": dict(report.by_reason.most_common()), "matched": report.matched,
                          "moved": report.moved, "dry_run": report.dry_run}, indent=1))
        return 0
    for reason, n in report.by_reason.most_common():
        print(f"{n:>10}  {reason}")
    if args.dry_run:
        print(f"would move {report.matched} failed hotels to the pending list (dry run)")
    else:
        print(f"moved {report.moved} of {report.matched} failed hotels to the pending list")
    return 0
