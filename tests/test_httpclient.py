"""The lean HTTP/1.1 client: its pure parsing helpers, and real sockets on loopback.

A scripted raw server answers with exact bytes (chunked with extensions and trailers, bodies
ended by close, 1xx answers, cut bodies, malformed heads), so the framing rules are checked
byte for byte; a small CONNECT proxy in front of the aiohttp HTTPS server of test_fetcher checks
tunnels.
"""

from __future__ import annotations

import asyncio
import base64

import pytest
from test_fetcher import BODY, Server, self_signed_context

from hotelimages.httpclient import (
    MAX_HEAD_BYTES,
    BodyCutShort,
    ClosedBeforeAnswer,
    ClosedInHead,
    ConnectionPool,
    HTTPError,
    Origin,
    ProxyError,
    TooLarge,
    body_framing,
    build_request,
    head_end,
    parse_head,
    split_url,
)

PAYLOAD = b"0123456789" * 3000  # 30,000 bytes

#: path -> what the scripted server writes back (None: close without answering)
ANSWERS = {
    "/length": b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(PAYLOAD) + PAYLOAD,
    "/chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"7530;name=value\r\n" + PAYLOAD + b"\r\n0\r\nX-Trailer: yes\r\n\r\n"),
    "/close": b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\n\r\n" + PAYLOAD,
    "/continue": (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
    "/empty": b"HTTP/1.1 204 No Content\r\n\r\n",
    "/cut": b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10,
    "/cut-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nabc",
    "/bad-status": b"HTPT/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "/bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "/huge-head": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (MAX_HEAD_BYTES + 10) + b"\r\n\r\n",
    "/too-large": b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n",  # the body never comes
    "/too-large-chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"7530\r\n" + PAYLOAD + b"\r\n0\r\n\r\n"),
    "/two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "/silent": None,
    "/cut-head": b"HTTP/1.1 200 OK\r\nContent-Le",
    "/extra-crlf": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\r\n",
    "/extra-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n\r\n",
    "/lenient-head": b"HTTP/1.1 200 OK\nNo colon here\nX-Folded: a\n  b\nContent-Length: 5\n\nhello",
    "/hex-prefix": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
    "/long-length": b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
    "/continue-flood": b"HTTP/1.1 100 Continue\r\n\r\n" * 3000 + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
}


class ScriptedServer:
    """A raw TCP server: answers each request from ANSWERS; records request heads and connections.

    ``/once`` is answered on a connection's first request only; a second request on the same
    connection is met with a close, as when a server drops an idle kept-alive connection.
    """

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.connections = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                if head.startswith(b"CONNECT "):
                    head = b"GET " + getattr(self, "connect_path", "/silent").encode() + b" HTTP/1.1\r\n\r\n"
                target = head.split(b" ")[1].decode()
                path = ("/" + target.split("/", 3)[-1] if target.startswith("http") else target).split("?")[0]
                if path == "/once":
                    if served:
                        break
                    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nonce"
                else:
                    answer = ANSWERS[path]
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                served += 1
                if path in ("/close", "/cut", "/cut-chunked", "/cut-head"):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def run(coro_fn):
    """Start the scripted server, run ``coro_fn(pool, base, server)``, stop both."""

    async def main():
        server = ScriptedServer()
        base = await server.start()
        pool = ConnectionPool()
        try:
            async with asyncio.timeout(10):
                return await coro_fn(pool, base, server)
        finally:
            await pool.close()
            await server.stop()

    return asyncio.run(main())


# Framing, against exact bytes


def test_bodies_framed_by_length_chunked_and_close():
    async def go(pool, base, server):
        answers = [await pool.get(f"{base}{path}", {}) for path in ("/length", "/chunked", "/chunked", "/close")]
        return answers, server.connections

    answers, connections = run(go)
    assert [a.status for a in answers] == [200, 200, 200, 200]
    assert all(a.body == PAYLOAD for a in answers)
    assert (b"Transfer-Encoding", b"chunked") in answers[1].headers
    assert connections == 1  # three kept-alive answers on one connection; HTTP/1.0 then closes it


def test_informational_answers_are_skipped_and_204_has_no_body():
    async def go(pool, base, server):
        return await pool.get(f"{base}/continue", {}), await pool.get(f"{base}/empty", {})

    cont, empty = run(go)
    assert (cont.status, cont.body) == (200, b"hello")
    assert (empty.status, empty.body) == (204, b"")


@pytest.mark.parametrize(("path", "error"), [
    ("/cut", BodyCutShort),
    ("/cut-chunked", BodyCutShort),
    ("/cut-head", ClosedInHead),
    ("/hex-prefix", HTTPError),
    ("/long-length", HTTPError),
    ("/bad-status", HTTPError),
    ("/bad-chunk", HTTPError),
    ("/huge-head", HTTPError),
    ("/two-lengths", HTTPError),
    ("/silent", ClosedBeforeAnswer),
])
def test_broken_answers_raise_and_the_connection_is_not_reused(path, error):
    async def go(pool, base, server):
        with pytest.raises(error):
            await pool.get(f"{base}{path}", {})
        ok = await pool.get(f"{base}/length", {})
        return ok, server.connections

    ok, connections = run(go)
    assert ok.body == PAYLOAD and connections == 2


def test_bytes_beyond_the_body_end_the_answer_and_the_connection():
    """A stray CRLF after the body (some servers send one): the body is whole, the connection not reused."""
    async def go(pool, base, server):
        answers = [await pool.get(f"{base}{path}", {}) for path in ("/extra-crlf", "/extra-chunked", "/length")]
        return answers, server.connections

    answers, connections = run(go)
    assert [a.body for a in answers] == [b"hello", b"hello", PAYLOAD]
    assert connections == 3


def test_lenient_heads_are_read_as_scrapy_reads_them():
    """Bare LF line ends, a line without a colon (skipped), a folded header (joined); 1xx answers
    in any number."""
    async def go(pool, base, server):
        return await pool.get(f"{base}/lenient-head", {}), await pool.get(f"{base}/continue-flood", {})

    lenient, flood = run(go)
    assert (lenient.status, lenient.body) == (200, b"hello")
    assert lenient.headers == [(b"X-Folded", b"a b"), (b"Content-Length", b"5")]
    assert (flood.status, flood.body) == (200, b"ok")


def test_maxsize_from_content_length_before_the_body_and_while_reading():
    async def go(pool, base, server):
        with pytest.raises(TooLarge) as announced:
            await pool.get(f"{base}/too-large", {}, maxsize=1000)  # would hang if it waited for the body
        with pytest.raises(TooLarge) as streamed:
            await pool.get(f"{base}/too-large-chunked", {}, maxsize=1000)
        return announced.value, streamed.value, await pool.get(f"{base}/length", {}, maxsize=len(PAYLOAD))

    announced, streamed, exact = run(go)
    assert announced.expected == 5000 and streamed.expected is None
    assert exact.body == PAYLOAD


def test_a_kept_alive_connection_the_server_dropped_is_retried_once_on_a_new_one():
    async def go(pool, base, server):
        first = await pool.get(f"{base}/once", {})
        second = await pool.get(f"{base}/once", {})  # the pooled connection is closed on this request
        return first, second, server.connections

    first, second, connections = run(go)
    assert first.body == second.body == b"once" and connections == 2


def test_request_head_carries_host_and_headers():
    async def go(pool, base, server):
        await pool.get(f"{base}/length?x=1&y=%20", {"User-Agent": "ua/1", "Host": "ignored", "X-Multi": "a\r\nb"})
        return server.heads[0], base

    head, base = run(go)
    lines = head.decode().split("\r\n")
    assert lines[0] == "GET /length?x=1&y=%20 HTTP/1.1"
    assert f"Host: {base.split('//')[1]}" in lines and "User-Agent: ua/1" in lines
    assert "X-Multi: a b" in lines  # CR LF in a value become a space, as Twisted sends it
    assert sum(line.lower().startswith("host:") for line in lines) == 1


# Proxies


def test_http_urls_go_to_an_http_proxy_in_absolute_form_with_credentials():
    async def go(pool, base, server):
        proxy = base.replace("http://", "http://user:p%40ss@")
        answer = await pool.get("http://cdn.invalid:8080/length#frag", {}, proxy=proxy)
        return answer, server.heads[0]

    answer, head = run(go)
    assert answer.body == PAYLOAD
    lines = head.decode().split("\r\n")
    assert lines[0] == "GET http://cdn.invalid:8080/length HTTP/1.1"  # the fragment is not sent
    assert "Host: cdn.invalid:8080" in lines
    assert f"Proxy-Authorization: Basic {base64.b64encode(b'user:p@ss').decode()}" in lines


class TunnelProxy:
    """A CONNECT proxy that pipes every tunnel to ``target_port``; records CONNECT heads."""

    def __init__(self, target_port: int, refuse: bool = False) -> None:
        self.target_port = target_port
        self.refuse = refuse
        self.heads: list[bytes] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return f"http://u:pw@127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.heads.append(await reader.readuntil(b"\r\n\r\n"))
        if self.refuse:
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def test_bytes_after_a_proxys_connect_answer_end_the_tunnel():
    async def go(pool, base, server):
        ANSWERS["/junk-connect"] = b"HTTP/1.1 200 Connection established\r\n\r\n\x16junk"
        try:
            with pytest.raises(HTTPError):  # not a TLS handshake waiting for the timeout
                await pool.get("https://cdn.test/a.jpg", {}, proxy=base)
        finally:
            del ANSWERS["/junk-connect"]

    ScriptedServer.connect_path = "/junk-connect"
    try:
        run(go)
    finally:
        del ScriptedServer.connect_path


@pytest.mark.parametrize("refuse", [False, True])
def test_https_urls_go_through_a_connect_tunnel(tmp_path, refuse):
    context = self_signed_context(tmp_path)

    async def main():
        server = Server()
        base = await server.start(ssl_context=context)
        proxy = TunnelProxy(int(base.rsplit(":", 1)[1]), refuse)
        proxy_url = await proxy.start()
        pool = ConnectionPool()
        try:
            async with asyncio.timeout(10):
                if refuse:
                    with pytest.raises(ProxyError):
                        await pool.get("https://cdn.test/img/a.jpg", {}, proxy=proxy_url)
                    return None, proxy.heads
                answers = [await pool.get(f"https://cdn.test/img/{n}.jpg", {}, proxy=proxy_url) for n in range(3)]
                return answers, proxy.heads
        finally:
            await pool.close()
            proxy.server.close()
            await server.stop()

    answers, heads = asyncio.run(main())
    lines = heads[0].decode().split("\r\n")
    assert lines[0] == "CONNECT cdn.test:443 HTTP/1.1"
    assert f"Proxy-Authorization: Basic {base64.b64encode(b'u:pw').decode()}" in lines
    if not refuse:
        assert [a.body == BODY for a in answers] == [True] * 3
        assert len(heads) == 1  # one tunnel, kept alive for all three


# Pure helpers


def test_split_url():
    assert split_url("http://Cdn.Example/a/b.jpg?x=1#frag") == (Origin("http", "cdn.example", 80), "/a/b.jpg?x=1",
                                                                "cdn.example")
    assert split_url("https://h:8443") == (Origin("https", "h", 8443), "/", "h:8443")
    assert split_url("https://h:443/x") == (Origin("https", "h", 443), "/x", "h")
    assert split_url("http://[::1]:81/x")[2] == "[::1]:81"
    for bad in ("ftp://h/x", "http:///x", "http://h:99999/x", "http://h/a b", "http://h/a\r\nX: y"):
        with pytest.raises(ValueError):
            split_url(bad)


def test_build_request_refuses_header_injection():
    head = build_request("GET", "/x", "h", {"A": "1", "B": "2\r\nInjected: 3"})
    assert head == b"GET /x HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2 Injected: 3\r\n\r\n"
    for name in ("A\nB", "A:B", ""):
        with pytest.raises(ValueError):
            build_request("GET", "/x", "h", {name: "1"})


def test_parse_head_and_body_framing():
    status, version, headers = parse_head(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nX-A:  b ")
    assert (status, version, headers) == (404, b"HTTP/1.1", [(b"Content-Length", b"3"), (b"X-A", b"b")])
    assert parse_head(b"HTTP/1.1 200")[0] == 200  # no reason phrase
    assert parse_head(b"HTTP/1.1 200 OK\r\nno colon\r\n X: y\r\nA: 1\r\n\tmore")[2] == [(b"A", b"1 more")]
    for bad in (b"HTTP/2 200 OK", b"HTTP/1.1 20 OK", b"HTTP/1.1 OK 200"):
        with pytest.raises(HTTPError):
            parse_head(bad)
    assert head_end(b"HTTP/1.1 200 OK\r\nA: 1\r\n\r\nbody") == (21, 25)
    assert head_end(b"HTTP/1.1 200 OK\nA: 1\n\nbody") == (20, 22)
    assert head_end(b"HTTP/1.1 200 OK\r\nA: 1\r\n") == (-1, -1)
    assert body_framing(200, b"HTTP/1.1", [(b"Content-Length", b"5")]) == ("length", 5, True)
    assert body_framing(200, b"HTTP/1.1", [(b"Content-Length", b"5"), (b"Connection", b"close")]) == \
        ("length", 5, False)
    assert body_framing(200, b"HTTP/1.1", [(b"Transfer-Encoding", b"gzip, chunked")]) == ("chunked", 0, True)
    assert body_framing(200, b"HTTP/1.0", [(b"Content-Length", b"5")]) == ("length", 5, False)
    assert body_framing(200, b"HTTP/1.0", [(b"Content-Length", b"5"), (b"Connection", b"Keep-Alive")]) == \
        ("length", 5, True)
    assert body_framing(200, b"HTTP/1.1", []) == ("close", 0, False)
    assert body_framing(304, b"HTTP/1.1", [(b"Content-Length", b"5")]) == ("none", 0, True)
    assert body_framing(200, b"HTTP/1.1", [(b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"5")]) == \
        ("chunked", 0, False)  # both: the length is ignored and the connection not reused (RFC 9112 6.3)
    for bad in (b"-1", b"1" * 19, b"5, 6"):
        with pytest.raises(HTTPError):
            body_framing(200, b"HTTP/1.1", [(b"Content-Length", bad)])
