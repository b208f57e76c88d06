"""Putting work on the pending list: hotel IDs from files, expired or orphaned leases, failed hotels.

``load_ids`` reads candidates (plain lines, a CSV column, or JSON lines with
inline listings), drops the invalid, the duplicated, the done and the already
pending or leased, and LPUSHes the rest in pipelined batches, so nodes (which
take from the right) work through them in input order. ``release_owner`` and
``retry_failed`` are the operator's tools for leases of a dead node and for
hotels that failed. The scripts ``push_ids``, ``requeue`` and ``retry_failed``
are thin wrappers around these functions.
"""

from __future__ import annotations

import csv
import json
import logging
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from hotelimages.claims import FINISH_LUA
from hotelimages.keys import Keys
from hotelimages.sharding import DEFAULT_ID_PATTERN, InvalidId, validate_id

logger = logging.getLogger(__name__)

#: Entries per pipeline round trip when reading or writing the pending list.
BATCH_SIZE = 10_000
#: How many rejected lines a report keeps as examples.
MAX_EXAMPLES = 10


@dataclass(slots=True)
class Candidate:
    """One input record that looks like work: the hotel ID and the entry to push for it."""

    source: str
    line: int
    hotel_id: str
    entry: str


@dataclass(slots=True)
class Rejected:
    """One input record that cannot be pushed, with where it was and why."""

    source: str
    line: int
    value: str
    why: str


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


# ---------------------------------------------------------------- input parsing (pure)


def _shown(value: str) -> str:
    return value if len(value) <= 80 else value[:77] + "..."


def _check(source: str, line: int, hotel_id: Any, entry: str, pattern: str) -> Candidate | Rejected:
    if isinstance(hotel_id, int) and not isinstance(hotel_id, bool):
        hotel_id = str(hotel_id)
    try:
        validate_id(hotel_id, pattern, "hotel")
    except InvalidId as exc:
        return Rejected(source, line, _shown(str(hotel_id)), str(exc))
    return Candidate(source, line, hotel_id, entry)


def parse_lines(
    lines: Iterable[str], source: str = "-", pattern: str = DEFAULT_ID_PATTERN
) -> Iterator[Candidate | Rejected]:
    """One hotel ID per line; blank lines and lines starting with ``#`` are ignored."""
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        yield _check(source, number, text, text, pattern)


def parse_csv(
    stream: Iterable[str], column: str, source: str = "-", pattern: str = DEFAULT_ID_PATTERN
) -> Iterator[Candidate | Rejected]:
    """The hotel IDs of one named column of a CSV with a header row; raises ValueError if it lacks the column."""
    reader = csv.DictReader(stream)
    if reader.fieldnames is None:
        return
    if column not in reader.fieldnames:
        raise ValueError(f"{source}: no column {column!r}; the header has {reader.fieldnames}")
    for row in reader:
        value = (row.get(column) or "").strip()
        yield _check(source, reader.line_num, value, value, pattern)


def parse_jsonl(
    lines: Iterable[str], source: str = "-", pattern: str = DEFAULT_ID_PATTERN
) -> Iterator[Candidate | Rejected]:
    """JSON records ``{"hotel_id": ..., "images": [...]}``, one per line, pushed as compact JSON.

    A numeric ``hotel_id`` is turned into a string, so every entry on the list
    carries the ID in the form the store and the manifests use.
    """
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text:
            continue
        try:
            record = json.loads(text)
        except ValueError as exc:
            yield Rejected(source, number, _shown(text), f"malformed JSON: {exc}")
            continue
        if not isinstance(record, dict) or "hotel_id" not in record:
            yield Rejected(source, number, _shown(text), "expected a JSON object with a hotel_id")
            continue
        if not isinstance(record.get("images", []), list):
            yield Rejected(source, number, _shown(text), "'images' must be a list")
            continue
        hotel_id = record["hotel_id"]
        if isinstance(hotel_id, int) and not isinstance(hotel_id, bool):
            record["hotel_id"] = hotel_id = str(hotel_id)
        entry = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        yield _check(source, number, hotel_id, entry, pattern)


