"""Direct image fetcher: image downloads on libcurl (pycurl), beside Scrapy's downloader.

Scrapy's download stack costs about 5 ms of CPU per response on the benchmark's 2-core
machine (docs/PERFORMANCE.md): the Twisted HTTP client, Deferred and asyncio task hops,
middleware chains, signals and timers. An image download needs none of that machinery,
only an HTTP GET on a kept-alive connection, so ``ShardedImagesPipeline`` hands its image
requests to this fetcher (``HOTELS_IMAGE_FETCHER = "direct"``, the default). Listing
requests still go through Scrapy.

The HTTP work (framing, TLS, proxies, DNS, connection reuse) is libcurl's: ``CurlLoop`` drives
one ``CurlMulti`` from the running asyncio loop through libcurl's socket and timer callbacks
(``loop.add_reader``/``add_writer``, ``loop.call_later``), as Tornado's curl client does. No
HTTP parsing is written here beyond splitting the header lines libcurl hands over.

The fetcher keeps to the Scrapy settings a node already has, so switching between it and
``HOTELS_IMAGE_FETCHER = "scrapy"`` changes no stored file and no manifest
(``tests/test_optimisations.py``):

- ``CONCURRENT_REQUESTS_PER_DOMAIN`` images at once per host, ``CONCURRENT_REQUESTS`` in all,
  over libcurl's cache of kept-alive connections;
- ``DOWNLOAD_TIMEOUT`` per attempt, ``DOWNLOAD_MAXSIZE`` (from ``Content-Length`` before the
  body, while reading, and after decompression) and ``DOWNLOAD_WARNSIZE``;
- ``RETRY_ENABLED``/``RETRY_TIMES``/``RETRY_HTTP_CODES`` for the same errors that Scrapy's
  RetryMiddleware retries, ``REDIRECT_ENABLED``/``MEDIA_ALLOW_REDIRECTS``/``REDIRECT_MAX_TIMES``
  for 301/302/303/307/308 to http and https only (a 3xx elsewhere comes back as it is, as with
  Scrapy);
- ``USER_AGENT``, ``DEFAULT_REQUEST_HEADERS``, the request's own headers, and the proxy
  environment variables (``http_proxy``, ``https_proxy``, ``no_proxy``, read at start; off with
  ``HTTPPROXY_ENABLED=False``) like HttpProxyMiddleware; the proxy's scheme is honoured
  (``http://``, ``https://``, ``socks5://``, ``socks5h://``, ``socks4://``).

Its own settings (``hotelimages.config.FetchOptions``): ``HOTELS_TLS_VERIFY`` (off by default, as
with Scrapy's default context factory), ``HOTELS_HTTP2``, ``HOTELS_DNS_CACHE_SECONDS`` and
``HOTELS_CONNECTION_IDLE_SECONDS``.

Errors come back as the exceptions Scrapy's downloader would raise (``DownloadTimeoutError``,
``ResponseDataLossError`` ...), so the pipeline gives them the same reasons. Answers that
could smuggle one response into another (two different ``Content-Length`` values, both
``Content-Length`` and ``Transfer-Encoding``) are refused, and their connection closed.
"""

from __future__ import annotations

import asyncio
import errno
import io
import logging
import socket
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunparse
from urllib.request import _parse_proxy, getproxies, proxy_bypass

import pycurl
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

from hotelimages.config import FetchOptions

logger = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRY_EXCEPTIONS = (
    DownloadTimeoutError, DownloadConnectionRefusedError, CannotResolveHostError, DownloadFailedError,
    ResponseDataLossError,
)
#: What we ask for; a CDN rarely compresses images, but when it does the body is decoded here.
ACCEPT_ENCODING = "gzip, deflate"
#: libcurl's receive buffer: a photo of ~170 KiB arrives in a few writes, not a dozen.
BUFFER_SIZE = 64 * 1024
PROXY_SCHEMES = ("http", "https", "socks4", "socks4a", "socks5", "socks5h")


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
    options: FetchOptions = FetchOptions()

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
            options=FetchOptions.from_settings(settings),
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


