"""Convert ``hotels:manifests`` in place from full manifests (version 1) to compact done records.

A Redis filled by an earlier version holds each done hotel's whole manifest (~33 KB for a hotel of
120 photos). This walks the hash with HSCAN in batches and replaces each full manifest by its
compact record (``manifest.done_record``), through a script that writes a value only if it is
still the one read (compared by sha1), so nodes may keep running. It can be interrupted at any
point and rerun: records already compact are skipped, and HSCAN returns every field present
for the whole scan at least once whatever is changed meanwhile. It runs even when Redis is
over ``maxmemory``: it only shrinks values.

    hotelimages convert-done                   # convert; a line per 10,000 records read
    hotelimages convert-done --full            # keep the full manifests, zlib+base64, in the record
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import sha1
from typing import Any

from hotelimages import claims
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
