"""Put hotels whose lease expired back on the pending list; optionally release a dead owner's leases.

    hotelimages requeue                              # expired leases of any owner
    hotelimages requeue --all-of-owner office-pc-12  # every lease of node office-pc-12 (all its processes)
    hotelimages requeue --all-of-owner office-pc-12/4242-1a2b3c4d   # one process

Leases of an owner whose heartbeat is still present are left alone unless --force.
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
    parser.add_argument("--all-of-owner", metavar="OWNER", help="also release every lease of this owner or node id")
    parser.add_argument("--force", action="store_true", help="release leases of an owner that still has a heartbeat")
    parser.add_argument("--dry-run", action="store_true", help="with --all-of-owner: count only")


def run(args: argparse.Namespace) -> int:
    client, keys = connect(args)
    print(f"requeue: {redact_url(args.redis_url)} list {keys.start_ids}", file=sys.stderr)
    out: dict = {"expired_requeued": None, "dry_run": args.dry_run}
    try:
        if not args.dry_run:
            out["expired_requeued"] = claims.requeue_expired(client, keys)
            if not args.json:
                print(f"expired leases requeued: {out['expired_requeued']}")
        if args.all_of_owner:
            report = claims.release_owner(client, keys, args.all_of_owner, force=args.force, dry_run=args.dry_run)
            out.update(released=report.released, live_skipped=report.live_skipped, released_total=report.total)
            if not args.json:
                verb = "would release" if args.dry_run else "released"
                for owner, n in report.released.items():
                    print(f"{verb} {n} leases of {owner}")
                for owner, n in report.live_skipped.items():
                    print(f"left {n} leases of {owner}: it has a live heartbeat (use --force if it is really dead)")
                print(f"{verb} in total: {report.total}")
    except redis.RedisError as exc:
        print(f"requeue: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out, indent=1))
    return 0
