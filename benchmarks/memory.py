"""The long-run memory check: one node crawling many tiny images, RSS sampled as it goes.

Hotels are pushed as JSON records with inline listings (20 images each) whose
URLs all answer with one small JPEG (``/tiny/<n>.jpg``), so the run measures the
node's per-image bookkeeping, not the network. Progress is read from Redis
(``hotels:stats`` ``images/stored``) every few seconds next to the RSS.
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
from benchmarks.report import MIB, rss_at_progress
from benchmarks.server import StaticServer
from devtools.demo import crawl_env
from devtools.localredis import LocalRedis
from hotelimages.keys import Keys

POLL_SECONDS = 3.0


def tiny_records(images: int, base_url: str, per_hotel: int = cp.IMAGES_PER_HOTEL) -> list[str]:
    """Pending-list entries for ``images`` tiny images: JSON records with inline listings."""
    out = []
    for h in range(-(-images // per_hotel)):
        doc = cp.listing(h, images, base_url, path="tiny", per_hotel=per_hotel)
        doc["hotel_id"] = f"tiny{h:06d}"
        out.append(json.dumps(doc, separators=(",", ":")))
    return out


def run_memory_check(args: argparse.Namespace) -> int:
    workdir: Path = args.workdir
    root = workdir / "corpus"
    cp.ensure_corpus(root, 0)  # only tiny.jpg is needed here
    run_dir = workdir / "runs" / "memory"
    settle_after_cleanup(workdir)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    total = args.memory_images
    with StaticServer(root, workdir, prefer=args.server) as server, \
            LocalRedis(workdir=workdir / "redis") as local_redis:
        print(f"bench --memory: {total} tiny images from {server.kind} at {server.base_url}")
        client = redis.Redis.from_url(local_redis.url)
        client.flushdb()
        keys = Keys()
        records = tiny_records(total, server.base_url)
        for i in range(0, len(records), 5000):
            client.lpush(keys.start_ids, *records[i : i + 5000])
        samples: list[tuple[float, int, int]] = []
        last_poll = [0.0]
        started = time.monotonic()

        def on_sample(now: float, rss: int) -> None:
            if now - last_poll[0] < POLL_SECONDS:
                return
            last_poll[0] = now
            done = int(client.hget(keys.stats, "images/stored") or 0)
            samples.append((now, done, rss))
            print(f"  {now:7.0f}s  {done:>7}/{total} images  RSS {rss / MIB:6.1f} MiB", flush=True)

        env = crawl_env(local_redis.url, server.base_url, run_dir / "store", "bench-memory")
        settings = {"LOG_LEVEL": "WARNING", **dict(s.split("=", 1) for s in args.node_set)}
        m = run_processes(
            [[sys.executable, "-m", *node_crawl_args(settings)]],
            env=env, cwd=ROOT, logs=[run_dir / "process0.log"], interval=0.5, on_sample=on_sample,
            timeout=6 * 3600,
        )
        done = int(client.hget(keys.stats, "images/stored") or 0)
        if samples and m.samples:
            # The last RSS seen before the process exited stands for 100%.
            samples.append((m.wall, done, m.samples[-1][1]))
        manifests = client.hlen(keys.manifests)
        client.close()
    wall = time.monotonic() - started
    at = rss_at_progress(samples, total)
    delete_outputs(workdir, run_dir / "store")
    print()
    print(f"Long-run memory check: {done}/{total} tiny images ({manifests} hotels) in {wall:.0f}s "
          f"({done / wall:.0f} img/s), CPU {1000 * m.cpu / max(done, 1):.2f} ms/img, exit code {m.exit_codes[0]}")
    print("| progress | RSS MiB |")
    print("|---|---|")
    for mark, rss in at.items():
        print(f"| {mark:.0%} | {'-' if rss is None else f'{rss / MIB:.1f}'} |")
    print(f"| peak (VmHWM) | {m.peak_rss_max / MIB:.1f} |")
    if at.get(0.1) and at.get(1.0):
        growth = (at[1.0] - at[0.1]) / at[0.1]
        print(f"RSS change from 10% to 100%: {growth:+.1%} (target: within 10%)")
    if args.json:
        args.json.write_text(json.dumps({"images": total, "stored": done, "wall": wall, "cpu": m.cpu,
                                         "peak_rss_max": m.peak_rss_max, "samples": samples,
                                         "rss_at": {str(k): v for k, v in at.items()}}, indent=1))
    return 0 if done == total else 1
