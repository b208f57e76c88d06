"""Stock Scrapy FilesPipeline over the benchmark URLs, 20 URLs per item (a hotel's worth).

    scrapy runspider stock_files.py -a urls=FILE -s FILES_STORE=DIR
"""

from pathlib import Path

import scrapy


class StockFilesSpider(scrapy.Spider):
    name = "stock_files"
    custom_settings = {"ITEM_PIPELINES": {"scrapy.pipelines.files.FilesPipeline": 1}}

    async def start(self):
        urls = Path(self.urls).read_text().split()
        per_item = int(getattr(self, "per_item", 20))
        for i in range(0, len(urls), per_item):
            yield {"file_urls": urls[i : i + per_item]}
