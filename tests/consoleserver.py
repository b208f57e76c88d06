"""Helpers for console tests: a real ``scripts/status --serve`` process on a free loopback port."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from contextlib import contextmanager
from types import SimpleNamespace

from devtools.localredis import stop_process
from tests.conftest import ROOT

STATUS = str(ROOT / "scripts" / "status")


@contextmanager
def console_server(redis_url: str, password: str = "", *args: str):
    """A running console; yields ``.url`` (ends with ``/``) and ``.log()`` (its log so far). Stopped afterwards."""
    env = {**os.environ, "REDIS_URL": redis_url, "HOTELS_CONSOLE_PASSWORD": password}
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([sys.executable, STATUS, "--serve", "--bind", "127.0.0.1:0", *args], env=env,
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)

        def read_log() -> str:
            log.seek(0)
            return log.read()

        try:
            line = proc.stdout.readline() if proc.stdout else ""
            if "serving on " not in line:
                proc.wait(10)
                raise RuntimeError(f"console did not start: {line!r} {read_log()}")
            yield SimpleNamespace(url=line.rsplit("serving on ", 1)[1].strip(), log=read_log)
        finally:
            stop_process(proc)
            if proc.stdout:
                proc.stdout.close()


def request(url: str, data: dict | None = None, user: str = "", password: str | None = None) -> tuple[int, bytes]:
    """(status, body) of a GET, or a POST of ``data`` as JSON; basic credentials if ``password`` is given."""
    headers = {}
    if password is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    body = None
    if data is not None:
        body = json.dumps(data).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def start_node(redis_url: str, base_url: str, store, node_id: str, *settings: str) -> subprocess.Popen:
    """A ``scrapy crawl hotels`` process of the demo set-up, running in the background (output discarded)."""
    from devtools.demo import crawl_env  # noqa: PLC0415 - as tests/crawling.py does

    args = [sys.executable, "-m", "scrapy", "crawl", "hotels", "-s", "HOTELS_IDLE_CLOSE_SECONDS=2",
            "-s", "HOTELS_POLL_SECONDS=0.2", "-s", "HOTELS_PROGRESS_INTERVAL=1", "-s", "LOG_LEVEL=WARNING"]
    for s in settings:
        args += ["-s", s]
    return subprocess.Popen(args, cwd=ROOT, env=crawl_env(redis_url, base_url, store, node_id),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextmanager
def half_broken_server(delay: float = 0.02):
    """A listing server whose hotels have 4 photos each, 2 served and 2 answering 404; yields its base URL."""
    import io  # noqa: PLC0415
    import threading  # noqa: PLC0415
    import time  # noqa: PLC0415
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buf, "PNG")
    png = buf.getvalue()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            parts = self.path.strip("/").split("/")
            if len(parts) == 3 and parts[0] == "hotels":
                base = f"http://{self.headers['Host']}"
                hotel = parts[1]
                images = [{"id": f"{hotel}{n}", "url": f"{base}/img/{hotel}/{n}.png", "category": "cover"}
                          for n in range(4)]
                self._send(200, json.dumps({"hotel_id": hotel, "images": images, "next": None}).encode(),
                           "application/json")
            elif len(parts) == 3 and parts[0] == "img":
                time.sleep(delay)
                if int(parts[2].split(".")[0]) % 2:
                    self._send(404, b"gone", "text/plain")
                else:
                    self._send(200, png, "image/png")
            else:
                self._send(404, b"", "text/plain")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
