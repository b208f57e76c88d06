"""Scrapy commands of the project (``COMMANDS_MODULE``): ``crawl`` with the node's start-up checks."""
