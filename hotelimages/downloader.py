"""Scrapy's Downloader with its per-slot concurrency actually enforced for queued requests.

In Scrapy 2.19 on the asyncio reactor, ``Downloader._process_queue`` starts each
queued request as a task and counts it as transferring only once that task runs.
Its ``while free_transfer_slots() > 0`` loop therefore drains the whole queue at
once. An ordinary crawl never notices (the engine feeds the downloader a few
requests at a time), but media pipelines enqueue every image of every item in
flight directly: measured here, ~280 image requests ran at once against one host
with CONCURRENT_REQUESTS_PER_DOMAIN=32, 500 of 600 images opened a new TCP
connection (the pool, capped at 32 idle connections, closed the surplus), and the
responses piled up in memory. Reserving the transfer slot before scheduling the
task restores the limit, so connections are reused and memory is bounded.

When a stopping node gives its hotels back (``NodeState.giving_back``), queued requests are
dropped instead of fetched, so a stop takes at most one download timeout past the grace.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from scrapy.core.downloader import Downloader
from scrapy.exceptions import IgnoreRequest
from scrapy.utils.asyncio import call_later
from scrapy.utils.defer import _schedule_coro
from twisted.python.failure import Failure

from hotelimages.nodestate import NodeState


class BoundedDownloader(Downloader):
    """Downloader whose queue never starts more requests than the slot's free transfer slots."""

    def __init__(self, crawler: Any):
        super().__init__(crawler)
        # None where the hotels spider's NodeState is not enabled: then nothing is ever given back.
        self._node = crawler.get_extension(NodeState)

    def _process_queue(self, slot: Any) -> None:
        if self._node is not None and self._node.giving_back:
            # The node is stopping and gives its hotels back: do not fetch what is queued.
            while slot.queue:
                _request, queue_dfd = slot.queue.popleft()
                queue_dfd.errback(Failure(IgnoreRequest("node stopping: hotel given back")))
            return
        if slot.latercall:
            return
        now = monotonic()
        delay = slot.download_delay()
        if delay:
            penalty = delay - now + slot.lastseen
            if penalty > 0:
                slot.latercall = call_later(penalty, self._latercall, slot)
                return
        while slot.queue and slot.free_transfer_slots() > 0:
            slot.lastseen = now
            request, queue_dfd = slot.queue.popleft()
            # Reserved now; _download() adds it again (a set: no-op) and removes it when done.
            slot.transferring.add(request)
            _schedule_coro(self._wait_for_download(slot, request, queue_dfd))
            if delay:
                self._process_queue(slot)
                break
