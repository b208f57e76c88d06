"""The floor of our node's HTTP client: the client alone, no Scrapy, no checks, no manifests.

``python -m benchmarks.floor --urls urls.txt --out DIR`` downloads every URL with one
client (``--per-host`` requests at a time on kept-alive connections, as the node's
``CONCURRENT_REQUESTS_PER_DOMAIN``), takes the sha1 of each body and writes it into ``DIR`` in
``--threads`` writer threads, as the node does. ``--client ours`` is ``hotelimages.httpclient``,
the client the node's image fetcher uses; ``--client aiohttp`` is aiohttp, which it replaced.
What our node costs above the first is Scrapy, the checks, the sharded layout and the
manifests; what the first costs above curl is Python and asyncio.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hotelimages.storage import write_atomic

#: A client: (url) -> the body, or None when the download failed.
Get = Callable[[str], Awaitable[bytes | None]]


def _store(folder: str, name: str, body: bytes) -> str:
    """What the node's writer threads do: the atomic write, then the sha1."""
    write_atomic(os.path.join(folder, name), body)
    return hashlib.sha1(body).hexdigest()


async def download_all(urls: list[str], out: Path, per_host: int, threads: int, client: str = "ours") -> int:
    """Download ``urls`` into ``out`` with ``client`` ("ours" or "aiohttp"); returns how many failed."""
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(threads)
    limit = asyncio.Semaphore(per_host)
    failed = 0

    async def one(get: Get, url: str) -> None:
        nonlocal failed
        async with limit:
            body = await get(url)
        if body is None:
            failed += 1
            return
        await loop.run_in_executor(pool, _store, str(out), url.rsplit("/", 1)[-1], body)

    opener = _ours if client == "ours" else _aiohttp
    async with opener() as get:
        await asyncio.gather(*(one(get, u) for u in urls))
    pool.shutdown(wait=True)
    return failed


class _ours:
    """hotelimages.httpclient, as the node's fetcher uses it."""

    async def __aenter__(self) -> Get:
        from hotelimages.httpclient import ConnectionPool, HTTPError  # noqa: PLC0415

        self.pool = ConnectionPool()

        async def get(url: str) -> bytes | None:
            try:
                async with asyncio.timeout(30):
                    answer = await self.pool.get(url, {})
            except (HTTPError, OSError, TimeoutError):
                return None
            return answer.body if answer.status == 200 else None

        return get

    async def __aexit__(self, *exc: object) -> None:
        await self.pool.close()


class _aiohttp:
    """aiohttp, with the options the node's fetcher used when it was built on it."""

    async def __aenter__(self) -> Get:
        import aiohttp  # noqa: PLC0415 - only this client needs it

        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False), auto_decompress=False)

        async def get(url: str) -> bytes | None:
            try:
                async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as resp:
                    body = await resp.read()
                    return body if resp.status == 200 else None
            except (aiohttp.ClientError, TimeoutError):
                return None

        return get

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-host", type=int, default=32)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--client", choices=("ours", "aiohttp"), default="ours")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    urls = args.urls.read_text().split()
    failed = asyncio.run(download_all(urls, args.out, args.per_host, args.threads, args.client))
    if failed:
        print(f"{failed} of {len(urls)} downloads failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
