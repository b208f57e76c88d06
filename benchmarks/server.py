"""The static server the benchmark downloads from: nginx with sendfile when installed, else our asyncio one.

Either serves the corpus folder on a free loopback port; ``/tiny/<anything>``
answers with one small in-memory (page-cached) JPEG. ``cpu_seconds`` is the
server's user+sys CPU so far, so each run can report what serving cost.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from devtools.demo import ROOT
from devtools.localredis import free_port, stop_process

NGINX_CONF = """\
{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    open_file_cache max=20000 inactive=60s;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{ image/jpeg jpg; application/json json; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
        location /tiny/ {{ rewrite ^ /tiny.jpg break; }}
    }}
}}
"""


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"static server exited with code {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"static server did not listen on port {port} within {timeout}s")


class StaticServer:
    """A static file server process we start and stop; ``kind`` says which one ran."""

    def __init__(self, root: Path, workdir: Path, prefer: str = "nginx"):
        self.root = Path(root).resolve()
        self.workdir = Path(workdir)
        self.prefer = prefer
        self.kind = ""
        self.version = ""
        self.proc: subprocess.Popen | None = None
        self.base_url = ""
        self.note = ""

    def start(self) -> StaticServer:
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if self.prefer == "nginx" and nginx:
            try:
                self._start_nginx(nginx)
                return self
            except (RuntimeError, OSError) as exc:
                self.note = f"nginx failed to start ({exc}); using the asyncio server"
                self.stop()
        elif self.prefer == "nginx":
            self.note = "nginx not installed (apt-get install nginx); using the asyncio server"
        self._start_asyncio()
        return self

    def _start_nginx(self, nginx: str) -> None:
        prefix = self.workdir / "nginx"
        prefix.mkdir(parents=True, exist_ok=True)
        port = free_port()
        # As root, nginx would switch its worker to "nobody"; keep it able to read the corpus.
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user=user, prefix=prefix, port=port, root=self.root))
        out = subprocess.run([nginx, "-v"], capture_output=True, text=True)
        self.version = (out.stderr or out.stdout).strip().split("/")[-1]
        self.proc = subprocess.Popen(
            [nginx, "-p", str(prefix), "-c", str(conf), "-e", "stderr"],
            stdout=subprocess.DEVNULL, stderr=open(prefix / "error.log", "ab"),  # noqa: SIM115
        )
        _wait_listening(port, self.proc)
        self.kind = "nginx"
        self.base_url = f"http://127.0.0.1:{port}"

    def _start_asyncio(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.staticserver", "--root", str(self.root)],
            stdout=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "listening on " not in line:
            self.stop()
            raise RuntimeError(f"asyncio static server did not start: {line!r}")
        self.kind = "asyncio (benchmarks.staticserver)"
        self.version = sys.version.split()[0]
        self.base_url = line.rsplit("listening on ", 1)[1].strip()

    def cpu_seconds(self) -> float:
        """User+sys CPU seconds of the server's processes so far."""
        if not self.proc:
            return 0.0
        total = 0.0
        try:
            top = psutil.Process(self.proc.pid)
            for p in [top, *top.children(recursive=True)]:
                try:
                    t = p.cpu_times()
                    total += t.user + t.system
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            pass
        return total

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def __enter__(self) -> StaticServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
