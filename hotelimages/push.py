"""Bulk pushing of hotel IDs onto the pending list (``hotelimages push``).

``load_ids`` takes the records of ``hotelimages.idfiles`` (plain lines, a CSV column, or JSON
lines with inline listings), drops the invalid, the duplicated, the done and the already
pending or leased, and LPUSHes the rest in batches through ``claims.push_batch``, so nodes
(which take from the right) work through them in input order.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hotelimages import claims
from hotelimages.idfiles import Candidate, Rejected, forced_entry
from hotelimages.keys import Keys

logger = logging.getLogger(__name__)

#: Entries per pipeline round trip when reading or writing the pending list.
BATCH_SIZE = 10_000
#: How many rejected lines a report keeps as examples.
MAX_EXAMPLES = 10


@dataclass
class LoadReport:
    """What ``load_ids`` did (or, with ``dry_run``, would have done)."""

    read: int = 0
    pushed: int = 0
    skipped_done: int = 0
    skipped_pending: int = 0
    skipped_duplicate: int = 0
    invalid: int = 0
    invalid_examples: list[Rejected] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def per_second(self) -> float:
        """Input records handled per second."""
        return self.read / self.seconds if self.seconds > 0 else 0.0


class _OrderedPusher:
    """Runs ``push(batch)`` for each submitted batch, in order, on one worker thread.

    At most two batches wait, so memory stays bounded. An error in ``push`` stops the worker;
    it is raised in the caller at the next ``submit`` or at ``close``, and later batches are not
    pushed (the caller's report counts only what was pushed).
    """

    def __init__(self, push: Any):
        self._push = push
        self._queue: queue.Queue[list[Candidate] | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="push_ids-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._push(batch)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, batch: list[Candidate]) -> None:
        self._raise()
        self._queue.put(batch)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._raise()


def load_ids(
    client: Any,
    keys: Keys,
    records: Iterable[Candidate | Rejected],
    *,
    force: bool = False,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
) -> LoadReport:
    """Push the valid, new hotels of ``records`` onto the pending list, in input order.

    Without ``force``, hotels with a manifest (done) or already pending or
    leased are skipped; duplicates within the input are always skipped.
    With ``dry_run`` everything is read and counted but nothing is written.
    """
    started = time.monotonic()
    report = LoadReport(dry_run=dry_run)
    queued = set() if force else claims.queued_hotel_ids(client, keys, batch_size)
    seen: set[str] = set()
    batch: list[Candidate] = []
    scripts = claims.BoundScripts(client, keys)

    def push(candidates: list[Candidate]) -> None:
        skipped = claims.push_batch(
            scripts,
            [c.hotel_id for c in candidates],
            [forced_entry(c) if force else c.entry for c in candidates],
            skip_done=not force,
            write=not dry_run,
        )
        report.skipped_done += len(skipped)
        report.pushed += len(candidates) - len(skipped)

    # Batches go to Redis from a second thread, in order, while this one reads and checks the
    # next, so the wait for Redis overlaps the parsing. The writer needs the GIL back after every
    # socket call; with Python's 5 ms switch interval it queued behind the parser so long that
    # the overlap gained nothing (600,000 IDs: 4.8 s either way), with 1 ms it is 2.5-3.5 s.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, 0.001))
    pusher = _OrderedPusher(push)

    def flush() -> None:
        pusher.submit(list(batch))
        batch.clear()

    try:
        for record in records:
            report.read += 1
            if isinstance(record, Rejected):
                report.invalid += 1
                if len(report.invalid_examples) < MAX_EXAMPLES:
                    report.invalid_examples.append(record)
                continue
            if record.hotel_id in seen:
                report.skipped_duplicate += 1
                continue
            seen.add(record.hotel_id)
            if record.hotel_id in queued:
                report.skipped_pending += 1
                continue
            batch.append(record)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    finally:
        try:
            pusher.close()
        finally:
            sys.setswitchinterval(switch_interval)
    report.seconds = time.monotonic() - started
    logger.info(
        "Loaded %(pushed)d hotel IDs into %(key)s (%(read)d read) in %(seconds).1fs",
        {"pushed": report.pushed, "key": keys.start_ids, "read": report.read, "seconds": report.seconds},
    )
    return report


def format_load_report(report: LoadReport) -> str:
    """The ``hotelimages push`` report, a few aligned lines."""
    lines = [
        f"read              {report.read}",
        f"pushed            {report.pushed}" + ("  (dry run: nothing written)" if report.dry_run else ""),
        f"skipped done      {report.skipped_done}",
        f"skipped pending   {report.skipped_pending}",
        f"skipped duplicate {report.skipped_duplicate}",
        f"invalid           {report.invalid}",
    ]
    lines += [f"  {r.source}:{r.line}: {r.value!r}: {r.why}" for r in report.invalid_examples]
    if report.invalid > len(report.invalid_examples):
        lines.append(f"  ... and {report.invalid - len(report.invalid_examples)} more")
    lines.append(f"time              {report.seconds:.2f} s ({report.per_second:,.0f} IDs/s)")
    return "\n".join(lines)
