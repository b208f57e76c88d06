"""Hostile HTTP answers to the direct fetcher, byte for byte, from a raw loopback server.

Each answer ends as a recorded reason (the exception the pipeline turns into one) or as the
right bytes; never as another answer's bytes taken for an image.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import pytest
from scrapy import Request
from test_fetcher import Stats, policy

from hotelimages import fetcher as fetcher_module
from hotelimages.fetcher import ImageFetcher
from hotelimages.reasons import download_reason

OK = b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"


def ok(body: bytes) -> bytes:
    return OK % len(body) + body


#: path -> the exact bytes sent back (the connection stays open for the next request)
ANSWERS = {
    "/good": ok(b"good-bytes"),
    "/length-and-chunked": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"5\r\nabcde\r\n0\r\n\r\n"),
    "/two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "/two-lengths-one-line": b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd",
    "/same-length-twice": b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
    "/longer": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + ok(b"smuggled"),
    "/informational": (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
                       + ok(b"final")),
    "/huge-line": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n",
    "/many-headers": b"HTTP/1.1 200 OK\r\n" + b"X-H: v\r\n" * 100_000 + b"Content-Length: 2\r\n\r\nok",
    "/negative-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
    "/huge-chunk": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"ffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    "/big-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nhello",
}
#: path -> bytes sent before the connection is closed
CLOSE_AFTER = {
    "/shorter": b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10,
    "/cut-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100\r\nabc",
}


class RawServer:
    """Reads request heads, writes the scripted bytes; counts connections open and seen."""

    def __init__(self) -> None:
        self.requests: list[tuple[int, bytes]] = []  # (connection number, request line)
        self.connections = 0
        self.open = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        number = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0]
                self.requests.append((number, line))
                path = line.split()[1].decode()
                if path in CLOSE_AFTER:
                    writer.write(CLOSE_AFTER[path])
                    await writer.drain()
                    break
                if path == "/trickle":
                    for byte in ok(b"slow-bytes"):
                        writer.write(bytes([byte]))
                        await writer.drain()
                        await asyncio.sleep(1)
                    continue
                if path.startswith("/then-extra/"):  # an answer, then an unasked one on the idle connection
                    writer.write(ok(b"first-image"))
                    await writer.drain()
                    await asyncio.sleep(0.05)
                    writer.write(ok(b"previous-bytes"))
                    await writer.drain()
                    continue
                writer.write(ANSWERS[path])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


def run(coro_fn, **settings):
    """Start the raw server and a fetcher; returns coro_fn(fetcher, base, server)."""

    async def main():
        server = RawServer()
        base = await server.start()
        fetcher = ImageFetcher(policy(**settings), Stats())
        try:
            return await coro_fn(fetcher, base, server)
        finally:
            await fetcher.close()
            await server.stop()

    return asyncio.run(main())


async def outcome(fetcher: ImageFetcher, url: str) -> tuple[str, bytes | None]:
    """("ok", body) for a 200 answer, (reason, None) for a failure as the pipeline records it."""
    try:
        response = await fetcher.fetch(Request(url))
    except Exception as exc:  # noqa: BLE001 - the reason is what the test checks
        return download_reason(exc), None
    return ("ok", response.body) if response.status == 200 else (f"http_{response.status}", None)


@pytest.mark.parametrize(("path", "expected"), [
    ("/length-and-chunked", ("connection_error", None)),
    ("/two-lengths", ("connection_error", None)),
    ("/two-lengths-one-line", ("connection_error", None)),
    ("/same-length-twice", ("ok", b"abcd")),
    ("/informational", ("ok", b"final")),
    ("/huge-line", ("connection_error", None)),
    ("/many-headers", ("connection_error", None)),
    ("/negative-chunk", ("connection_error", None)),
    ("/huge-chunk", ("connection_error", None)),
    ("/big-chunk", ("timeout", None)),  # never checked against DOWNLOAD_MAXSIZE up front: waits
    ("/shorter", ("data_loss", None)),
    ("/cut-chunked", ("data_loss", None)),
])
def test_hostile_answer_then_a_good_one(path, expected):
    """Each hostile answer ends in its reason, and the next image on the same host gets its own bytes."""

    async def go(fetcher, base, server):
        return await outcome(fetcher, base + path), await outcome(fetcher, base + "/good")

    hostile, good = run(go, RETRY_TIMES=0, DOWNLOAD_TIMEOUT=1)
    assert hostile == expected
    assert good == ("ok", b"good-bytes")


def test_a_body_longer_than_declared_is_cut_and_its_rest_never_served():
    async def go(fetcher, base, server):
        first = await outcome(fetcher, base + "/longer")
        second = await outcome(fetcher, base + "/good")
        return first, second, server.connections

    first, second, connections = run(go, RETRY_TIMES=0)
    assert first == ("ok", b"hello")
    assert second == ("ok", b"good-bytes")  # not the "smuggled" answer left on the first connection
    assert connections == 2


def test_an_unasked_answer_on_a_kept_alive_connection_is_not_the_next_image():
    async def go(fetcher, base, server):
        first = await outcome(fetcher, base + "/then-extra/1")
        await asyncio.sleep(0.2)  # the unasked answer is waiting on the idle connection
        second = await outcome(fetcher, base + "/good")
        return first, second

    first, second = run(go, RETRY_TIMES=0)
    assert first == ("ok", b"first-image")
    assert second == ("ok", b"good-bytes")


def test_a_server_trickling_one_byte_a_second_times_out():
    async def go(fetcher, base, server):
        started = time.monotonic()
        result = await outcome(fetcher, base + "/trickle")
        return result, time.monotonic() - started

    (reason, body), elapsed = run(go, RETRY_TIMES=0, DOWNLOAD_TIMEOUT=2)
    assert (reason, body) == ("timeout", None)
    assert 1.9 < elapsed < 4


def test_hostile_heads_cost_little_cpu():
    """A 1 MB header line and 100,000 headers are refused by libcurl's head limits, not scanned again and again."""

    async def go(fetcher, base, server):
        started = time.process_time()
        for _ in range(5):
            await outcome(fetcher, base + "/huge-line")
            await outcome(fetcher, base + "/many-headers")
        return time.process_time() - started

    cpu = run(go, RETRY_TIMES=0)
    assert cpu < 2.0, cpu  # the whole process: both servers' writes included


