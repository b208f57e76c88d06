"""Office-hours schedules (``HOTELS_ACTIVE_HOURS``): when a lent PC may work, and at what bandwidth.

A schedule is clauses separated by ``;``, each ``DAYS TIMES [CAP]``:

- ``DAYS``: ``Mon``, ``Mon-Fri``, ``Sat-Sun``, ``Fri-Mon`` (wraps), or a comma list (``Mon,Wed,Fri``);
  ``daily`` (or ``all``) means every day;
- ``TIMES``: ``all`` (the whole day) or ``HH:MM-HH:MM``; an end before the start runs past
  midnight (``Mon-Fri 19:00-07:00`` is Monday 19:00 to Tuesday 07:00, ... Friday 19:00 to
  Saturday 07:00);
- ``CAP`` (optional): a bandwidth cap in bytes/s while this clause applies (``500KB/s``,
  ``2MB/s``, ``0`` = no cap); without it, ``HOTELS_MAX_BYTES_PER_SEC`` applies.

The node works while any clause covers its local time (the first covering clause gives the
cap); outside every clause it is ``paused (schedule)``. An empty schedule means always on.
Pure functions: ``parse_active_hours(text)`` and ``Schedule.at(datetime)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
          "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def parse_bytes_per_sec(text: str, setting: str = "HOTELS_MAX_BYTES_PER_SEC") -> int:
    """``"500KB/s"``, ``"2MiB/s"``, ``"1500000"`` as bytes per second (0 = no cap); raises ValueError."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*(?:/\s*s)?\s*", str(text))
    unit = match and match.group(2).lower()
    if not match or unit not in _UNITS:
        raise ValueError(f"setting {setting}: expected bytes per second such as 500KB/s or 2MB/s, got {text!r}")
    return int(float(match.group(1)) * _UNITS[unit])


@dataclass(frozen=True)
class Clause:
    """One clause: on ``days`` (0 = Monday) from ``start`` to ``end`` minutes (``end`` may pass midnight)."""

    days: frozenset[int]
    start: int  # minutes after midnight
    end: int  # minutes after the start day's midnight, up to 48 h
    cap: int | None = None  # bytes/s; None: HOTELS_MAX_BYTES_PER_SEC

    def covers(self, when: datetime) -> bool:
        minute = when.hour * 60 + when.minute
        day = when.weekday()
        if day in self.days and self.start <= minute < self.end:
            return True
        # The tail of a span that began the day before and runs past midnight.
        return self.end > 1440 and (day - 1) % 7 in self.days and minute < self.end - 1440


@dataclass(frozen=True)
class Schedule:
    """A parsed ``HOTELS_ACTIVE_HOURS``; no clauses = always active."""

    clauses: tuple[Clause, ...] = ()
    text: str = ""

    def at(self, when: datetime) -> tuple[bool, int | None]:
        """(active, the clause's own cap or None) at local time ``when``."""
        if not self.clauses:
            return True, None
        for clause in self.clauses:
            if clause.covers(when):
                return True, clause.cap
        return False, None

    def next_change(self, when: datetime, limit_minutes: int = 8 * 1440) -> datetime | None:
        """The first minute after ``when`` at which ``at`` gives another answer (None: never)."""
        now = self.at(when)
        probe = when.replace(second=0, microsecond=0)
        for _ in range(limit_minutes):
            probe += timedelta(minutes=1)
            if self.at(probe) != now:
                return probe
        return None


def _days(text: str, clause: str) -> frozenset[int]:
    text = text.lower()
    if text in ("daily", "all", "every", "*"):
        return frozenset(range(7))
    out: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.partition("-")
        names = (first, last) if dash else (first,)
        if not all(len(n) >= 3 and n[:3] in DAYS and DAYS[DAYS.index(n[:3])].startswith(n[:3]) for n in names):
            raise ValueError(f"setting HOTELS_ACTIVE_HOURS: bad days {part!r} in {clause!r} "
                             "(use Mon-Fri, Sat,Sun, daily)")
        a = DAYS.index(first[:3])
        b = DAYS.index(last[:3]) if dash else a
        day = a
        out.add(day)
        while day != b:
            day = (day + 1) % 7
            out.add(day)
    return frozenset(out)


def _minutes(text: str, clause: str) -> int:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if not match or int(match.group(1)) > 24 or int(match.group(2)) > 59 or (
        int(match.group(1)) == 24 and int(match.group(2))
    ):
        raise ValueError(f"setting HOTELS_ACTIVE_HOURS: bad time {text!r} in {clause!r} (use HH:MM)")
    return int(match.group(1)) * 60 + int(match.group(2))


def parse_active_hours(text: str | None) -> Schedule:
    """Parse a ``HOTELS_ACTIVE_HOURS`` value; raises ValueError naming the setting and the bad part."""
    text = (text or "").strip()
    clauses = []
    for raw in text.split(";"):
        clause = raw.strip()
        if not clause:
            continue
        parts = clause.split()
        if len(parts) not in (2, 3):
            raise ValueError(f"setting HOTELS_ACTIVE_HOURS: expected 'DAYS HH:MM-HH:MM [CAP]' or 'DAYS all', "
                             f"got {clause!r}")
        days = _days(parts[0], clause)
        if parts[1].lower() == "all":
            start, end = 0, 1440
        else:
            first, dash, last = parts[1].partition("-")
            if not dash:
                raise ValueError(f"setting HOTELS_ACTIVE_HOURS: bad hours {parts[1]!r} in {clause!r}")
            start, end = _minutes(first, clause), _minutes(last, clause)
            if end <= start:
                end += 1440  # runs past midnight
        cap = parse_bytes_per_sec(parts[2], "HOTELS_ACTIVE_HOURS") if len(parts) == 3 else None
        clauses.append(Clause(days, start, end, cap))
    return Schedule(tuple(clauses), text)
