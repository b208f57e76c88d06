"""The direct image fetcher against a real HTTP server on loopback (aiohttp.web), and its pure helpers."""

from __future__ import annotations

import asyncio
import gzip
import zlib

import pytest
from aiohttp import web
from crawling import VOLATILE, demo_server, files_under, recorded_manifest, run_crawl, scratch_db
from scrapy import Request
from scrapy.exceptions import (
    DownloadConnectionRefusedError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
)
from scrapy.settings import Settings
from scrapy.statscollectors import MemoryStatsCollector

from devtools import demo_hotels as catalogue
from devtools.localredis import free_port
from hotelimages.fetcher import FetchPolicy, ImageFetcher, decode_body, proxy_url, redirect_url
from hotelimages.keys import Keys
from hotelimages.reasons import download_reason

BODY = bytes(range(256)) * 400  # 102,400 bytes


class Stats(MemoryStatsCollector):
    def __init__(self) -> None:
        self._stats: dict = {}


class Server:
    """A real aiohttp.web server with the routes the tests need; counts connections and concurrency."""

    def __init__(self) -> None:
        self.transports: set = set()  # the connections that served images (kept referenced: ids stay unique)
        self.active = 0
        self.max_active = 0
        self.hits: dict[str, int] = {}
        self.headers: list[dict[str, str]] = []

    async def start(self, port: int | None = None, ssl_context=None) -> str:
        """Listen on ``port`` (a free one by default); returns the base URL."""
        app = web.Application()
        app.router.add_get("/img/{name}", self.image)
        app.router.add_get("/chunked/{size}", self.chunked)
        app.router.add_get("/flaky/{fails}", self.flaky)
        app.router.add_get("/redirect/{n}", self.redirect)
        app.router.add_get("/file", self.to_file)
        app.router.add_get("/cut", self.cut)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/gzip/{size}", self.gzipped)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        port = port or free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port, ssl_context=ssl_context).start()
        return f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"

    async def stop(self) -> None:
        await self.runner.cleanup()

    async def image(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        self.transports.add(request.transport)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        await asyncio.sleep(0.005)
        self.active -= 1
        return web.Response(body=BODY, content_type="image/jpeg")

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        size = int(request.match_info["size"])
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for start in range(0, size, 10_000):
            await resp.write(b"x" * min(10_000, size - start))
        await resp.write_eof()
        return resp

    async def flaky(self, request: web.Request) -> web.Response:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        if self.hits[request.path] <= int(request.match_info["fails"]):
            return web.Response(status=503, text="busy")
        return web.Response(body=BODY)

    async def redirect(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        target = f"../redirect/{n - 1}" if n > 0 else "/img/final.jpg"
        return web.Response(status=302, headers={"Location": target})

    async def to_file(self, request: web.Request) -> web.Response:
        return web.Response(status=301, headers={"Location": "file:///etc/passwd"})

    async def cut(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(len(BODY))})
        await resp.prepare(request)
        await resp.write(BODY[:1000])
        request.transport.close()  # the connection drops halfway
        return resp

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(body=BODY)

    async def gzipped(self, request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(b"\0" * int(request.match_info["size"])),
                            headers={"Content-Encoding": "gzip"})


def policy(**overrides) -> FetchPolicy:
    settings = Settings({"USER_AGENT": "hotelimages-test/1", "DOWNLOAD_TIMEOUT": 5, "RETRY_TIMES": 2,
                         "CONCURRENT_REQUESTS_PER_DOMAIN": 4, "CONCURRENT_REQUESTS": 16,
                         "DOWNLOAD_MAXSIZE": 1_000_000, "DOWNLOAD_WARNSIZE": 0, "REDIRECT_MAX_TIMES": 5,
                         "MEDIA_ALLOW_REDIRECTS": True})
    settings.setdict(overrides, priority="cmdline")
    return FetchPolicy.from_settings(settings)


def run(coro_fn, fetch_policy: FetchPolicy | None = None, stopping=lambda: False, port: int | None = None,
        ssl_context=None):
    """Start the server, run ``coro_fn(fetcher, base_url, server)``, stop both; returns (result, server, stats)."""

    async def main():
        server = Server()
        base = await server.start(port, ssl_context)
        stats = Stats()
        fetcher = ImageFetcher(fetch_policy or policy(), stats, stopping)
        try:
            return await coro_fn(fetcher, base, server), server, stats
        finally:
            await fetcher.close()
            await server.stop()

    return asyncio.run(main())


def test_images_reuse_kept_alive_connections_within_the_per_host_limit():
    async def go(fetcher, base, server):
        return await asyncio.gather(*[fetcher.fetch(Request(f"{base}/img/{n}.jpg")) for n in range(60)])

    responses, server, stats = run(go)
    assert [r.status for r in responses] == [200] * 60
    assert all(r.body == BODY for r in responses)
    assert 2 <= server.max_active <= 4 and 1 <= len(server.transports) <= 4, (server.max_active, server.transports)
    assert stats.get_value("hotelimages/fetch/requests") == 60
    assert server.headers[0]["User-Agent"] == "hotelimages-test/1"
    assert "gzip" in server.headers[0]["Accept-Encoding"]


def test_chunked_body_is_read_whole_and_cut_at_maxsize():
    async def go(fetcher, base, server):
        ok = await fetcher.fetch(Request(f"{base}/chunked/55555"))
        with pytest.raises(IgnoreRequest) as too_big:
            await fetcher.fetch(Request(f"{base}/chunked/1000001"))
        return ok, too_big.value

    (ok, too_big), _, _ = run(go)
    assert ok.body == b"x" * 55555 and "Content-Length" not in ok.headers
    assert download_reason(too_big) == "too_large"


def test_retry_http_codes_then_success_or_the_last_answer():
    async def go(fetcher, base, server):
        return await fetcher.fetch(Request(f"{base}/flaky/2")), await fetcher.fetch(Request(f"{base}/flaky/3"))

    (recovered, gave_up), server, stats = run(go)
    assert recovered.status == 200 and recovered.body == BODY
    assert gave_up.status == 503  # RETRY_TIMES=2: three answers, the last one is returned
    assert server.hits == {"/flaky/2": 3, "/flaky/3": 3}
    assert stats.get_value("hotelimages/fetch/retries") == 4


def test_redirects_are_followed_to_http_only_and_bounded():
    async def go(fetcher, base, server):
        followed = await fetcher.fetch(Request(f"{base}/redirect/3"))
        refused = await fetcher.fetch(Request(f"{base}/file"))
        with pytest.raises(IgnoreRequest) as loop:
            await fetcher.fetch(Request(f"{base}/redirect/9"))
        return followed, refused, loop.value

    async def not_followed(fetcher, base, server):
        return await fetcher.fetch(Request(f"{base}/redirect/1"))

    unfollowed, _, _ = run(not_followed, policy(MEDIA_ALLOW_REDIRECTS=False))
    assert unfollowed.status == 302  # as Scrapy's media pipelines without MEDIA_ALLOW_REDIRECTS
    (followed, refused, loop), _, _ = run(go)
    assert followed.status == 200 and followed.url.endswith("/img/final.jpg")
    assert followed.request.meta["redirect_urls"][0].endswith("/redirect/3")
    assert refused.status == 301 and refused.headers[b"Location"] == b"file:///etc/passwd"
    assert download_reason(loop) == "redirect_loop"


def test_network_errors_raise_what_scrapy_raises():
    port = free_port()  # nothing listens there

    async def go(fetcher, base, server):
        errors = []
        for url in (f"http://127.0.0.1:{port}/x.jpg", f"{base}/cut", f"{base}/slow"):
            with pytest.raises(Exception) as caught:
                await fetcher.fetch(Request(url))
            errors.append(caught.value)
        return errors

    errors, _, stats = run(go, policy(DOWNLOAD_TIMEOUT=0.5, RETRY_TIMES=1))
    assert [type(e) for e in errors] == [DownloadConnectionRefusedError, ResponseDataLossError, DownloadTimeoutError]
    assert [download_reason(e) for e in errors] == ["connection_refused", "data_loss", "timeout"]
    assert stats.get_value("hotelimages/fetch/retries") == 3  # each retried once


def test_gzip_bodies_are_decoded_and_bombs_refused():
    async def go(fetcher, base, server):
        small = await fetcher.fetch(Request(f"{base}/gzip/5000"))
        with pytest.raises(IgnoreRequest) as bomb:
            await fetcher.fetch(Request(f"{base}/gzip/50000000"))
        return small, bomb.value

    (small, bomb), _, _ = run(go)
    assert small.body == b"\0" * 5000
    assert download_reason(bomb) == "decompression_bomb"


def test_a_closed_fetcher_fetches_nothing():
    async def go(fetcher, base, server):
        await fetcher.fetch(Request(f"{base}/img/a.jpg"))
        await fetcher.close()
        with pytest.raises(IgnoreRequest):
            await fetcher.fetch(Request(f"{base}/img/b.jpg"))
        return len(server.headers)

    seen, _, stats = run(go)
    assert seen == 1 and stats.get_value("hotelimages/fetch/requests") == 1


def test_a_stopping_node_fetches_nothing():
    async def go(fetcher, base, server):
        with pytest.raises(IgnoreRequest):
            await fetcher.fetch(Request(f"{base}/img/a.jpg"))
        return server.headers

    seen, _, _ = run(go, stopping=lambda: True)
    assert seen == []


def test_proxy_from_the_environment_and_no_proxy(monkeypatch):
    """http_proxy sends requests to the proxy (here our server, which answers for any host); no_proxy does not."""
    port = free_port()
    monkeypatch.setenv("http_proxy", f"127.0.0.1:{port}")  # no scheme: filled in as Scrapy does
    monkeypatch.setenv("no_proxy", "direct.invalid")

    async def go(fetcher, base, server):
        proxied = await fetcher.fetch(Request("http://cdn.invalid/img/a.jpg"))
        with pytest.raises(Exception) as direct:  # no proxy: the .invalid name cannot resolve
            await fetcher.fetch(Request("http://direct.invalid/img/b.jpg"))
        return proxied, direct.value

    (proxied, direct), server, _ = run(go, policy(RETRY_TIMES=0), port=port)
    assert proxied.status == 200 and proxied.body == BODY
    assert server.headers[0]["Host"] == "cdn.invalid" and len(server.headers) == 1
    assert download_reason(direct) in ("dns_error", "connection_error")


def self_signed_context(tmp_path):
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1."""
    import datetime
    import ipaddress
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


def test_https_images_with_a_self_signed_certificate(tmp_path):
    """CDNs are HTTPS; like Scrapy's default context factory, certificates are not verified."""
    context = self_signed_context(tmp_path)

    async def go(fetcher, base, server):
        return await asyncio.gather(*[fetcher.fetch(Request(f"{base}/img/{n}.jpg")) for n in range(20)])

    responses, server, _ = run(go, ssl_context=context)
    assert responses[0].url.startswith("https://")
    assert [r.body == BODY for r in responses] == [True] * 20
    assert 1 <= len(server.transports) <= 4  # TLS connections kept alive and reused


# Pure helpers


def test_redirect_url_joins_like_scrapy():
    assert redirect_url("http://a/b/c?x=1", b"/d") == "http://a/d"
    assert redirect_url("https://a/b/c", b"//cdn/e.jpg") == "https://cdn/e.jpg"
    assert redirect_url("http://a/b/c#frag", b"d") == "http://a/b/d#frag"
    assert redirect_url("http://a/", "/caf\u00e9.jpg") == "http://a/caf%C3%A9.jpg"
    assert redirect_url("http://a/", "/caf\u00e9.jpg".encode()) == "http://a/caf%C3%A9.jpg"  # raw UTF-8 header


def test_proxy_url_is_filled_in_like_scrapys():
    assert proxy_url("proxy.example:3128", "http") == "http://proxy.example:3128"
    assert proxy_url("https://u:p%40ss@proxy:1", "http") == "https://u:p%40ss@proxy:1"


def test_decode_body():
    raw = b"hello" * 100
    assert decode_body(gzip.compress(raw), "gzip", 0) == raw
    assert decode_body(gzip.compress(raw) + gzip.compress(b"tail"), "gzip", 0) == raw + b"tail"  # two members
    assert decode_body(zlib.compress(raw), "deflate", 10_000) == raw
    raw_deflate = zlib.compressobj(wbits=-15)
    assert decode_body(raw_deflate.compress(raw) + raw_deflate.flush(), "deflate", 10_000) == raw
    assert decode_body(raw, "br", 10) == raw  # not ours to decode: the image check rejects it
    assert decode_body(b"not gzip", "gzip", 10) == b"not gzip"
    with pytest.raises(IgnoreRequest):
        decode_body(gzip.compress(raw), "gzip", 499)


def test_policy_follows_scrapy_settings():
    off = policy(RETRY_ENABLED=False, REDIRECT_ENABLED=False, HTTPPROXY_ENABLED=False)
    assert off.retry_times == 0 and not off.follow_redirects and not off.use_proxies
    assert not policy(MEDIA_ALLOW_REDIRECTS=False).follow_redirects
    on = policy(RETRY_HTTP_CODES=[503], CONCURRENT_REQUESTS_PER_DOMAIN=3)
    assert on.retry_http_codes == frozenset({503}) and on.per_host == 3 and on.retry_times == 2
    assert dict(on.headers)["User-Agent"] == "hotelimages-test/1"


def test_curl_errors_map_to_scrapys_exceptions():
    import errno

    import pycurl
    from scrapy.exceptions import CannotResolveHostError, DownloadFailedError

    from hotelimages.fetcher import curl_exception

    url = "http://h/a.jpg"
    cases = [
        ((pycurl.E_OPERATION_TIMEDOUT, 0), DownloadTimeoutError, "timeout"),
        ((pycurl.E_COULDNT_RESOLVE_HOST, 0), CannotResolveHostError, "dns_error"),
        ((pycurl.E_COULDNT_CONNECT, errno.ECONNREFUSED), DownloadConnectionRefusedError, "connection_refused"),
        ((pycurl.E_COULDNT_CONNECT, errno.ENETUNREACH), DownloadFailedError, "connection_error"),
        ((pycurl.E_PARTIAL_FILE, 0), ResponseDataLossError, "data_loss"),
        ((pycurl.E_GOT_NOTHING, 0), DownloadFailedError, "connection_error"),  # as Scrapy: no data loss before the body
        ((pycurl.E_RECV_ERROR, errno.ECONNRESET), DownloadFailedError, "connection_error"),
        ((pycurl.E_FILESIZE_EXCEEDED, 0), IgnoreRequest, "too_large"),
    ]
    for (code, os_errno), expected, reason in cases:
        exc = curl_exception(code, "message", url, 5.0, os_errno, 5000, 1000)
        assert type(exc) is expected and download_reason(exc) == reason, (code, exc)
    refused = curl_exception(pycurl.E_WRITE_ERROR, "", url, 5.0, refusal="two different Content-Length values")
    assert download_reason(refused) == "connection_error" and "Content-Length" in str(refused)


def test_tls_verification_is_a_setting(tmp_path):
    """Off by default (as Scrapy); on, a self-signed certificate is refused and recorded as a TLS error."""
    context = self_signed_context(tmp_path)

    async def go(fetcher, base, server):
        try:
            return (await fetcher.fetch(Request(f"{base}/img/a.jpg"))).status
        except Exception as exc:  # noqa: BLE001
            return download_reason(exc)

    assert run(go, ssl_context=context)[0] == 200
    assert run(go, policy(HOTELS_TLS_VERIFY=True, RETRY_TIMES=0), ssl_context=context)[0] == "tls_error"


def test_fetcher_settings_are_read_and_checked():
    from hotelimages.config import HotelsConfig

    options = policy(HOTELS_HTTP2="true", HOTELS_DNS_CACHE_SECONDS=5, HOTELS_CONNECTION_IDLE_SECONDS=2.5).options
    assert options.http2 and not options.tls_verify
    assert (options.dns_cache_seconds, options.connection_idle_seconds) == (5, 2.5)
    for name, bad in (("HOTELS_TLS_VERIFY", "maybe"), ("HOTELS_DNS_CACHE_SECONDS", -1),
                      ("HOTELS_CONNECTION_IDLE_SECONDS", 0)):
        with pytest.raises(ValueError, match=name):
            HotelsConfig.from_settings(Settings({name: bad}))


class Socks5Proxy:
    """A minimal SOCKS5 proxy (no authentication, CONNECT only) that records where it was asked to go."""

    def __init__(self) -> None:
        self.targets: list[tuple[str, int]] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def serve(self, reader, writer) -> None:
        try:
            _, methods = await reader.readexactly(2)
            await reader.readexactly(methods)
            writer.write(b"\x05\x00")
            _, _, _, kind = await reader.readexactly(4)
            if kind == 3:
                host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
            else:
                host = ".".join(str(b) for b in await reader.readexactly(4))
            port = int.from_bytes(await reader.readexactly(2), "big")
            self.targets.append((host, port))
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"\x05\x00\x00\x01" + bytes(4) + b"\x00\x00")

            async def pipe(src, dst):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
                dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def test_a_socks5_proxy_from_the_environment(monkeypatch):
    """The proxy variable's scheme is honoured: socks5h:// sends the host name to the proxy to resolve."""
    proxy = Socks5Proxy()

    async def main():
        monkeypatch.setenv("http_proxy", f"socks5h://127.0.0.1:{await proxy.start()}")
        server = Server()
        port = (await server.start()).rsplit(":", 1)[1]
        fetcher = ImageFetcher(policy(RETRY_TIMES=0), Stats())
        try:
            return await fetcher.fetch(Request(f"http://cdn.invalid:{port}/img/a.jpg")), server
        finally:
            await fetcher.close()
            await server.stop()
            proxy.server.close()

    response, server = asyncio.run(main())
    assert response.status == 200 and response.body == BODY
    assert proxy.targets[0][0] == "cdn.invalid" and server.headers[0]["Host"].startswith("cdn.invalid")


