"""Redis at its maxmemory (noeviction): claims refused whole, work in flight recorded whole, one clear line.

Each test starts a redis-server of its own, so the shared one never runs out of memory.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest
import redis
import redis.asyncio as aioredis
from crawling import demo_server

from devtools import demo_hotels as catalogue
from devtools.demo import ROOT, crawl_env
from devtools.localredis import LocalRedis, stop_process
from hotelimages import claims, status
from hotelimages import manifest as mf
from hotelimages.claims import BoundScripts, LeaseManager
from hotelimages.convert_done import convert_done_records
from hotelimages.keys import Keys

KEYS = Keys()
OWNER = "pc1/1-aaaa"


@pytest.fixture
def small_redis():
    with LocalRedis() as server:
        client = redis.Redis.from_url(server.url)
        client.config_set("maxmemory-policy", "noeviction")
        yield server, client
        client.close()


def fill_to_the_limit(client: redis.Redis) -> None:
    """Set maxmemory a little above what is used, then write junk until Redis refuses."""
    used = client.info("memory")["used_memory"]
    client.config_set("maxmemory", used + 2_000_000)
    for i in range(100_000):
        try:
            client.set(f"junk:{i}", "x" * 10_000)
        except redis.exceptions.OutOfMemoryError:
            # Firmly over the limit, not by the few bytes that freed buffers could give back.
            client.config_set("maxmemory", client.info("memory")["used_memory"] - 500_000)
            return
    raise AssertionError("Redis never ran out of memory")


def snapshot(client: redis.Redis) -> dict:
    return {
        "pending": client.lrange(KEYS.start_ids, 0, -1), "leases": client.zrange(KEYS.leases, 0, -1),
        "owners": client.hgetall(KEYS.lease_owners), "manifests": client.hgetall(KEYS.manifests),
        "failed": client.hgetall(KEYS.failed), "stats": client.hgetall(KEYS.stats),
    }


def run(url: str, steps):
    async def main():
        client = aioredis.from_url(url)
        try:
            return await steps(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_claims_are_refused_whole_and_work_in_flight_is_recorded_whole(small_redis):
    server, client = small_redis
    client.lpush(KEYS.start_ids, *[str(1000 + i) for i in range(20)])
    held = run(server.url, lambda c: LeaseManager(c, KEYS, OWNER, 120).claim(3))
    assert len(held) == 3
    fill_to_the_limit(client)
    before = snapshot(client)

    async def claim(c):
        with pytest.raises(redis.exceptions.ResponseError) as err:
            await LeaseManager(c, KEYS, OWNER, 120).claim(5)
        return err.value

    err = run(server.url, claim)
    assert claims.is_oom(err)
    assert snapshot(client) == before  # nothing popped, nothing leased

    with pytest.raises(redis.exceptions.ResponseError) as err:  # a push is refused too, whole
        claims.push_batch(BoundScripts(client, KEYS), ["2001", "2002"], ["2001", "2002"])
    assert claims.is_oom(err.value)
    assert snapshot(client) == before

    m = {"schema": 1, "hotel_id": "x", "node": "pc1", "store": "/s", "dir": "d", "status": "complete",
         "images": {"cover": [{"file": "1.jpg", "id": "1", "url": "u", "bytes": 5, "width": 1, "height": 1,
                               "sha1": "0" * 40}]}, "failed": [], "started_at": "", "finished_at": ""}

    async def finish_work(c):
        lm = LeaseManager(c, KEYS, OWNER, 120)
        lm.in_flight.update(held)
        lost = await lm.renew()  # renewing is allowed: leases must not expire because Redis is full
        done = await lm.record(held[0], held[0].decode(), manifest_json=mf.done_record(m), images=1, nbytes=5,
                               status="complete")
        failed = await lm.record(held[1], held[1].decode(), failed_json='{"reason": "listing_http_404"}',
                                 status="failed")
        back = await lm.release_all()
        return lost, done, failed, back

    assert run(server.url, finish_work) == ([], True, True, 1)
    after = snapshot(client)
    assert after["leases"] == [] and after["owners"] == {}
    assert set(after["manifests"]) == {held[0]} and set(after["failed"]) == {held[1]}
    assert after["pending"][-1] == held[2]  # given back whole
    stats = {k: int(v) for k, v in after["stats"].items()}
    assert stats[b"hotels/complete"] == 1 and stats[b"images/stored"] == 1 and stats[b"events/hotel_failed"] == 1

    # Converting old records shrinks memory, so it runs over the limit too.
    fleet = status.gather(client, KEYS)
    assert fleet.redis_memory["used_memory"] >= fleet.redis_memory["maxmemory"] > 0
    assert [a.name for a in fleet.alerts] == ["redis_memory"]
    assert "ALERTS\n  redis_memory" in status.render_text(fleet)
    assert convert_done_records(client, KEYS).read == 1


def test_status_warns_from_80_percent_of_maxmemory(small_redis):
    _server, client = small_redis
    used = client.info("memory")["used_memory"]
    client.config_set("maxmemory", int(used / 0.5))
    quiet = status.gather(client, KEYS)
    assert quiet.alerts == [] and quiet.redis_memory["maxmemory"] > 0
    client.config_set("maxmemory", int(used / 0.85))
    loud = status.gather(client, KEYS)
    assert [a.name for a in loud.alerts] == ["redis_memory"]
    assert [a["name"] for a in loud.to_json()["alerts"]] == ["redis_memory"]
    assert "redis memory " in status.render_text(loud)
    client.config_set("maxmemory", 0)
    assert status.gather(client, KEYS).alerts == []


def test_a_node_says_once_that_redis_is_full_and_resumes_when_it_is_not(small_redis, tmp_path):
    server, client = small_redis
    ids = catalogue.hotel_ids(12)
    client.lpush(KEYS.start_ids, *ids)
    fill_to_the_limit(client)
    with demo_server(len(ids)) as base_url:
        env = crawl_env(server.url, base_url, tmp_path / "store", "node-oom")
        proc = subprocess.Popen(
            [sys.executable, "-m", "scrapy", "crawl", "hotels", "-s", "HOTELS_IDLE_CLOSE_SECONDS=1",
             "-s", "HOTELS_POLL_SECONDS=0.2", "-s", "HOTELS_PROGRESS_INTERVAL=0"],
            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
        )
        try:
            lines = []
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                line = proc.stderr.readline()
                if not line:
                    break
                lines.append(line)
                if "Redis is out of memory" in line:
                    break
            time.sleep(3)  # several more claim attempts, all refused
            assert client.llen(KEYS.start_ids) == len(ids) and client.zcard(KEYS.leases) == 0
            client.delete(*[f"junk:{i}" for i in range(100_000)])  # the operator frees memory
            _, out = proc.communicate(timeout=120)
        finally:
            stop_process(proc)
    log = "".join(lines) + (out or "")
    oom_lines = [x for x in log.splitlines() if "Redis is out of memory" in x]
    assert len(oom_lines) == 1, oom_lines
    assert "MiB of maxmemory" in oom_lines[0] and oom_lines[0].endswith("): claiming paused")
    assert "claiming resumed" in log
    assert "Traceback" not in log
    assert proc.returncode == 0
    assert client.hlen(KEYS.manifests) == len(ids) and client.llen(KEYS.start_ids) == 0
