"""Reading hotel IDs from input files: plain lines, a CSV column, or JSON lines.

Each input record becomes a ``Candidate`` (a valid hotel ID and the entry to push for it) or a
``Rejected`` (where it was and why), in input order; ``hotelimages.push`` puts the candidates
on the pending list. The parsers are pure (lines in, records out); ``read_records`` opens a
file or stdin through ``hotelimages.textfiles`` (UTF-8 with or without a BOM, UTF-16 with a BOM,
any line ends; an undecodable file raises ``TextFileError`` naming the file and the line).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from hotelimages.sharding import DEFAULT_ID_PATTERN, InvalidId, validate_id
from hotelimages.textfiles import TextLines


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


# ---------------------------------------------------------------- parsers


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


def open_records(
    stream: Iterable[str], source: str, *, csv_column: str | None = None, jsonl: bool = False, pattern: str
) -> Iterator[Candidate | Rejected]:
    """The parser for one input stream, chosen by the input format."""
    if csv_column:
        return parse_csv(stream, csv_column, source, pattern)
    if jsonl:
        return parse_jsonl(stream, source, pattern)
    return parse_lines(stream, source, pattern)


def read_records(
    source: str | Path | BinaryIO, name: str | None = None, *, csv_column: str | None = None, jsonl: bool = False,
    pattern: str = DEFAULT_ID_PATTERN,
) -> Iterator[Candidate | Rejected]:
    """The records of one file (or binary stream, such as stdin's buffer, named ``name``), decoded as above."""
    with TextLines(source, name) as lines:
        yield from open_records(iter(lines), lines.name, csv_column=csv_column, jsonl=jsonl, pattern=pattern)


def forced_entry(candidate: Candidate) -> str:
    """The entry that makes a node redo a hotel even if it is done: a record with ``"force": true``."""
    if candidate.entry.startswith("{"):
        record = json.loads(candidate.entry)
    else:
        record = {"hotel_id": candidate.hotel_id}
    record["force"] = True
    return json.dumps(record, separators=(",", ":"))
