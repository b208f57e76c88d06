"""Fleet status: one picture of the whole crawl from Redis alone.

``gather`` reads the queue, the leases, the fleet counters, the failure
reasons, Redis's memory and every process's heartbeat and history into a
``FleetStatus``, with the alert conditions of ``hotelimages.alerts``;
``render_text`` turns one into a screen. The live page (``hotelimages.console``)
and the Prometheus metrics (``hotelimages.metrics``) are built on the same
``FleetStatus``. Nothing here reads a manifest: with 600,000 of them, HLEN and
the ``hotels:stats`` counters are what an operator can afford.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from hotelimages import alerts, control
from hotelimages.claims import failed_by_reason
from hotelimages.keys import Keys
from hotelimages.politeness import host_budget_rows
from hotelimages.reasons import hotel_status

MB = 1_000_000
#: Throughput is measured over this many seconds of history unless told otherwise.
DEFAULT_WINDOW = 300.0
#: The hotel statuses of the fleet counters, in display order.
HOTEL_COUNTERS = ("complete", "partial", "failed", "empty", "rejected", "skipped_done")
#: Statuses of done hotels (``hotels/<status>`` counters: the state of ``hotels:manifests``).
DONE_COUNTERS = ("complete", "partial", "failed", "empty")
#: What a live process is doing when its heartbeat names no state.
DEFAULT_ACTIVITY = "claiming"


@dataclass
class Sample:
    """One history sample of a process (see ``hotelimages.progress``)."""

    t: float
    hotels: int = 0
    images: int = 0
    bytes: int = 0
    failures: int = 0
    done: int = 0
    pending: int = 0
    in_flight: int = 0  # this process's hotels in flight
    state: str = ""
    reasons: dict[str, int] = field(default_factory=dict)  # this process's failures by reason, cumulative
    reason: str = ""  # why the process stopped claiming, if it did

    @classmethod
    def from_json(cls, raw: bytes | str) -> Sample | None:
        try:
            d = json.loads(raw)
            get = d.get
            return cls(
                float(d["t"]), int(get("hotels", 0)), int(get("images", 0)), int(get("bytes", 0)),
                int(get("failures", 0)), int(get("done", 0)), int(get("pending", 0)), int(get("in_flight", 0)),
                str(get("state", "")), {str(k): int(v) for k, v in (get("reasons") or {}).items()},
                str(get("reason", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


@dataclass
class NodeStatus:
    """One crawler process: live (heartbeat present), stopped (closed cleanly) or lost (vanished).

    ``activity`` is what a live process says it is doing (its heartbeat's ``state`` field:
    claiming, draining, paused, ... as the nodes report it; ``claiming`` when it says nothing).
    """

    owner: str
    node_id: str
    state: str
    activity: str = ""
    pid: int | None = None
    started_at: float | None = None
    last_seen: float | None = None
    hotels: int = 0
    images: int = 0
    bytes: int = 0
    failures: int = 0
    in_flight: int = 0
    leases: int = 0
    oldest_lease_age: float | None = None
    images_per_s: float = 0.0
    mb_per_s: float = 0.0
    hotels_per_s: float = 0.0
    failure_rate: float | None = None  # failures / (stored images + failures) over the window
    disk_free: int | None = None
    disk_total: int | None = None
    reasons: dict[str, int] = field(default_factory=dict)  # the node's (all its processes') failures by reason
    #: Why it stopped claiming (circuit breaker, store): "" while it claims.
    stopped_claiming: str = ""
    history: list[Sample] = field(default_factory=list)  # oldest first


@dataclass
class FleetStatus:
    """Every figure of the status screen, at Redis server time ``at``."""

    at: float
    redis: str = ""
    pending: int = 0
    leased: int = 0
    done: int = 0
    failed_hotels: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)  # hotels:reasons: image/<reason>, hotel/<reason>
    redis_memory: dict[str, int] = field(default_factory=dict)  # used_memory, maxmemory (0: no limit)
    nodes: list[NodeStatus] = field(default_factory=list)
    window: float = DEFAULT_WINDOW
    hotels_per_s: float = 0.0
    images_per_s: float = 0.0
    mb_per_s: float = 0.0
    eta_seconds: float | None = None
    failure_rate: float | None = None  # fleet-wide, over the window; None without attempts
    attempts: int = 0  # stored images + failures over the window, fleet-wide
    last_progress_at: float | None = None  # newest sample whose counters grew (or a gone process's last)
    alerts: list[alerts.Alert] = field(default_factory=list)
    #: Budgeted hosts (``politeness.host_budget_rows``): budget, current fleet rate, pause left, recent 429/503.
    hosts: list[dict[str, Any]] = field(default_factory=list)
    #: Central pauses in force (``control.pauses``): ``fleet`` and ``node:NAME`` -> who and when.
    pauses: dict[str, dict] = field(default_factory=dict)

    @property
    def failed_whole(self) -> int:
        """Hotels in ``hotels:failed`` that failed as a whole (not rejected as bad input)."""
        return sum(n for reason, n in self.failed_by_reason.items() if hotel_status(reason) == "failed")

    @property
    def rejected(self) -> int:
        """Hotels in ``hotels:failed`` refused as bad input (``invalid_*`` reasons)."""
        return sum(n for reason, n in self.failed_by_reason.items() if hotel_status(reason) == "rejected")

    @property
    def live(self) -> list[NodeStatus]:
        return [n for n in self.nodes if n.state == "live"]

    @property
    def gone(self) -> list[NodeStatus]:
        return [n for n in self.nodes if n.state != "live"]

    def counter(self, name: str) -> int:
        return int(self.counters.get(name, 0))

    @property
    def percent_done(self) -> float | None:
        """Hotels with an outcome (done or failed) out of every hotel known to the queue."""
        total = self.done + self.failed_hotels + self.pending + self.leased
        return 100.0 * (self.done + self.failed_hotels) / total if total else None

    def to_json(self, history: bool = False) -> dict[str, Any]:
        """The figures as a JSON-ready dict; samples only with ``history``."""
        nodes = self.nodes if history else [replace(n, history=[]) for n in self.nodes]
        data = asdict(replace(self, nodes=nodes))
        data["live_nodes"] = len(self.live)
        data["gone_nodes"] = len(self.gone)
        data["failed_whole"] = self.failed_whole
        data["rejected"] = self.rejected
        data["percent_done"] = self.percent_done
        if not history:
            for node in data["nodes"]:
                node.pop("history")
        return data


# ---------------------------------------------------------------- pure helpers


def window_ends(history: list[Sample], window: float) -> tuple[Sample, Sample] | None:
    """(oldest, newest): the newest sample and the oldest within ``window`` of it (at least two samples apart)."""
    if len(history) < 2:
        return None
    newest = history[-1]
    oldest = next((s for s in history if s.t >= newest.t - window - 1e-6), history[0])
    if oldest is newest:
        oldest = history[-2]
    return oldest, newest


def window_rates(history: list[Sample], window: float) -> tuple[float, float, float] | None:
    """(hotels/s, images/s, MB/s) between the newest sample and the oldest within ``window`` of it."""
    ends = window_ends(history, window)
    if ends is None:
        return None
    oldest, newest = ends
    dt = newest.t - oldest.t
    if dt <= 0:
        return None
    return (
        (newest.hotels - oldest.hotels) / dt,
        (newest.images - oldest.images) / dt,
        (newest.bytes - oldest.bytes) / MB / dt,
    )


def window_failures(history: list[Sample], window: float) -> tuple[int, int] | None:
    """(failures, stored images + failures) between the newest sample and the oldest within ``window``."""
    ends = window_ends(history, window)
    if ends is None:
        return None
    oldest, newest = ends
    failures = max(newest.failures - oldest.failures, 0)
    return failures, failures + max(newest.images - oldest.images, 0)


def last_progress(history: list[Sample], live: bool) -> float | None:
    """When a process's counters last grew; a gone process counts as progressing until its last sample."""
    if not history:
        return None
    if not live:
        return history[-1].t
    grew = [b.t for a, b in zip(history, history[1:], strict=False)
            if (b.hotels, b.images, b.failures) > (a.hotels, a.images, a.failures)]
    return grew[-1] if grew else None


