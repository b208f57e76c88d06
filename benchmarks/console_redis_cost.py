#!/usr/bin/env python3
"""What one refresh of the console page (and one /metrics scrape) costs Redis, with N nodes' heartbeats.

    python benchmarks/console_redis_cost.py [--nodes 50] [--samples 2880]

Starts a private redis-server, writes N live processes' heartbeats, histories (``--samples``
each, 30 s apart), per-node reason counters, 48 leases each and 1,000 failed hotels, then
counts the commands Redis ran (INFO commandstats, reset before each measurement) for one
``/api/status`` of each range (charts made afresh, and with the charts cached, as the console
does between two chart refreshes of the day and job ranges) and one ``/metrics``, and times
them (Redis and Python together). Prints a table.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from devtools.localredis import LocalRedis
from hotelimages import console, status
from hotelimages.keys import Keys
from hotelimages.metrics import families
from hotelimages.redisconn import sync_client


def fill(client, keys: Keys, nodes: int, samples: int) -> None:
    now = time.time()
    pipe = client.pipeline(transaction=False)
    pipe.lpush(keys.start_ids, *[str(2_000_000 + i) for i in range(10_000)])
    for n in range(nodes):
        owner = f"pc{n:02d}/{1000 + n}-abcdef12"
        pipe.hset(keys.node(owner), mapping={
            "node_id": f"pc{n:02d}", "owner": owner, "pid": 1000 + n, "interval": 30, "started_at": now - 86400,
            "updated_at": now, "state": "claiming", "hotels": 5000, "images": 200_000, "bytes": 2 * 10**10,
            "failures": 300, "in_flight": 48, "images_per_s": 2.5, "mb_per_s": 0.25, "hotels_per_s": 0.06,
            "image_failure_rate": 0.01, "disk_free": 4 * 10**11, "disk_total": 10**12,
        })
        pipe.expire(keys.node(owner), 90)
        history = [json.dumps({"t": now - 30 * i, "hotels": 5000 - i, "images": 200_000 - 40 * i,
                               "bytes": 2 * 10**10 - 4 * 10**6 * i, "failures": 300, "done": 100_000 - 50 * i,
                               "pending": 10_000 + 50 * i, "in_flight": 48,
                               "reasons": {"image/http_404": 200, "image/timeout": 100}}) for i in range(samples)]
        for i in range(0, len(history), 1000):
            pipe.rpush(keys.history(owner), *history[i:i + 1000])
        pipe.hset(keys.node_reasons(f"pc{n:02d}"), mapping={"image/http_404": 200, "image/timeout": 100})
        for j in range(48):
            entry = f"{3_000_000 + n * 100 + j}"
            pipe.zadd(keys.leases, {entry: now + 100})
            pipe.hset(keys.lease_owners, entry, owner)
        pipe.execute()
    reasons = ["listing_http_404", "listing_timeout", "listing_malformed"]
    client.hset(keys.failed, mapping={str(4_000_000 + i): json.dumps({"reason": random.choice(reasons)})
                                      for i in range(1000)})
    client.hset(keys.reasons, mapping={"image/http_404": 200 * nodes, "image/timeout": 100 * nodes,
                                       "hotel/listing_http_404": 400})


def commands(client) -> dict[str, tuple[int, int]]:
    """Command name -> (calls, microseconds Redis spent on them)."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for name, v in stats.items()}


def measure(client, what) -> tuple[int, dict[str, int], float, float]:
    """(commands, commands by name, seconds in all, seconds inside Redis) of ``what()``."""
    client.config_resetstat()
    t = time.perf_counter()
    what()
    seconds = time.perf_counter() - t
    stats = {k: v for k, v in commands(client).items() if v[0] and not k.startswith("config")}  # but the reset
    calls = {k: v[0] for k, v in stats.items()}
    return sum(calls.values()), calls, seconds, sum(v[1] for v in stats.values()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--samples", type=int, default=2880, help="history samples per process (2880 = 24 h)")
    args = parser.parse_args()
    server = LocalRedis().start()
    try:
        client = sync_client(server.url)
        keys = Keys()
        fill(client, keys, args.nodes, args.samples)
        print(f"{args.nodes} live processes, {args.samples} history samples each, "
              f"{client.info('memory')['used_memory_human']} in Redis")
        print(f"{'request':<26} {'commands':>8} {'seconds':>8} {'in Redis':>8}  by command")
        cfg = console.ConsoleConfig(keys=keys)
        app = console.Console(client, cfg)
        for name, seconds in console.RANGES.items():
            total, calls, took, busy = measure(client, lambda s=seconds: console.payload(
                app.gather(s, s == 0), s, controls=False))
            print(f"{'/api/status?range=' + name:<26} {total:>8} {took:>8.3f} {busy:>8.3f}  {calls}")
        total, calls, took, busy = measure(client, lambda: console.payload(app.gather(), 0, controls=False, charts={}))
        print(f"{'  the same, charts cached':<26} {total:>8} {took:>8.3f} {busy:>8.3f}  {calls}")
        total, calls, took, busy = measure(client, lambda: families(app.gather()))
        print(f"{'/metrics':<26} {total:>8} {took:>8.3f} {busy:>8.3f}  {calls}")
        total, calls, took, busy = measure(client, lambda: status.gather(client, keys))
        print(f"{'status (text, --check)':<26} {total:>8} {took:>8.3f} {busy:>8.3f}  {calls}")
    finally:
        server.close()


if __name__ == "__main__":
    main()
