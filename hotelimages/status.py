"""Fleet status: one picture of the whole crawl from Redis alone.

``gather`` reads the queue, the leases, the fleet counters, the failure
reasons and every process's heartbeat and history into a ``FleetStatus``;
``render_text`` and ``render_html`` turn one into a screen or a self-contained
page (inline SVG, no scripts). Nothing here reads a manifest: with 600,000 of
them, HLEN and the ``hotels:stats`` counters are what an operator can afford.
"""

from __future__ import annotations

import html
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from hotelimages import defaults
from hotelimages.claims import failed_by_reason, redis_memory
from hotelimages.keys import Keys
from hotelimages.reasons import hotel_status

MB = 1_000_000
#: Throughput is measured over this many seconds of history unless told otherwise.
DEFAULT_WINDOW = 300.0
#: The hotel statuses of the fleet counters, in display order.
HOTEL_COUNTERS = ("complete", "partial", "failed", "empty", "rejected", "skipped_done")
#: Statuses of done hotels (``hotels/<status>`` counters: the state of ``hotels:manifests``).
DONE_COUNTERS = ("complete", "partial", "failed", "empty")


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
    state: str = ""

    @classmethod
    def from_json(cls, raw: bytes | str) -> Sample | None:
        try:
            data = json.loads(raw)
            return cls(
                t=float(data["t"]),
                **{k: int(data.get(k, 0)) for k in ("hotels", "images", "bytes", "failures", "done", "pending")},
                state=str(data.get("state", "")),
            )
        except (ValueError, KeyError, TypeError):
            return None


@dataclass
class NodeStatus:
    """One crawler process: live (heartbeat present), stopped (closed cleanly) or lost (vanished)."""

    owner: str
    node_id: str
    state: str
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
    nodes: list[NodeStatus] = field(default_factory=list)
    window: float = DEFAULT_WINDOW
    hotels_per_s: float = 0.0
    images_per_s: float = 0.0
    mb_per_s: float = 0.0
    eta_seconds: float | None = None
    #: Redis's used_memory and maxmemory in bytes (0: no limit).
    redis_used_memory: int = 0
    redis_maxmemory: int = 0
    #: Fraction of maxmemory from which ``warnings`` has a line.
    memory_warn: float = defaults.HOTELS_REDIS_MEMORY_WARN

    @property
    def failed_whole(self) -> int:
        """Hotels in ``hotels:failed`` that failed as a whole (not rejected as bad input)."""
        return sum(n for reason, n in self.failed_by_reason.items() if hotel_status(reason) == "failed")

    @property
    def rejected(self) -> int:
        """Hotels in ``hotels:failed`` refused as bad input (``invalid_*`` reasons)."""
        return sum(n for reason, n in self.failed_by_reason.items() if hotel_status(reason) == "rejected")

    @property
    def memory_fraction(self) -> float | None:
        return self.redis_used_memory / self.redis_maxmemory if self.redis_maxmemory else None

    @property
    def warnings(self) -> list[str]:
        """Lines an operator must act on (Redis memory from ``memory_warn`` of maxmemory)."""
        out = []
        frac = self.memory_fraction
        if frac is not None and frac >= self.memory_warn:
            what = "out of memory: claiming is paused" if frac >= 1 else "near its limit"
            out.append(
                f"Redis {what}: used {format_mib(self.redis_used_memory)} of maxmemory "
                f"{format_mib(self.redis_maxmemory)} ({frac:.0%}); raise maxmemory, or run convert_done "
                "if hotels:manifests holds full manifests"
            )
        return out

    @property
    def live(self) -> list[NodeStatus]:
        return [n for n in self.nodes if n.state == "live"]

    @property
    def gone(self) -> list[NodeStatus]:
        return [n for n in self.nodes if n.state != "live"]

    def counter(self, name: str) -> int:
        return int(self.counters.get(name, 0))

    def to_json(self, history: bool = False) -> dict[str, Any]:
        """The figures as a JSON-ready dict; samples only with ``history``."""
        data = asdict(self)
        data["live_nodes"] = len(self.live)
        data["gone_nodes"] = len(self.gone)
        data["failed_whole"] = self.failed_whole
        data["rejected"] = self.rejected
        data["warnings"] = self.warnings
        if not history:
            for node in data["nodes"]:
                node.pop("history")
        return data


# ---------------------------------------------------------------- pure helpers


def window_rates(history: list[Sample], window: float) -> tuple[float, float, float] | None:
    """(hotels/s, images/s, MB/s) between the newest sample and the oldest within ``window`` of it."""
    if len(history) < 2:
        return None
    newest = history[-1]
    oldest = next((s for s in history if s.t >= newest.t - window - 1e-6), history[0])
    if oldest is newest:
        oldest = history[-2]
    dt = newest.t - oldest.t
    if dt <= 0:
        return None
    return (
        (newest.hotels - oldest.hotels) / dt,
        (newest.images - oldest.images) / dt,
        (newest.bytes - oldest.bytes) / MB / dt,
    )


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
        node.pid = _num(heartbeat.get("pid"))
        node.started_at = _num(heartbeat.get("started_at"), float)
        node.last_seen = _num(heartbeat.get("updated_at"), float)
        for name in ("hotels", "images", "bytes", "failures", "in_flight"):
            setattr(node, name, _num(heartbeat.get(name)) or 0)
        rates = window_rates(history, window)
        if rates is None:
            rates = tuple(_num(heartbeat.get(k), float) or 0.0 for k in ("hotels_per_s", "images_per_s", "mb_per_s"))
        node.hotels_per_s, node.images_per_s, node.mb_per_s = rates
    elif last is not None:
        node.last_seen = last.t
        node.hotels, node.images, node.bytes, node.failures = last.hotels, last.images, last.bytes, last.failures
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


