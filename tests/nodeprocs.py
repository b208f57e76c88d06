"""Helpers for fail-safe tests: a small listing/image HTTP server on loopback and real node processes.

The server (a ``ThreadingHTTPServer`` in a thread of the test process) answers:

- ``/hotels/<id>/photos``: a listing per ``mode``: ``empty`` (no images), ``one`` (one image) or
  ``slow`` (a fast image and ``slow1``, whose response waits ``slow_seconds``);
- ``/loop/<id>``: one image and a ``next`` pointing to itself; ``/loopab/<id>/<a|b>``: a to b to a;
- ``/img/<id>/<name>``: a small JPEG whose pixels change on every fetch (different bytes each time).

``hits`` counts requests per path.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from PIL import Image

from devtools.demo import ROOT, crawl_env


class Listings(ThreadingHTTPServer):
    daemon_threads = True

    allow_reuse_address = True

    def __init__(self, mode: str = "empty", slow_seconds: float = 4.0, port: int = 0):
        super().__init__(("127.0.0.1", port), _Handler)
        self.mode = mode
        self.slow_seconds = slow_seconds
        self.hits: Counter[str] = Counter()
        self.fetches = 0
        #: Listing requests with this User-Agent get a 403 (a host that bans one node).
        self.deny_agent: str | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def image(self) -> bytes:
        with self.lock:
            self.fetches += 1
            n = self.fetches
        out = io.BytesIO()
        Image.new("RGB", (16, 16), ((n * 37) % 256, (n * 91) % 256, (n * 13) % 256)).save(out, "JPEG")
        return out.getvalue()


class _Handler(BaseHTTPRequestHandler):
    server: Listings

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        srv = self.server
        path = self.path.split("?", 1)[0]
        with srv.lock:
            srv.hits[path] += 1
        parts = path.strip("/").split("/")
        base = srv.url
        if parts[0] == "hotels" and len(parts) == 3:
            if srv.deny_agent and self.headers.get("User-Agent") == srv.deny_agent:
                return self.send_error(403)
            hotel = parts[1]
            images = []
            if srv.mode in ("one", "slow"):
                images.append({"id": "fast", "url": f"{base}/img/{hotel}/fast", "category": "cover"})
            if srv.mode == "slow":
                images.append({"id": "slow1", "url": f"{base}/img/{hotel}/slow1", "category": "interior"})
            return self._json({"images": images})
        if parts[0] == "loop":
            img = {"id": "a", "url": f"{base}/img/{parts[1]}/a", "category": "cover"}
            return self._json({"images": [img], "next": f"/loop/{parts[1]}"})
        if parts[0] == "loopab":
            other = "b" if parts[2] == "a" else "a"
            return self._json({"images": [], "next": f"{base}/loopab/{parts[1]}/{other}"})
        if parts[0] == "img":
            body = srv.image()  # the bytes are chosen when the request arrives
            if parts[2].startswith("slow"):
                time.sleep(srv.slow_seconds)
            return self._send(body, "image/jpeg")
        self.send_error(404)

    def _json(self, data: object) -> None:
        self._send(json.dumps(data).encode(), "application/json")

    def _send(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass


@contextmanager
def listing_server(mode: str = "empty", slow_seconds: float = 4.0, port: int = 0):
    """A running ``Listings`` server (on ``port``, or a free one); stopped afterwards."""
    srv = Listings(mode, slow_seconds, port)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FAST = ("HOTELS_IDLE_CLOSE_SECONDS=1", "HOTELS_POLL_SECONDS=0.2", "HOTELS_PROGRESS_INTERVAL=1")


class Node:
    """One real ``scrapy crawl hotels`` process; its log goes to a file."""

    def __init__(self, tmp: Path, name: str, redis_url: str, listing_url: str | None, store: Path,
                 node_id: str = "pc12", settings: tuple[str, ...] = (), env: dict[str, str] | None = None):
        self.log_path = tmp / f"{name}.log"
        environ = crawl_env(redis_url, "http://unused", store, node_id)
        if listing_url is None:
            environ.pop("HOTEL_LISTING_URL")
        else:
            environ["HOTEL_LISTING_URL"] = listing_url
        environ.update(env or {})
        args = [sys.executable, "-m", "scrapy", "crawl", "hotels"]
        for s in (*FAST, *settings):
            args += ["-s", s]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(args, cwd=ROOT, env=environ, stdout=self._log, stderr=subprocess.STDOUT)
        self.started = time.monotonic()

    def wait(self, timeout: float = 180) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
            self._log.close()

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log:
                return True
            if self.proc.poll() is not None:
                return text in self.log
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait(10)


def status_json(redis_url: str) -> dict:
    """What ``scripts/status --json`` prints, parsed."""
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "status"), "--json", "--redis-url", redis_url],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def status_text(redis_url: str) -> str:
    """What ``scripts/status`` prints."""
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "status"), "--redis-url", redis_url],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout


def wait_until(predicate, timeout: float = 60, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False