def _num(raw: Any, kind: type = int) -> Any:
    try:
        return kind(raw.decode() if isinstance(raw, bytes) else raw)
    except (TypeError, ValueError, AttributeError):
        return None


def build_node(
    owner: str,
    heartbeat: dict[str, str],
    history: list[Sample],
    leases: int,
    oldest_lease_age: float | None,
    window: float,
) -> NodeStatus:
    """A process's status from its heartbeat hash (empty if expired), history (oldest first) and leases."""
    last = history[-1] if history else None
    if heartbeat:
        state = "live"
    elif last is not None and last.state.startswith("closed"):
        state = "stopped"
    else:
        state = "lost"
    node = NodeStatus(
        owner=owner,
        node_id=heartbeat.get("node_id") or owner.split("/", 1)[0],
        state=state,
        leases=leases,
        oldest_lease_age=oldest_lease_age,
        history=history,
    )
    if heartbeat:
        node.activity = heartbeat.get("state") or DEFAULT_ACTIVITY
        node.disk_free = _num(heartbeat.get("disk_free"))
        node.disk_total = _num(heartbeat.get("disk_total"))
        node.pid = _num(heartbeat.get("pid"))
        node.started_at = _num(heartbeat.get("started_at"), float)
        node.last_seen = _num(heartbeat.get("updated_at"), float)
        for name in ("hotels", "images", "bytes", "failures", "in_flight"):
            setattr(node, name, _num(heartbeat.get(name)) or 0)
        node.stopped_claiming = str(heartbeat.get("stopped_claiming") or "")
        rates = window_rates(history, window)
        if rates is None:
            rates = tuple(_num(heartbeat.get(k), float) or 0.0 for k in ("hotels_per_s", "images_per_s", "mb_per_s"))
        node.hotels_per_s, node.images_per_s, node.mb_per_s = rates
        failures = window_failures(history, window)
        if failures is not None and failures[1]:
            node.failure_rate = failures[0] / failures[1]
        elif failures is None:
            node.failure_rate = _num(heartbeat.get("image_failure_rate"), float)
    elif last is not None:
        node.last_seen = last.t
        node.hotels, node.images, node.bytes, node.failures = last.hotels, last.images, last.bytes, last.failures
        node.stopped_claiming = last.reason
    return node