def finish(status: FleetStatus) -> FleetStatus:
    """Fill in the fleet totals and the ETA from the nodes; returns ``status``."""
    live = status.live
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
    redis_label: str = "",
) -> FleetStatus:
    """Read the fleet's state from Redis (blocking client); ``full_history`` loads every sample, for charts."""
    pipe = client.pipeline(transaction=False)
    pipe.time()
    pipe.llen(keys.start_ids)
    pipe.zcard(keys.leases)
    pipe.hlen(keys.manifests)
    pipe.hlen(keys.failed)
    pipe.hgetall(keys.stats)
    pipe.zrange(keys.leases, 0, -1, withscores=True)
    pipe.hgetall(keys.lease_owners)
    pipe.info("memory")
    (secs, micros), pending, leased, done, failed, counters, leases, owners, memory = pipe.execute()
    now = int(secs) + int(micros) / 1e6
    status = FleetStatus(
        at=now, redis=redis_label, pending=int(pending), leased=int(leased), done=int(done),
        failed_hotels=int(failed), counters={k: _num(v) or 0 for k, v in _decode_hash(counters).items()},
        failed_by_reason=failed_by_reason(client, keys), window=window,
    )
    status.redis_used_memory, status.redis_maxmemory = redis_memory(memory)
    by_owner = lease_ages(leases, owners, now, lease_seconds)

    node_prefix = keys.node("")
    hist_prefix = keys.history("")
    heartbeat_owners = [k.decode()[len(node_prefix):] for k in client.scan_iter(match=keys.node_pattern, count=1000)]
    history_owners = [k.decode()[len(hist_prefix):] for k in client.scan_iter(match=keys.history_pattern, count=1000)]
    pipe = client.pipeline(transaction=False)
    for owner in heartbeat_owners:
        pipe.hgetall(keys.node(owner))
    heartbeats = dict(zip(heartbeat_owners, (_decode_hash(h) for h in pipe.execute()), strict=True))

    pipe = client.pipeline(transaction=False)
    for owner in history_owners:
        beat = heartbeats.get(owner)
        if full_history:
            last = -1
        elif beat:
            interval = _num(beat.get("interval"), float) or 30.0
            last = int(math.ceil(window / max(interval, 0.001)))  # the newest sample is index 0
        else:
            last = 0
        pipe.lrange(keys.history(owner), 0, last)
    histories: dict[str, list[Sample]] = {}
    for owner, raw in zip(history_owners, pipe.execute(), strict=True):
        samples = [s for s in (Sample.from_json(x) for x in raw) if s is not None]
        histories[owner] = sorted(samples, key=lambda s: s.t)

    for owner in sorted(set(heartbeats) | set(histories) | set(by_owner)):
        count, oldest = by_owner.get(owner, (0, None))
        status.nodes.append(
            build_node(owner, heartbeats.get(owner, {}), histories.get(owner, []), count, oldest, window)
        )
    return finish(status)


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


def format_mib(n: float) -> str:
    """Binary units, as Redis's maxmemory is usually set: ``812.4 MiB``, ``3.2 GiB``."""
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / 2**20:.1f} MiB"


def format_time(t: float | None) -> str:
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + " UTC"


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
        f"redis       used {format_mib(status.redis_used_memory)} of maxmemory "
        + (f"{format_mib(status.redis_maxmemory)} ({status.memory_fraction:.0%})" if status.redis_maxmemory
           else "(no limit)")
        + (f"   {status.redis_used_memory / status.done:,.0f} B per done hotel" if status.done else ""),
    ]
    lines += [f"WARNING     {w}" for w in status.warnings]
    if status.failed_by_reason:
        lines += ["", "failed hotels by reason"]
        lines += [f"  {n:>9,}  {reason}" for reason, n in status.failed_by_reason.items()]
    lines += ["", "live processes"]
    if status.live:
        lines.append(
            f"  {'owner':<32} {'hotels':>8} {'images':>10} {'stored':>10} {'hotels/s':>8} {'img/s':>8} "
            f"{'MB/s':>7} {'flight':>6} {'leases':>6} {'oldest':>7} {'up':>8}"
        )
        for n in status.live:
            up = status.at - n.started_at if n.started_at else None
            lines.append(
                f"  {n.owner[:32]:<32} {n.hotels:>8,} {n.images:>10,} {format_bytes(n.bytes):>10} "
                f"{n.hotels_per_s:>8.2f} {n.images_per_s:>8.1f} {n.mb_per_s:>7.2f} {n.in_flight:>6} "
                f"{n.leases:>6} {format_duration(n.oldest_lease_age):>7} {format_duration(up):>8}"
            )
    else:
        lines.append("  none")
    if status.gone:
        lines += ["", "gone processes (no heartbeat)"]
        for n in status.gone[:max_gone]:
            held = f", holds {n.leases} leases (oldest {format_duration(n.oldest_lease_age)})" if n.leases else ""
            seen = format_duration(status.at - n.last_seen) + " ago" if n.last_seen else "never"
            lines.append(f"  {n.owner:<32} {n.state:<7} last seen {seen}, {n.hotels:,} hotels{held}")
        if len(status.gone) > max_gone:
            lines.append(f"  ... and {len(status.gone) - max_gone} more")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- html


