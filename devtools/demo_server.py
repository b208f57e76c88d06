"""The demo hotel server: listings and image bytes of the synthetic catalogue, over HTTP.

Routes: ``/hotels/<id>/photos?page=N`` (the listing contract, ``PAGE_SIZE`` images
a page, ``next`` links) and ``/img/<id>/<index>/<name>.<ext>`` (image bytes from
memory). Fault injection follows ``demo_hotels.parse_faults``. ``python -m devtools.demo_server``
(``scripts/demo_server.py``) serves it on loopback and prints its base URL when ready.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, urlsplit

from twisted.internet import reactor
from twisted.web import resource, server

from devtools import demo_hotels as cat

logger = logging.getLogger(__name__)


class DemoServer(resource.Resource):
    """A leaf resource answering every route of the demo catalogue."""

    isLeaf = True

    def __init__(self, hotels: int, first_id: int = cat.FIRST_ID, faults: dict[str, int] | None = None,
                 slow_seconds: float = 3.0):
        super().__init__()
        self.first_id = first_id
        self.last_id = first_id + hotels - 1
        self.faults = faults or {}
        self.slow_seconds = slow_seconds
        self.hits: Counter[str] = Counter()
        self.connections = 0
        self.image_connections = 0  # connections that served at least one image

    def render_GET(self, request: Any) -> bytes | int:
        parts = urlsplit(request.uri.decode("latin-1"))
        segments = [s for s in parts.path.split("/") if s]
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.hits[parts.path + "?" + parts.query] += 1
        if segments == ["healthz"]:
            return b"ok"
        if segments == ["stats"]:  # for tests: how many TCP connections clients opened
            request.setHeader(b"content-type", b"application/json")
            return json.dumps({"connections": self.connections, "image_connections": self.image_connections}).encode()
        if len(segments) == 3 and segments[0] == "hotels" and segments[2] == "photos":
            return self._listing(request, segments[1], int(query.get("page", "1")), parts)
        if len(segments) == 4 and segments[0] == "img":
            if not getattr(request.channel, "served_image", False):
                request.channel.served_image = True
                self.image_connections += 1
            return self._image(request, segments[1], segments[2], query.get("f", ""), parts)
        return self._error(request, 404)

    def _known(self, hotel_id: str) -> bool:
        return hotel_id.isdigit() and self.first_id <= int(hotel_id) <= self.last_id

    def _listing(self, request: Any, hotel_id: str, page: int, parts: Any) -> bytes | int:
        if not self._known(hotel_id):
            return self._error(request, 404)
        faults = cat.faults_for(hotel_id, self.faults)
        if "listing_404" in faults:
            return self._error(request, 404)
        if "listing_500_once" in faults and self.hits[parts.path + "?" + parts.query] == 1:
            return self._error(request, 500)
        if "listing_malformed" in faults:
            request.setHeader(b"content-type", b"application/json")
            return b'{"hotel_id": "' + hotel_id.encode() + b'", "images": [{"id": '
        if "listing_empty" in faults:
            return b""
        if "listing_redirect_loop" in faults:
            request.redirect(parts.path.encode())
            return b""
        if "listing_gzip_bomb" in faults:
            request.setHeader(b"content-encoding", b"gzip")
            request.setHeader(b"content-type", b"application/json")
            return cat.gzip_bomb()
        if "listing_huge" in faults:
            big = [{"id": str(n), "url": f"http://{request.getHeader('host')}/img/{hotel_id}/0/{n}.jpg"}
                   for n in range(2000)]
            return json.dumps({"hotel_id": hotel_id, "images": big, "next": None}).encode()
        base = f"http://{request.getHeader('host') or 'localhost'}"
        images = cat.listing_entries(base, hotel_id, self.faults)
        start = (page - 1) * cat.PAGE_SIZE
        entries = images[start:start + cat.PAGE_SIZE]
        more = start + cat.PAGE_SIZE < len(images)
        doc = {"hotel_id": hotel_id, "images": entries,
               "next": f"{base}/hotels/{hotel_id}/photos?page={page + 1}" if more else None}
        body = json.dumps(doc).encode()
        request.setHeader(b"content-type", b"application/json")
        if "listing_slow" in faults:
            return self._later(request, body)
        return body

    def _image(self, request: Any, hotel_id: str, index_text: str, fault: str, parts: Any) -> bytes | int:
        if not self._known(hotel_id) or not index_text.isdigit():
            return self._error(request, 404)
        index = int(index_text)
        images = cat.hotel_images(hotel_id)
        if index >= len(images):
            return self._error(request, 404)
        if fault == "image_404":
            return self._error(request, 404)
        if fault == "image_500_once" and self.hits[parts.path + "?" + parts.query] == 1:
            return self._error(request, 500)
        if fault == "image_redirect":
            request.redirect(parts.path.encode())
            return b""
        if fault == "image_redirect_loop":
            request.redirect((parts.path + "?" + parts.query).encode())
            return b""
        if fault == "image_redirect_file":
            request.redirect(b"file:///etc/passwd")
            return b""
        if fault == "image_gzip_bomb":
            request.setHeader(b"content-encoding", b"gzip")
            request.setHeader(b"content-type", b"image/jpeg")
            return cat.gzip_bomb()
        if fault == "image_huge":
            request.setHeader(b"content-type", b"image/jpeg")
            return cat.image_bytes(hotel_id, index) + b"\0" * (3 << 20)
        if fault == "image_bomb":
            request.setHeader(b"content-type", b"image/png")
            return cat.pixel_bomb()
        body = cat.image_bytes(hotel_id, index)
        request.setHeader(b"content-type", f"image/{images[index].format.lower()}".encode())
        if fault == "image_truncated":
            return body[: len(body) // 2]
        if fault == "image_html":
            request.setHeader(b"content-type", b"image/jpeg")
            return b"<html><body>Sorry, this photo is not available</body></html>"
        if fault == "image_slow":
            return self._later(request, body)
        return body

    def _later(self, request: Any, body: bytes) -> int:
        def finish() -> None:
            if not request.finished and not getattr(request, "_disconnected", False):
                request.write(body)
                request.finish()

        call = reactor.callLater(self.slow_seconds, finish)
        request.notifyFinish().addErrback(lambda _: call.active() and call.cancel())
        return server.NOT_DONE_YET

    @staticmethod
    def _error(request: Any, status: int) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/plain")
        return f"error {status}\n".encode()


class _CountingSite(server.Site):
    """A Site that counts the connections clients open (keep-alive reuse shows as few)."""

    def buildProtocol(self, addr: Any) -> Any:
        self.resource.connections += 1
        return super().buildProtocol(addr)


def serve(hotels: int, port: int = 0, host: str = "127.0.0.1", first_id: int = cat.FIRST_ID,
          faults: dict[str, int] | None = None, slow_seconds: float = 3.0, on_ready: Any = None) -> None:
    """Run the demo server until the process is stopped; ``on_ready(url)`` is called once listening."""
    root = DemoServer(hotels, first_id, faults, slow_seconds)
    site = _CountingSite(root)
    site.noisy = False
    site.log = lambda request: None  # no access log: tens of thousands of lines per crawl
    listener = reactor.listenTCP(port, site, interface=host, backlog=1024)
    url = f"http://{host}:{listener.getHost().port}"
    if on_ready:
        reactor.callWhenRunning(on_ready, url)
    reactor.run()


def main(argv: list[str] | None = None) -> None:
    """Serve until stopped; prints the base URL once listening (the tests read that line)."""
    parser = argparse.ArgumentParser(prog="scripts/demo_server.py", description=__doc__.split("\n")[0])
    parser.add_argument("--hotels", type=int, default=300, help="number of hotels (default 300)")
    parser.add_argument("--first-id", type=int, default=cat.FIRST_ID, help="first hotel ID")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--faults", default="",
                        help="e.g. image_404:5,listing_500_once:7 (see devtools/demo_hotels.py)")
    parser.add_argument("--slow-seconds", type=float, default=3.0, help="delay of the *_slow faults")
    args = parser.parse_args(argv)
    faults = cat.parse_faults(args.faults)

    def ready(url: str) -> None:
        print(f"Demo hotel server listening on {url}", flush=True)
        print(f"Listing URL template: {url}/hotels/{{hotel_id}}/photos", flush=True)

    serve(args.hotels, args.port, args.host, args.first_id, faults, args.slow_seconds, on_ready=ready)


if __name__ == "__main__":
    main()
