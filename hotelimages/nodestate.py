"""What a node's components share: this process's claims, and whether it is stopping.

``NodeState`` is a Scrapy extension (``EXTENSIONS`` in settings.py), so the crawler owns it;
the spider, the pipelines, the downloader and the progress extension fetch it with
``NodeState.of(crawler)`` and use only this interface:

- ``leases``: the process's ``claims.LeaseManager`` (entries in flight, claim, record, ack);
- ``draining``: no new claims are taken (a stop signal, or a store that cannot be written);
- ``giving_back``: a stop cut hotels short; their outcomes are not recorded, nothing more is
  downloaded for them, and their claims go back to the queue when the spider closes;
- ``drain()``, ``give_back()`` and ``stop_for_store(exc)`` change those;
- ``stopped_claiming``: why this process stopped claiming (its circuit breaker tripped, or the
  store cannot be written), as the heartbeat publishes it; empty while it works;
- ``claim_pause_left()``: seconds the claim loop must still wait after a breaker trip;
- ``node_local_failure(item)`` and ``hotel_recorded(...)``: each hotel's outcome for the breaker;
- ``exit_code``: what the node command exits with (``EXIT_BREAKER``, ``EXIT_STORE``; 0 otherwise),
  also put in the ``hotelimages/exit_status`` stat that ``scrapy_commands.crawl`` reads.

It also keeps the leases alive: a heartbeat renews them and sweeps expired leases of any node
back to the queue, and when the spider closes it gives back what is unfinished and closes its
Redis client.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
from typing import Any

from redis.exceptions import AuthenticationError, AuthorizationError, NoPermissionError, RedisError
from scrapy import signals

from hotelimages.breaker import Breaker, Trip, next_wait
from hotelimages.claims import LeaseManager, new_owner
from hotelimages.config import HotelsConfig
from hotelimages.redisconn import async_client

logger = logging.getLogger(__name__)

#: Exit status of a node whose circuit breaker stopped it (or a Redis password/ACL refused).
EXIT_BREAKER = 3
#: Exit status of a node whose store cannot be written.
EXIT_STORE = 4
#: Redis errors that say this node's password or ACL user is refused: waiting does not cure them.
REDIS_REFUSED = (AuthenticationError, AuthorizationError, NoPermissionError)
#: Close reasons of the spider for those stops.
CLOSE_BREAKER = "breaker_open"
CLOSE_STORE = "store_unwritable"


class NodeState:
    """This process's claims and stop state, shared by the node's components (see the module docstring)."""

    def __init__(self, leases: LeaseManager, heartbeat_seconds: float, crawler: Any = None,
                 cfg: HotelsConfig | None = None):
        self.leases = leases
        self.heartbeat_seconds = heartbeat_seconds
        self.draining = False
        self.giving_back = False
        self.stopped_claiming = ""
        self.exit_code = 0
        self.cfg = cfg or HotelsConfig()
        self.breaker = Breaker(self.cfg.breaker_threshold, self.cfg.breaker_same_failures)
        self._paused_until = 0.0
        self._wait = 0.0
        self._streak_reason = ""  # the failure of the last same-failure trip
        self._crawler = crawler
        self._heartbeat_task: asyncio.Task | None = None
        self._closing: asyncio.Future | None = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> NodeState:
        cfg = HotelsConfig.from_settings(crawler.settings)
        leases = LeaseManager(async_client(cfg.redis), cfg.keys, new_owner(cfg.node_id), cfg.lease_seconds)
        state = cls(leases, cfg.heartbeat_seconds, crawler, cfg)
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
        """The store cannot be written (any errno): give every hotel back and stop with ``EXIT_STORE``.

        Returns whether this call stopped the node (False if it was already stopping).
        """
        if self.giving_back and self.exit_code:
            return False
        store = self._crawler.settings.get("IMAGES_STORE") if self._crawler is not None else None
        shown = os.path.abspath(str(store)) if store else "(IMAGES_STORE)"
        name = errno.errorcode.get(exc.errno or 0, "no errno")
        text = f"store {shown} cannot be written ({name}: {exc.strerror or exc})"
        logger.error("Stopping: the %s; unfinished hotels go back to the queue", text)
        self._stop(text, EXIT_STORE, CLOSE_STORE)
        return True

    def stop_for(self, text: str, code: int = EXIT_BREAKER) -> None:
        """Stop at once for a reason about this node (say a Redis password refused): give back, exit ``code``."""
        if self.exit_code:
            return
        logger.error("Stopping: %s; unfinished hotels go back to the queue", text)
        self._stop(text, code, CLOSE_BREAKER)

    def _stop(self, text: str, code: int, close_reason: str) -> None:
        self.stopped_claiming = text
        self.exit_code = code
        if self._crawler is not None and self._crawler.stats is not None:
            # The crawl command exits with it (``scrapy_commands.crawl.exit_status``).
            self._crawler.stats.set_value("hotelimages/exit_status", code)
        self.drain()
        self.give_back()
        if self._crawler is not None and self._crawler.engine is not None:
            self._closing = asyncio.ensure_future(self._close_when_idle(close_reason))

    async def _close_when_idle(self, reason: str) -> None:
        # Scrapy 2.19 checks whether a closing scraper went idle after items from responses, not
        # after items from the spider's start(): closing while such items are still in the
        # pipelines would wait forever. They finish at once now that hotels are given back.
        engine = self._crawler.engine
        slot = getattr(engine.scraper, "slot", None)
        deadline = time.monotonic() + 30
        while slot is not None and not slot.is_idle() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if engine.spider is not None:
            await engine.close_spider_async(reason=reason)

    # ------------------------------------------------------------ the circuit breaker

    def claim_pause_left(self) -> float:
        """Seconds the claim loop must still wait after a breaker trip (0: claim)."""
        if not self._paused_until:
            return 0.0
        left = self._paused_until - time.monotonic()
        if left > 0:
            return left
        self._paused_until = 0.0
        self._streak_reason = ""
        self.stopped_claiming = ""
        self.breaker.half_open()
        logger.info("Claiming again after the circuit breaker's wait")
        return 0.0

    async def node_local_failure(self, entry: bytes, hotel_id: str, reason: str) -> bool:
        """A hotel failed for a reason about this node: give it back unfailed and count it.

        Returns False if the hotel must be recorded failed after all (it failed so here again and
        again while other hotels succeeded: see ``breaker``).
        """
        decision = self.breaker.node_local(reason, hotel_id)
        if not decision.give_back:
            return False
        if decision.trip is not None:
            await self.trip(decision.trip)
        try:
            await self.leases.release(entry)
        except RedisError:
            self.leases.drop(entry)  # not renewed: its lease expires and it is requeued
        if self._crawler is not None:
            self._crawler.stats.inc_value(f"hotelimages/hotels/given_back/{reason}")
        logger.debug("Hotel %s given back unfailed (%s)", hotel_id, reason)
        return True

    async def hotel_recorded(self, entry: bytes, hotel_id: str, failure: str | None) -> None:
        """A hotel's outcome was recorded (``failure`` None: with a manifest); may trip the breaker."""
        if failure is None:
            self.breaker.succeeded(hotel_id)
            if not self._paused_until:
                self._wait = 0.0
            return
        fleet = None
        if self.breaker.same_failures:
            try:
                fleet = await self.leases.fleet_successes()
            except RedisError:
                fleet = None
        if failure == self._streak_reason and (self.draining or self._paused_until):
            # Recorded while the breaker was tripping over this very failure: it goes back too.
            await self._put_back(((hotel_id, entry),))
            return
        trip = self.breaker.failed(failure, hotel_id, entry, fleet)
        if trip is not None:
            await self.trip(trip)

    async def trip(self, trip: Trip) -> None:
        """The breaker opened: stop claiming (wait, or exit), then put the streak's hotels back."""
        if self.draining or self._paused_until:
            return
        if trip.permanent or self.cfg.breaker_mode == "exit":
            logger.error("Circuit breaker: stopped claiming: %s; exiting (status %d)", trip.text, EXIT_BREAKER)
            self._stop(trip.text, EXIT_BREAKER, CLOSE_BREAKER)
        else:
            self._wait = next_wait(self._wait, self.cfg.breaker_wait_seconds, self.cfg.breaker_max_wait_seconds)
            self._paused_until = time.monotonic() + self._wait
            self.stopped_claiming = trip.text
            logger.error("Circuit breaker: stopped claiming: %s; trying again in %.0fs", trip.text, self._wait)
            self.leases.freed.set()
        if trip.retry:
            self._streak_reason = trip.reason
            moved = await self._put_back(trip.retry)
            logger.warning("Put %d hotels of the failure streak back on the queue", moved)

    async def _put_back(self, hotels: Any) -> int:
        """Move hotels recorded failed in a same-failure streak back to the queue."""
        try:
            return await self.leases.retry_failed(hotels)
        except RedisError as exc:
            logger.warning("Could not put hotels of the failure streak back on the queue (%s): retry_failed can", exc)
            return 0

    # ------------------------------------------------------------ lease upkeep

    def spider_opened(self, spider: Any) -> None:
        self._heartbeat_task = asyncio.ensure_future(self._heartbeat())

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
            except REDIS_REFUSED as exc:
                self.stop_for(f"Redis refuses this node's credentials ({exc})")
                return
            except RedisError as exc:
                logger.warning("Lease heartbeat failed (%s); will retry", exc)

    async def spider_closed(self, spider: Any, reason: str) -> None:
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            self._heartbeat_task = None
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
