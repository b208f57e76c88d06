"""What a node's components share: this process's claims, and whether it is stopping.

``NodeState`` is a Scrapy extension (``EXTENSIONS`` in settings.py), so the crawler owns it;
the spider, the pipelines, the downloader and the progress extension fetch it with
``NodeState.of(crawler)`` and use only this interface:

- ``leases``: the process's ``claims.LeaseManager`` (entries in flight, claim, record, ack);
- ``draining``: no new claims are taken (a stop signal, or a store that cannot be written);
- ``giving_back``: a stop cut hotels short; their outcomes are not recorded, nothing more is
  downloaded for them, and their claims go back to the queue when the spider closes;
- ``drain()``, ``give_back()`` and ``stop_for_store(exc)`` change those;
- ``paused``: ``""`` while working, ``"paused"`` (a central pause, ``control``) or
  ``"paused (schedule)"`` (outside ``HOTELS_ACTIVE_HOURS``): no new claims meanwhile;
- ``gate``: the fleet's host budgets (``politeness.HostGate``, None when none are set) and
  ``bandwidth``: the node's byte cap (``bandwidth.ByteBudget``), used by the image fetcher and
  the listing middleware.

Every ``HOTELS_CONTROL_SECONDS`` it reads the pause flags and evaluates the schedule (one
HMGET); it also keeps the leases alive: a heartbeat renews them and sweeps expired leases of any node
back to the queue, and when the spider closes it gives back what is unfinished and closes its
Redis client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

from redis.exceptions import RedisError
from scrapy import signals

from hotelimages import control
from hotelimages.activehours import Schedule
from hotelimages.bandwidth import ByteBudget
from hotelimages.claims import LeaseManager, new_owner
from hotelimages.config import HotelsConfig
from hotelimages.politeness import GatePolicy, HostGate
from hotelimages.redisconn import async_client
from hotelimages.storage import STORE_FULL_ERRNOS

logger = logging.getLogger(__name__)


class NodeState:
    """This process's claims and stop state, shared by the node's components (see the module docstring)."""

    def __init__(self, leases: LeaseManager, heartbeat_seconds: float, crawler: Any = None, *,
                 node_id: str = "", gate: HostGate | None = None, max_bytes_per_sec: int = 0,
                 schedule: Schedule | None = None, control_seconds: float = 2.0):
        self.leases = leases
        self.heartbeat_seconds = heartbeat_seconds
        self.draining = False
        self.giving_back = False
        self.node_id = node_id
        self.gate = gate
        self.max_bytes_per_sec = max_bytes_per_sec
        self.bandwidth = ByteBudget(max_bytes_per_sec)
        self.schedule = schedule or Schedule()
        self.control_seconds = control_seconds
        self.paused = ""
        self.unpaused = asyncio.Event()
        self.unpaused.set()
        self._crawler = crawler
        self._heartbeat_task: asyncio.Task | None = None
        self._control_task: asyncio.Task | None = None
        self._events_task: asyncio.Task | None = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> NodeState:
        cfg = HotelsConfig.from_settings(crawler.settings)
        leases = LeaseManager(async_client(cfg.redis), cfg.keys, new_owner(cfg.node_id), cfg.lease_seconds)
        policy = GatePolicy.from_settings(crawler.settings)
        gate = HostGate(leases.client, cfg.keys, leases.owner, policy) if policy.budgets else None
        state = cls(leases, cfg.heartbeat_seconds, crawler, node_id=cfg.node_id, gate=gate,
                    max_bytes_per_sec=cfg.max_bytes_per_sec, schedule=cfg.active_hours,
                    control_seconds=cfg.control_seconds)
        crawler.signals.connect(state.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(state.spider_closed, signal=signals.spider_closed)
        return state

    @classmethod
    def of(cls, crawler: Any) -> NodeState:
        """The crawler's NodeState; raises a clear error if the extension is not enabled."""
        state = crawler.get_extension(cls)
        if state is None:
            raise RuntimeError("hotelimages.nodestate.NodeState must be enabled in EXTENSIONS (see settings.py)")
        return state

    # ------------------------------------------------------------ the stop

    def drain(self) -> None:
        """Take no new claims; the hotels in flight may still finish."""
        self.draining = True
        self.leases.freed.set()

    def give_back(self) -> None:
        """Stop working on the hotels in flight: they go back to the queue unrecorded."""
        self.giving_back = True
        self.leases.freed.set()

    def stop_for_store(self, exc: OSError) -> bool:
        """If ``exc`` says the store is full or read-only: drain, give every hotel back and close the spider.

        Returns whether it stopped. Other write errors concern one file; the caller records them as such.
        """
        if exc.errno not in STORE_FULL_ERRNOS or self.giving_back:
            return False
        store = self._crawler.settings.get("IMAGES_STORE") if self._crawler is not None else "?"
        logger.error("The store %s cannot be written (%s): stopping; unfinished hotels go back to the queue",
                     store, exc)
        self.drain()
        self.give_back()
        if self._crawler is not None and self._crawler.engine is not None:
            asyncio.ensure_future(self._crawler.engine.close_spider_async(reason="store_unwritable"))
        return True

    # ------------------------------------------------------------ pause and schedule

    async def check_control(self, now: datetime | None = None) -> str:
        """Read the pause flags, evaluate the schedule at local time ``now``, apply both; returns ``paused``.

        A Redis error keeps the central pause as it was; the schedule still applies.
        """
        active, cap = self.schedule.at(now or datetime.now())
        fleet = node = None
        keep = False
        try:
            fleet, node = await self.leases.client.hmget(
                self.leases.keys.paused, control.FLEET, control.field_for(self.node_id or "-"))
        except RedisError as exc:
            logger.warning("Could not read the pause flags (%s); will retry", exc)
            keep = self.paused == "paused"
        paused = "paused" if keep else control.paused_state(fleet, node, active)
        self.bandwidth.set_rate(self.max_bytes_per_sec if cap is None else cap)
        if paused != self.paused:
            if paused:
                logger.info("Node %s: %s: claiming nothing; the %d hotels in flight finish",
                            self.node_id, paused, len(self.leases.in_flight))
                self.unpaused.clear()
            else:
                logger.info("Node %s: resumed (was %s)", self.node_id, self.paused)
                self.unpaused.set()
            self.paused = paused
            await self._show_activity(paused or "running")
        return self.paused

    async def _show_activity(self, activity: str) -> None:
        """Put the new state into this process's heartbeat hash at once (status shows it)."""
        key = self.leases.keys.node(self.leases.owner)
        try:
            async with self.leases.client.pipeline(transaction=True) as pipe:
                pipe.hset(key, "state", activity)
                pipe.expire(key, 120)  # the progress heartbeat sets its own TTL again
                await pipe.execute()
        except RedisError:
            pass  # the next progress heartbeat carries it

    async def _control(self) -> None:
        while True:
            await asyncio.sleep(self.control_seconds)
            try:
                await self.check_control()
            except Exception:  # noqa: BLE001 - the control loop must outlive a bug in one check
                logger.exception("Pause/schedule check failed")

    # ------------------------------------------------------------ lease upkeep

    def spider_opened(self, spider: Any) -> None:
        self._heartbeat_task = asyncio.ensure_future(self._heartbeat())
        self._control_task = asyncio.ensure_future(self._control())
        if self.gate is not None:
            self._events_task = asyncio.ensure_future(self.gate.listen())

    async def _heartbeat(self) -> None:
        while True:
            # The liveness key that `requeue --all-of-owner` respects, with or without the progress heartbeat.
            with contextlib.suppress(RedisError, OSError):
                await self.leases.mark_alive(self.heartbeat_seconds)
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                lost = await self.leases.renew()
                if lost:
                    logger.warning("Lost the lease of %d hotels (expired and requeued): another node may redo them",
                                   len(lost))
                swept = await self.leases.requeue_expired()
                if swept:
                    logger.info("Requeued %d hotels whose lease had expired", swept)
            except RedisError as exc:
                logger.warning("Lease heartbeat failed (%s); will retry", exc)

    async def spider_closed(self, spider: Any, reason: str) -> None:
        for task in (self._heartbeat_task, self._control_task, self._events_task):
            if task is not None:
                task.cancel()
        self._heartbeat_task = self._control_task = self._events_task = None
        if self.gate is not None:
            counts = self.gate.counts
            logger.info("Host budgets: %d grant calls (%d empty), %d start times (%d dropped late), %d refusals",
                        counts["grants"], counts["grants/empty"], counts["starts"], counts["starts/late"],
                        counts["refusals"])
            if self._crawler is not None:
                for key, value in counts.items():
                    self._crawler.stats.set_value(f"hotelimages/budget/{key}", value)
        try:
            released = await self.leases.release_all()
            if released:
                logger.info("Returned %d unfinished hotels to the queue", released)
        except RedisError as exc:
            logger.warning(
                "Could not return %d unfinished hotels (%s): they are requeued when their lease expires",
                len(self.leases.in_flight), exc,
            )
        await self.leases.client.aclose()
