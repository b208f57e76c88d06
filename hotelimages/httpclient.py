"""A lean HTTP/1.1 client for image GETs: kept-alive connections on asyncio, and nothing else.

aiohttp spent about 0.3 ms of user CPU per image in its request and response objects
(timers, multidicts, URL objects, stream readers) on the benchmark's 2-core machine
(docs/PERFORMANCE.md: 1.71 ms per image for aiohttp alone, 1.13 ms for this client). An image
GET needs a request line, a few headers and a body, so this module does exactly that on an
``asyncio.Protocol``:

- one GET at a time per connection, connections kept alive and reused per
  (scheme, host, port, proxy); a reused connection that the server closed meanwhile is
  retried once on a new one (GET is idempotent); a host's addresses are raced after 0.25 s;
- bodies framed by ``Content-Length``, by ``Transfer-Encoding: chunked`` or by the end of the
  connection, and heads read as leniently as Scrapy's client reads them (bare LF line ends,
  folded lines, lines without a colon, a stray CRLF after the body); 1xx answers skipped; a
  body cut short raises ``BodyCutShort``;
- ``maxsize`` checked against ``Content-Length`` before reading, and while reading;
- TLS without certificate checks (as Scrapy's default context factory), with SNI;
- proxies: an ``http://`` URL goes to the proxy in absolute form, an ``https://`` URL through
  a ``CONNECT`` tunnel; credentials in the proxy URL become ``Proxy-Authorization: Basic``.

Everything a downloader adds on top (retries, redirects, decompression, the concurrency
limits) is the fetcher's job (``hotelimages/fetcher.py``).
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

#: A response head larger than this is refused (aiohttp's and Scrapy's limits are similar).
MAX_HEAD_BYTES = 64 * 1024
#: Seconds before the next address of a host is tried while the first is still connecting
#: (RFC 8305; aiohttp's value): a host whose first address is unreachable still gets through.
HAPPY_EYEBALLS_DELAY = 0.25
_HEAD_END = re.compile(rb"\r?\n\r?\n")
#: A chunk size line's size: hexadecimal digits only (Python's int() would also take "0x5", "+5", "0_5").
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
#: An idle kept-alive connection older than this is closed instead of reused (servers close
#: theirs after 5 to 75 s; reusing one the server just closed costs a retry).
KEEPALIVE_SECONDS = 15.0


class HTTPError(Exception):
    """The server's answer could not be read as HTTP/1.1."""


class BodyCutShort(HTTPError):
    """The connection ended before the body announced by the response did."""


class TooLarge(HTTPError):
    """The body is larger than ``maxsize``; ``expected`` is the announced size, if any."""

    def __init__(self, message: str, expected: int | None = None):
        super().__init__(message)
        self.expected = expected


class ClosedBeforeAnswer(HTTPError):
    """The connection ended before any byte of the answer arrived."""


class ClosedInHead(HTTPError):
    """The connection ended inside the response head (Scrapy reports no data loss for this)."""


class ProxyError(HTTPError):
    """The proxy refused to open a tunnel."""


@dataclass
class RawResponse:
    """One HTTP answer: status, header lines as sent (name, value), and the whole body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass(frozen=True)
class Origin:
    """Where a request goes: the target's scheme, host and port, and the proxy, if any."""

    scheme: str
    host: str
    port: int
    proxy: str | None = None


