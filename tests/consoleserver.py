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

from hotelimages.localredis import stop_process
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
