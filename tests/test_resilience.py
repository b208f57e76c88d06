"""Nothing lost: a killed node, a Redis restart and a graceful stop, with real processes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
from crawling import demo_server, expected_files, files_under, recorded_manifest

from devtools import demo_hotels as catalogue
from devtools.demo import ROOT, crawl_env
from devtools.localredis import LocalRedis
from hotelimages.keys import Keys
from hotelimages.manifest import parse_done_record
from hotelimages.storage import TEMP_SUFFIX

KEYS = Keys()
FAST_LEASES = ["HOTELS_LEASE_SECONDS=4", "HOTELS_HEARTBEAT_SECONDS=0.5", "HOTELS_IDLE_CLOSE_SECONDS=2",
               "HOTELS_POLL_SECONDS=0.2"]


def start_node(redis_url: str, base_url: str, store: Path, node_id: str, *settings: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "scrapy", "crawl", "hotels"]
    for s in (*FAST_LEASES, *settings):
        args += ["-s", s]
    log = open(store.parent / f"{node_id}-{time.monotonic_ns()}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(args, cwd=ROOT, env=crawl_env(redis_url, base_url, store, node_id),
                            stdout=log, stderr=subprocess.STDOUT)


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def manifests_by(client: redis.Redis, node: str) -> int:
    return sum(parse_done_record(v).node == node for v in client.hvals(KEYS.manifests))


def assert_all_done(client: redis.Redis, ids: list[str], stores: list[Path], base_url: str, faults: str) -> None:
    """Every hotel has exactly one complete manifest, nothing is queued or claimed, every file is whole."""
    assert client.hlen(KEYS.manifests) == len(ids)
    assert client.hlen(KEYS.failed) == 0
    assert client.llen(KEYS.start_ids) == 0
    assert client.zcard(KEYS.leases) == 0 and client.hlen(KEYS.lease_owners) == 0
    by_status = {k.decode(): int(v) for k, v in client.hgetall(KEYS.stats).items() if k.startswith(b"hotels/")}
    assert by_status.get("hotels/complete") == len(ids), by_status
    on_disk = {store: files_under(store) for store in stores}
    expected = {}
    for hid in ids:
        expected.update(expected_files(hid, base_url, faults=faults))
    for hid in ids:
        m = recorded_manifest(client, hid)
        assert m["status"] == "complete", m
        have = {k: v for k, v in on_disk[Path(m["store"])].items() if k.startswith(m["dir"] + "/")}
        want = {k: v for k, v in expected.items() if k.startswith(m["dir"] + "/")}
        assert have == want, hid  # the node the manifest names holds every file, byte for byte
    for files in on_disk.values():
        for rel, digest in files.items():
            if rel.endswith(TEMP_SUFFIX):
                # A killed process's staged image, under its temporary name: never packed, removed
                # when that hotel is next done on this store (tests/test_node_takeover.py).
                continue
            assert expected.get(rel) == digest, rel  # no stray, truncated or partial file anywhere


def test_killed_node_loses_nothing(redis_client, redis_url, tmp_path):
    ids = catalogue.hotel_ids(300)
    stores = [tmp_path / f"store{i}" for i in range(3)]
    for s in stores:
        s.mkdir()
    with demo_server(len(ids), "image_slow:1", slow_seconds=0.3) as base_url:
        redis_client.lpush(KEYS.start_ids, *ids)
        nodes = [start_node(redis_url, base_url, s, f"node{i}", "HOTELS_MAX_IN_FLIGHT=6")
                 for i, s in enumerate(stores)]
        wait_until(lambda: manifests_by(redis_client, "node0") >= 10, 60, "node0 to finish 10 hotels")
        held = redis_client.hvals(KEYS.lease_owners)
        assert any(o.startswith(b"node0/") for o in held)  # it dies holding claims
        nodes[0].send_signal(signal.SIGKILL)
        nodes[0].wait()
        # The same node comes back under the same NODE_ID: a new owner token, so the old
        # process's leases are not its own; they expire and are requeued by whoever sweeps.
        restarted = start_node(redis_url, base_url, stores[0], "node0")
        for p in (*nodes[1:], restarted):
            assert p.wait(240) == 0
    assert_all_done(redis_client, ids, stores, base_url, "image_slow:1")
    assert int(redis_client.hget(KEYS.stats, "claims/requeued_expired")) >= 1


def test_redis_restart_mid_crawl_loses_nothing(tmp_path):
    ids = catalogue.hotel_ids(150)
    store = tmp_path / "store"
    store.mkdir()
    server = LocalRedis(workdir=tmp_path / "redis", persist=True).start()
    try:
        client = redis.Redis.from_url(server.url)
        with demo_server(len(ids), "image_slow:1", slow_seconds=0.3) as base_url:
            client.lpush(KEYS.start_ids, *ids)
            node = start_node(server.url, base_url, store, "node-r", "HOTELS_MAX_IN_FLIGHT=8")
            wait_until(lambda: client.hlen(KEYS.manifests) >= 20, 60, "20 hotels done")
            server.stop()  # SIGTERM: Redis writes its append-only file and exits
            time.sleep(4)
            assert node.poll() is None, "the node must survive a Redis outage"
            server.start()
            client = redis.Redis.from_url(server.url)
            assert node.wait(240) == 0
        log = (next(tmp_path.glob("node-r-*.log"))).read_text()
        assert "Redis unreachable" in log
        assert_all_done(client, ids, [store], base_url, "image_slow:1")
    finally:
        server.close()


def test_sigterm_finishes_in_flight_and_requeues_the_rest(redis_client, redis_url, tmp_path):
    ids = catalogue.hotel_ids(200)
    store = tmp_path / "store"
    store.mkdir()
    with demo_server(len(ids), "image_slow:1", slow_seconds=1) as base_url:
        redis_client.lpush(KEYS.start_ids, *ids)
        node = start_node(redis_url, base_url, store, "node-t", "HOTELS_MAX_IN_FLIGHT=10",
                          "HOTELS_STOP_GRACE_SECONDS=20")
        wait_until(lambda: redis_client.hlen(KEYS.manifests) >= 5, 60, "5 hotels done")
        stopped_at = time.monotonic()
        node.send_signal(signal.SIGTERM)
        assert node.wait(60) == 0
        took = time.monotonic() - stopped_at
    done = redis_client.hlen(KEYS.manifests)
    assert took < 20 + 30  # the grace period plus one download timeout at most
    assert redis_client.zcard(KEYS.leases) == 0 and redis_client.hlen(KEYS.lease_owners) == 0
    pending = [e.decode() for e in redis_client.lrange(KEYS.start_ids, 0, -1)]
    recorded = [h.decode() for h in redis_client.hkeys(KEYS.manifests)]
    assert sorted(pending + recorded) == sorted(ids)  # each hotel is either done or pending again
    assert done < len(ids)
    assert all(parse_done_record(v).status == "complete" for v in redis_client.hvals(KEYS.manifests))