def split_url(url: str) -> tuple[Origin, str, str]:
    """The origin of ``url``, its request target (path and query) and its ``Host`` header value.

    Raises ValueError for a URL this client cannot send (no host, a bad port, a scheme other
    than http/https, or control characters or spaces that would break the request line).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {scheme!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in URL {url[:200]!r}")
    default_port = 443 if scheme == "https" else 80
    port = default_port if parts.port is None else parts.port
    target = parts.path or "/"
    if parts.query:
        target = f"{target}?{parts.query}"
    if any(c in target for c in " \r\n\t\0"):
        raise ValueError(f"URL {url[:200]!r} has spaces or control characters")
    host_header = f"[{host}]" if ":" in host else host
    if port != default_port:
        host_header = f"{host_header}:{port}"
    return Origin(scheme, host, port), target, host_header


def build_request(method: str, target: str, host_header: str, headers: dict[str, str]) -> bytes:
    """The bytes of a request head.

    A header name with CR, LF or a colon is refused (ValueError); CR and LF in a value become
    spaces, as Twisted (Scrapy's HTTP client) sends them.
    """
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}"]
    for name, value in headers.items():
        if "\r" in name or "\n" in name or ":" in name or not name:
            raise ValueError(f"invalid request header name {name[:100]!r}")
        if "\r" in value or "\n" in value:
            value = value.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
        if name.lower() != "host":
            lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


def head_end(data: bytes) -> tuple[int, int]:
    """Where a response head ends in ``data``: (end of the head, start of the body), or (-1, -1).

    The blank line may be CRLF CRLF or, from lenient servers, bare LF LF (as Scrapy accepts).
    """
    match = _HEAD_END.search(data)
    return (match.start(), match.end()) if match else (-1, -1)


def parse_head(head: bytes) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Status code, HTTP version and header lines of a response head (without the blank line).

    As lenient as Scrapy's client with header lines: bare LF line ends, lines without a colon
    (skipped) and folded continuation lines (joined) are accepted. A bad status line is not.
    """
    lines = head.split(b"\n")
    status_line = lines[0].rstrip(b"\r").split(b" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1.") or len(status_line[1]) != 3 \
            or not status_line[1].isdigit():
        raise HTTPError(f"malformed status line {lines[0][:100]!r}")
    headers: list[tuple[bytes, bytes]] = []
    for raw in lines[1:]:
        line = raw.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):  # obs-fold: continues the previous header's value
            if headers:
                name, value = headers[-1]
                headers[-1] = (name, (value + b" " + line.strip()).strip())
            continue
        name, sep, value = line.partition(b":")
        name = name.strip()
        if sep and name:
            headers.append((name, value.strip()))
    return int(status_line[1]), status_line[0], headers


