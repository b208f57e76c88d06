"""``scrapy crawl``, exiting with the node's status: Scrapy's own exits 0 whatever the close reason.

A node that stopped because it cannot work (its circuit breaker, a store it cannot write, a Redis
password refused: ``nodestate.NodeState.exit_code``) exits non-zero, so a scheduled task, a service
manager or a shell loop sees it. Used by ``scrapy crawl``, ``hotelimages-node`` and scrapyd alike.
"""

from __future__ import annotations

from typing import Any

from scrapy.commands.crawl import Command as ScrapyCrawl


class Command(ScrapyCrawl):
    """Scrapy's crawl command; afterwards ``exitcode`` is the NodeState's, if it has one."""

    def _create_crawler(self, spidercls: Any) -> Any:
        crawler = super()._create_crawler(spidercls)
        self._crawler = crawler
        return crawler

    def run(self, args: list[str], opts: Any) -> None:
        super().run(args, opts)
        from hotelimages.nodestate import NodeState  # noqa: PLC0415 - only once the crawl is over

        try:
            state = self._crawler.get_extension(NodeState)
        except (AttributeError, RuntimeError):  # the crawl never got that far: Scrapy's status stands
            state = None
        if state is not None and state.exit_code:
            self.exitcode = state.exit_code
