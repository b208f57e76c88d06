"""Scrapy settings of the hotelimages project: only what differs from Scrapy's defaults.

hotelimages' own settings and their defaults live in ``hotelimages/defaults.py``.
Environment variables named in ``config.ENV_SETTINGS`` (REDIS_URL, HOTELS_REDIS_KEY,
HOTEL_LISTING_URL, IMAGES_STORE, NODE_ID) override the values here; ``-s NAME=value``
overrides both.
"""

import os

from hotelimages.config import env_overrides

BOT_NAME = "hotelimages"
SPIDER_MODULES = ["hotelimages.spiders"]
NEWSPIDER_MODULE = "hotelimages.spiders"
# Our `crawl`: the node's start-up checks (hotelimages.doctor) before the crawl, and an exit status.
COMMANDS_MODULE = "hotelimages.scrapy_commands"
ROBOTSTXT_OBEY = False
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
# Scrapy 2.19 opens a remote-control HTTP port by default; a lent office PC must not.
REMOTE_CONTROL_ENABLED = False
LOG_LEVEL = "INFO"

# --- Storage and pipelines ---------------------------------------------------
IMAGES_STORE = "images"
ITEM_PIPELINES = {
    "hotelimages.pipelines.images.ShardedImagesPipeline": 300,
    "hotelimages.pipelines.manifests.ManifestPipeline": 800,
}
# Image CDNs redirect; RedirectMiddleware only follows http/https targets.
MEDIA_ALLOW_REDIRECTS = True
IMAGES_EXPIRES = 90

# Our progress line and fleet heartbeat replace Scrapy's page/item counts. NodeState holds what the
# spider, the pipelines and the downloader share (this process's claims, the stop); they need it.
EXTENSIONS = {
    "scrapy.extensions.logstats.LogStats": None,
    "hotelimages.nodestate.NodeState": 100,
    "hotelimages.progress.HotelsProgress": 500,
}

# --- Work distribution -------------------------------------------------------
# Every request is unique by construction (one claim, one listing; images keyed
# by hotel and image ID), and a requeued hotel must never be filtered out.
DUPEFILTER_CLASS = "scrapy.dupefilters.BaseDupeFilter"
# Spider middlewares that drop requests silently would strand a claimed hotel (no
# callback, no errback): long cursor URLs in ``next`` are fine, listing depth is bounded
# by HOTELS_MAX_LISTING_PAGES instead.
URLLENGTH_LIMIT = 0
DEPTH_LIMIT = 0
REQUEST_FINGERPRINTER_CLASS = "hotelimages.fingerprint.HotelRequestFingerprinter"

# --- Throughput for an image CDN ----------------------------------------------
# Images go through hotelimages.fetcher by default (HOTELS_IMAGE_FETCHER). For listings, and
# for images with HOTELS_IMAGE_FETCHER=scrapy, this enforces CONCURRENT_REQUESTS_PER_DOMAIN for
# queued requests (see downloader.py): with Scrapy's own, every queued image started at once.
DOWNLOADER = "hotelimages.downloader.BoundedDownloader"
CONCURRENT_REQUESTS = 64
CONCURRENT_REQUESTS_PER_DOMAIN = 32
# A listing response yields one item (the hotel); images bypass the scraper. More than 1
# only makes Scrapy start idle tasks per response.
CONCURRENT_ITEMS = 1
DOWNLOAD_DELAY = 0
DOWNLOAD_TIMEOUT = 30
DOWNLOAD_MAXSIZE = 32 * 1024 * 1024
DOWNLOAD_WARNSIZE = 0
# Middlewares that do nothing for image and listing requests cost time on every response.
DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.stats.DownloaderStats": None,  # our progress counters cover it
    "scrapy.downloadermiddlewares.redirect.MetaRefreshMiddleware": None,  # HTML only
    "scrapy.downloadermiddlewares.httpauth.HttpAuthMiddleware": None,  # no http_user here
    "scrapy.downloadermiddlewares.offsite.OffsiteMiddleware": None,  # no allowed_domains
}
RETRY_ENABLED = True
RETRY_TIMES = 3
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]
REDIRECT_MAX_TIMES = 5
REACTOR_THREADPOOL_MAXSIZE = 8

# --- Environment ---------------------------------------------------------------
globals().update(env_overrides(os.environ))
