"""Redis figures: time to load 600,000 IDs, memory per pending ID and per manifest, commands per hotel.

All against a private redis-server the benchmark starts, so ``used_memory``
and ``INFO commandstats`` hold nothing but this measurement.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import redis

from benchmarks import corpus as cp
from benchmarks.configs import ROOT, delete_outputs, node_crawl_args, settle_after_cleanup
from benchmarks.measure import run_processes
from benchmarks.memory import tiny_records
from benchmarks.server import StaticServer
from devtools.demo import crawl_env
from devtools.localredis import LocalRedis
from hotelimages.keys import Keys

CRAWL_HOTELS = 500


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def commandstats(client: redis.Redis) -> dict[str, int]:
    """Calls per command since the last CONFIG RESETSTAT (``cmdstat_`` prefix dropped)."""
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in client.info("commandstats").items()}


def run_redis_figures(args: argparse.Namespace) -> int:
    workdir: Path = args.workdir
    n = args.redis_ids
    ids_file = workdir / f"ids-{n}.txt"
    settle_after_cleanup(workdir)
    if not ids_file.exists():
        ids_file.write_text("".join(f"H{i:09d}\n" for i in range(n)))
    figures: dict = {}
    with LocalRedis(workdir=workdir / "redis") as local_redis:
        client = redis.Redis.from_url(local_redis.url)
        client.flushdb()
        before = used_memory(client)
        cmd = [sys.executable, str(ROOT / "scripts" / "push_ids"), "--redis-url", local_redis.url, str(ids_file)]
        started = time.monotonic()
        m = run_processes([cmd], cwd=ROOT, logs=[workdir / "push_ids.log"])
        load_wall = time.monotonic() - started
        pending = client.llen(Keys().start_ids)
        after = used_memory(client)
        list_bytes = int(client.memory_usage(Keys().start_ids, samples=0) or 0)
        figures["load"] = {
            "ids": n, "pending": pending, "wall_s": load_wall, "cpu_s": m.cpu, "exit_code": m.exit_codes[0],
            "used_memory_per_id": (after - before) / max(pending, 1), "list_bytes_per_id": list_bytes / max(pending, 1),
        }
        print((workdir / "push_ids.log").read_text().strip())
        print(f"Loading {n} IDs with scripts/push_ids: {load_wall:.2f}s wall (process start to exit), "
              f"CPU {m.cpu:.2f}s; {pending} pending")
        print(f"Redis used_memory per pending ID: {(after - before) / max(pending, 1):.1f} bytes "
              f"(MEMORY USAGE of the list: {list_bytes / max(pending, 1):.1f} bytes per ID; IDs are 10 characters)")

        # A crawl of tiny images: memory per manifest and commands per hotel.
        client.flushdb()
        root = workdir / "corpus"
        cp.ensure_corpus(root, 0)
        run_dir = workdir / "runs" / "redis-crawl"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        with StaticServer(root, workdir, prefer=args.server) as server:
            records = tiny_records(CRAWL_HOTELS * cp.IMAGES_PER_HOTEL, server.base_url)
            client.lpush(Keys().start_ids, *records)
            before = used_memory(client)
            entries_bytes = int(client.memory_usage(Keys().start_ids, samples=0) or 0)
            client.config_resetstat()
            env = crawl_env(local_redis.url, server.base_url, run_dir / "store", "bench-redis")
            m = run_processes(
                [[sys.executable, "-m", *node_crawl_args({"LOG_LEVEL": "WARNING"})]],
                env=env, cwd=ROOT, logs=[run_dir / "process0.log"],
            )
            calls = commandstats(client)
            after = used_memory(client)
        keys = Keys()
        manifests = client.hlen(keys.manifests)
        manifests_bytes = int(client.memory_usage(keys.manifests, samples=0) or 0)
        sample = client.hrandfield(keys.manifests, 1, withvalues=True)
        manifest_json_len = len(sample[1]) if sample else 0
        client.close()
        delete_outputs(workdir, run_dir / "store")
    total_calls = sum(calls.values())
    hotels = max(manifests, 1)
    figures["crawl"] = {
        "hotels": manifests, "images_per_hotel": cp.IMAGES_PER_HOTEL, "exit_code": m.exit_codes[0],
        "used_memory_per_manifest": (after - before + entries_bytes) / hotels,
        "manifests_hash_bytes_per_manifest": manifests_bytes / hotels, "manifest_json_bytes": manifest_json_len,
        "commands_per_hotel": total_calls / hotels, "calls": calls, "wall_s": m.wall,
    }
    print()
    print(f"Crawl of {manifests} hotels x {cp.IMAGES_PER_HOTEL} tiny images ({m.wall:.1f}s, one node process):")
    print(f"  Redis memory per done hotel: {manifests_bytes / hotels:.0f} bytes in hotels:manifests "
          f"(one done record is {manifest_json_len} bytes); used_memory grew "
          f"{(after - before + entries_bytes) / hotels:.0f} bytes per hotel net of the consumed queue entries")
    print(f"  Redis commands per hotel: {total_calls / hotels:.1f} (all calls, including those run inside Lua scripts)")
    print("  | command | calls | per hotel |")
    print("  |---|---|---|")
    for name, count in sorted(calls.items(), key=lambda kv: -kv[1]):
        print(f"  | {name} | {count} | {count / hotels:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0 if figures["load"]["exit_code"] == 0 and m.exit_codes[0] == 0 else 1
