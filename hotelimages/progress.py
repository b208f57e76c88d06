"""Progress extension: one log line per interval, and a heartbeat in Redis for ``hotelimages status``.

Like Scrapy's ``LogStats``, every ``HOTELS_PROGRESS_INTERVAL`` seconds it logs::

    Progress: 1204 hotels done (complete 1150, partial 40, failed 10, empty 4), 5 failed as a whole, 3 rejected;
    52311 images, 6120.4 MB; last 30s: 41.2 img/s, 4.81 MB/s, 0.9 hotels/s; 26 image failures; 48 in flight

``hotels done`` and its statuses count the manifests this process recorded (``failed``: a manifest
whose every image failed); ``failed as a whole`` and ``rejected`` count its ``hotels:failed`` records,
as ``status`` splits that hash; images and bytes are those of its manifests.

and publishes, with the asyncio Redis client:

* ``hotels:node:<owner>``: a hash of this process's figures (fields in ``HEARTBEAT_FIELDS``),
  expiring after ``max(3 * interval, 30)`` seconds, so a key that is present means a live process;
* ``hotels:history:<owner>``: a capped list (newest first) of JSON samples
  ``{"t", "hotels", "images", "bytes", "failures", "done", "pending", "in_flight"}`` where ``t`` is Redis server
  time and ``done``/``pending`` are the fleet's manifests and pending entries at that moment,
  which gives ``status`` throughput over time per process and the fleet's completion curve;
  a sample also carries ``reasons``, this process's recorded failure counts by reason (if any),
  ``state`` once the process closes and ``reason`` once it stopped claiming.

The heartbeat also holds the image failure rate of the last interval (failed / attempted) and
the free and total bytes of the disk of ``IMAGES_STORE``.

The history is per owner (``NODE_ID/pid-token``), not per node, because the
counters are per process: two processes of one node would interleave
unrelated counts. Redis errors are logged once per outage and never stop the crawl.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from typing import Any

from scrapy import signals
from scrapy.exceptions import NotConfigured

from hotelimages import defaults
from hotelimages.keys import Keys
from hotelimages.manifest import STATUSES

logger = logging.getLogger(__name__)

#: Shortest heartbeat lifetime, whatever the interval.
MIN_HEARTBEAT_TTL = 30

HOTEL_STATUSES = STATUSES  # of manifests
MB = 1_000_000

#: Fields of the heartbeat hash, in the order status shows them.
HEARTBEAT_FIELDS = (
    "node_id", "owner", "pid", "interval", "started_at", "updated_at", "state",
    "hotels", "hotels_complete", "hotels_partial", "hotels_failed", "hotels_empty", "hotels_rejected",
    "hotels_failed_whole",
    "images", "bytes", "images_failed", "failures", "in_flight",
    "images_per_s", "mb_per_s", "hotels_per_s", "image_failure_rate", "disk_free", "disk_total",
    "stopped_claiming",
)


@dataclass
class Counts:
    """A process's cumulative figures at one moment, read from its Scrapy stats."""

    complete: int = 0
    partial: int = 0
    failed: int = 0
    empty: int = 0
    rejected: int = 0
    failed_whole: int = 0
    images: int = 0
    bytes: int = 0
    images_failed: int = 0

    @property
    def hotels(self) -> int:
        return self.complete + self.partial + self.failed + self.empty

    @property
    def failures(self) -> int:
        """Hotels that failed as a whole or were rejected, plus images that failed."""
        return self.failed_whole + self.rejected + self.images_failed

    @classmethod
    def from_stats(cls, stats: Any) -> Counts:
        def get(name: str) -> int:
            return int(stats.get_value(f"hotelimages/{name}", 0) or 0)

        return cls(
            **{status: get(f"hotels/{status}") for status in HOTEL_STATUSES},
            rejected=get("hotels/rejected"),
            failed_whole=get("hotels/failed_whole"),
            images=get("images/stored"),
            bytes=get("images/bytes"),
            images_failed=get("images/failed"),
        )


@dataclass
class Rates:
    """Throughput over one interval."""

    images_per_s: float = 0.0
    mb_per_s: float = 0.0
    hotels_per_s: float = 0.0

    @classmethod
    def between(cls, before: Counts, after: Counts, seconds: float) -> Rates:
        if seconds <= 0:
            return cls()
        return cls(
            images_per_s=(after.images - before.images) / seconds,
            mb_per_s=(after.bytes - before.bytes) / MB / seconds,
            hotels_per_s=(after.hotels - before.hotels) / seconds,
        )


