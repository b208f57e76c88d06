"""Direct image fetcher: image downloads on a lean HTTP client, beside Scrapy's downloader.

Scrapy's download stack costs about 5 ms of CPU per response on the benchmark's 2-core
machine (docs/PERFORMANCE.md): the Twisted HTTP client, Deferred and asyncio task hops,
middleware chains, signals and timers. An image download needs none of that machinery,
only an HTTP GET on a kept-alive connection, so ``ShardedImagesPipeline`` hands its image
requests to this fetcher (``HOTELS_IMAGE_FETCHER = "direct"``, the default). Listing
requests still go through Scrapy.

The fetcher keeps to the Scrapy settings a node already has, so switching between it and
``HOTELS_IMAGE_FETCHER = "scrapy"`` changes no stored file and no manifest
(``tests/test_optimisations.py``):

- ``CONCURRENT_REQUESTS_PER_DOMAIN`` images at once per host, ``CONCURRENT_REQUESTS`` in all,
  over a pool of kept-alive connections;
- ``DOWNLOAD_TIMEOUT`` per attempt, ``DOWNLOAD_MAXSIZE`` (also after decompression) and
  ``DOWNLOAD_WARNSIZE``;
- ``RETRY_ENABLED``/``RETRY_TIMES``/``RETRY_HTTP_CODES`` for the same errors that Scrapy's
  RetryMiddleware retries, ``REDIRECT_ENABLED``/``MEDIA_ALLOW_REDIRECTS``/``REDIRECT_MAX_TIMES``
  for 301/302/303/307/308 to http and https only (a 3xx elsewhere comes back as it is, as with
  Scrapy);
- ``USER_AGENT``, ``DEFAULT_REQUEST_HEADERS``, the request's own headers, and the proxy
  environment variables (``http_proxy``, ``https_proxy``, ``no_proxy``, read at start; off with
  ``HTTPPROXY_ENABLED=False``) like HttpProxyMiddleware.
  TLS certificates are not verified, as with Scrapy's default context factory.

Errors come back as the exceptions Scrapy's downloader would raise (``DownloadTimeoutError``,
``ResponseDataLossError`` ...), so the pipeline gives them the same reasons.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import socket
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunparse
from urllib.request import _parse_proxy, getproxies, proxy_bypass

from scrapy import Request
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
    UnsupportedURLSchemeError,
)
from scrapy.http import Headers, Response
from scrapy.utils._compression import _DecompressionMaxSizeExceeded, _inflate
from scrapy.utils.gz import gunzip
from w3lib.url import safe_url_string

from hotelimages.httpclient import BodyCutShort, ConnectionPool, HTTPError, TooLarge

logger = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRY_EXCEPTIONS = (
    DownloadTimeoutError, DownloadConnectionRefusedError, CannotResolveHostError, DownloadFailedError,
    ResponseDataLossError,
)
#: What we ask for; a CDN rarely compresses images, but when it does the body is decoded here.
ACCEPT_ENCODING = "gzip, deflate"


@dataclass(frozen=True)
class FetchPolicy:
    """What the fetcher does, read once from Scrapy's settings."""

    timeout: float = 180.0
    maxsize: int = 1024 * 1024 * 1024  # 0 = no limit
    warnsize: int = 32 * 1024 * 1024  # 0 = no warning
    retry_times: int = 2  # 0 = no retries
    retry_http_codes: frozenset[int] = frozenset({500, 502, 503, 504, 522, 524, 408, 429})
    follow_redirects: bool = True  # REDIRECT_ENABLED and MEDIA_ALLOW_REDIRECTS
    redirect_max_times: int = 20
    use_proxies: bool = True  # HTTPPROXY_ENABLED
    per_host: int = 8
    total: int = 16
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_settings(cls, settings: Any) -> FetchPolicy:
        headers = {str(k): str(v) for k, v in (settings.getdict("DEFAULT_REQUEST_HEADERS") or {}).items()}
        if settings.get("USER_AGENT"):
            headers["User-Agent"] = str(settings.get("USER_AGENT"))
        headers["Accept-Encoding"] = ACCEPT_ENCODING
        return cls(
            timeout=settings.getfloat("DOWNLOAD_TIMEOUT"),
            maxsize=settings.getint("DOWNLOAD_MAXSIZE"),
            warnsize=settings.getint("DOWNLOAD_WARNSIZE"),
            retry_times=settings.getint("RETRY_TIMES") if settings.getbool("RETRY_ENABLED") else 0,
            retry_http_codes=frozenset(int(c) for c in settings.getlist("RETRY_HTTP_CODES")),
            follow_redirects=settings.getbool("REDIRECT_ENABLED", True)
            and settings.getbool("MEDIA_ALLOW_REDIRECTS", False),
            redirect_max_times=settings.getint("REDIRECT_MAX_TIMES"),
            use_proxies=settings.getbool("HTTPPROXY_ENABLED", True),
            per_host=max(1, settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN")),
            total=max(1, settings.getint("CONCURRENT_REQUESTS")),
            headers=tuple(headers.items()),
        )


# Pure helpers -------------------------------------------------------------------------


def redirect_url(url: str, location: bytes | str) -> str:
    """Where a ``Location`` header sends a request for ``url`` (as Scrapy's RedirectMiddleware joins it).

    Raw header bytes are read as UTF-8 first, like Scrapy does, then percent-escaped.
    """
    location = safe_url_string(location)
    if location.startswith("//"):
        location = urlsplit(url).scheme + ":" + location
    joined = urljoin(url, location)
    fragment = urlsplit(url).fragment
    if fragment and not urlsplit(joined).fragment:
        joined = f"{joined}#{fragment}"
    return joined


def decode_body(body: bytes, content_encoding: str, maxsize: int) -> bytes:
    """The body with its gzip/deflate ``Content-Encoding`` undone, at most ``maxsize`` bytes.

    Scrapy's own decoders do the work (multi-member gzip, raw deflate, tolerance of CRC
    errors), so a body decodes exactly as with HttpCompressionMiddleware. Raises IgnoreRequest
    (reason ``decompression_bomb``) when the decoded body would exceed ``maxsize``. Other
    encodings, and bodies that do not decode at all, are returned unchanged: the image check
    then rejects them.
    """
    for coding in reversed([c.strip().lower() for c in content_encoding.split(",") if c.strip()]):
        if coding in ("gzip", "x-gzip"):
            decoder = gunzip
        elif coding == "deflate":
            decoder = _inflate
        else:
            return body
        try:
            body = decoder(body, max_size=maxsize)
        except _DecompressionMaxSizeExceeded:
            raise IgnoreRequest(
                f"Ignored response: it is larger than DOWNLOAD_MAXSIZE ({maxsize} bytes) during decompression"
            ) from None
        except (OSError, EOFError, ValueError, zlib.error):
            return body
    return body


def proxy_url(url: str, scheme: str) -> str:
    """A proxy variable's value as a full URL, filled in like Scrapy's HttpProxyMiddleware.

    ``proxy.example:3128`` becomes ``http://proxy.example:3128`` (for an ``http_proxy``);
    credentials in the value are kept.
    """
    proxy_type, user, password, hostport = _parse_proxy(url)
    if user:  # kept as written (percent-escapes included); the client reads them from the URL
        hostport = f"{user}:{password}@{hostport}" if password is not None else f"{user}@{hostport}"
    return urlunparse((proxy_type or scheme, hostport, "", "", "", ""))


def scrapy_exception(exc: BaseException, url: str, timeout: float) -> Exception:
    """The exception Scrapy's downloader raises for what the HTTP client raised."""
    if isinstance(exc, TimeoutError):
        return DownloadTimeoutError(f"Getting {url} took longer than {timeout} seconds.")
    if isinstance(exc, socket.gaierror):
        return CannotResolveHostError(f"DNS lookup failed for {url}: {exc}")
    if isinstance(exc, ConnectionRefusedError) or _all_refused(exc):
        return DownloadConnectionRefusedError(f"Connection refused for {url}")
    if isinstance(exc, BodyCutShort):
        return ResponseDataLossError(f"Response body of {url} was cut short: {exc}")
    return DownloadFailedError(f"Download of {url} failed: {type(exc).__name__}: {exc}")


def _all_refused(exc: BaseException) -> bool:
    """Python 3.11's ``create_connection`` reports a host whose every address refused as one
    plain OSError("Multiple exceptions: [Errno 111] ..., [Errno 111] ...")."""
    if type(exc) is not OSError or exc.errno is not None:
        return False
    codes = re.findall(r"\[Errno (\d+)\]", str(exc))
    return bool(codes) and all(int(code) == errno.ECONNREFUSED for code in codes)


# The fetcher -------------------------------------------------------------------------------


class _HostSlot:
    """A host's concurrency limit; dropped when nobody uses it, so hosts never pile up."""

    __slots__ = ("semaphore", "users")

    def __init__(self, limit: int):
        self.semaphore = asyncio.Semaphore(limit)
        self.users = 0


class ImageFetcher:
    """Fetches image requests as Scrapy Responses over a shared pool of kept-alive connections.

    ``stopping`` is asked before each download starts: once the node gives its hotels back,
    queued downloads are dropped (IgnoreRequest) instead of fetched. Its counters
    (``hotelimages/fetch/...``) are kept here and added to Scrapy's stats on close: a stats
    call per request costs more than the counting.
    """

    def __init__(self, policy: FetchPolicy, stats: Any, stopping: Callable[[], bool] = lambda: False):
        self.policy = policy
        self.stats = stats
        self.stopping = stopping
        self._pool = ConnectionPool()
        self._total = asyncio.Semaphore(policy.total)
        self._hosts: dict[str, _HostSlot] = {}
        self._headers = {name.lower(): (name, value) for name, value in policy.headers}
        self._closed = False
        self.counts: Counter[str] = Counter()
        # Read once: parsing the environment per request cost 16% of a node's CPU (measured with
        # aiohttp's trust_env, which also read ~/.netrc each time).
        self._env_proxies = {}
        if policy.use_proxies:
            for scheme, value in getproxies().items():
                if scheme in ("http", "https"):
                    try:
                        self._env_proxies[scheme] = proxy_url(value, scheme)
                    except ValueError:  # as HttpProxyMiddleware: a value it cannot parse is skipped
                        logger.warning("Ignoring the %s_proxy variable: cannot parse it", scheme)
        self._proxy_cache: dict[tuple[str, str], str | None] = {}

    def proxy_for(self, scheme: str, host: str) -> str | None:
        """The proxy from ``http_proxy``/``https_proxy`` for this host name unless ``no_proxy`` names it."""
        if not self._env_proxies:
            return None
        key = (scheme, host)
        if key not in self._proxy_cache:
            proxy = self._env_proxies.get(scheme)
            self._proxy_cache[key] = None if proxy is None or proxy_bypass(host) else proxy
        return self._proxy_cache[key]

    async def close(self) -> None:
        self._closed = True
        for key, value in self.counts.items():
            self.stats.inc_value(f"hotelimages/fetch/{key}", value)
        self.counts.clear()
        await self._pool.close()

    async def fetch(self, request: Request) -> Response:
        """The final response for ``request`` after redirects and retries; raises like Scrapy's downloader."""
        meta = request.meta
        timeout = float(meta.get("download_timeout") or self.policy.timeout)
        retries_left = 0 if meta.get("dont_retry") else int(meta.get("max_retry_times", self.policy.retry_times))
        follow = self.policy.follow_redirects and not meta.get("dont_redirect")
        redirects_left = self.policy.redirect_max_times
        headers = self._request_headers(request)
        url = request.url
        redirect_urls: list[str] = []
        while True:
            try:
                response = await self._attempt(request, url, headers, timeout)
            except RETRY_EXCEPTIONS as exc:
                self.counts[f"errors/{type(exc).__name__}"] += 1
                if retries_left <= 0:
                    raise
                retries_left -= 1
                self.counts["retries"] += 1
                logger.debug("Retrying %s: %s", url, exc)
                continue
            status = response.status
            if status in REDIRECT_STATUSES and b"Location" in response.headers:
                target = redirect_url(url, response.headers[b"Location"])
                if not follow or urlsplit(target).scheme not in ("http", "https"):
                    return response  # not followed; the pipeline refuses it with its reason
                if redirects_left <= 0:
                    raise IgnoreRequest("max redirections reached")
                redirects_left -= 1
                redirect_urls.append(url)
                meta["redirect_urls"] = redirect_urls
                self.counts["redirects"] += 1
                url = target
                continue
            if status in self.policy.retry_http_codes and retries_left > 0:
                retries_left -= 1
                self.counts["retries"] += 1
                logger.debug("Retrying %s: HTTP %d", url, status)
                continue
            return response

    def _request_headers(self, request: Request) -> dict[str, str]:
        """The policy's headers with the request's own on top (names compared without case)."""
        if not request.headers:
            return dict(self._headers.values())
        merged = dict(self._headers)
        for name, values in request.headers.items():
            if values:
                text = name.decode("latin-1")
                merged[text.lower()] = (text, values[-1].decode("latin-1"))
        return dict(merged.values())

    async def _attempt(self, request: Request, url: str, headers: dict[str, str], timeout: float) -> Response:
        if self._closed:
            raise IgnoreRequest("image fetcher closed")
        scheme = url.partition(":")[0].lower()
        if scheme not in ("http", "https"):
            raise UnsupportedURLSchemeError(f"Unsupported URL scheme {scheme!r} in {url[:200]}")
        host = urlsplit(url).hostname or ""  # slots per host name, as Scrapy's downloader keys them
        slot = self._hosts.get(host)
        if slot is None:
            slot = self._hosts[host] = _HostSlot(self.policy.per_host)
        slot.users += 1
        try:
            async with slot.semaphore, self._total:
                if self.stopping():
                    raise IgnoreRequest("node stopping: hotel given back")
                self.counts["requests"] += 1
                try:
                    return await self._get(request, url, headers, timeout, self.proxy_for(scheme, host))
                except (IgnoreRequest, UnsupportedURLSchemeError):
                    raise
                except (TimeoutError, HTTPError, OSError) as exc:
                    raise scrapy_exception(exc, url, timeout) from exc
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._hosts[host]

    async def _get(self, request: Request, url: str, headers: dict[str, str], timeout: float,
                   proxy: str | None) -> Response:
        maxsize = self.policy.maxsize
        try:
            async with asyncio.timeout(timeout):
                answer = await self._pool.get(url, headers, proxy=proxy, maxsize=maxsize)
        except TooLarge as exc:
            size = f"expected size {exc.expected} is " if exc.expected is not None else ""
            raise IgnoreRequest(
                f"Cancelled download of {url[:200]}: {size}larger than DOWNLOAD_MAXSIZE ({maxsize} bytes)"
            ) from None
        status, raw_headers, body = answer.status, answer.headers, answer.body
        self.counts[f"status/{status}"] += 1
        header_lists: dict[bytes, list[bytes]] = {}
        for name, value in raw_headers:
            header_lists.setdefault(name, []).append(value)
        response_headers = Headers(header_lists)
        encoding = response_headers.get(b"Content-Encoding")
        if encoding and body:
            body = decode_body(body, encoding.decode("latin-1"), maxsize)
        if self.policy.warnsize and len(body) > self.policy.warnsize:
            logger.warning("Image %s is %d bytes, above DOWNLOAD_WARNSIZE (%d)", url[:200], len(body),
                           self.policy.warnsize)
        return Response(url, status=status, headers=response_headers, body=body, request=request,
                        protocol="HTTP/1.1")