def entry_hotel_id(entry: bytes | str) -> str | None:
    """The hotel ID of a pending-list entry (a bare ID or a JSON record), or None if it has none."""
    text = entry.decode("utf-8", "replace") if isinstance(entry, bytes) else entry
    if not text.startswith("{"):
        return text
    try:
        record = json.loads(text)
    except ValueError:
        return None
    hotel_id = record.get("hotel_id") if isinstance(record, dict) else None
    return None if hotel_id is None else str(hotel_id)


# ---------------------------------------------------------------- Redis side


def queued_hotel_ids(client: Any, keys: Keys, chunk: int = BATCH_SIZE) -> set[str]:
    """Hotel IDs on the pending list or under a lease, read in chunks.

    Nodes pop from the right while this reads from the left, which shifts no
    index; a concurrent LPUSH shifts entries right, so some may be read twice
    but none is missed.
    """
    found: set[str] = set()
    start = 0
    while True:
        entries = client.lrange(keys.start_ids, start, start + chunk - 1)
        for entry in entries:
            hotel_id = entry_hotel_id(entry)
            if hotel_id is not None:
                found.add(hotel_id)
        if len(entries) < chunk:
            break
        start += chunk
    for entry, _deadline in client.zscan_iter(keys.leases, count=chunk):
        hotel_id = entry_hotel_id(entry)
        if hotel_id is not None:
            found.add(hotel_id)
    return found


# KEYS: manifests, pending. ARGV: skip done (0/1), write (0/1), hotel ids and entries, each joined by newlines.
# Returns the 1-based positions of the hotels skipped as done; LPUSHes the others' entries in order.
# One argument per batch rather than one per ID: packing 10,000 arguments costs more in the client
# than the whole script costs in Redis. Neither a valid ID nor a JSON dump can hold a newline.
PUSH_NEW_LUA = """
local ids, entries, done, push = {}, {}, {}, {}
for s in string.gmatch(ARGV[3], '[^\\n]+') do ids[#ids + 1] = s end
for s in string.gmatch(ARGV[4], '[^\\n]+') do entries[#entries + 1] = s end
for i = 1, #ids do
  if ARGV[1] == '1' and redis.call('HEXISTS', KEYS[1], ids[i]) == 1 then
    done[#done + 1] = i
  else
    push[#push + 1] = entries[i]
  end
end
if ARGV[2] == '1' then
  for i = 1, #push, 1000 do
    redis.call('LPUSH', KEYS[2], unpack(push, i, math.min(i + 999, #push)))
  end
end
return done
"""


def forced_entry(candidate: Candidate) -> str:
    """The entry that makes a node redo a hotel even if it is done: a record with ``"force": true``."""
    if candidate.entry.startswith("{"):
        record = json.loads(candidate.entry)
    else:
        record = {"hotel_id": candidate.hotel_id}
    record["force"] = True
    return json.dumps(record, separators=(",", ":"))


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
    queued = set() if force else queued_hotel_ids(client, keys, batch_size)
    seen: set[str] = set()
    batch: list[Candidate] = []
    push_new = client.register_script(PUSH_NEW_LUA)

    def push(candidates: list[Candidate]) -> None:
        skipped = push_new(
            keys=[keys.manifests, keys.start_ids],
            args=[
                0 if force else 1,
                0 if dry_run else 1,
                "\n".join(c.hotel_id for c in candidates),
                "\n".join(forced_entry(c) if force else c.entry for c in candidates),
            ],
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


def open_records(
    stream: IO[str], source: str, *, csv_column: str | None = None, jsonl: bool = False, pattern: str
) -> Iterator[Candidate | Rejected]:
    """The parser for one input stream, chosen by the input format."""
    if csv_column:
        return parse_csv(stream, csv_column, source, pattern)
    if jsonl:
        return parse_jsonl(stream, source, pattern)
    return parse_lines(stream, source, pattern)


# ---------------------------------------------------------------- leases of a dead owner


def owner_matches(owner: str, wanted: str) -> bool:
    """True if ``owner`` (``NODE_ID/pid-token``) is ``wanted`` or belongs to node ``wanted``."""
    return owner == wanted or owner.startswith(wanted.rstrip("/") + "/")


@dataclass
class ReleaseReport:
    """What ``release_owner`` did: entries given back per owner, and live owners left alone."""

    released: dict[str, int] = field(default_factory=dict)
    live_skipped: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.released.values())