def lease_ages(
    leases: list[tuple[bytes, float]], owners: dict[bytes, bytes], now: float, lease_seconds: float
) -> dict[str, tuple[int, float]]:
    """Per owner: (leases held, age of the oldest); a lease's age is counted from its last claim or renewal."""
    out: dict[str, tuple[int, float]] = {}
    for entry, deadline in leases:
        owner = owners.get(entry, b"?").decode("utf-8", "replace")
        age = now - (float(deadline) - lease_seconds)
        count, oldest = out.get(owner, (0, age))
        out[owner] = (count + 1, max(oldest, age))
    return out


def finish(status: FleetStatus, thresholds: alerts.Thresholds | None = None) -> FleetStatus:
    """Fill in the fleet totals, the ETA, the failure rate and the alerts from the nodes; returns ``status``."""
    live = status.live
    failures = attempts = 0
    for node in live:
        counted = window_failures(node.history, status.window)
        if counted is not None:
            failures, attempts = failures + counted[0], attempts + counted[1]
    status.attempts = attempts
    status.failure_rate = failures / attempts if attempts else None
    progress = [t for n in status.nodes if (t := last_progress(n.history, n.state == "live")) is not None]
    if progress:
        status.last_progress_at = max(progress)
    else:  # no growth in what was loaded: no progress since the oldest sample, at least
        status.last_progress_at = min((n.history[0].t for n in status.nodes if n.history), default=None)
    status.hotels_per_s = sum(n.hotels_per_s for n in live)
    status.images_per_s = sum(n.images_per_s for n in live)
    status.mb_per_s = sum(n.mb_per_s for n in live)
    remaining = status.pending + status.leased
    if remaining == 0:
        status.eta_seconds = 0.0
    elif status.hotels_per_s > 0:
        status.eta_seconds = remaining / status.hotels_per_s
    else:
        status.eta_seconds = None
    status.nodes.sort(key=lambda n: (n.state != "live", n.node_id, n.owner))
    status.alerts = alerts.check(status, thresholds or alerts.Thresholds())
    return status


