"""Show the whole fleet on one screen, from Redis alone.

    hotelimages status                      # once
    hotelimages status --watch              # refresh every 5 s (Ctrl-C to stop)
    hotelimages status --json               # the same figures as JSON
    hotelimages status --html status.html   # a page with throughput and completion charts
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import redis

from hotelimages import defaults, status
from hotelimages.commands import connect
from hotelimages.redisconn import redact_url

OPTIONS = ("redis", "json")
CLEAR = "\x1b[H\x1b[2J"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--watch", nargs="?", type=float, const=5.0, metavar="SECONDS",
                        help="refresh in place every SECONDS (default 5)")
    parser.add_argument("--html", metavar="FILE", help="write a self-contained HTML page with charts")
    parser.add_argument("--window", type=float, default=status.DEFAULT_WINDOW,
                        help="seconds of history that throughput is measured over (default %(default)s)")
    parser.add_argument("--lease-seconds", type=float,
                        default=float(os.environ.get("HOTELS_LEASE_SECONDS") or defaults.HOTELS_LEASE_SECONDS),
                        help="HOTELS_LEASE_SECONDS of the nodes, to tell a lease's age (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    client, keys = connect(args)
    while True:
        try:
            fleet = status.gather(
                client, keys, lease_seconds=args.lease_seconds, window=args.window,
                full_history=bool(args.html), redis_label=redact_url(args.redis_url),
            )
        except redis.RedisError as exc:
            print(f"status: {redact_url(args.redis_url)}: {exc}", file=sys.stderr)
            if not args.watch:
                return 2
        else:
            if args.html:
                refresh = int(args.watch) if args.watch else None
                Path(args.html).write_text(status.render_html(fleet, refresh=refresh), encoding="utf-8")
            if args.json:
                print(json.dumps(fleet.to_json(), indent=2), flush=True)
            elif not args.html or args.watch:
                print((CLEAR if args.watch else "") + status.render_text(fleet), end="", flush=True)
            if args.html and not args.watch:
                print(f"wrote {args.html}")
        if not args.watch:
            return 0
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0
