"""The floor of our node's HTTP library: the library alone, no Scrapy, no checks, no manifests.

``python -m benchmarks.floor --urls urls.txt --out DIR`` downloads every URL with one
client (``--per-host`` requests at a time on kept-alive connections, as the node's
``CONCURRENT_REQUESTS_PER_DOMAIN``), takes the sha1 of each body and writes it into ``DIR`` in
``--threads`` writer threads, as the node does. ``--client pycurl`` is libcurl through pycurl,
driven by ``hotelimages.fetcher.CurlLoop`` with the options the node's image fetcher sets;
``--client aiohttp`` is aiohttp, which the fetcher used before.
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


async def download_all(urls: list[str], out: Path, per_host: int, threads: int, client: str = "pycurl",
                       http2: bool = False) -> int:
    """Download ``urls`` into ``out`` with ``client`` ("pycurl" or "aiohttp"); returns how many failed."""
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

    opener = _pycurl(http2) if client == "pycurl" else _aiohttp()
    async with opener as get:
        await asyncio.gather(*(one(get, u) for u in urls))
    pool.shutdown(wait=True)
    return failed


class _pycurl:
    """libcurl on the asyncio loop, as the node's fetcher drives it: one easy handle per transfer slot."""

    def __init__(self, http2: bool = False):
        self.http2 = http2

    async def __aenter__(self) -> Get:
        import io  # noqa: PLC0415

        import pycurl  # noqa: PLC0415 - only this client needs it

        from hotelimages.fetcher import BUFFER_SIZE, CurlLoop  # noqa: PLC0415

        self.curl = CurlLoop(max_connects=64, idle_seconds=30)
        self.handles: list = []

        async def get(url: str) -> bytes | None:
            if self.handles:
                easy = self.handles.pop()
            else:
                easy = pycurl.Curl()
                easy.setopt(pycurl.NOSIGNAL, 1)
                easy.setopt(pycurl.BUFFERSIZE, BUFFER_SIZE)
                easy.setopt(pycurl.HTTP_VERSION,
                            pycurl.CURL_HTTP_VERSION_2TLS if self.http2 else pycurl.CURL_HTTP_VERSION_1_1)
                easy.setopt(pycurl.SSL_VERIFYPEER, 0)  # as the node's default (HOTELS_TLS_VERIFY=False)
                easy.setopt(pycurl.SSL_VERIFYHOST, 0)
                easy.setopt(pycurl.TIMEOUT_MS, 30_000)
            body = io.BytesIO()
            easy.setopt(pycurl.URL, url)
            easy.setopt(pycurl.WRITEFUNCTION, body.write)
            try:
                await self.curl.perform(easy)
                status = easy.getinfo(pycurl.RESPONSE_CODE)
            except pycurl.error:
                return None
            finally:
                self.handles.append(easy)
            return body.getvalue() if status == 200 else None

        return get

    async def __aexit__(self, *exc: object) -> None:
        self.curl.close()
        for easy in self.handles:
            easy.close()


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
    parser.add_argument("--client", choices=("pycurl", "aiohttp"), default="pycurl")
    parser.add_argument("--http2", action="store_true", help="HTTP/2 with https URLs that offer it (pycurl)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    urls = args.urls.read_text().split()
    failed = asyncio.run(download_all(urls, args.out, args.per_host, args.threads, args.client, args.http2))
    if failed:
        print(f"{failed} of {len(urls)} downloads failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
