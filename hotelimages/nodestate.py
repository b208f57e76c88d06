"""What a node's components share: this process's claims, and whether it is stopping.

``NodeState`` is a Scrapy extension (``EXTENSIONS`` in settings.py), so the crawler owns it;
the spider, the pipelines, the downloader and the progress extension fetch it with
``NodeState.of(crawler)`` and use only this interface:

- ``leases``: the process's ``claims.LeaseManager`` (entries in flight, claim, record, ack);
- ``draining``: no new claims are taken (a stop signal, or a store that cannot be written);
- ``giving_back``: a stop cut hotels short; their outcomes are not recorded, nothing more is
  downloaded for them, and their claims go back to the queue when the spider closes;
- ``drain()``, ``give_back()`` and ``stop_for_store(exc)`` change those.

It also keeps the leases alive: a heartbeat renews them and sweeps expired leases of any node
back to the queue, and when the spider closes it gives back what is unfinished and closes its
Redis client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from redis.exceptions import RedisError
from scrapy import signals

from hotelimages.claims import LeaseManager, new_owner
from hotelimages.config import HotelsConfig
from hotelimages.redisconn import async_client
from hotelimages.storage import STORE_FULL_ERRNOS

logger = logging.getLogger(__name__)


class NodeState:
    """This process's claims and stop state, shared by the node's components (see the module docstring)."""

    def __init__(self, leases: LeaseManager, heartbeat_seconds: float, crawler: Any = None):
        self.leases = leases
        self.heartbeat_seconds = heartbeat_seconds
        self.draining = False
        self.giving_back = False
        self._crawler = crawler
        self._heartbeat_task: asyncio.Task | None = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> NodeState:
        cfg = HotelsConfig.from_settings(crawler.settings)
        leases = LeaseManager(async_client(cfg.redis), cfg.keys, new_owner(cfg.node_id), cfg.lease_seconds)
        state = cls(leases, cfg.heartbeat_seconds, crawler)
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
