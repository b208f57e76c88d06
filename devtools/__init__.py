"""Development tools that are not part of the product (not in the wheel): the demo and a private Redis.

| module | role |
| --- | --- |
| ``localredis`` | a private redis-server on a free loopback port (demo, tests, benchmarks) |
| ``demo_hotels`` | the deterministic synthetic hotels of the demo: listings, image bytes, injected faults |
| ``demo_server`` | the demo hotel server (``python -m devtools.demo_server``; ``scripts/demo_server.py``) |
| ``demo`` | the demo run (``python -m devtools.demo``; ``scripts/demo``, ``bash scripts/dev.sh demo``) |

Run them from the checkout's root, or from the venv that ``scripts/dev.sh setup`` makes, which
puts the checkout on the import path; ``hotelimages`` itself comes from the installed package.
"""
