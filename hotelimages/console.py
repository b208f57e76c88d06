"""The operators' console: a live fleet page, its JSON, its controls and ``/metrics``, on aiohttp.web.

    hotelimages status --serve [--bind 127.0.0.1:8080]

Routes:

* ``GET /``: the page (``console_static/index.html``); it fetches ``/api/status`` every few
  seconds and draws its charts with uPlot, served from ``/static/`` (no CDN);
* ``GET /api/status?range=hour|day|job``: ``FleetStatus.to_json()`` plus the chart series
  of that time range (``chart_series``), the alerts and the controls' availability;
* ``GET /metrics``: the same figures in Prometheus' exposition format (``hotelimages.metrics``);
* ``POST /api/requeue`` ``{"owner"}``, ``POST /api/retry`` ``{"reason"}``, ``GET /api/failed.csv``:
  the controls, behind a password (``HOTELS_CONSOLE_PASSWORD``) sent as HTTP basic credentials
  by the page's own login form. Each logs who did what from where.

It reads Redis only (``status.gather`` in a thread, cached for a second so that many
open pages cost Redis no more than one), and never binds a non-loopback address
without a password. aiohttp is already installed with Scrapy's dependencies, is
asyncio-native and well kept; the page needs nothing more than routes, static files
and streamed responses.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import csv
import hmac
import io
import ipaddress
import json
import logging
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from hotelimages import alerts, status
from hotelimages.claims import failed_record_reason, release_owner, retry_failed
from hotelimages.keys import Keys

logger = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("console_static")
#: The page's time ranges, in seconds of history (0: the whole job, as far as the history reaches).
RANGES = {"hour": 3600, "day": 86400, "job": 0}
#: The environment variable that holds the controls' password.
PASSWORD_ENV = "HOTELS_CONSOLE_PASSWORD"
#: Points per chart line at most.
CHART_POINTS = 300


@dataclass
class ConsoleConfig:
    """What the console reads and how (plain values; ``hotelimages status --serve`` builds one from its options)."""

    keys: Keys = field(default_factory=Keys)
    lease_seconds: float = 120
    window: float = status.DEFAULT_WINDOW
    thresholds: alerts.Thresholds = field(default_factory=alerts.Thresholds)
    password: str = ""
    refresh: float = 5.0
    redis_label: str = ""
    cache_seconds: float = 1.0


# ---------------------------------------------------------------- chart series (pure)


def _median_step(histories: list[list[status.Sample]]) -> float:
    steps = [b.t - a.t for h in histories for a, b in zip(h, h[1:], strict=False) if b.t > a.t]
    return statistics.median(steps) if steps else 1.0


def spread(
    histories: list[list[status.Sample]],
    t0: float,
    width: float,
    count: int,
    delta: Callable[[status.Sample, status.Sample], dict[str, float]],
) -> tuple[dict[str, list[float]], list[float]]:
    """Amounts per bucket and the seconds each bucket is covered by samples.

    Each step between two consecutive samples of one process spreads ``delta(a, b)`` over
    the buckets it overlaps, in proportion; a step longer than five of its process's usual
    steps is a hole in the record (the process was not heard from) and covers nothing.
    """
    amounts: dict[str, list[float]] = {}
    covered = [0.0] * count
    t_end = t0 + width * count
    for history in histories:
        limit = 5 * _median_step([history])
        for a, b in zip(history, history[1:], strict=False):
            dt = b.t - a.t
            if dt <= 0 or dt > limit or b.t <= t0 or a.t >= t_end:
                continue
            changes = delta(a, b)
            first, last = max(int((a.t - t0) // width), 0), min(int((b.t - t0) // width), count - 1)
            for k in range(first, last + 1):
                lo, hi = t0 + k * width, t0 + (k + 1) * width
                overlap = min(b.t, hi) - max(a.t, lo)
                if overlap <= 0:
                    continue
                covered[k] += overlap
                for name, value in changes.items():
                    amounts.setdefault(name, [0.0] * count)[k] += value * overlap / dt
    return amounts, covered


def _rates(amounts: list[float], covered: list[float], per: float = 1.0) -> list[float | None]:
    return [round(a / c * per, 4) if c > 0 else None for a, c in zip(amounts, covered, strict=True)]


def _sum_lines(lines: list[list[float | None]]) -> list[float | None]:
    out: list[float | None] = []
    for values in zip(*lines, strict=True):
        present = [v for v in values if v is not None]
        out.append(round(sum(present), 4) if present else None)
    return out


def chart_series(nodes: list[status.NodeStatus], t1: float, seconds: float, points: int = CHART_POINTS) -> dict:
    """The page's chart data over the last ``seconds`` before ``t1`` (0: all the history), uPlot-ready.

    ``t`` holds bucket mid-times; every other list is aligned with it and holds ``None``
    where no sample covers a bucket, so lines show gaps as gaps: photos/s and MB/s per
    node and for the fleet, the fleet's done and pending hotels, the hotels in flight (the
    processes' own counts, each one's newest in the bucket, added up) and failures per
    minute by reason (from the processes' own recorded reason counts).
    """
    histories = {n.owner: [s for s in n.history if not seconds or s.t >= t1 - seconds] for n in nodes}
    samples = [s for h in histories.values() for s in h]
    if not samples:
        return {"t": [], "images": {}, "mb": {}, "done": [], "pending": [], "in_flight": [], "reasons": {}}
    t0 = t1 - seconds if seconds else min(s.t for s in samples)
    width = max((t1 - t0) / points, _median_step(list(histories.values())), 1e-3)
    count = max(int(math.ceil((t1 - t0) / width)), 1)
    t = [round(t0 + (k + 0.5) * width, 3) for k in range(count)]

    def delta(a: status.Sample, b: status.Sample) -> dict[str, float]:
        out = {"images": max(b.images - a.images, 0), "mb": max(b.bytes - a.bytes, 0) / status.MB}
        for r, n in b.reasons.items():
            if n > a.reasons.get(r, 0):
                out["reason/" + r] = n - a.reasons.get(r, 0)
        return out

    # One pass over each process's history; processes of one node add up, nodes add up to the fleet.
    spreads = {owner: spread([h], t0, width, count, delta) for owner, h in histories.items()}
    zeros = [0.0] * count
    images: dict[str, list[float | None]] = {}
    mb: dict[str, list[float | None]] = {}
    for node_id in sorted({n.node_id for n in nodes}):
        owners = [n.owner for n in nodes if n.node_id == node_id and len(histories[n.owner]) >= 2]
        if not owners:
            continue
        images[node_id] = _sum_lines([_rates(spreads[o][0].get("images", zeros), spreads[o][1]) for o in owners])
        mb[node_id] = _sum_lines([_rates(spreads[o][0].get("mb", zeros), spreads[o][1]) for o in owners])
    if images:
        images = {"fleet": _sum_lines(list(images.values())), **images}
        mb = {"fleet": _sum_lines(list(mb.values())), **mb}

    names = sorted({name[7:] for amounts, _c in spreads.values() for name in amounts if name.startswith("reason/")})
    # A reason first seen late still has its zeros wherever any process was heard from.
    heard = [any(c[k] > 0 for _a, c in spreads.values()) for k in range(count)]
    by_reason = {}
    for name in names:
        summed = _sum_lines([_rates(a.get("reason/" + name, zeros), c, per=60.0) for a, c in spreads.values()])
        by_reason[name] = [(v or 0.0) if heard[k] else None for k, v in enumerate(summed)]

    done: list[int | None] = [None] * count
    pending: list[int | None] = [None] * count
    newest: list[float] = [-math.inf] * count
    in_flight: list[int | None] = [None] * count
    for h in histories.values():
        own: dict[int, int] = {}
        for s in h:
            k = min(max(int((s.t - t0) // width), 0), count - 1)
            own[k] = s.in_flight  # samples are oldest first: the newest in the bucket stays
            if s.t >= newest[k]:
                newest[k], done[k], pending[k] = s.t, s.done, s.pending
        for k, n in own.items():
            in_flight[k] = (in_flight[k] or 0) + n
    return {"t": t, "images": images, "mb": mb, "done": done, "pending": pending, "in_flight": in_flight,
            "reasons": by_reason}


def payload(fleet: status.FleetStatus, seconds: float, controls: bool, charts: dict | None = None) -> dict[str, Any]:
    """The JSON the page draws: the status figures, the chart series (made from ``fleet`` unless given)
    and what the page may offer."""
    data = fleet.to_json()
    data["charts"] = charts if charts is not None else chart_series(fleet.nodes, fleet.at, seconds)
    data["range_seconds"] = seconds
    data["controls"] = {"enabled": controls, "pause": False}
    return data


# ---------------------------------------------------------------- the page as one file


def snapshot_html(data: dict[str, Any]) -> str:
    """The live page as one self-contained file showing ``data`` (``status --html``): no requests, no controls."""
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    css = "\n".join((STATIC / name).read_text(encoding="utf-8") for name in ("uPlot.min.css", "console.css"))
    blob = json.dumps(data).replace("</", "<\\/")
    scripts = "\n".join(
        "<script>" + (STATIC / name).read_text(encoding="utf-8").replace("</script", "<\\/script") + "</script>"
        for name in ("uPlot.iife.min.js", "console.js")
    )
    page = page.replace('<link rel="stylesheet" href="static/uPlot.min.css">', "")
    page = page.replace('<link rel="stylesheet" href="static/console.css">', f"<style>\n{css}\n</style>")
    page = page.replace('<script src="static/uPlot.iife.min.js"></script>', "")
    return page.replace(
        '<script src="static/console.js"></script>', f"<script>window.SNAPSHOT = {blob};</script>\n{scripts}"
    )


# ---------------------------------------------------------------- the server


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_bind(bind: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) as a pair; a clear error otherwise."""
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--bind wants HOST:PORT, got {bind!r}")
    return host.strip("[]"), int(port)


class Console:
    """The console's handlers over one blocking Redis client (used from worker threads)."""

    def __init__(self, client: Any, config: ConsoleConfig):
        self.client = client
        self.config = config
        self._cache: dict[float, tuple[float, dict[str, Any]]] = {}
        self._charts: dict[float, tuple[float, dict[str, Any]]] = {}
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------ reading

    def gather(self, history_seconds: float = 0.0, full: bool = False) -> status.FleetStatus:
        cfg = self.config
        return status.gather(
            self.client, cfg.keys, lease_seconds=cfg.lease_seconds, window=cfg.window,
            history_seconds=history_seconds, full_history=full, redis_label=cfg.redis_label,
            thresholds=cfg.thresholds,
        )

    def chart_ttl(self, seconds: float) -> float:
        """How long a range's charts are reused: a tenth of a bucket (a day: 29 s; the whole job: 30 s)."""
        return max(self.config.cache_seconds, seconds / CHART_POINTS / 10 if seconds else 30.0)

    async def status_json(self, seconds: float) -> dict[str, Any]:
        """``payload`` for a range, shared by every page that asks within ``cache_seconds``.

        The figures are read afresh each time (the window's samples only); a range's
        charts, which need its whole history, only when they are older than ``chart_ttl``.
        """
        async with self._lock:
            now = time.monotonic()
            hit = self._cache.get(seconds)
            if hit is not None and now - hit[0] < self.config.cache_seconds:
                return hit[1]
            charts = self._charts.get(seconds)
            if charts is None or now - charts[0] >= self.chart_ttl(seconds):
                fleet = await asyncio.to_thread(self.gather, seconds, seconds == 0)
                charts = (now, chart_series(fleet.nodes, fleet.at, seconds))
                self._charts[seconds] = charts
            else:
                fleet = await asyncio.to_thread(self.gather)
            data = payload(fleet, seconds, controls=bool(self.config.password), charts=charts[1])
            data["refresh"] = self.config.refresh
            self._cache[seconds] = (now, data)
            return data

    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def api_status(self, request: web.Request) -> web.Response:
        name = request.query.get("range", "hour")
        if name not in RANGES:
            raise web.HTTPBadRequest(text=f"range must be one of {', '.join(RANGES)}, got {name!r}")
        return web.json_response(await self.status_json(RANGES[name]), headers={"Cache-Control": "no-store"})

    async def metrics(self, request: web.Request) -> web.Response:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest  # noqa: PLC0415

        from hotelimages.metrics import FleetCollector  # noqa: PLC0415

        registry = CollectorRegistry(auto_describe=False)
        registry.register(FleetCollector(self.gather))
        body = await asyncio.to_thread(generate_latest, registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # ------------------------------------------------------------ controls

    def user(self, request: web.Request) -> str:
        """The user name of a request with the right password; 401 (or 403 without a password set) otherwise."""
        if not self.config.password:
            raise web.HTTPForbidden(
                text=json.dumps({"error": f"controls are off: set {PASSWORD_ENV} and restart the console"}),
                content_type="application/json",
            )
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        name, password = "", ""
        if scheme.lower() == "basic":
            try:
                name, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                pass
        if not hmac.compare_digest(password.encode(), self.config.password.encode()):
            logger.warning("Console: refused %(path)s from %(peer)s (wrong or no password, user %(user)r)",
                           {"path": request.path, "peer": request.remote, "user": name[:64]})
            # No WWW-Authenticate: the page asks with its own form, the browser must not pop up a dialog.
            raise web.HTTPUnauthorized(text=json.dumps({"error": "wrong or missing password"}),
                                       content_type="application/json")
        return name[:64] or "operator"

    def _forget(self) -> None:
        """After a control: the next page update reads everything afresh."""
        self._cache.clear()
        self._charts.clear()

    async def _body(self, request: web.Request, name: str) -> str:
        try:
            value = (await request.json()).get(name)
        except (ValueError, AttributeError):
            value = None
        if not isinstance(value, str) or not value:
            raise web.HTTPBadRequest(text=json.dumps({"error": f"a JSON body with {name!r} is needed"}),
                                     content_type="application/json")
        return value

    async def requeue(self, request: web.Request) -> web.Response:
        user = self.user(request)
        owner = await self._body(request, "owner")
        report = await asyncio.to_thread(release_owner, self.client, self.config.keys, owner)
        logger.info("Console: %(user)s from %(peer)s requeued %(n)d leases of %(owner)s (live, left alone: %(live)s)",
                    {"user": user, "peer": request.remote, "n": report.total, "owner": owner,
                     "live": report.live_skipped or "none"})
        self._forget()
        return web.json_response({"requeued": report.total, "released": report.released,
                                  "live_skipped": report.live_skipped})

    async def retry(self, request: web.Request) -> web.Response:
        user = self.user(request)
        reason = await self._body(request, "reason")
        report = await asyncio.to_thread(retry_failed, self.client, self.config.keys, reasons=[reason])
        logger.info("Console: %(user)s from %(peer)s retried %(n)d failed hotels with reason %(reason)s",
                    {"user": user, "peer": request.remote, "n": report.moved, "reason": reason})
        self._forget()
        return web.json_response({"moved": report.moved, "reason": reason})

    async def failed_csv(self, request: web.Request) -> web.StreamResponse:
        """Every failed hotel with its reason, streamed as CSV (one HSCAN page at a time)."""
        user = self.user(request)
        logger.info("Console: %(user)s from %(peer)s exported the failed hotels",
                    {"user": user, "peer": request.remote})
        response = web.StreamResponse(headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="failed-hotels.csv"',
        })
        await response.prepare(request)
        cursor, first = 0, True
        while first or cursor != 0:
            cursor, page = await asyncio.to_thread(self.client.hscan, self.config.keys.failed, cursor, count=1000)
            await response.write(failed_rows(page, header=first))
            first = False
        await response.write_eof()
        return response


def failed_rows(page: dict[bytes, bytes], header: bool = False) -> bytes:
    """CSV lines ``hotel_id,reason,detail,node,at`` of hotels:failed records (pure)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(["hotel_id", "reason", "detail", "node", "at"])
    for hotel_id, raw in page.items():
        try:
            record = json.loads(raw)
        except ValueError:
            record = {}
        record = record if isinstance(record, dict) else {}
        writer.writerow([hotel_id.decode("utf-8", "replace"), failed_record_reason(raw),
                         *(str(record.get(k, "")) for k in ("detail", "node", "at"))])
    return out.getvalue().encode("utf-8")


def make_app(client: Any, config: ConsoleConfig) -> web.Application:
    """The console's aiohttp application over a blocking Redis client."""
    console = Console(client, config)
    app = web.Application()
    app.add_routes([
        web.get("/", console.index),
        web.get("/api/status", console.api_status),
        web.get("/metrics", console.metrics),
        web.post("/api/requeue", console.requeue),
        web.post("/api/retry", console.retry),
        web.get("/api/failed.csv", console.failed_csv),
        web.static("/static", STATIC),
    ])
    app["console"] = console
    return app


def serve(client: Any, config: ConsoleConfig, host: str, port: int, ready: Callable[[str], None] | None = None) -> None:
    """Run the console until interrupted; refuses a non-loopback address without a password."""
    if not is_loopback(host) and not config.password:
        raise ValueError(f"refusing to serve on {host} (not loopback) without a password: set {PASSWORD_ENV}")

    async def main() -> None:
        runner = web.AppRunner(make_app(client, config), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1] if runner.addresses else port  # the port chosen when asked for 0
        url = f"http://{'[' + host + ']' if ':' in host else host}:{bound}/"
        logger.info("Console on %(url)s (controls %(state)s)",
                    {"url": url, "state": "on" if config.password else f"off: {PASSWORD_ENV} is not set"})
        if ready is not None:
            ready(url)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())
