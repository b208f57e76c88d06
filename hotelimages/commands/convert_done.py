"""Convert hotels:manifests in place from full manifests (an earlier version) to compact done records.

    hotelimages convert-done                   # convert; a line per 10,000 records read
    hotelimages convert-done --full            # keep each full manifest, zlib+base64, in its record

Walks the hash with HSCAN in batches; nodes may keep running, and it is safe to interrupt and
rerun (records already compact are skipped). Exit 0, or 2 on a Redis error (rerun to go on).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import redis

from hotelimages.commands import connect
from hotelimages.convert_done import ConvertReport, convert_done_records
from hotelimages.redisconn import redact_url

OPTIONS = ("redis", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--full", action="store_true", help="keep each full manifest, compressed, in its record")
    parser.add_argument("--batch", type=int, default=500, help="records per HSCAN page and per script call")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s convert-done: %(message)s", stream=sys.stderr)
    log = logging.getLogger("hotelimages.convert_done")
    client, keys = connect(args)
    log.info("converting %s on %s", keys.manifests, redact_url(args.redis_url))
    step = {"next": 10_000}

    def progress(report: ConvertReport) -> None:
        if report.read >= step["next"]:
            step["next"] = report.read + 10_000
            log.info("read %d, converted %d", report.read, report.converted)

    try:
        report = convert_done_records(client, keys, batch=max(1, args.batch), full=args.full, progress=progress)
    except redis.RedisError as exc:
        log.error("stopped by a Redis error (rerun to go on): %s", exc)
        return 2
    finally:
        client.close()
    if args.json:
        print(json.dumps({"read": report.read, "converted": report.converted, "compact": report.compact,
                          "changed": report.changed, "unreadable": report.unreadable}))
    else:
        log.info("done: read %d, converted %d, already compact %d, changed meanwhile %d, not a manifest %d",
                 report.read, report.converted, report.compact, report.changed, report.unreadable)
    return 0
