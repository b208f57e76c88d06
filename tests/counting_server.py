"""A loopback hotel server for the politeness tests that counts what reaches it, per host.

Two listening sockets share one log: listings on 127.0.0.1 and images on 127.0.0.2 (any
127.x address is loopback on Linux), so the nodes see two host names with separate budgets.
Every request is logged as (host, monotonic time, status); every body chunk written as
(host, time, bytes). The image host can be told to refuse: above ``threshold`` requests in the
last second (429, no Retry-After), or once ``pause_after`` images were asked for (429 with
``Retry-After: pause_seconds``, then 429 to everything until the pause is over).
"""

from __future__ import annotations

import io
import json
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

LISTING_HOST = "127.0.0.1"
IMAGE_HOST = "127.0.0.2"
CHUNK = 16 * 1024


def png(seed: int, side: int) -> bytes:
    """A PNG of ``side`` x ``side`` pixels: noise (it does not compress) for side > 16, else plain."""
    rng = random.Random(seed)
    if side <= 16:
        img = Image.new("RGB", (side, side), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    else:
        img = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


@dataclass
class Behaviour:
    images_per_hotel: int = 8
    image_side: int = 8
    threshold: float = 0.0  # image requests per second above which the image host answers 429; 0 = never
    pause_after: int = 0  # answer 429 + Retry-After to the image request with this number; 0 = never
    pause_seconds: int = 5


@dataclass
class Log:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[tuple[str, float, int]] = field(default_factory=list)  # host, time, status
    chunks: list[tuple[str, float, int]] = field(default_factory=list)  # host, time, bytes
    recent: deque = field(default_factory=deque)  # image request times in the last second
    images_asked: int = 0
    pause_started: float | None = None
    pause_until: float = 0.0

    def times(self, host: str, status: int | None = None) -> list[float]:
        with self.lock:
            return [t for h, t, s in self.requests if h == host and (status is None or s == status)]


def max_in_window(times: list[float], start: float, window: float = 1.0) -> int:
    """The most requests in any ``window``-second span that begins at or after ``start``."""
    times = sorted(t for t in times if t >= start)
    best, j = 0, 0
    for i, t in enumerate(times):
        while j < len(times) and times[j] < t + window:
            j += 1
        best = max(best, j - i)
    return best


class CountingServer:
    """Start with ``with CountingServer(Behaviour(...)) as srv:``; ``srv.listing_url`` for HOTEL_LISTING_URL."""

    def __init__(self, behaviour: Behaviour):
        self.behaviour = behaviour
        self.log = Log()
        self._images: dict[int, bytes] = {}
        handler = self._handler()
        self.listing = ThreadingHTTPServer((LISTING_HOST, 0), handler)
        self.images = ThreadingHTTPServer((IMAGE_HOST, 0), handler)
        for srv in (self.listing, self.images):
            srv.daemon_threads = True
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (self.listing, self.images)]

    @property
    def listing_url(self) -> str:
        return f"http://{LISTING_HOST}:{self.listing.server_address[1]}/hotels/{{hotel_id}}/photos"

    def image_url(self, hotel_id: str, index: int) -> str:
        return f"http://{IMAGE_HOST}:{self.images.server_address[1]}/img/{hotel_id}/{index}.png"

    def image(self, seed: int) -> bytes:
        if seed not in self._images:
            self._images[seed] = png(seed, self.behaviour.image_side)
        return self._images[seed]

    def __enter__(self) -> CountingServer:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for srv in (self.listing, self.images):
            srv.shutdown()
            srv.server_close()

    def _refusal(self, now: float) -> dict[str, str] | None:
        """Headers of a 429 for an image request arriving now, or None to serve it."""
        b, log = self.behaviour, self.log
        log.images_asked += 1
        recent = log.recent
        recent.append(now)
        while recent and recent[0] < now - 1.0:
            recent.popleft()
        if now < log.pause_until:
            return {"Retry-After": str(max(1, round(log.pause_until - now)))}
        if b.pause_after and log.pause_started is None and log.images_asked >= b.pause_after:
            log.pause_started, log.pause_until = now, now + b.pause_seconds
            return {"Retry-After": str(b.pause_seconds)}
        if b.threshold and len(recent) > b.threshold:
            return {}
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                host = self.connection.getsockname()[0]
                now = time.monotonic()
                log = server.log
                parts = self.path.strip("/").split("/")
                status, headers, body = 404, {}, b"not found"
                with log.lock:
                    refusal = server._refusal(now) if host == IMAGE_HOST else None
                if refusal is not None:
                    status, headers, body = 429, refusal, b"slow down"
                elif host == LISTING_HOST and len(parts) == 3 and parts[0] == "hotels":
                    hotel = parts[1]
                    images = [{"id": f"{hotel}-{k}", "url": server.image_url(hotel, k), "category": "interior"}
                              for k in range(server.behaviour.images_per_hotel)]
                    status, body = 200, json.dumps({"hotel_id": hotel, "images": images, "next": None}).encode()
                    headers = {"Content-Type": "application/json"}
                elif host == IMAGE_HOST and len(parts) == 3 and parts[0] == "img":
                    seed = hash((parts[1], parts[2])) & 0xFFFF
                    status, body, headers = 200, server.image(seed), {"Content-Type": "image/png"}
                with log.lock:
                    log.requests.append((host, now, status))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for i in range(0, len(body), CHUNK):
                    self.wfile.write(body[i:i + CHUNK])
                    with log.lock:
                        log.chunks.append((host, time.monotonic(), len(body[i:i + CHUNK])))

        return Handler