def leases_by_owner(client: Any, keys: Keys) -> dict[str, list[bytes]]:
    """Every leased entry, grouped by the owner that holds it."""
    grouped: dict[str, list[bytes]] = {}
    for entry, owner in client.hscan_iter(keys.lease_owners, count=1000):
        grouped.setdefault(owner.decode("utf-8", "replace"), []).append(entry)
    return grouped


def release_owner(client: Any, keys: Keys, wanted: str, *, force: bool = False, dry_run: bool = False) -> ReleaseReport:
    """Put every entry leased by owner (or node) ``wanted`` back at the head of the pending list.

    An owner whose heartbeat key is still present is alive: its leases are
    left alone unless ``force``, because the hotels would then be done twice.
    Ownership is checked again inside the script, entry by entry.
    """
    report = ReleaseReport()
    finish = client.register_script(FINISH_LUA)
    for owner, entries in sorted(leases_by_owner(client, keys).items()):
        if not owner_matches(owner, wanted):
            continue
        if not force and client.exists(keys.node(owner)):
            report.live_skipped[owner] = len(entries)
            continue
        if dry_run:
            report.released[owner] = len(entries)
            continue
        n = 0
        for i in range(0, len(entries), 1000):
            n += int(
                finish(
                    keys=[keys.leases, keys.lease_owners, keys.start_ids],
                    args=[owner, 1, *entries[i : i + 1000]],
                )
            )
        report.released[owner] = n
    return report


# ---------------------------------------------------------------- failed hotels

# KEYS: failed, pending. ARGV: pairs of hotel id, entry. Moves each that is still failed; returns how many.
RETRY_FAILED_LUA = """
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[i + 1])
    n = n + 1
  end
end
return n
"""


@dataclass
class RetryReport:
    """Failed hotels moved back to the pending list (or that would be, with ``dry_run``), by reason."""

    by_reason: Counter = field(default_factory=Counter)
    moved: int = 0
    dry_run: bool = False

    @property
    def matched(self) -> int:
        return sum(self.by_reason.values())


def failure_reason(raw: bytes | str) -> str:
    """The ``reason`` of a hotels:failed record, or ``unreadable`` if the record is not JSON."""
    try:
        record = json.loads(raw)
    except ValueError:
        return "unreadable"
    reason = record.get("reason") if isinstance(record, dict) else None
    return str(reason) if reason else "unknown"


def _retry_entry(hotel_id: bytes, raw: bytes) -> bytes | str:
    # A record that kept its original entry (a JSON record with inline images) is retried as it was.
    try:
        record = json.loads(raw)
    except ValueError:
        return hotel_id
    entry = record.get("entry") if isinstance(record, dict) else None
    return entry if isinstance(entry, str) and entry else hotel_id


def retry_failed(
    client: Any, keys: Keys, *, reasons: Iterable[str] = (), dry_run: bool = False, batch_size: int = 1000
) -> RetryReport:
    """Move failed hotels (all, or only those with one of ``reasons``) to the back of the pending list."""
    wanted = set(reasons)
    report = RetryReport(dry_run=dry_run)
    script = client.register_script(RETRY_FAILED_LUA)
    batch: list[bytes | str] = []

    def flush() -> None:
        if batch and not dry_run:
            report.moved += int(script(keys=[keys.failed, keys.start_ids], args=batch))
        batch.clear()

    # Count first, then move, so a dry run and a real run report the same figures.
    matched: list[tuple[bytes, bytes]] = []
    for hotel_id, raw in client.hscan_iter(keys.failed, count=1000):
        reason = failure_reason(raw)
        if wanted and reason not in wanted:
            continue
        report.by_reason[reason] += 1
        matched.append((hotel_id, raw))
    for hotel_id, raw in matched:
        batch.extend((hotel_id, _retry_entry(hotel_id, raw)))
        if len(batch) >= 2 * batch_size:
            flush()
    flush()
    return report


# ---------------------------------------------------------------- reports for the scripts


def format_load_report(report: LoadReport) -> str:
    """The ``push_ids`` report, a few aligned lines."""
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