def response_headers(lines: list[bytes]) -> Headers:
    """The final answer's headers from the raw lines libcurl handed over, as Scrapy Headers.

    libcurl passes every head it reads (a proxy's ``CONNECT`` answer, ``1xx`` answers, the real
    one, then any chunked trailers); only the lines after the last status line are kept.
    """
    start = 0
    for index, line in enumerate(lines):
        if line.startswith(b"HTTP/"):
            start = index + 1
    values: dict[bytes, list[bytes]] = {}
    for line in lines[start:]:
        name, colon, value = line.partition(b":")
        if colon and name and name == name.strip():
            values.setdefault(name, []).append(value.strip())
    return Headers(values)


def curl_exception(code: int, message: str, url: str, timeout: float, os_errno: int = 0,
                   expected_size: int = -1, maxsize: int = 0, refusal: str = "") -> Exception:
    """The exception Scrapy's downloader raises where libcurl failed with ``code``.

    ``refusal`` is why our own header check stopped the answer; ``expected_size`` the
    ``Content-Length`` libcurl saw (-1: none).
    """
    if refusal:
        return DownloadFailedError(f"Download of {url} refused: {refusal}")
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return DownloadTimeoutError(f"Getting {url} took longer than {timeout} seconds.")
    if code in (pycurl.E_COULDNT_RESOLVE_HOST, pycurl.E_COULDNT_RESOLVE_PROXY):
        return CannotResolveHostError(f"DNS lookup failed for {url}: {message}")
    if code == pycurl.E_COULDNT_CONNECT and os_errno == errno.ECONNREFUSED:
        return DownloadConnectionRefusedError(f"Connection refused for {url}")
    if code == pycurl.E_FILESIZE_EXCEEDED:
        size = f"expected size {expected_size} is " if expected_size >= 0 else ""
        return IgnoreRequest(f"Cancelled download of {url[:200]}: {size}larger than DOWNLOAD_MAXSIZE ({maxsize} bytes)")
    if code == pycurl.E_PARTIAL_FILE:
        return ResponseDataLossError(f"Response body of {url} was cut short: {message}")
    return DownloadFailedError(f"Download of {url} failed: curl error {code}: {message}")


# libcurl on the asyncio loop ---------------------------------------------------------------


