"""hotelimages: a distributed, Redis-driven Scrapy downloader for hotel photos."""

__version__ = "0.1.0"