def throughput_series(nodes: list[NodeStatus], buckets: int = 120) -> dict[str, list[tuple[float, float]]]:
    """Images/s over time per node id (processes of one node summed) and ``total``, in time buckets."""
    spans = [(n, n.history) for n in nodes if len(n.history) >= 2]
    if not spans:
        return {}
    t0 = min(h[0].t for _n, h in spans)
    t1 = max(h[-1].t for _n, h in spans)
    gaps = sorted(b.t - a.t for _n, h in spans for a, b in zip(h, h[1:], strict=False))
    width = max((t1 - t0) / buckets, gaps[len(gaps) // 2], 1e-3)
    count = int((t1 - t0) / width) + 1
    per_node: dict[str, list[float]] = {}
    for node, history in spans:
        row = per_node.setdefault(node.node_id, [0.0] * count)
        for a, b in zip(history, history[1:], strict=False):
            row[min(int((b.t - t0) / width), count - 1)] += max(b.images - a.images, 0)
    total = [sum(row[i] for row in per_node.values()) for i in range(count)]
    out = {name: row for name, row in sorted(per_node.items())}
    if len(out) > 1:
        out["total"] = total
    return {name: [(t0 + (i + 0.5) * width, v / width) for i, v in enumerate(row)] for name, row in out.items()}


def completion_series(nodes: list[NodeStatus], points: int = 400) -> dict[str, list[tuple[float, float]]]:
    """Hotels done (manifests) and pending over time, from every process's samples."""
    samples = sorted((s for n in nodes for s in n.history), key=lambda s: s.t)
    step = max(1, math.ceil(len(samples) / points))
    picked = samples[::step]
    if samples and picked[-1] is not samples[-1]:
        picked.append(samples[-1])
    return {"done": [(s.t, s.done) for s in picked], "pending": [(s.t, s.pending) for s in picked]}


COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22")


def svg_chart(series: dict[str, list[tuple[float, float]]], title: str, unit: str, width: int = 760,
              height: int = 260) -> str:
    """A line chart as inline SVG: one polyline per series, time on x (UTC), a legend."""
    esc = html.escape
    points = [p for line in series.values() for p in line]
    if not points:
        return f'<p class="empty">{esc(title)}: no history yet.</p>'
    left, right, top, bottom = 64, 150, 28, 30
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y1 = max(max(p[1] for p in points), 1e-9) * 1.05
    x1 = x1 if x1 > x0 else x0 + 1
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + ph - y / y1 * ph

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{esc(title)}">',
        f'<text x="{left}" y="16" class="title">{esc(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="frame"/>',
    ]
    for frac in (0, 0.5, 1):
        y = y1 * frac
        parts.append(f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" class="axis" text-anchor="end">{y:,.1f}</text>')
    parts.append(f'<text x="{left - 6}" y="{top - 8}" class="axis" text-anchor="end">{esc(unit)}</text>')
    for frac in (0, 0.5, 1):
        x = x0 + (x1 - x0) * frac
        label = time.strftime("%m-%d %H:%M", time.gmtime(x))
        parts.append(f'<text x="{sx(x):.1f}" y="{height - 10}" class="axis" text-anchor="middle">{label}</text>')
    for i, (name, line) in enumerate(series.items()):
        colour = "#000" if name == "total" else COLOURS[i % len(COLOURS)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in line)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        ly = top + 12 + 16 * i
        parts.append(f'<rect x="{width - right + 10}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{width - right + 24}" y="{ly}" class="legend">{esc(name[:20])}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def render_html(status: FleetStatus, refresh: int | None = None) -> str:
    """A self-contained HTML page: the text figures, throughput per node and the completion curve."""
    meta = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">{meta}
<title>hotelimages fleet status</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
svg {{ display: block; margin: 1em 0; }}
.title {{ font-weight: bold; font-size: 14px; }} .axis, .legend {{ font-size: 11px; fill: #444; }}
.frame {{ fill: none; stroke: #bbb; }}
</style></head>
<body>
<h1>hotelimages fleet status</h1>
<pre>{html.escape(render_text(status))}</pre>
{svg_chart(throughput_series(status.nodes), "Images stored per second, by node", "img/s")}
{svg_chart(completion_series(status.nodes), "Hotels done and pending", "hotels")}
</body></html>
"""
