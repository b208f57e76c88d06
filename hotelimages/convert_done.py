"""Convert ``hotels:manifests`` in place from full manifests (version 1) to compact done records.

A Redis filled by an earlier version holds each done hotel's whole manifest (~33 KB for a hotel of
120 photos). This walks the hash with HSCAN in batches and replaces each full manifest by its
compact record (``manifest.done_record``), through a script that writes a value only if it is
still the one read (compared by sha1), so nodes may keep running. It can be interrupted at any
point and rerun: records already compact are skipped, and HSCAN returns every field present
for the whole scan at least once whatever is changed meanwhile. It runs even when Redis is
over ``maxmemory``: it only shrinks values.

    python scripts/convert_done                 # convert; a line per 10,000 records read
    python scripts/convert_done --full          # keep the full manifests, zlib+base64, in the record
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha1
from typing import Any

from hotelimages import claims, defaults
from hotelimages import manifest as mf
from hotelimages.keys import Keys

logger = logging.getLogger(__name__)


@dataclass
class ConvertReport:
    """Records read, converted, already compact, and left alone (unreadable, or changed while converting)."""

    read: int = 0
    converted: int = 0
    compact: int = 0
    unreadable: int = 0
    changed: int = 0


def convert_value(raw: bytes, *, full: bool = False) -> str | None:
    """The compact record of an old full-manifest value; None if ``raw`` is compact or not a manifest."""
    record = mf.parse_done_record(raw)
    if record.version != 1 or record.manifest is None:
        return None
    return mf.done_record(record.manifest, raw, full=full)


def convert_done_records(
    client: Any, keys: Keys, *, batch: int = 500, full: bool = False,
    progress: Callable[[ConvertReport], None] | None = None,
) -> ConvertReport:
    """Replace every full manifest in ``hotels:manifests`` by its compact record (blocking client)."""
    report = ConvertReport()
    scripts = claims.BoundScripts(client, keys)
    cursor = 0
    while True:
        cursor, page = client.hscan(keys.manifests, cursor, count=batch)
        args: list[bytes | str] = []
        for hotel_id, raw in page.items():
            report.read += 1
            new = convert_value(raw, full=full)
            if new is None:
                if mf.parse_done_record(raw).version >= mf.DONE_RECORD_VERSION:
                    report.compact += 1
                else:
                    report.unreadable += 1
                continue
            args.extend((hotel_id, sha1(raw).hexdigest(), new))  # noqa: S324 - Redis's SHA1HEX, to compare
        if args:
            n = int(scripts.run(claims.CONVERT_DONE, *args))
            report.converted += n
            report.changed += len(args) // 3 - n
        if progress is not None:
            progress(report)
        if int(cursor) == 0:
            return report


def main(argv: list[str] | None = None) -> int:
    """``scripts/convert_done``: convert a Redis filled by an earlier version; exit 0, or 2 on a Redis error."""
    import redis  # noqa: PLC0415

    from hotelimages.redisconn import redact_url, sync_client  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="keep each full manifest, compressed, in its record")
    parser.add_argument("--batch", type=int, default=500, help="records per HSCAN page and per script call")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or defaults.REDIS_URL)
    parser.add_argument("--prefix", default=os.environ.get("HOTELS_KEY_PREFIX") or defaults.HOTELS_KEY_PREFIX)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s convert_done: %(message)s")
    keys = Keys(args.prefix)
    client = sync_client(args.redis_url, defaults.REDIS_PARAMS)
    logger.info("converting %s on %s", keys.manifests, redact_url(args.redis_url))
    step = {"next": 10_000}

    def progress(report: ConvertReport) -> None:
        if report.read >= step["next"]:
            step["next"] = report.read + 10_000
            logger.info("read %d, converted %d", report.read, report.converted)

    try:
        report = convert_done_records(client, keys, batch=max(1, args.batch), full=args.full, progress=progress)
    except redis.RedisError as exc:
        logger.error("stopped by a Redis error (rerun to go on): %s", exc)
        return 2
    logger.info(
        "done: read %d, converted %d, already compact %d, changed meanwhile %d, not a manifest %d",
        report.read, report.converted, report.compact, report.changed, report.unreadable,
    )
    return 0
