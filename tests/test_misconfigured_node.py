"""A misconfigured node never fails the queue: real nodes, a real Redis with a password, 1,000 hotels.

Each scenario of issue 12 is run as an operator would (environment, ``-s``, env files) against a
queue of 1,000 hotels: the node exits 2 before claiming, says what is wrong in one line, prints no
traceback and no password, and the queue is intact (nothing failed, leased or done).
"""

from __future__ import annotations

import codecs
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from crawling import demo_server

from devtools import demo_hotels as catalogue
from devtools.demo import ROOT
from devtools.localredis import LocalRedis, stop_process
from hotelimages.keys import Keys

PASSWORD = "Pw-4-hotel-nodes"
HOTELS = 1000
KEYS = Keys()


@pytest.fixture(scope="module")
def auth_redis():
    """A redis-server of this module's own that requires PASSWORD."""
    server = LocalRedis(password=PASSWORD).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def listing_base():
    with demo_server(HOTELS) as url:
        yield url


@pytest.fixture
def queue(auth_redis, request):
    """A fresh database holding 1,000 pending hotels; yields (redis URL with the password, client)."""
    db = 1 + request.node.nodeid.__hash__() % 1000
    url = f"redis://:{PASSWORD}@127.0.0.1:{auth_redis.port}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.lpush(KEYS.start_ids, *catalogue.hotel_ids(HOTELS))
    yield url, client
    client.flushdb()
    client.close()


def node_env(redis_url: str, listing: str, store: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "HOTEL_LISTING_URL", "IMAGES_STORE")}
    env.update(REDIS_URL=redis_url, HOTEL_LISTING_URL=f"{listing}/hotels/{{hotel_id}}/photos", IMAGES_STORE=str(store),
               NODE_ID="lent-pc", SCRAPY_SETTINGS_MODULE="hotelimages.settings", PYTHONPATH=str(ROOT))
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def run_node(env: dict[str, str], *args: str, cwd: Path = ROOT, timeout: float = 120,
             command: tuple[str, ...] = ("-m", "scrapy", "crawl", "hotels")) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *command, "-s", "HOTELS_IDLE_CLOSE_SECONDS=1", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_queue_intact(client: redis.Redis) -> None:
    assert client.hlen(KEYS.failed) == 0
    assert client.llen(KEYS.start_ids) == HOTELS
    assert client.zcard(KEYS.leases) == 0
    assert client.hlen(KEYS.manifests) == 0


