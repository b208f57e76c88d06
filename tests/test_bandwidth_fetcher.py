"""The node-wide byte cap inside the direct fetcher: big bodies are paused and resumed (libcurl's pause)."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from scrapy import Request
from test_fetcher import Stats, policy

from devtools.localredis import free_port
from hotelimages.bandwidth import ByteBudget
from hotelimages.fetcher import ImageFetcher

SIZE = 1_500_000
CAP = 1_000_000


def test_big_bodies_under_a_cap_arrive_whole_at_the_capped_rate():
    async def main():
        async def big(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Length": str(SIZE)})
            await resp.prepare(request)
            for start in range(0, SIZE, 16_384):
                await resp.write(bytes([start % 251]) * min(16_384, SIZE - start))
            return resp

        app = web.Application()
        app.router.add_get("/big/{n}", big)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        budget = ByteBudget(CAP)
        fetcher = ImageFetcher(policy(DOWNLOAD_MAXSIZE=0, DOWNLOAD_TIMEOUT=30), Stats(), bandwidth=budget)
        await asyncio.sleep(0.3)  # the bucket starts empty: let it hold its burst, as a running node's would
        t0 = time.monotonic()
        try:
            responses = await asyncio.gather(*(fetcher.fetch(Request(f"http://127.0.0.1:{port}/big/{i}"))
                                               for i in range(3)))
            return time.monotonic() - t0, responses, dict(fetcher.counts), budget.burst
        finally:
            await fetcher.close()
            await runner.cleanup()

    elapsed, responses, counts, burst = asyncio.run(main())
    assert [len(r.body) for r in responses] == [SIZE] * 3
    assert all(r.body[16_384 * 3] == (16_384 * 3) % 251 for r in responses)  # paused and resumed, nothing lost
    assert counts["bandwidth_pauses"] > 0
    expected = (3 * SIZE - burst) / CAP
    print(f"3 x {SIZE} bytes under a {CAP} B/s cap: {elapsed:.2f}s (at the cap: {expected:.2f}s); "
          f"{counts['bandwidth_pauses']} pauses; {3 * SIZE / elapsed:.0f} B/s")
    assert elapsed >= 0.9 * expected
    assert elapsed <= 2.0 * expected + 2  # paused transfers do come back
