"""The floor of Scrapy's own overhead: one request per URL, the callback writes ``response.body``.

    scrapy runspider raw_body.py -a urls=FILE -a out=DIR -s CONCURRENT_REQUESTS=64
"""

from pathlib import Path

import scrapy


class RawBodySpider(scrapy.Spider):
    name = "raw_body"

    async def start(self):
        self.folder = Path(self.out)
        self.folder.mkdir(parents=True, exist_ok=True)
        for url in Path(self.urls).read_text().split():
            yield scrapy.Request(url, callback=self.save, dont_filter=True)

    def save(self, response):
        (self.folder / response.url.rsplit("/", 1)[-1]).write_bytes(response.body)