def body_framing(status: int, version: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[str, int, bool]:
    """How the body of an answer ends ("length", "chunked", "close" or "none"), its length, and
    whether the connection can be reused afterwards."""
    length = None
    chunked = False
    connection = b""
    for name, value in headers:
        lower = name.lower()
        if lower == b"content-length":
            if not value.isdigit() or len(value) > 18 or (length is not None and int(value) != length):
                raise HTTPError(f"invalid Content-Length {value[:40]!r}")
            length = int(value)
        elif lower == b"transfer-encoding":
            codings = [c.strip() for c in value.lower().split(b",")]
            chunked = codings[-1] == b"chunked"
        elif lower == b"connection":
            connection = value.lower()
    keep_alive = b"close" not in connection if version == b"HTTP/1.1" else b"keep-alive" in connection
    if status in (204, 304):
        return "none", 0, keep_alive
    if chunked:  # a Content-Length beside it is ignored, and the connection not reused (RFC 9112 6.3)
        return "chunked", 0, keep_alive and length is None
    if length is not None:
        return "length", length, keep_alive
    return "close", 0, False


class _Connection(asyncio.Protocol):
    """One kept-alive connection; reads one answer at a time into a RawResponse."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.last_used = time.monotonic()
        self._answer: asyncio.Future[RawResponse] | None = None
        self._reset(0)

    def _reset(self, maxsize: int, head_only: bool = False) -> None:
        self._maxsize = maxsize
        self._head_only = head_only  # a CONNECT: the answer has no body, and nothing may follow it
        self._state = "head"  # head, length, chunked, close, done
        self._buffer = bytearray()  # a head that came in pieces, or chunked framing
        self._chunks: list[bytes | memoryview] = []
        self._size = 0
        self._remaining = 0
        self._chunk_left = -1  # chunked: bytes left in the current chunk; -1 = reading a size line
        self._trailer_bytes = 0
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._reusable = False
        self._received = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._state == "close":
            self._finish()
        elif self._answer is not None and not self._answer.done():
            if not self._received:
                error: Exception = ClosedBeforeAnswer("connection closed before the answer")
            elif self._state == "head":
                error = ClosedInHead("connection closed inside the response head")
            else:
                error = BodyCutShort(f"connection closed after {self._size} bytes of the body")
            self._answer.set_exception(error)

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            self._abort()  # bytes nobody asked for: the connection is not in a known state
            return
        self._received = True
        try:
            self._feed(data)
        except Exception as exc:  # noqa: BLE001 - whatever a hostile answer triggers ends this answer
            self._abort()
            if not self._answer.done():
                self._answer.set_exception(exc if isinstance(exc, HTTPError) else HTTPError(f"bad answer: {exc!r}"))

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost settles the answer

    # Requests
    def send(self, request: bytes, maxsize: int, head_only: bool = False) -> asyncio.Future[RawResponse]:
        assert self.transport is not None
        self._reset(maxsize, head_only)
        self._answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._answer

    def _abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # Parsing
    def _feed(self, data: bytes) -> None:
        state = self._state
        if state == "length":
            self._take(data)
        elif state == "head":
            self._feed_head(data)
        elif state == "chunked":
            self._feed_chunked(data)
        elif state == "close":
            self._keep(data)
        else:  # after the end of the answer (a CONNECT's, say): nothing more was asked for
            raise HTTPError("bytes after the end of the answer")

    def _feed_head(self, data: bytes) -> None:
        while True:  # once per answer: 1xx answers come before the real one
            if self._buffer:  # the head came in pieces: join them (rare)
                self._buffer += data
                data = bytes(self._buffer)
                self._buffer = bytearray()
            end, body_start = head_end(data)
            if end > MAX_HEAD_BYTES or (end < 0 and len(data) > MAX_HEAD_BYTES):
                raise HTTPError(f"response head larger than {MAX_HEAD_BYTES} bytes")
            if end < 0:
                self._buffer += data
                return
            status, version, headers = parse_head(data[:end])
            if not (100 <= status < 200 and status != 101):
                break
            data = data[body_start:]
            if not data:
                return
        rest = memoryview(data)[body_start:]  # no copy: the body's first bytes usually come with the head
        self._status, self._headers = status, headers
        if self._head_only:
            if rest:
                raise HTTPError("bytes after the proxy's answer to CONNECT")
            self._reusable = True
            self._finish()
            return
        framing, length, self._reusable = body_framing(status, version, headers)
        if framing == "length":
            if self._maxsize and length > self._maxsize:
                raise TooLarge(f"expected size {length} is larger than {self._maxsize} bytes", length)
            self._state, self._remaining = "length", length
            if length == 0:
                self._reusable = self._reusable and not rest
                self._finish()
            elif rest:
                self._take(rest)
        elif framing == "none":
            self._reusable = self._reusable and not rest
            self._finish()
        elif framing == "chunked":
            self._state = "chunked"
            if rest:
                self._feed_chunked(rest)
        else:
            self._state = "close"
            if rest:
                self._keep(rest)

    def _keep(self, data: bytes | memoryview) -> None:
        self._size += len(data)
        if self._maxsize and self._size > self._maxsize:
            raise TooLarge(f"larger than {self._maxsize} bytes")
        self._chunks.append(data)

    def _take(self, data: bytes | memoryview) -> None:
        if len(data) >= self._remaining:
            if len(data) > self._remaining:  # bytes beyond the body (a stray CRLF, say): the
                data = data[:self._remaining]  # answer is whole, the connection is not reused
                self._reusable = False
            self._chunks.append(data)
            self._size += len(data)
            self._remaining = 0
            self._finish()
            return
        self._chunks.append(data)
        self._size += len(data)
        self._remaining -= len(data)

    def _feed_chunked(self, data: bytes | memoryview) -> None:
        buffer = self._buffer
        buffer += data
        while True:
            if self._chunk_left > 0:  # inside a chunk's data
                if not buffer:
                    return
                piece = bytes(buffer[:self._chunk_left])
                del buffer[:len(piece)]
                self._chunk_left -= len(piece)
                self._keep(piece)
                if self._chunk_left:
                    return
                self._chunk_left = -2  # expect the CRLF after the data
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > MAX_HEAD_BYTES:
                    raise HTTPError("chunk size or trailer line too long")
                return
            line = bytes(buffer[:end]).rstrip(b"\r")
            del buffer[:end + 1]
            if self._chunk_left == -2:
                if line:
                    raise HTTPError("no CRLF after a chunk")
                self._chunk_left = -1
            elif self._chunk_left == -1:
                size_text = line.split(b";", 1)[0].strip()
                if not _CHUNK_SIZE.fullmatch(size_text):
                    raise HTTPError(f"invalid chunk size {size_text[:20]!r}")
                size = int(size_text, 16)
                self._chunk_left = size if size else -3  # -3: reading trailers
            elif not line:  # the blank line after the trailers
                if buffer:  # bytes beyond the answer: whole, but the connection is not reused
                    self._reusable = False
                self._finish()
                return
            else:
                self._trailer_bytes += len(line)  # trailers are dropped, but not without end
                if self._trailer_bytes > MAX_HEAD_BYTES:
                    raise HTTPError(f"trailers larger than {MAX_HEAD_BYTES} bytes")

    def _finish(self) -> None:
        self._state = "done"
        self.last_used = time.monotonic()
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 and type(chunks[0]) is bytes else b"".join(chunks)
        self._chunks = []
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(RawResponse(self._status, self._headers, body))

    @property
    def reusable(self) -> bool:
        return self._state == "done" and self._reusable and not self.closed


class ConnectionPool:
    """Kept-alive connections per origin; the caller bounds how many requests run at once."""

    def __init__(self) -> None:
        self._idle: dict[Origin, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._closed = False

    async def get(self, url: str, headers: dict[str, str], *, proxy: str | None = None,
                  maxsize: int = 0) -> RawResponse:
        """GET ``url``; the answer whatever its status. Timeouts are the caller's (``asyncio.timeout``)."""
        origin, target, host_header = split_url(url)
        proxy_auth = None
        if proxy:
            origin = Origin(origin.scheme, origin.host, origin.port, proxy)
            proxy_auth = _proxy_authorization(proxy)
            if origin.scheme == "http":
                target = f"http://{host_header}{target}"  # absolute form, for the proxy, from checked parts
                if proxy_auth:
                    headers = {**headers, "Proxy-Authorization": proxy_auth}
        request = build_request("GET", target, host_header, headers)
        connection, reused = await self._acquire(origin, proxy_auth)
        try:
            try:
                answer = await connection.send(request, maxsize)
            except ClosedBeforeAnswer:
                if not reused:
                    raise
                connection, reused = await self._acquire(origin, proxy_auth, fresh=True)
                answer = await connection.send(request, maxsize)
        except BaseException:
            connection._abort()
            raise
        self._release(origin, connection)
        return answer

    async def close(self) -> None:
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection._abort()
        self._idle.clear()

    async def _acquire(self, origin: Origin, proxy_auth: str | None, fresh: bool = False) -> tuple[_Connection, bool]:
        if self._closed:
            raise HTTPError("connection pool closed")
        idle = self._idle.get(origin)
        if idle is not None and not fresh:
            too_old = time.monotonic() - KEEPALIVE_SECONDS
            found = None
            while idle and found is None:
                connection = idle.pop()
                if not connection.closed and connection.last_used >= too_old:
                    found = connection
                else:
                    connection._abort()
            if not idle:
                del self._idle[origin]  # no entry kept for an origin without idle connections
            if found is not None:
                return found, True
        return await self._connect(origin, proxy_auth), False

    def _release(self, origin: Origin, connection: _Connection) -> None:
        if connection.reusable and not self._closed:
            self._idle.setdefault(origin, []).append(connection)
        else:
            connection._abort()

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["http/1.1"])
            self._ssl = context
        return self._ssl

    async def _connect(self, origin: Origin, proxy_auth: str | None) -> _Connection:
        loop = asyncio.get_running_loop()
        if origin.proxy is None:
            _, connection = await loop.create_connection(
                _Connection, origin.host, origin.port,
                ssl=self._context() if origin.scheme == "https" else None,
                server_hostname=origin.host if origin.scheme == "https" else None,
                happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, interleave=1,
            )
            return connection
        proxy = urlsplit(origin.proxy)
        proxy_tls = proxy.scheme == "https"
        _, connection = await loop.create_connection(
            _Connection, proxy.hostname, proxy.port or (443 if proxy_tls else 80),
            ssl=self._context() if proxy_tls else None,
            server_hostname=proxy.hostname if proxy_tls else None,
            happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, interleave=1,
        )
        if origin.scheme == "http":
            return connection
        try:  # https through the proxy: a CONNECT tunnel, then TLS inside it
            authority = f"[{origin.host}]:{origin.port}" if ":" in origin.host else f"{origin.host}:{origin.port}"
            headers = {"Proxy-Authorization": proxy_auth} if proxy_auth else {}
            answer = await connection.send(build_request("CONNECT", authority, authority, headers), 0, True)
            if not 200 <= answer.status < 300:
                raise ProxyError(f"proxy answered {answer.status} to CONNECT {authority}")
            connection._reset(0)
            transport = await loop.start_tls(connection.transport, connection, self._context(),
                                             server_hostname=origin.host)
            connection.transport = transport  # type: ignore[assignment]
        except BaseException:
            connection._abort()
            raise
        return connection


def _proxy_authorization(proxy: str) -> str | None:
    """``Basic`` credentials from a proxy URL's user and password, as HttpProxyMiddleware sends them."""
    parts = urlsplit(proxy)
    if parts.username is None:
        return None
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return "Basic " + base64.b64encode(credentials.encode("latin-1")).decode("ascii")
