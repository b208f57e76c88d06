"""Comparison spiders for the benchmark, each a standalone file for ``scrapy runspider``.

Each reads the URL list named by ``-a urls=FILE`` and writes under the folder
named by ``-a out=DIR`` (or the stock ``IMAGES_STORE``/``FILES_STORE``).
"""
