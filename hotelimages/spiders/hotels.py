"""The ``hotels`` spider: claims hotels from Redis and turns each into one HotelItem.

A hotel's listing pages are followed to the end, so the images pipeline sees
all of a hotel's images as one unit. Claims are taken whenever this process
has room (not only when the spider goes idle), so the downloader stays busy.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import scrapy
from redis.exceptions import RedisError
from scrapy import signals
from scrapy.exceptions import CloseSpider
from scrapy.utils.ossignal import install_shutdown_handlers

from hotelimages import manifest as mf
from hotelimages.claims import LeaseManager, is_oom, oom_message
from hotelimages.config import HotelsConfig
from hotelimages.items import HotelItem
from hotelimages.listing import (
    ListingError,
    ListingPage,
    check_images,
    parse_listing_json,
    parse_queue_entry,
    url_refusal,
)
from hotelimages.nodestate import REDIS_REFUSED, NodeState
from hotelimages.reasons import INTERNAL_ERROR, LISTING_NEXT_LOOP, NO_LISTING_URL, listing_reason
from hotelimages.sharding import InvalidId

logger = logging.getLogger(__name__)

# Any Redis error while claiming (a lost connection, but also READONLY during a failover or
# OOM) stops claiming for a while; it must never end the claim loop (a refused password or ACL
# stops the node instead: nodestate.REDIS_REFUSED).
REDIS_DOWN = (RedisError, OSError)
#: Seconds a second stop signal waits for Redis to take the hotels in flight back before exiting.
STOP_NOW_RELEASE_SECONDS = 3.0


def _shown(raw: bytes) -> str:
    """A claimed entry as text fit for a log line or a Redis field."""
    return raw.decode("utf-8", errors="replace").strip()[:200]


class HotelsSpider(scrapy.Spider):
    """Downloads every photo of the hotels pushed to HOTELS_REDIS_KEY."""

    name = "hotels"

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> HotelsSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.cfg = HotelsConfig.from_settings(crawler.settings)
        spider._node = None
        spider._stopping_now = False
        crawler.signals.connect(spider._on_spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(spider._on_item_error, signal=signals.item_error)
        return spider

    @property
    def node(self) -> NodeState:
        """The crawler's shared node state (built with the extensions, after this spider)."""
        if self._node is None:
            self._node = NodeState.of(self.crawler)
        return self._node

    @property
    def leases(self) -> LeaseManager:
        """This process's claims."""
        return self.node.leases

    # Overridable Interface
    def parse_listing(self, response: Any) -> ListingPage:
        """Turn one listing response into a ListingPage; override for another source format."""
        return parse_listing_json(response.body)

    def listing_url(self, hotel_id: str) -> str:
        """The URL of a hotel's first listing page."""
        return self.cfg.listing_url.format(hotel_id=quote(hotel_id, safe=""))

    # Claiming
    async def start(self) -> AsyncIterator[Any]:
        cfg = self.cfg
        logger.info(
            "Node %(owner)s claiming hotels from %(key)s on %(url)s",
            {"owner": self.leases.owner, "key": cfg.keys.start_ids, "url": cfg.redis.label},
        )
        idle_since: float | None = None
        backoff = 0.5
        await self.node.check_control()  # a node started outside its hours claims nothing
        out_of_memory = False
        while not self.node.draining:
            if self.node.paused:  # central pause or outside HOTELS_ACTIVE_HOURS: hold what we have, claim nothing
                idle_since = None
                try:
                    await asyncio.wait_for(self.node.unpaused.wait(), timeout=cfg.poll_seconds)
                except TimeoutError:
                    pass
                continue
            pause = self.node.claim_pause_left()
            if pause > 0:  # the circuit breaker tripped: no claims until its wait is over
                await asyncio.sleep(min(pause, 1.0))
                continue
            room = cfg.max_in_flight - len(self.leases.in_flight)
            if room <= 0:
                await self._wait_for_room()
                continue
            try:
                entries = await self.leases.claim(min(cfg.claim_batch, room))
                if out_of_memory:
                    out_of_memory = False
                    logger.warning("Redis accepts claims again: claiming resumed")
                if entries:
                    try:
                        started = await self._start_entries(entries)
                    except REDIS_DOWN:
                        # Not renewed from now on: the leases expire and the hotels are requeued.
                        self.leases.drop(*entries)
                        raise
                    for out in started:
                        yield out
                    idle_since = None
                    backoff = 0.5
                    continue
                if self.leases.in_flight:
                    await self._wait_for_room()
                    continue
                pending, leased = await self.leases.queue_state()
            except REDIS_REFUSED as exc:
                self.node.stop_for(f"Redis at {cfg.redis.label} refuses this node's credentials ({exc})")
                break
            except REDIS_DOWN as exc:
                if is_oom(exc):
                    # Refused whole by Redis (see claims.DENY_OOM): one line per episode, then quiet.
                    if not out_of_memory:
                        out_of_memory = True
                        await self._log_out_of_memory()
                    await asyncio.sleep(min(backoff, 5.0))
                    backoff = min(backoff * 2, 30.0)
                    continue
                logger.warning(
                    "Redis unreachable at %(url)s (%(error)s): not claiming; retrying in %(delay).1fs",
                    {"url": cfg.redis.label, "error": exc, "delay": backoff},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            now = time.monotonic()
            if pending or leased or not cfg.idle_close_seconds:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            elif now - idle_since >= cfg.idle_close_seconds:
                logger.info("Queue empty and no hotel claimed for %.1fs: closing", cfg.idle_close_seconds)
                return
            await asyncio.sleep(cfg.poll_seconds)
        await self._drain()

    async def _log_out_of_memory(self) -> None:
        try:
            used, maxmemory = await self.leases.memory()
        except REDIS_DOWN:
            used = maxmemory = 0
        logger.error(oom_message(used, maxmemory))

    async def _drain(self) -> None:
        """After a stop signal: let the hotels in flight finish, up to HOTELS_STOP_GRACE_SECONDS."""
        deadline = time.monotonic() + self.cfg.stop_grace_seconds
        while self.leases.in_flight and time.monotonic() < deadline and not self.node.giving_back:
            await self._wait_for_room()
        if self.leases.in_flight and not self.node.giving_back:
            logger.warning(
                "%(n)d hotels unfinished after %(grace).0fs: returning them to the queue",
                {"n": len(self.leases.in_flight), "grace": self.cfg.stop_grace_seconds},
            )
            self.node.give_back()  # the manifest pipeline must not record cut-short hotels
        if self.node.exit_code:
            return  # the node stops itself (NodeState closes the spider once its items are through)
        raise CloseSpider("shutdown")

    async def _wait_for_room(self) -> None:
        self.leases.freed.clear()
        try:
            await asyncio.wait_for(self.leases.freed.wait(), timeout=self.cfg.poll_seconds)
        except TimeoutError:
            pass

    async def _start_entries(self, entries: list[bytes]) -> list[Any]:
        """Requests and items for freshly claimed entries; done hotels are acknowledged at once."""
        parsed: list[tuple[bytes, Any]] = []
        for raw in entries:
            try:
                parsed.append((raw, parse_queue_entry(raw, self.cfg.id_pattern)))
            except (InvalidId, ListingError) as exc:
                parsed.append((raw, exc))
        done: set[str] = set()
        if not self.cfg.force:
            done = await self.leases.done_among([p.hotel_id for _, p in parsed if not isinstance(p, Exception)])
        out: list[Any] = []
        started = mf.utc_now()
        for raw, entry in parsed:
            if isinstance(entry, Exception):
                out.append(HotelItem(raw, _shown(raw), started, failure=entry.reason, failure_detail=str(entry)))
            elif entry.hotel_id in done and not entry.force:
                await self.leases.skip_done(raw)
                self.crawler.stats.inc_value("hotelimages/hotels/skipped_done")
                logger.info("Hotel %s is already done: skipped (set HOTELS_FORCE to redo)", entry.hotel_id)
            elif entry.inline_images is not None:
                out.append(self.hotel_item(raw, entry.hotel_id, started, entry.inline_images, entry.force))
            elif not self.cfg.listing_url:
                out.append(HotelItem(raw, entry.hotel_id, started, failure=NO_LISTING_URL,
                                     failure_detail="HOTEL_LISTING_URL is not set and the entry has no images"))
            else:
                out.append(self._listing_request(
                    self.listing_url(entry.hotel_id), raw, entry.hotel_id, started, [], 1, entry.force
                ))
        return out

    # Listings
    def _listing_request(
        self, url: str, raw: bytes, hotel_id: str, started: str, images: list, page: int, force: bool = False,
        seen: list[str] | None = None,
    ) -> Any:
        return scrapy.Request(
            url,
            callback=self.parse_listing_page,
            errback=self.listing_failed,
            cb_kwargs={
                "raw": raw, "hotel_id": hotel_id, "started": started, "images": images, "page": page, "force": force,
                "seen": seen if seen is not None else [],
            },
            meta={"hotel_listing": hotel_id},
            dont_filter=True,
        )

    def parse_listing_page(
        self, response: Any, raw: bytes, hotel_id: str, started: str, images: list, page: int, force: bool = False,
        seen: list[str] | None = None,
    ) -> Iterator[Any]:
        seen = [] if seen is None else seen
        # The pages fetched for this hotel, as requested and as redirected to.
        seen.extend({response.request.url, response.url} if response.request is not None else {response.url})
        try:
            doc = self.parse_listing(response)
            if doc.hotel_id is not None and doc.hotel_id != hotel_id:
                raise ListingError("listing_hotel_mismatch", f"listing is for hotel {doc.hotel_id[:80]!r}")
            images.extend(doc.images)
            if doc.next_url and len(images) <= self.cfg.max_images:
                next_url = response.urljoin(doc.next_url)
                if page >= self.cfg.max_listing_pages:
                    raise ListingError("listing_too_many_pages", f"more than {self.cfg.max_listing_pages} pages")
                refusal = url_refusal(next_url)
                if refusal:
                    raise ListingError("listing_bad_next", f"{refusal}: {next_url[:200]}")
                if next_url in seen:
                    raise ListingError(LISTING_NEXT_LOOP, f"page {page}'s next is a page already fetched: "
                                                          f"{next_url[:200]}")
                yield self._listing_request(next_url, raw, hotel_id, started, images, page + 1, force, seen)
                return
            yield self.hotel_item(raw, hotel_id, started, images, force)
        except ListingError as exc:
            yield HotelItem(raw, hotel_id, started, failure=exc.reason, failure_detail=exc.detail)
        except Exception as exc:  # noqa: BLE001 - a bug must not strand a claimed hotel
            logger.exception("Error parsing the listing of hotel %s", hotel_id)
            yield HotelItem(raw, hotel_id, started, failure=INTERNAL_ERROR, failure_detail=repr(exc)[:300])

    def listing_failed(self, failure: Any) -> Iterator[Any]:
        kw = failure.request.cb_kwargs
        exc = failure.value
        reason = listing_reason(exc)
        url = urlsplit(failure.request.url)
        shown = f"{url.scheme}://{url.hostname}{url.path}"  # no userinfo or query: API keys stay out
        detail = f"{type(exc).__name__} fetching {shown[:200]}"
        yield HotelItem(kw["raw"], kw["hotel_id"], kw["started"], failure=reason, failure_detail=detail)

    def hotel_item(self, raw: bytes, hotel_id: str, started: str, raw_images: list, force: bool = False) -> HotelItem:
        """The item of a hotel whose listing is complete."""
        cfg = self.cfg
        checked = check_images(
            raw_images,
            categories=cfg.categories,
            other_category=cfg.other_category,
            image_id_pattern=cfg.image_id_pattern,
            max_images=cfg.max_images,
            image_hosts=cfg.image_hosts,
        )
        if checked.other_count:
            self.crawler.stats.inc_value("hotelimages/images/category_other", checked.other_count)
        for failed in checked.failed:
            self.crawler.stats.inc_value(f"hotelimages/images/failed/{failed.reason}")
        return HotelItem(raw, hotel_id, started, images=checked.images, failed=checked.failed,
                         force=force or cfg.force)

    # Shutdown
    def _on_spider_opened(self, spider: Any) -> None:
        # Replace Scrapy's handlers: the first SIGTERM/SIGINT drains instead of cutting
        # downloads short; a second one gives the hotels in flight back and stops at once (Scrapy's
        # own would start its graceful shutdown: "Send again to force").
        self._stopping_now = False
        handler = signal.getsignal(signal.SIGTERM)
        if callable(handler) and threading.current_thread() is threading.main_thread():
            install_shutdown_handlers(self._on_stop_signal)
        if self.cfg.gc_threshold:
            # Start-up objects (modules, settings, the crawler) live as long as the process:
            # keep them out of every collection, and collect the young generation less often.
            gc.freeze()
            _, second, third = gc.get_threshold()
            gc.set_threshold(self.cfg.gc_threshold, second, third)

    def _on_stop_signal(self, signum: int, frame: Any) -> None:
        from twisted.internet import reactor  # noqa: PLC0415 - the installed reactor

        if self._stopping_now:
            os._exit(128 + signum)  # a third signal: the give-back is stuck; the leases expire instead
        if self.node.draining:
            self._stopping_now = True
            reactor.callFromThread(self._begin_stop_now, signum)
            return
        reactor.callFromThread(self._begin_drain, signum)

    def _begin_stop_now(self, signum: int) -> None:
        logger.warning(
            "Received %(sig)s again: stopping now; %(n)d hotels in flight go back to the queue",
            {"sig": signal.Signals(signum).name, "n": len(self.leases.in_flight)},
        )
        self.node.give_back()
        asyncio.ensure_future(self._stop_now())

    async def _stop_now(self) -> None:
        """The second stop signal: give the claims back (if Redis answers quickly) and stop the reactor."""
        from twisted.internet import reactor  # noqa: PLC0415 - the installed reactor

        try:
            released = await asyncio.wait_for(self.leases.release_all(), STOP_NOW_RELEASE_SECONDS)
            logger.info("Returned %d unfinished hotels to the queue", released)
        except (TimeoutError, RedisError, OSError) as exc:
            logger.warning("Could not return the hotels in flight (%r): they are requeued when their lease expires",
                           exc)
        if reactor.running:
            reactor.stop()

    def _begin_drain(self, signum: int) -> None:
        logger.info(
            "Received %(sig)s: no new claims; finishing %(n)d hotels in flight (up to %(grace).0fs; "
            "send it again to stop at once, giving them back)",
            {"sig": signal.Signals(signum).name, "n": len(self.leases.in_flight), "grace": self.cfg.stop_grace_seconds},
        )
        self.node.drain()

    def _on_item_error(self, item: Any, response: Any, spider: Any, failure: Any) -> None:
        if isinstance(item, HotelItem):
            logger.error("Hotel %s could not be recorded: %r", item.hotel_id, failure.value)
            asyncio.ensure_future(self._record_internal_error(item, repr(failure.value)))

    async def _record_internal_error(self, item: HotelItem, detail: str) -> None:
        """Settle a hotel that a pipeline raised on, so its claim is not renewed forever."""
        if self.node.giving_back:
            return  # stopping: the claim goes back to the queue
        record = mf.failure_record(item.hotel_id, INTERNAL_ERROR, detail, self.cfg.node_id, mf.utc_now())
        try:
            await self.leases.record(item.entry, item.hotel_id[:200], failed_json=json.dumps(record))
        except RedisError:
            pass  # not renewed from now on: its lease expires and it is requeued
        self.leases.forget(item.entry)
