"""``scrapy crawl``, with a node's start-up checks first and an exit status that tells how it ended.

Scrapy finds this command through ``COMMANDS_MODULE`` (settings.py), so ``scrapy crawl hotels``,
``hotelimages-node`` and scrapyd's jobs all run it. For the ``hotels`` spider it runs the
start-up checks (``doctor.run_checks``) before the crawler process is made: a failure is one
line on stderr (in the log instead when LOG_FILE is set, as in scrapyd's jobs) and exit status
2, having claimed nothing; warnings are logged once logging is set up. After the crawl, the
exit status follows the spider's close reason (``exit_status``): 0 for a normal end, 1 for a
stop on another problem, or the value a component put in the ``hotelimages/exit_status`` stat
(``NodeState``: 3 when the node cannot work, 4 when its store cannot be written).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from scrapy.commands.crawl import Command as ScrapyCrawl
from scrapy.exceptions import UsageError

from hotelimages import doctor

logger = logging.getLogger(__name__)

SPIDER = "hotels"
#: Close reasons of a normal end: the queue drained, a stop signal, or one of Scrapy's CLOSESPIDER_* limits.
NORMAL_REASONS = ("finished", "shutdown")
#: Exit status of a node that did not start (bad settings, a failed start-up check).
EXIT_NOT_STARTED = 2


def exit_status(stats: dict[str, Any]) -> int:
    """*Pure*: the exit status of a finished crawl from its stats (``finish_reason``, ``hotelimages/exit_status``)."""
    chosen = stats.get("hotelimages/exit_status")
    if chosen is not None:
        return int(chosen)
    reason = str(stats.get("finish_reason") or "finished")
    return 0 if reason in NORMAL_REASONS or reason.startswith("closespider_") else 1


class Command(ScrapyCrawl):
    """Scrapy's ``crawl``; for the hotels spider, ``doctor.run_checks`` first (see the module docstring)."""

    def process_options(self, args: list[str], opts: Any) -> None:
        super().process_options(args, opts)
        self._checks: list[doctor.Check] = []
        self._store = ""
        if args != [SPIDER]:
            return
        # Before Scrapy's crawler process exists (it logs a dozen lines of versions at start): a node
        # that must not start says why in one line on stderr and exits, having claimed nothing.
        cfg, self._checks = doctor.run_checks(self.settings, os.environ)
        failed = [c for c in self._checks if not c.ok]
        self._failure = doctor.failure_line(failed) if failed else ""
        if failed and not self.settings.get("LOG_FILE"):
            sys.stderr.write(f"hotelimages: {self._failure}\n")
            sys.exit(EXIT_NOT_STARTED)
        # With a LOG_FILE (scrapyd's jobs) the line goes there, once logging is set up: see run().
        self._store = str(doctor.store_path(cfg)) if cfg else ""

    def run(self, args: list[str], opts: Any) -> None:
        if len(args) != 1:
            super().run(args, opts)  # Scrapy's usage errors
            return
        if getattr(self, "_failure", ""):
            logger.error("%s", self._failure)
            self.exitcode = EXIT_NOT_STARTED
            return
        for check in getattr(self, "_checks", []):
            if check.warning:
                logger.warning("%s: %s", check.name, check.detail)
        if getattr(self, "_store", ""):
            logger.info("Storing under %s", self._store)
        if self.crawler_process is None:
            raise UsageError("no crawler process")
        crawler = self._create_crawler(args[0])
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        if self.crawler_process.bootstrap_failed:
            self.exitcode = 1
        elif crawler.stats is not None:
            self.exitcode = exit_status(crawler.stats.get_stats())
