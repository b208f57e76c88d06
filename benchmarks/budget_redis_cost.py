#!/usr/bin/env python3
"""What a fleet-wide host budget costs Redis per request, with N nodes' gates sharing one host.

    python benchmarks/budget_redis_cost.py [--nodes 3] [--rate 300] [--waiting 32] [--seconds 8]

Starts a private redis-server; runs N ``politeness.HostGate`` objects (one asyncio Redis client
each, as N nodes would have) in one process, each with ``--waiting`` requests always queued for
the host (a node's CONCURRENT_REQUESTS_PER_DOMAIN), for ``--seconds``. Counts the requests let
through, the grant calls (and how many came back empty), the fleet's peak in any 1-second window,
and the commands Redis ran (INFO commandstats, reset first; commands inside the Lua scripts
included). Prints one line per configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import redis.asyncio as aioredis

from devtools.localredis import LocalRedis
from hotelimages.keys import Keys
from hotelimages.politeness import GatePolicy, HostGate, parse_host_budgets
from hotelimages.redisconn import sync_client


def peak(times: list[float]) -> int:
    times.sort()
    best, j = 0, 0
    for i, t in enumerate(times):
        while j < len(times) and times[j] < t + 1.0:
            j += 1
        best = max(best, j - i)
    return best


async def run(url: str, nodes: int, rate: float, waiting: int, seconds: float, horizon: float) -> dict:
    policy = GatePolicy(budgets=parse_host_budgets(f"cdn.test={rate}/s"), horizon=horizon)
    clients = [aioredis.Redis.from_url(url) for _ in range(nodes)]
    gates = [HostGate(c, Keys("bench"), f"node{i}", policy) for i, c in enumerate(clients)]
    listeners = [asyncio.ensure_future(g.listen()) for g in gates]
    starts: list[float] = []
    stop = time.monotonic() + seconds

    async def requester(gate: HostGate) -> None:
        while time.monotonic() < stop:
            await gate.acquire("cdn.test")
            starts.append(time.monotonic())
            await asyncio.sleep(0.005)  # the "download"
            gate.release("cdn.test", 200)

    await asyncio.gather(*(requester(g) for g in gates for _ in range(waiting)))
    for task in listeners:
        task.cancel()
    for c in clients:
        await c.aclose()
    grants = sum(g.counts["grants"] for g in gates)
    empty = sum(g.counts["grants/empty"] for g in gates)
    first = min(starts)
    return {"requests": len(starts), "grants": grants, "empty": empty,
            "peak": peak([t for t in starts if t >= first + 1.0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 20])
    parser.add_argument("--rate", type=float, nargs="+", default=[30, 300])
    parser.add_argument("--waiting", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--horizon", type=float, default=1.0)
    args = parser.parse_args()
    with LocalRedis() as server:
        client = sync_client(server.url)
        print(f"{'nodes':>5} {'budget/s':>8} {'requests':>8} {'peak/s':>6} {'grants':>6} {'empty':>5} "
              f"{'grants/req':>10} {'cmds/req':>8}")
        for nodes in args.nodes:
            for rate in args.rate:
                client.flushdb()
                client.config_resetstat()
                r = asyncio.run(run(server.url, nodes, rate, args.waiting, args.seconds, args.horizon))
                stats = client.info("commandstats")
                commands = sum(int(v["calls"]) for name, v in stats.items()
                               if name not in ("cmdstat_config", "cmdstat_flushdb", "cmdstat_info"))
                print(f"{nodes:>5} {rate:>8g} {r['requests']:>8} {r['peak']:>6} {r['grants']:>6} {r['empty']:>5} "
                      f"{r['grants'] / r['requests']:>10.3f} {commands / r['requests']:>8.3f}")


if __name__ == "__main__":
    main()