# ---------------------------------------------------------------- gathering


def _decode_hash(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in raw.items()}


def gather(
    client: Any,
    keys: Keys,
    *,
    lease_seconds: float = 120,
    window: float = DEFAULT_WINDOW,
    full_history: bool = False,
    history_seconds: float = 0.0,
    redis_label: str = "",
    thresholds: alerts.Thresholds | None = None,
) -> FleetStatus:
    """Read the fleet's state from Redis (blocking client).

    ``full_history`` loads every sample, ``history_seconds`` the samples of that many last
    seconds (of every process, gone ones too), for charts; the window and the stall alert's
    span are always loaded for live processes.
    """
    thresholds = thresholds or alerts.Thresholds()
    pipe = client.pipeline(transaction=False)
    pipe.time()
    pipe.llen(keys.start_ids)
    pipe.zcard(keys.leases)
    pipe.hlen(keys.manifests)
    pipe.hlen(keys.failed)
    pipe.hgetall(keys.stats)
    pipe.zrange(keys.leases, 0, -1, withscores=True)
    pipe.hgetall(keys.lease_owners)
    pipe.hgetall(keys.reasons)
    pipe.info("memory")
    (secs, micros), pending, leased, done, failed, counters, leases, owners, reasons, memory = pipe.execute()
    now = int(secs) + int(micros) / 1e6
    status = FleetStatus(
        at=now, redis=redis_label, pending=int(pending), leased=int(leased), done=int(done),
        failed_hotels=int(failed), counters={k: _num(v) or 0 for k, v in _decode_hash(counters).items()},
        failed_by_reason=failed_by_reason(client, keys), window=window,
        reasons=dict(sorted(((k, _num(v) or 0) for k, v in _decode_hash(reasons).items()), key=lambda kv: -kv[1])),
        redis_memory={k: int(memory.get(k) or 0) for k in ("used_memory", "maxmemory")},
    )
    by_owner = lease_ages(leases, owners, now, lease_seconds)
    status.hosts = host_budget_rows(client, keys)
    status.pauses = control.pauses(client, keys)

    node_prefix = keys.node("")
    hist_prefix = keys.history("")
    heartbeat_owners = [k.decode()[len(node_prefix):] for k in client.scan_iter(match=keys.node_pattern, count=1000)]
    history_owners = [k.decode()[len(hist_prefix):] for k in client.scan_iter(match=keys.history_pattern, count=1000)]
    pipe = client.pipeline(transaction=False)
    for owner in heartbeat_owners:
        pipe.hgetall(keys.node(owner))
    heartbeats = dict(zip(heartbeat_owners, (_decode_hash(h) for h in pipe.execute()), strict=True))

    intervals = [_num(b.get("interval"), float) or 30.0 for b in heartbeats.values()]
    shortest = max(min(intervals, default=30.0), 0.001)
    pipe = client.pipeline(transaction=False)
    for owner in history_owners:
        beat = heartbeats.get(owner)
        span = history_seconds
        if beat:
            span = max(span, window, thresholds.stall_seconds)
            shortest_here = max(_num(beat.get("interval"), float) or 30.0, 0.001)
        else:
            shortest_here = shortest
        if full_history:
            last = -1
        else:
            last = int(math.ceil(span / shortest_here))  # the newest sample is index 0
        pipe.lrange(keys.history(owner), 0, last)
    node_ids = sorted({(heartbeats.get(o) or {}).get("node_id") or o.split("/", 1)[0]
                       for o in (*heartbeat_owners, *history_owners, *by_owner)})
    for node_id in node_ids:
        pipe.hgetall(keys.node_reasons(node_id))
    replies = pipe.execute()
    node_reasons = {
        node_id: {k: _num(v) or 0 for k, v in _decode_hash(raw).items()}
        for node_id, raw in zip(node_ids, replies[len(history_owners):], strict=True)
    }
    histories: dict[str, list[Sample]] = {}
    for owner, raw in zip(history_owners, replies[: len(history_owners)], strict=True):
        samples = [s for s in (Sample.from_json(x) for x in raw) if s is not None]
        histories[owner] = sorted(samples, key=lambda s: s.t)

    for owner in sorted(set(heartbeats) | set(histories) | set(by_owner)):
        count, oldest = by_owner.get(owner, (0, None))
        node = build_node(owner, heartbeats.get(owner, {}), histories.get(owner, []), count, oldest, window)
        node.reasons = node_reasons.get(node.node_id, {})
        status.nodes.append(node)
    return finish(status, thresholds)