def progress_message(counts: Counts, rates: Rates, seconds: float, in_flight: int) -> tuple[str, dict[str, Any]]:
    """The progress log line as a lazy-logging format and its named arguments."""
    msg = (
        "Progress: %(hotels)d hotels done (complete %(complete)d, partial %(partial)d, failed %(failed)d, "
        "empty %(empty)d), %(failed_whole)d failed as a whole, %(rejected)d rejected; %(images)d images, %(mb).1f MB; "
        "last %(seconds).0fs: %(ips).1f img/s, %(mbps).2f MB/s, %(hps).1f hotels/s; "
        "%(images_failed)d image failures; %(in_flight)d in flight"
    )
    return msg, {
        **asdict(counts), "hotels": counts.hotels, "mb": counts.bytes / MB, "seconds": seconds,
        "ips": rates.images_per_s, "mbps": rates.mb_per_s, "hps": rates.hotels_per_s, "in_flight": in_flight,
    }


class HotelsProgress:
    """Logs a progress line and publishes this process's heartbeat and history every interval."""

    def __init__(
        self,
        stats: Any,
        client: Any,
        keys: Keys,
        node_id: str,
        interval: float = defaults.HOTELS_PROGRESS_INTERVAL,
        history_length: int = defaults.HOTELS_PROGRESS_HISTORY_LENGTH,
        history_ttl: int = defaults.HOTELS_PROGRESS_HISTORY_TTL,
        store: str | None = None,
    ):
        self.stats = stats
        self.client = client
        self.keys = keys
        self.node_id = node_id
        self.interval = interval
        self.history_length = history_length
        self.history_ttl = history_ttl
        #: The node's shared state (``nodestate.NodeState``): the claim owner and the hotels in flight.
        self.node: Any = None
        self._crawler: Any = None
        self.store = store
        self.pid = os.getpid()
        self._started = time.monotonic()
        self._started_at: float | None = None
        self._last_counts = Counts()
        self._last_time = self._started
        self._published_owner: str | None = None
        self._redis_down = False
        self._task: asyncio.Task | None = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> HotelsProgress:
        from hotelimages.config import HotelsConfig  # noqa: PLC0415 - keeps the pure helpers import-light
        from hotelimages.redisconn import async_client  # noqa: PLC0415

        cfg = HotelsConfig.from_settings(crawler.settings)
        if not cfg.progress_interval:
            raise NotConfigured("HOTELS_PROGRESS_INTERVAL is 0")
        interval, length, ttl = cfg.progress_interval, cfg.progress_history_length, cfg.progress_history_ttl
        ext = cls(
            crawler.stats,
            async_client(cfg.redis),
            cfg.keys,
            cfg.node_id,
            interval=interval,
            history_length=length,
            history_ttl=ttl,
            store=crawler.settings.get("IMAGES_STORE") or None,
        )
        ext._crawler = crawler
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    # ------------------------------------------------------------ signals

    def spider_opened(self, spider: Any) -> None:
        if self._crawler is not None:
            from hotelimages.nodestate import NodeState  # noqa: PLC0415 - keeps the pure helpers import-light

            self.node = self._crawler.get_extension(NodeState)
        self._started = self._last_time = time.monotonic()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            logger.warning("HotelsProgress needs Scrapy's asyncio reactor (the default); progress is off")
            return
        self._task = loop.create_task(self._run())

    async def spider_closed(self, spider: Any, reason: str) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.tick(state=f"closed:{reason}")
        owner = self._published_owner
        if owner is not None:
            try:
                # A stopped process is no longer live; its history stays for status and the charts.
                await self.client.delete(self.keys.node(owner))
            except Exception:  # noqa: BLE001 - Redis may be gone at shutdown; the key expires anyway
                pass
        await self.client.aclose()

    async def _run(self) -> None:
        await self.tick(log=False)  # show up in status right away; nothing to say yet
        while True:
            await asyncio.sleep(self.interval)
            await self.tick()

    # ------------------------------------------------------------ one interval

    @property
    def owner(self) -> str:
        """The claim owner of this process (``NODE_ID/pid-token``) once the spider has one, else NODE_ID."""
        leases = getattr(self.node, "leases", None)
        return str(getattr(leases, "owner", None) or self.node_id)

    @property
    def in_flight(self) -> int:
        leases = getattr(self.node, "leases", None)
        return len(getattr(leases, "in_flight", ()) or ())

    @property
    def recorded_reasons(self) -> dict[str, int]:
        leases = getattr(self.node, "leases", None)
        return dict(getattr(leases, "recorded_reasons", None) or {})

    def disk(self) -> tuple[int, int] | None:
        """(free, total) bytes of the store's disk, or None if unknown."""
        if not self.store:
            return None
        try:
            usage = shutil.disk_usage(self.store)
        except OSError:
            return None
        return usage.free, usage.total

    async def tick(self, state: str = "running", log: bool = True) -> None:
        """Log the progress line and publish the heartbeat; never raises (but for cancellation)."""
        if state == "running" and self.node is not None and getattr(self.node, "paused", ""):
            state = self.node.paused  # "paused" or "paused (schedule)", shown by status
        now = time.monotonic()
        counts = Counts.from_stats(self.stats)
        before = self._last_counts
        seconds = now - self._last_time
        rates = Rates.between(self._last_counts, counts, seconds)
        self._last_counts, self._last_time = counts, now
        in_flight = self.in_flight
        if log:
            msg, args = progress_message(counts, rates, seconds, in_flight)
            logger.info(msg, args)
        try:
            await self.publish(counts, rates, in_flight, state, before)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a heartbeat must never take the node down
            if not self._redis_down:
                logger.warning("Progress heartbeat not published (%(error)r); retrying every %(interval).0fs",
                               {"error": exc, "interval": self.interval})
            self._redis_down = True
        else:
            if self._redis_down:
                logger.info("Progress heartbeat published again")
            self._redis_down = False

    async def publish(
        self, counts: Counts, rates: Rates, in_flight: int, state: str = "running", before: Counts | None = None
    ) -> None:
        """Write the heartbeat hash and append a history sample (two round trips); ``before``: the last counts."""
        owner = self.owner
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.hlen(self.keys.manifests)
            pipe.llen(self.keys.start_ids)
            (secs, micros), done, pending = await pipe.execute()
        server_now = int(secs) + int(micros) / 1e6
        if self._started_at is None:
            self._started_at = server_now - (time.monotonic() - self._started)
        heartbeat = {
            "node_id": self.node_id,
            "owner": owner,
            "pid": self.pid,
            "interval": self.interval,
            "started_at": round(self._started_at, 3),
            "updated_at": round(server_now, 3),
            "state": state,
            "hotels": counts.hotels,
            **{f"hotels_{status}": getattr(counts, status) for status in (*HOTEL_STATUSES, "rejected", "failed_whole")},
            "images": counts.images,
            "bytes": counts.bytes,
            "images_failed": counts.images_failed,
            "failures": counts.failures,
            "in_flight": in_flight,
            "images_per_s": round(rates.images_per_s, 3),
            "mb_per_s": round(rates.mb_per_s, 4),
            "hotels_per_s": round(rates.hotels_per_s, 4),
            # Why this process stopped claiming (its circuit breaker, its store), for status; "" while it works.
            "stopped_claiming": str(getattr(self.node, "stopped_claiming", "") or ""),
        }
        if before is not None:
            failed = counts.images_failed - before.images_failed
            attempted = failed + counts.images - before.images
            heartbeat["image_failure_rate"] = round(failed / attempted, 4) if attempted > 0 else 0.0
        disk = await asyncio.to_thread(self.disk)
        if disk is not None:
            heartbeat["disk_free"], heartbeat["disk_total"] = disk
        sample = {
            "t": round(server_now, 3), "hotels": counts.hotels, "images": counts.images, "bytes": counts.bytes,
            "failures": counts.failures, "done": int(done), "pending": int(pending), "in_flight": in_flight,
        }
        if state != "running":
            sample["state"] = state
        if heartbeat["stopped_claiming"]:
            sample["reason"] = heartbeat["stopped_claiming"]
        reasons = self.recorded_reasons
        if reasons:
            sample["reasons"] = reasons
        node_key, hist_key = self.keys.node(owner), self.keys.history(owner)
        async with self.client.pipeline(transaction=True) as pipe:
            if self._published_owner not in (None, owner):
                # The spider got its claim owner after the first heartbeat, published under NODE_ID.
                pipe.delete(self.keys.node(self._published_owner), self.keys.history(self._published_owner))
            pipe.hset(node_key, mapping=heartbeat)
            pipe.expire(node_key, max(int(3 * self.interval), MIN_HEARTBEAT_TTL))
            pipe.lpush(hist_key, json.dumps(sample, separators=(",", ":")))
            pipe.ltrim(hist_key, 0, self.history_length - 1)
            pipe.expire(hist_key, self.history_ttl)
            await pipe.execute()
        self._published_owner = owner
