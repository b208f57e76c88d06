"""Stock Scrapy ImagesPipeline over the benchmark URLs, 20 URLs per item (a hotel's worth).

    scrapy runspider stock_images.py -a urls=FILE -s IMAGES_STORE=DIR
"""

from pathlib import Path

import scrapy


class StockImagesSpider(scrapy.Spider):
    name = "stock_images"
    custom_settings = {"ITEM_PIPELINES": {"scrapy.pipelines.images.ImagesPipeline": 1}}

    async def start(self):
        urls = Path(self.urls).read_text().split()
        per_item = int(getattr(self, "per_item", 20))
        for i in range(0, len(urls), per_item):
            yield {"image_urls": urls[i : i + per_item]}