# ---------------------------------------------------------------- text


def format_duration(seconds: float | None) -> str:
    """``45s``, ``12m 5s``, ``3h 12m``, ``2d 4h``; ``-`` for unknown."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def format_bytes(n: float) -> str:
    """Decimal units, as disks are sold: ``412.3 GB``."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def format_time(t: float | None) -> str:
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + " UTC"


def redis_memory_text(memory: dict[str, int]) -> str:
    """``1.2 MB of 100.0 MB (1%)``, or ``1.2 MB (no maxmemory)``."""
    used, limit = memory.get("used_memory", 0), memory.get("maxmemory", 0)
    if not limit:
        return f"{format_bytes(used)} (no maxmemory)"
    return f"{format_bytes(used)} of {format_bytes(limit)} ({used / limit:.0%})"


def render_text(status: FleetStatus, max_gone: int = 10) -> str:
    """The status screen as plain text (no colour codes)."""
    c = status.counter
    eta = "done" if status.eta_seconds == 0 else format_duration(status.eta_seconds)
    lines = [
        f"hotelimages fleet at {format_time(status.at)}" + (f"  ({status.redis})" if status.redis else ""),
        "",
        f"queue       pending {status.pending:,}   in flight {status.leased:,}   done {status.done:,}   "
        f"failed {status.failed_hotels:,}   ETA {eta}",
        "hotels      done: " + "  ".join(f"{name} {c(f'hotels/{name}'):,}" for name in DONE_COUNTERS)
        + f"   not done: failed as a whole {status.failed_whole:,}  rejected {status.rejected:,}"
        + f"   skipped as done {c('hotels/skipped_done'):,}",
        f"images      stored {c('images/stored'):,} ({format_bytes(c('images/bytes'))})   "
        f"failed {c('images/failed'):,}",
        f"throughput  last {format_duration(status.window)}: {status.hotels_per_s:.1f} hotels/s, "
        f"{status.images_per_s:.1f} img/s, {status.mb_per_s:.2f} MB/s   "
        f"(nodes live {len(status.live)}, gone {len(status.gone)})",
        f"claims      requeued after expiry {c('claims/requeued_expired'):,}   "
        f"duplicate in flight {c('claims/duplicate_in_flight'):,}",
    ]
    pct = status.percent_done
    lines.insert(3, f"progress    {'-' if pct is None else f'{pct:.1f}%'} done   "
                    f"failure rate {'-' if status.failure_rate is None else f'{status.failure_rate:.1%}'} "
                    f"of {status.attempts:,} attempts   redis memory {redis_memory_text(status.redis_memory)}")
    for name, record in sorted(status.pauses.items()):
        what = "the whole fleet" if name == control.FLEET else "node " + name.partition(":")[2]
        since = format_time(record.get("since")) if isinstance(record.get("since"), (int, float)) else "?"
        note = f" ({record['note']})" if record.get("note") else ""
        lines.insert(2, f"PAUSED      {what} since {since}{note}: resume with 'resume'"
                        + (f" --node {name.partition(':')[2]}" if name != control.FLEET else ""))
    if status.hosts:
        lines += ["", "host budgets (fleet-wide)"]
        lines.append(f"  {'host':<32} {'budget/s':>9} {'now/s':>8} {'paused':>8} {'429/503 recent':>14} {'total':>8}")
        for h in status.hosts:
            lines.append(
                f"  {h['host'][:32]:<32} {h['budget']:>9g} {h['rate']:>8.1f} "
                f"{format_duration(h['paused_seconds']) if h['paused_seconds'] else '-':>8} "
                f"{h['recent_refusals']:>14,} {h['refusals']:>8,}"
            )
    if status.alerts:
        lines += ["", "ALERTS"] + [f"  {a.name:<17} {a.message}" for a in status.alerts]
    if status.reasons:
        lines += ["", "failures by reason (fleet, counted when recorded)"]
        lines += [f"  {n:>9,}  {reason}" for reason, n in status.reasons.items()]
    if status.failed_by_reason:
        lines += ["", "failed hotels by reason"]
        lines += [f"  {n:>9,}  {reason}" for reason, n in status.failed_by_reason.items()]
    lines += ["", "live processes"]
    if status.live:
        lines.append(
            f"  {'owner':<32} {'hotels':>8} {'images':>10} {'stored':>10} {'hotels/s':>8} {'img/s':>8} "
            f"{'MB/s':>7} {'flight':>6} {'leases':>6} {'oldest':>7} {'up':>8} {'fail%':>6} {'disk free':>10} state"
        )
        for n in status.live:
            up = status.at - n.started_at if n.started_at else None
            lines.append(
                f"  {n.owner[:32]:<32} {n.hotels:>8,} {n.images:>10,} {format_bytes(n.bytes):>10} "
                f"{n.hotels_per_s:>8.2f} {n.images_per_s:>8.1f} {n.mb_per_s:>7.2f} {n.in_flight:>6} "
                f"{n.leases:>6} {format_duration(n.oldest_lease_age):>7} {format_duration(up):>8} "
                f"{'-' if n.failure_rate is None else f'{n.failure_rate:.1%}':>6} "
                f"{'-' if n.disk_free is None else format_bytes(n.disk_free):>10} {n.activity}"
            )
    else:
        lines.append("  none")
    lines += [f"  {n.owner}: stopped claiming: {n.stopped_claiming}" for n in status.live if n.stopped_claiming]
    if status.gone:
        lines += ["", "gone processes (no heartbeat)"]
        for n in status.gone[:max_gone]:
            held = f", holds {n.leases} leases (oldest {format_duration(n.oldest_lease_age)})" if n.leases else ""
            seen = format_duration(status.at - n.last_seen) + " ago" if n.last_seen else "never"
            why = f"; stopped claiming: {n.stopped_claiming}" if n.stopped_claiming else ""
            lines.append(f"  {n.owner:<32} {n.state:<7} last seen {seen}, {n.hotels:,} hotels{held}{why}")
        if len(status.gone) > max_gone:
            lines.append(f"  ... and {len(status.gone) - max_gone} more")
    return "\n".join(lines) + "\n"