# ---------------------------------------------------------------- end to end: direct == scrapy

KEYS = Keys()


#: Every image fault of the demo server, on hotels spread over the crawl. A hotel's first matching
#: fault is the one served, so the rarest come first and each is served somewhere in 60 hotels.
ALL_IMAGE_FAULTS = ",".join(
    f"{name}:{every}" for name, every in zip(catalogue.IMAGE_FAULTS, (37, 31, 29, 23, 19, 17, 13, 11, 7, 5, 3),
                                             strict=True)
)
#: The demo server renders each image on first request, on one thread: fewer concurrent requests
#: and a timeout well above its answer times keep listings from timing out on a busy machine.
FAULT_SETTINGS = ["DOWNLOAD_TIMEOUT=2.5", "RETRY_TIMES=1", "DOWNLOAD_MAXSIZE=2000000", "REDIRECT_MAX_TIMES=3",
                  "CONCURRENT_REQUESTS_PER_DOMAIN=8"]


def test_direct_fetcher_records_what_scrapys_downloader_records(redis_server, tmp_path):
    """HOTELS_IMAGE_FETCHER=direct (our HTTP client) and =scrapy: same files, manifests and reasons, every fault."""
    ids = catalogue.hotel_ids(60)
    results = {}
    # One server for both crawls: image URLs (and the IDs derived from them) must be equal. The
    # direct fetcher goes first, so it is the one that meets the "500 once" answers and retries.
    with demo_server(len(ids), ALL_IMAGE_FAULTS, slow_seconds=6) as base_url:
        for db, fetcher in ((4012, "direct"), (4013, "scrapy")):
            with scratch_db(redis_server, db) as (url, client):
                client.lpush(KEYS.start_ids, *ids)
                proc = run_crawl(url, base_url, tmp_path / fetcher, "node-fetch", *FAULT_SETTINGS,
                                 f"HOTELS_IMAGE_FETCHER={fetcher}")
                assert proc.returncode == 0, proc.stderr[-2000:]
                done = [h.decode() for h in client.hkeys(KEYS.manifests)]
                results[fetcher] = {h: recorded_manifest(client, h) for h in done}
                assert client.hlen(KEYS.failed) == 0, client.hgetall(KEYS.failed)
            if fetcher == "direct":
                plan = catalogue.parse_faults(ALL_IMAGE_FAULTS)
                once = sum("f=image_500_once" in entry["url"]
                           for h in ids for entry in catalogue.listing_entries(base_url, h, plan))
                assert once and f"'hotelimages/fetch/status/500': {once}," in proc.stderr
    assert files_under(tmp_path / "scrapy") == files_under(tmp_path / "direct")
    assert len(files_under(tmp_path / "direct")) > 200
    assert sorted(results["scrapy"]) == sorted(results["direct"]) == sorted(ids)
    reasons = set()
    for hid in ids:
        a = {k: v for k, v in results["scrapy"][hid].items() if k not in VOLATILE}
        b = {k: v for k, v in results["direct"][hid].items() if k not in VOLATILE}
        assert a == b, (hid, a, b)
        reasons.update(f["reason"] for f in b.get("failed", []))
    assert reasons >= {
        "http_404", "truncated", "not_an_image", "timeout", "redirect_loop", "disallowed_scheme",
        "decompression_bomb", "too_large",
    }, reasons