def test_bodies_are_not_held_after_their_response_and_idle_connections_close():
    """100 origins x 1 MiB: nothing kept once responses are dropped; idle connections closed on time."""
    body = bytes(range(256)) * 4096  # 1 MiB

    async def go(fetcher, base, server):
        servers = []
        for _ in range(100):
            other = RawServer()
            ANSWERS_BIG = ok(body)

            async def serve(reader, writer, other=other, answer=ANSWERS_BIG):
                other.connections += 1
                other.open += 1
                try:
                    while True:
                        await reader.readuntil(b"\r\n\r\n")
                        writer.write(answer)
                        await writer.drain()
                except (asyncio.IncompleteReadError, ConnectionError):
                    pass
                finally:
                    other.open -= 1
                    writer.close()

            other.server = await asyncio.start_server(serve, "127.0.0.1", 0)
            servers.append(other)
        urls = [f"http://127.0.0.1:{s.server.sockets[0].getsockname()[1]}/img.jpg" for s in servers]
        tracemalloc.start()
        try:
            sizes = []

            async def size(url: str) -> int:  # the response is dropped here, as the pipeline drops it
                response = await fetcher.fetch(Request(url))
                return len(response.body) if response.body == body else -1

            for start in range(0, 100, 10):
                sizes += await asyncio.gather(*(size(u) for u in urls[start:start + 10]))
            # What the fetcher's code allocated and still holds (the servers' own buffers left out).
            snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, fetcher_module.__file__)])
            held = sum(stat.size for stat in snapshot.statistics("filename"))
        finally:
            tracemalloc.stop()
        connections = sum(s.connections for s in servers)
        await asyncio.sleep(2.0)  # HOTELS_CONNECTION_IDLE_SECONDS=1
        open_after_idle = sum(s.open for s in servers)
        for s in servers:
            s.server.close()
        return sizes, held, connections, open_after_idle

    sizes, held, connections, open_after_idle = run(go, HOTELS_CONNECTION_IDLE_SECONDS=1, DOWNLOAD_MAXSIZE=0)
    assert sizes == [len(body)] * 100
    assert held < 1024 * 1024, held  # under one body: no answer kept by an idle connection
    assert connections == 100
    assert open_after_idle == 0