def assert_refused(proc: subprocess.CompletedProcess, expected: str) -> None:
    """Exit 2, exactly one line on stderr that contains ``expected``, nothing else, no password."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("hotelimages: not starting: ")
    assert expected in lines[0]
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("change", "args", "expected"),
    [
        pytest.param({"HOTEL_LISTING_URL": None, "HOTEL_LISTING_ULR": "http://127.0.0.1:9/hotels/{hotel_id}"}, (),
                     "unknown environment variable HOTEL_LISTING_ULR; did you mean HOTEL_LISTING_URL?",
                     id="listing-ulr"),
        pytest.param({"HOTEL_LISTING_URL": None}, (), "HOTEL_LISTING_URL is not set", id="no-listing-url"),
        pytest.param({"HOTEL_LISTING_URL": "http://127.0.0.1:9/hotels/photos"}, (),
                     "setting HOTEL_LISTING_URL must contain {hotel_id}", id="no-hotel-id"),
        pytest.param({"IMAGES_STORE": None, "IMAGE_STORE": "STORE"}, (),
                     "unknown environment variable IMAGE_STORE; did you mean IMAGES_STORE?", id="image-store"),
        pytest.param({"HOTELS_REDIS_KEYS": "other:ids"}, (),
                     "unknown environment variable HOTELS_REDIS_KEYS; did you mean HOTELS_REDIS_KEY?", id="redis-keys"),
        pytest.param({}, ("-s", "HOTELS_IDLE_CLOSE_SECOND=2"),
                     "unknown setting HOTELS_IDLE_CLOSE_SECOND; did you mean HOTELS_IDLE_CLOSE_SECONDS?", id="s-typo"),
        pytest.param({}, ("-s", "HOTELS_MAX_INFLIGHT=4"),
                     "unknown setting HOTELS_MAX_INFLIGHT; did you mean HOTELS_MAX_IN_FLIGHT?", id="s-typo2"),
        pytest.param({}, ("-s", "HOTELS_MAX_IN_FLIGHT=lots"),
                     "setting HOTELS_MAX_IN_FLIGHT must be an integer, got 'lots'", id="bad-value"),
        pytest.param({"REDIS_URL": "127.0.0.1:6379"}, (), "setting REDIS_URL must look like redis://", id="no-scheme"),
        pytest.param({"REDIS_URL": "WRONG"}, (), "refused the credentials", id="wrong-password"),
        pytest.param({"REDIS_URL": "NOPASS"}, (), "refused the credentials", id="no-password"),
        pytest.param({"REDIS_URL": "UNREACHABLE"}, (), "Redis unreachable at redis://***@127.0.0.1:", id="no-redis"),
        pytest.param({"IMAGES_STORE": "FILE"}, (), "cannot be written", id="store-under-a-file"),
    ],
)
def test_misconfigured_node_refuses_to_start_and_fails_nothing(queue, listing_base, tmp_path, change, args, expected):
    url, client = queue
    store = tmp_path / "store"
    env = node_env(url, listing_base, store, **change)
    port = url.rsplit(":", 1)[1].split("/")[0]
    if change.get("REDIS_URL") == "WRONG":
        env["REDIS_URL"] = url.replace(PASSWORD, "nope")
    elif change.get("REDIS_URL") == "NOPASS":
        env["REDIS_URL"] = url.replace(f":{PASSWORD}@", "")
    elif change.get("REDIS_URL") == "UNREACHABLE":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            env["REDIS_URL"] = f"redis://:{PASSWORD}@127.0.0.1:{s.getsockname()[1]}/0"
    if change.get("IMAGE_STORE") == "STORE":
        env["IMAGE_STORE"] = str(store)
    if change.get("IMAGES_STORE") == "FILE":
        (tmp_path / "a-file").write_text("x")
        env["IMAGES_STORE"] = str(tmp_path / "a-file" / "store")
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    (workdir / "scrapy.cfg").write_text("[settings]\ndefault = hotelimages.settings\n")
    proc = run_node(env, *args, cwd=workdir)
    assert_refused(proc, expected)
    assert_queue_intact(client)
    assert not (workdir / "images").exists()  # nothing stored relative to the working directory
    assert port  # the URL had a port: the scenarios above changed only what they meant to


def test_with_a_log_file_the_refusal_is_in_the_log(queue, listing_base, tmp_path):
    url, client = queue
    log = tmp_path / "node.log"
    proc = run_node(node_env(url.replace(PASSWORD, "nope"), listing_base, tmp_path / "store"),
                    "-s", f"LOG_FILE={log}")
    assert proc.returncode == 2
    lines = [line for line in log.read_text().splitlines() if "ERROR" in line]
    assert len(lines) == 1 and "[hotelimages.scrapy_commands.crawl] ERROR: not starting: Redis: " in lines[0]
    assert "refused the credentials" in lines[0]
    assert PASSWORD not in log.read_text() + proc.stderr
    assert_queue_intact(client)


def test_unknown_settings_can_be_made_warnings(queue, listing_base, tmp_path):
    url, client = queue
    proc = run_node(node_env(url, listing_base, tmp_path / "store"), "-s", "HOTELS_UNKNOWN_SETTINGS=warn",
                    "-s", "HOTELS_IDLE_CLOSE_SECOND=2", "-s", "CLOSESPIDER_ITEMCOUNT=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "WARNING: settings: unknown setting HOTELS_IDLE_CLOSE_SECOND; did you mean HOTELS_IDLE_CLOSE_SECONDS?" \
        in proc.stderr
    assert client.hlen(KEYS.manifests) >= 3
    assert PASSWORD not in proc.stdout + proc.stderr


def test_relative_store_is_logged_with_its_absolute_path(queue, listing_base, tmp_path):
    url, client = queue
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    (workdir / "scrapy.cfg").write_text("[settings]\ndefault = hotelimages.settings\n")
    proc = run_node(node_env(url, listing_base, Path("rel-store")), "-s", "CLOSESPIDER_ITEMCOUNT=2", cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Storing under {workdir / 'rel-store'}" in proc.stderr


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16-le-bom", "utf-16-be-bom"])
def test_windows_env_file_with_a_password_is_read(queue, listing_base, tmp_path, encoding):
    url, client = queue
    text = (f"# lent PC\r\nREDIS_URL={url}\r\nHOTEL_LISTING_URL={listing_base}/hotels/{{hotel_id}}/photos\r\n"
            f"IMAGES_STORE={tmp_path / 'store'}\r\nNODE_ID=pc12\r\n")
    data = {"utf-8-sig": codecs.BOM_UTF8 + text.encode(),
            "utf-16-le-bom": codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
            "utf-16-be-bom": codecs.BOM_UTF16_BE + text.encode("utf-16-be")}[encoding]
    (tmp_path / "node.env").write_bytes(data)
    env = {k: v for k, v in node_env(url, listing_base, tmp_path).items()
           if k not in ("REDIS_URL", "HOTEL_LISTING_URL", "IMAGES_STORE", "NODE_ID")}
    proc = run_node(env, "-s", "CLOSESPIDER_ITEMCOUNT=3", command=("-m", "hotelimages.cli", "node", "--env-file",
                                                                   str(tmp_path / "node.env")))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert client.hlen(KEYS.manifests) >= 3 and client.hlen(KEYS.failed) == 0
    assert "Node pc12/" in proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr


def test_env_file_with_a_bad_line_names_the_line_not_the_password(queue, listing_base, tmp_path):
    url, client = queue
    path = tmp_path / "node.env"
    path.write_bytes(codecs.BOM_UTF16_LE + f"NODE_ID=pc12\r\nREDIS_URL {url}\r\n".encode("utf-16-le"))
    proc = run_node(node_env(url, listing_base, tmp_path / "store"),
                    command=("-m", "hotelimages.cli", "node", "--env-file", str(path)))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"hotelimages node: {path}:2: expected NAME=VALUE"]
    assert PASSWORD not in proc.stdout + proc.stderr
    assert_queue_intact(client)


# ---------------------------------------------------------------- passwords never printed


def test_no_output_shows_the_password(queue, listing_base, tmp_path):
    url, client = queue
    port, db = url.rsplit(":", 1)[1].split("/")
    query_url = f"redis://127.0.0.1:{port}/{db}?password={PASSWORD}"
    outputs = []
    for redis_url in (url, query_url):
        env = node_env(redis_url, listing_base, tmp_path / "store", HOTELS_REDIS_KEY=None)
        proc = run_node(env, "-s", "CLOSESPIDER_ITEMCOUNT=2", "-s", "HOTELS_PROGRESS_INTERVAL=0.5")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Node lent-pc/" in proc.stderr
        outputs += [proc.stdout, proc.stderr]
        html = tmp_path / "status.html"
        for args in ((), ("--json",), ("--html", str(html)), ("--watch", "0.2")):
            cmd = [sys.executable, str(ROOT / "scripts" / "status"), "--redis-url", redis_url, *args]
            try:
                status = subprocess.run(cmd, capture_output=True, text=True, timeout=8 if args[:1] == ("--watch",)
                                        else 60)
                outputs += [status.stdout, status.stderr]
            except subprocess.TimeoutExpired as exc:  # --watch runs until stopped
                outputs += [str(exc.stdout or ""), str(exc.stderr or "")]
        outputs.append(html.read_text())
        for script in (("requeue",), ("requeue", "--all-of-owner", "lent-pc"), ("retry_failed", "--dry-run"),
                       ("doctor",)):
            done = subprocess.run([sys.executable, str(ROOT / "scripts" / script[0]), *script[1:]],
                                  capture_output=True, text=True, timeout=60, env=env)
            outputs += [done.stdout, done.stderr]
    seen = "\n".join(outputs)
    assert "127.0.0.1" in seen and "redis://***@" in seen and "password=***" in seen  # the URL is shown, redacted
    assert PASSWORD not in seen


# ---------------------------------------------------------------- requeue --all-of-owner


def test_requeue_all_of_owner_leaves_a_live_node_without_progress_heartbeat(queue, tmp_path):
    url, client = queue
    with socket.socket() as stalled:  # a listing host that accepts connections and never answers
        stalled.bind(("127.0.0.1", 0))
        stalled.listen(100)
        listing = f"http://127.0.0.1:{stalled.getsockname()[1]}"
        env = node_env(url, listing, tmp_path / "store")
        node = subprocess.Popen(
            [sys.executable, "-m", "scrapy", "crawl", "hotels", "-s", "HOTELS_PROGRESS_INTERVAL=0",
             "-s", "HOTELS_HEARTBEAT_SECONDS=1", "-s", "HOTELS_LEASE_SECONDS=30", "-s", "HOTELS_MAX_IN_FLIGHT=8",
             "-s", "DOWNLOAD_TIMEOUT=120"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while client.zcard(KEYS.leases) < 8 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert client.zcard(KEYS.leases) == 8
            time.sleep(4)  # past one liveness TTL (3 heartbeats): the key is renewed, not left over
            assert not client.keys("hotels:node:*")  # no progress heartbeat
            requeue = [sys.executable, str(ROOT / "scripts" / "requeue"), "--all-of-owner", "lent-pc"]
            live = subprocess.run(requeue, capture_output=True, text=True, timeout=60, env=env)
            assert live.returncode == 0
            assert "left 8 leases of lent-pc/" in live.stdout and "released in total: 0" in live.stdout
            assert client.zcard(KEYS.leases) == 8

            node.send_signal(signal.SIGKILL)
            node.wait(30)
            time.sleep(4)  # the dead process's liveness key expires
            dead = subprocess.run(requeue, capture_output=True, text=True, timeout=60, env=env)
            assert "released 8 leases of lent-pc/" in dead.stdout
            assert client.zcard(KEYS.leases) == 0 and client.llen(KEYS.start_ids) == HOTELS
        finally:
            stop_process(node)


def test_status_json_of_a_refused_node_shows_the_queue_intact(queue, listing_base, tmp_path):
    url, client = queue
    proc = run_node(node_env(url.replace(PASSWORD, "nope"), listing_base, tmp_path / "store"))
    assert proc.returncode == 2
    status = subprocess.run([sys.executable, str(ROOT / "scripts" / "status"), "--json", "--redis-url", url],
                            capture_output=True, text=True, timeout=60)
    figures = json.loads(status.stdout)
    assert PASSWORD not in status.stdout + status.stderr
    text = json.dumps(figures)
    assert '"pending": 1000' in text and client.hlen(KEYS.failed) == 0