class CurlLoop:
    """One libcurl multi handle driven by the running asyncio loop: ``await perform(easy)``.

    libcurl says which sockets it waits on (``M_SOCKETFUNCTION``) and when it next needs the
    clock (``M_TIMERFUNCTION``); the loop watches those sockets and calls ``socket_action``
    back. Its connection cache and DNS cache are shared by every transfer. Once no transfer
    has run for ``idle_seconds``, the multi handle is closed with its idle connections (libcurl
    itself only prunes them while it works); the next transfer opens a new one.
    """

    def __init__(self, max_connects: int, idle_seconds: float):
        self.max_connects = max_connects
        self.idle_seconds = idle_seconds
        self._multi: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._events: dict[int, int] = {}  # fd -> pycurl.POLL_* we watch it for
        self._waiting: dict[Any, asyncio.Future[None]] = {}

    @property
    def running(self) -> int:
        """Transfers in progress."""
        return len(self._waiting)

    async def perform(self, easy: Any) -> None:
        """Run one transfer to its end; raises pycurl.error as libcurl reports it."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._multi is None:
            self._open()
        future = self._loop.create_future()
        self._waiting[easy] = future
        self._multi.add_handle(easy)
        try:
            await future
        finally:
            if self._waiting.pop(easy, None) is not None:  # cancelled before its end
                self._multi.remove_handle(easy)
            if not self._waiting and self._multi is not None:
                if self._idle is not None:
                    self._idle.cancel()
                self._idle = self._loop.call_later(self.idle_seconds, self._close_if_idle)

    def _close_if_idle(self) -> None:
        self._idle = None
        if not self._waiting:
            self.close()

    def close(self) -> None:
        """Close the multi handle and every connection it keeps; transfers still running fail."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._multi is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for fd in self._events:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
        self._events.clear()
        multi, self._multi = self._multi, None
        for easy, future in list(self._waiting.items()):
            multi.remove_handle(easy)
            if not future.done():
                future.set_exception(pycurl.error(pycurl.E_ABORTED_BY_CALLBACK, "fetcher closed"))
        self._waiting.clear()
        multi.close()

    def _open(self) -> None:
        self._loop = asyncio.get_running_loop()
        multi = pycurl.CurlMulti()
        multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        multi.setopt(pycurl.M_MAXCONNECTS, self.max_connects)
        self._multi = multi

    # libcurl's callbacks: they only (un)register with the loop, never call libcurl back.

    def _on_socket(self, what: int, fd: int, multi: Any, data: Any) -> None:
        loop = self._loop
        old = self._events.pop(fd, pycurl.POLL_NONE)
        if what == pycurl.POLL_REMOVE:
            what = pycurl.POLL_NONE
        read_before = old in (pycurl.POLL_IN, pycurl.POLL_INOUT)
        write_before = old in (pycurl.POLL_OUT, pycurl.POLL_INOUT)
        read = what in (pycurl.POLL_IN, pycurl.POLL_INOUT)
        write = what in (pycurl.POLL_OUT, pycurl.POLL_INOUT)
        if read != read_before:
            if read:
                loop.add_reader(fd, self._act, fd, pycurl.CSELECT_IN)
            else:
                loop.remove_reader(fd)
        if write != write_before:
            if write:
                loop.add_writer(fd, self._act, fd, pycurl.CSELECT_OUT)
            else:
                loop.remove_writer(fd)
        if what != pycurl.POLL_NONE:
            self._events[fd] = what

    def _on_timer(self, msecs: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if msecs >= 0 and self._multi is not None:
            self._timer = self._loop.call_later(msecs / 1000.0, self._on_timeout)

    def _on_timeout(self) -> None:
        self._timer = None
        self._act(pycurl.SOCKET_TIMEOUT, 0)

    def _act(self, fd: int, event: int) -> None:
        """Let libcurl work on a ready socket (or on its clock), then settle what it finished."""
        multi = self._multi
        if multi is None:
            return
        while True:
            try:
                code, _ = multi.socket_action(fd, event)
            except pycurl.error as exc:
                code = exc.args[0]
            if code != pycurl.E_CALL_MULTI_PERFORM:
                break
        while True:
            queued, done, failed = multi.info_read()
            for easy in done:
                self._settle(multi, easy, None)
            for easy, code, message in failed:
                self._settle(multi, easy, pycurl.error(code, message))
            if not queued:
                break

    def _settle(self, multi: Any, easy: Any, error: pycurl.error | None) -> None:
        future = self._waiting.pop(easy, None)
        multi.remove_handle(easy)
        if future is None or future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


class _Sockets:
    """The sockets libcurl opened, found by their ports: where ``clean`` looks for unasked bytes.

    libcurl skips its own check of a connection used less than a second ago, so an answer a
    server sent unasked on a kept-alive connection would be read as the next image's.
    ``clean`` (libcurl's pre-request callback) refuses such a connection: the transfer stops
    (``E_ABORTED_BY_CALLBACK``), libcurl closes the connection, and the fetcher tries once more.
    (libcurl's close-socket callback cannot be used to forget sockets: pycurl cannot run it
    when the multi handle closes a connection by itself, and the socket would leak.)
    """

    def __init__(self) -> None:
        self.fds: set[int] = set()
        self.by_port: dict[int, int] = {}

    def opened(self, fd: int, purpose: int) -> int:
        """libcurl's SOCKOPTFUNCTION: a new socket."""
        self.fds.add(fd)
        return pycurl.SOCKOPT_OK

    def clean(self, primary_ip: str, local_ip: str, primary_port: int, local_port: int) -> int:
        """libcurl's PREREQFUNCTION: go on unless the connection has bytes waiting."""
        fd = self._find(local_port, primary_port)
        if fd is None:
            return pycurl.PREREQFUNC_OK
        sock = socket.socket(fileno=fd)
        try:
            sock.recv(1, socket.MSG_PEEK)  # libcurl's sockets do not block
        except (BlockingIOError, InterruptedError):
            return pycurl.PREREQFUNC_OK
        except OSError:
            pass  # a reset connection is no cleaner
        finally:
            sock.detach()
        return pycurl.PREREQFUNC_ABORT

    def _find(self, local_port: int, peer_port: int) -> int | None:
        """The fd of the connection between these ports; fds that are no longer sockets are forgotten."""
        fd = self.by_port.get(local_port)
        if fd is not None and _ports(fd) == (local_port, peer_port):
            return fd
        self.by_port.clear()
        found = None
        for candidate in list(self.fds):
            ports = _ports(candidate)
            if ports is None:
                self.fds.discard(candidate)
                continue
            self.by_port[ports[0]] = candidate
            if ports == (local_port, peer_port):
                found = candidate
        return found


def _ports(fd: int) -> tuple[int, int] | None:
    """(local port, peer port) of a connected socket's fd, or None."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return None
    try:
        return sock.getsockname()[1], sock.getpeername()[1]
    except (OSError, IndexError, TypeError):
        return None
    finally:
        sock.detach()


def _go_on(*connection: Any) -> int:
    """libcurl's pre-request callback where no check applies."""
    return pycurl.PREREQFUNC_OK


def _discard(data: bytes) -> None:
    """Where an idle easy handle writes: it holds no body between transfers."""


class _Answer:
    """One transfer's body (one growing buffer) and head lines, with the smuggling checks."""

    __slots__ = ("body", "lines", "lengths", "chunked", "refusal")

    def __init__(self) -> None:
        self.body = io.BytesIO()
        self.lines: list[bytes] = []
        self.lengths: set[bytes] = set()
        self.chunked = False
        self.refusal = ""

    def header(self, line: bytes) -> int | None:
        """libcurl's header callback: keep the line; 0 stops the transfer (and closes its connection)."""
        if line.startswith(b"HTTP/"):  # a new head: a 1xx, a proxy's CONNECT answer, the answer
            self.lengths.clear()
            self.chunked = False
        elif line in (b"\r\n", b"\n"):
            if self.lengths and self.chunked:
                self.refusal = "both Content-Length and Transfer-Encoding"
                return 0
        else:
            name = line[:18].lower()
            if name.startswith(b"content-length:"):
                self.lengths.update(v.strip() for v in line[15:].split(b","))
                if len(self.lengths) > 1:
                    self.refusal = "two different Content-Length values"
                    return 0
            elif name.startswith(b"transfer-encoding:"):
                self.chunked = True
        self.lines.append(line)
        return None


# The fetcher -------------------------------------------------------------------------------


class _HostSlot:
    """A host's concurrency limit; dropped when nobody uses it, so hosts never pile up."""

    __slots__ = ("semaphore", "users")

    def __init__(self, limit: int):
        self.semaphore = asyncio.Semaphore(limit)
        self.users = 0


class ImageFetcher:
    """Fetches image requests as Scrapy Responses over libcurl's shared kept-alive connections.

    ``stopping`` is asked before each download starts: once the node gives its hotels back,
    queued downloads are dropped (IgnoreRequest) instead of fetched. Its counters
    (``hotelimages/fetch/...``) are kept here and added to Scrapy's stats on close: a stats
    call per request costs more than the counting.
    """

    def __init__(self, policy: FetchPolicy, stats: Any, stopping: Callable[[], bool] = lambda: False):
        self.policy = policy
        self.stats = stats
        self.stopping = stopping
        self._curl = CurlLoop(max(policy.total, policy.per_host), policy.options.connection_idle_seconds)
        self._handles: list[Any] = []  # idle easy handles, one per transfer slot at most
        self._sockets = _Sockets()
        self._total = asyncio.Semaphore(policy.total)
        self._hosts: dict[str, _HostSlot] = {}
        self._headers = {name.lower(): (name, value) for name, value in policy.headers}
        self._header_lines = header_lines(dict(self._headers.values()))
        self._closed = False
        self.counts: Counter[str] = Counter()
        # Read once: parsing the environment per request cost 16% of a node's CPU (measured with
        # aiohttp's trust_env, which also read ~/.netrc each time).
        self._env_proxies = {}
        if policy.use_proxies:
            for scheme, value in getproxies().items():
                if scheme in ("http", "https"):
                    try:
                        proxy = proxy_url(value, scheme)
                    except ValueError:  # as HttpProxyMiddleware: a value it cannot parse is skipped
                        logger.warning("Ignoring the %s_proxy variable: cannot parse it", scheme)
                        continue
                    if urlsplit(proxy).scheme.lower() not in PROXY_SCHEMES:
                        logger.warning("Ignoring the %s_proxy variable: unsupported proxy scheme", scheme)
                        continue
                    self._env_proxies[scheme] = proxy
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
        self._curl.close()
        for easy in self._handles:
            easy.close()
        self._handles.clear()

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

    def _request_headers(self, request: Request) -> list[str]:
        """The policy's headers with the request's own on top (names compared without case), as libcurl takes them."""
        if not request.headers:
            return self._header_lines
        merged = dict(self._headers)
        for name, values in request.headers.items():
            if values:
                text = name.decode("latin-1")
                merged[text.lower()] = (text, values[-1].decode("latin-1"))
        return header_lines(dict(merged.values()))

    async def _attempt(self, request: Request, url: str, headers: list[str], timeout: float) -> Response:
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
                if self.stopping() or self._closed:
                    raise IgnoreRequest("node stopping: hotel given back")
                self.counts["requests"] += 1
                return await self._get(request, url, headers, timeout, self.proxy_for(scheme, host))
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._hosts[host]

    def _new_handle(self) -> Any:
        """An easy handle with the options every transfer shares."""
        options = self.policy.options
        easy = pycurl.Curl()
        easy.setopt(pycurl.NOSIGNAL, 1)
        easy.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        easy.setopt(pycurl.PATH_AS_IS, 1)  # the path as Scrapy sends it, dot segments included
        easy.setopt(pycurl.BUFFERSIZE, BUFFER_SIZE)
        easy.setopt(pycurl.HTTP_VERSION,
                    pycurl.CURL_HTTP_VERSION_2TLS if options.http2 else pycurl.CURL_HTTP_VERSION_1_1)
        easy.setopt(pycurl.DNS_CACHE_TIMEOUT, options.dns_cache_seconds)
        easy.setopt(pycurl.MAXAGE_CONN, max(1, round(options.connection_idle_seconds)))
        verify = 1 if options.tls_verify else 0
        for peer, host in ((pycurl.SSL_VERIFYPEER, pycurl.SSL_VERIFYHOST),
                           (pycurl.PROXY_SSL_VERIFYPEER, pycurl.PROXY_SSL_VERIFYHOST)):
            easy.setopt(peer, verify)
            easy.setopt(host, 2 if verify else 0)
        if verify:
            bundle = ca_bundle()
            if bundle:
                easy.setopt(pycurl.CAINFO, bundle)
                easy.setopt(pycurl.PROXY_CAINFO, bundle)
        if self.policy.maxsize > 0:  # libcurl checks Content-Length first, then counts while reading
            easy.setopt(pycurl.MAXFILESIZE_LARGE, self.policy.maxsize)
        easy.setopt(pycurl.SOCKOPTFUNCTION, self._sockets.opened)
        return easy

    async def _get(self, request: Request, url: str, headers: list[str], timeout: float,
                   proxy: str | None) -> Response:
        maxsize = self.policy.maxsize
        easy = self._handles.pop() if self._handles else self._new_handle()
        answer = _Answer()
        try:
            easy.setopt(pycurl.URL, url)
            easy.setopt(pycurl.HTTPHEADER, headers)
            easy.setopt(pycurl.PROXY, proxy or "")  # "": no proxy, not even libcurl's own reading of the environment
            easy.setopt(pycurl.TIMEOUT_MS, max(1, int(timeout * 1000)))
            easy.setopt(pycurl.WRITEFUNCTION, answer.body.write)
            easy.setopt(pycurl.HEADERFUNCTION, answer.header)
            # An HTTP/2 connection has frames of other streams waiting: the check is for HTTP/1.1.
            multiplexed = self.policy.options.http2 and url[:6].lower() == "https:"
            easy.setopt(pycurl.PREREQFUNCTION, _go_on if multiplexed else self._sockets.clean)
            try:
                try:
                    await self._curl.perform(easy)
                except pycurl.error as exc:
                    if exc.args[0] != pycurl.E_ABORTED_BY_CALLBACK or answer.refusal or self._closed:
                        raise
                    self.counts["unclean_connections"] += 1  # refused by _Sockets.clean: once more
                    await self._curl.perform(easy)
            except pycurl.error as exc:
                code, message = exc.args[0], str(exc.args[1]) if len(exc.args) > 1 else ""
                raise curl_exception(code, message, url, timeout, easy.getinfo(pycurl.OS_ERRNO),
                                     int(easy.getinfo(pycurl.CONTENT_LENGTH_DOWNLOAD_T)), maxsize,
                                     answer.refusal) from None
            status = easy.getinfo(pycurl.RESPONSE_CODE)
            http2 = easy.getinfo(pycurl.INFO_HTTP_VERSION) == pycurl.CURL_HTTP_VERSION_2_0
        except UnicodeEncodeError as exc:  # a header value libcurl cannot take
            raise DownloadFailedError(f"Download of {url[:200]} failed: {exc}") from None
        finally:
            easy.setopt(pycurl.WRITEFUNCTION, _discard)
            easy.setopt(pycurl.HEADERFUNCTION, _discard)
            self._handles.append(easy)
        body = answer.body.getvalue()
        answer.body = None
        self.counts[f"status/{status}"] += 1
        headers_out = response_headers(answer.lines)
        encoding = headers_out.get(b"Content-Encoding")
        if encoding and body:
            body = decode_body(body, encoding.decode("latin-1"), maxsize)
        if self.policy.warnsize and len(body) > self.policy.warnsize:
            logger.warning("Image %s is %d bytes, above DOWNLOAD_WARNSIZE (%d)", url[:200], len(body),
                           self.policy.warnsize)
        return Response(url, status=status, headers=headers_out, body=body, request=request,
                        protocol="HTTP/2" if http2 else "HTTP/1.1")


def header_lines(headers: dict[str, str]) -> list[str]:
    """Request headers as libcurl takes them; raises DownloadFailedError for a line break in one."""
    lines = []
    for name, value in headers.items():
        if any(c in name or c in value for c in "\r\n\0") or ":" in name:
            raise DownloadFailedError(f"Refusing a request header with a line break: {name!r}")
        lines.append(f"{name}: {value}" if value else f"{name};")  # "Name;" sends an empty value
    return lines


def ca_bundle() -> str | None:
    """certifi's CA bundle when installed (pycurl's wheels cannot know the system's), else libcurl's own."""
    try:
        import certifi  # noqa: PLC0415 - only needed with HOTELS_TLS_VERIFY
    except ImportError:
        return None
    return certifi.where()
