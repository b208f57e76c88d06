"""The benchmark behind ``scripts/bench``: our node side by side with what users would otherwise pick.

Not part of the product (not in the wheel); its extra requirements are in requirements-tools.txt.

| module | role |
| --- | --- |
| ``corpus`` | the photo-like JPEG corpus, hotel plan, listing files and URL lists (made once, cached) |
| ``server`` | the static server: nginx with sendfile when installed, else ``staticserver`` |
| ``staticserver`` | a small asyncio HTTP server, the fallback and the in-memory tiny-image server |
| ``measure`` | runs one process (tree) and samples wall time, CPU time and RSS |
| ``configs`` | the configurations (our node, stock pipelines, raw spider, curl, img2dataset) |
| ``report`` | medians, ratios and the printed table (pure) |
| ``memory`` | the long-run memory check of one node on 200,000 tiny images |
| ``redisfig`` | Redis figures: loading 600,000 IDs, memory per entry, commands per hotel |
| ``profiling`` | a profile of one node run (py-spy, else cProfile) as self/cumulative tables |
| ``harness`` | ``Bench``: the corpus, static server, listings and Redis that every mode starts and stops |
| ``cli`` | argument parsing and the order of the steps; ``scripts/bench`` and ``python -m benchmarks`` call ``main`` |
| ``spiders/`` | the comparison spiders, run with ``scrapy runspider`` |
"""
