"""The floor of the HTTP client our node uses: aiohttp alone, no Scrapy, no checks, no manifests.

``python -m hotelimages.bench.floor --urls urls.txt --out DIR`` downloads every URL with one
aiohttp session (``--per-host`` requests at a time on kept-alive connections, as the node's
``CONCURRENT_REQUESTS_PER_DOMAIN``), takes the sha1 of each body and writes it into ``DIR`` in
``--threads`` writer threads, as the node does. What our node costs above this figure is Scrapy,
the checks, the sharded layout and the manifests; what this costs above curl is Python and aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp

from hotelimages.storage import write_atomic


def _store(folder: str, name: str, body: bytes) -> str:
    """What the node's writer threads do: the atomic write, then the sha1."""
    write_atomic(os.path.join(folder, name), body)
    return hashlib.sha1(body).hexdigest()


async def download_all(urls: list[str], out: Path, per_host: int, threads: int) -> int:
    """Download ``urls`` into ``out``; returns how many failed."""
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(threads)
    limit = asyncio.Semaphore(per_host)
    failed = 0

    async def one(session: aiohttp.ClientSession, url: str) -> None:
        nonlocal failed
        async with limit:
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=30)) as resp:
                    body = await resp.read()
                    ok = resp.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
        if not ok:
            failed += 1
            return
        await loop.run_in_executor(pool, _store, str(out), url.rsplit("/", 1)[-1], body)

    connector = aiohttp.TCPConnector(limit=per_host, ssl=False)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        await asyncio.gather(*(one(session, u) for u in urls))
    pool.shutdown(wait=True)
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-host", type=int, default=32)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    urls = args.urls.read_text().split()
    failed = asyncio.run(download_all(urls, args.out, args.per_host, args.threads))
    if failed:
        print(f"{failed} of {len(urls)} downloads failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
