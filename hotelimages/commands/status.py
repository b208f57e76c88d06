"""Show the whole fleet on one screen, from Redis alone; or serve the live console.

    hotelimages status                      # once
    hotelimages status --watch              # refresh every 5 s (Ctrl-C to stop)
    hotelimages status --json               # the same figures as JSON
    hotelimages status --check              # exit 1 if any alert is present (cron, monitoring agents)
    hotelimages status --serve              # the live page, /metrics and the controls on 127.0.0.1:8080
    hotelimages status --serve --bind 0.0.0.0:8080   # needs HOTELS_CONSOLE_PASSWORD
    hotelimages status --html status.html   # a snapshot of the live page in one file

Exit codes: 0 fine, 1 alerts present (with --check), 2 Redis unreachable or bad options.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import redis

from hotelimages import alerts, defaults, status
from hotelimages.commands import connect
from hotelimages.redisconn import redact_url

OPTIONS = ("redis", "json")
CLEAR = "\x1b[H\x1b[2J"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--watch", nargs="?", type=float, const=5.0, metavar="SECONDS",
                        help="refresh in place every SECONDS (default 5)")
    parser.add_argument("--check", action="store_true", help="print the alerts; exit 1 if there is any")
    parser.add_argument("--html", metavar="FILE", help="write a snapshot of the live page (one self-contained file)")
    parser.add_argument("--serve", action="store_true", help="serve the live page, /metrics and the controls")
    parser.add_argument("--bind", default="127.0.0.1:8080", metavar="HOST:PORT",
                        help="address of --serve (default %(default)s; not loopback only with a password)")
    parser.add_argument("--refresh", type=float, default=5.0, help="seconds between page updates (default 5)")
    parser.add_argument("--window", type=float, default=status.DEFAULT_WINDOW,
                        help="seconds of history that throughput is measured over (default %(default)s)")
    t = alerts.Thresholds()
    parser.add_argument("--failure-rate", type=float, default=t.failure_rate,
                        help="alert at this share of failed attempts over the window (default %(default)s)")
    parser.add_argument("--min-attempts", type=int, default=t.min_attempts,
                        help="attempts in the window before the failure rate counts (default %(default)s)")
    parser.add_argument("--stall-minutes", type=float, default=t.stall_seconds / 60,
                        help="alert when nothing progressed for this long with work left (default %(default)s)")
    parser.add_argument("--memory-ratio", type=float, default=t.memory_ratio,
                        help="alert at this share of Redis's maxmemory (default %(default)s)")
    parser.add_argument("--lease-seconds", type=float,
                        default=float(os.environ.get("HOTELS_LEASE_SECONDS") or defaults.HOTELS_LEASE_SECONDS),
                        help="HOTELS_LEASE_SECONDS of the nodes, to tell a lease's age (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    client, keys = connect(args)
    thresholds = alerts.Thresholds(failure_rate=args.failure_rate, min_attempts=args.min_attempts,
                                   stall_seconds=args.stall_minutes * 60, memory_ratio=args.memory_ratio)
    label = redact_url(args.redis_url)
    if args.serve:
        return serve(args, client, keys, thresholds, label)
    while True:
        try:
            fleet = status.gather(
                client, keys, lease_seconds=args.lease_seconds, window=args.window,
                full_history=bool(args.html), redis_label=label, thresholds=thresholds,
            )
        except redis.RedisError as exc:
            print(f"status: {label}: {exc}", file=sys.stderr)
            if not args.watch:
                return 2
        else:
            if args.html:
                from hotelimages import console  # noqa: PLC0415 - aiohttp only for the page

                page = console.snapshot_html(console.payload(fleet, 0, controls=False))
                Path(args.html).write_text(page, encoding="utf-8")
            if args.json:
                print(json.dumps(fleet.to_json(), indent=2), flush=True)
            elif args.check:
                for alert in fleet.alerts:
                    print(f"ALERT {alert.name}: {alert.message}", flush=True)
                if not fleet.alerts:
                    print("OK: no alerts", flush=True)
            elif not args.html or args.watch:
                print((CLEAR if args.watch else "") + status.render_text(fleet), end="", flush=True)
            if args.html and not args.watch:
                print(f"wrote {args.html}")
        if not args.watch:
            return 1 if args.check and fleet.alerts else 0
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return 0


def serve(args: argparse.Namespace, client, keys, thresholds: alerts.Thresholds, label: str) -> int:
    """``--serve``: the operators' console until Ctrl-C."""
    from hotelimages import console  # noqa: PLC0415 - aiohttp only when serving

    logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(name)s] %(levelname)s: %(message)s")
    config = console.ConsoleConfig(
        keys=keys, lease_seconds=args.lease_seconds, window=args.window, thresholds=thresholds,
        password=os.environ.get(console.PASSWORD_ENV, ""), refresh=args.refresh, redis_label=label,
    )
    try:
        host, port = console.parse_bind(args.bind)
        console.serve(client, config, host, port, ready=lambda url: print(f"serving on {url}", flush=True))
    except ValueError as exc:
        print(f"status: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0
