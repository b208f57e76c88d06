"""The demo: a private Redis and demo server, 300 hotels pushed, one real ``scrapy crawl hotels``.

Everything it starts, it stops. Returns a summary that the script prints.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import redis

from hotelimages.demo import catalogue
from hotelimages.keys import Keys
from hotelimages.localredis import LocalRedis
from hotelimages.manifest import parse_done_record

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class CrawlSummary:
    """What a crawl left in Redis and on disk."""

    hotels_by_status: dict[str, int] = field(default_factory=dict)
    failed_by_reason: dict[str, int] = field(default_factory=dict)
    image_failures_by_reason: dict[str, int] = field(default_factory=dict)
    images: int = 0
    bytes: int = 0
    pending: int = 0
    leased: int = 0
    elapsed: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.images / self.elapsed if self.elapsed else 0.0


def summarise(client: redis.Redis, keys: Keys, elapsed: float = 0.0) -> CrawlSummary:
    """Read every manifest (on disk, where the done records point) and failure record.

    Fine for a demo; status uses counters instead.
    """
    out = CrawlSummary(elapsed=elapsed)
    statuses: Counter[str] = Counter()
    image_failures: Counter[str] = Counter()
    for _, raw in client.hscan_iter(keys.manifests, count=1000):
        record = parse_done_record(raw)
        m = record.manifest or json.loads((Path(record.store) / record.dir / "manifest.json").read_bytes())
        statuses[m["status"]] += 1
        for files in m["images"].values():
            out.images += len(files)
            out.bytes += sum(f["bytes"] for f in files)
        image_failures.update(f["reason"] for f in m["failed"])
    failed = Counter(json.loads(raw)["reason"] for _, raw in client.hscan_iter(keys.failed, count=1000))
    out.hotels_by_status = dict(statuses)
    out.failed_by_reason = dict(failed)
    out.image_failures_by_reason = dict(image_failures)
    out.pending = client.llen(keys.start_ids)
    out.leased = client.zcard(keys.leases)
    return out


def start_demo_server(hotels: int, faults: str = "", slow_seconds: float = 3.0) -> tuple[subprocess.Popen, str]:
    """Start scripts/demo_server.py on a free port; returns the process and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "demo_server.py"), "--hotels", str(hotels),
         "--faults", faults, "--slow-seconds", str(slow_seconds)],
        stdout=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if "listening on " not in line:
        proc.kill()
        raise RuntimeError(f"demo server did not start: {line!r}")
    return proc, line.rsplit("listening on ", 1)[1].strip()


def crawl_env(redis_url: str, base_url: str, store: Path, node_id: str) -> dict[str, str]:
    """The environment of a node crawling the demo server."""
    env = dict(os.environ)
    env.update(
        REDIS_URL=redis_url,
        HOTEL_LISTING_URL=f"{base_url}/hotels/{{hotel_id}}/photos",
        IMAGES_STORE=str(store),
        NODE_ID=node_id,
        SCRAPY_SETTINGS_MODULE="hotelimages.settings",
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env


def run_demo(hotels: int = 300, workdir: Path | None = None, log=print) -> CrawlSummary:
    """Run the whole demo and return its summary; ``workdir`` keeps the store (default ./demo-output)."""
    workdir = Path(workdir or ROOT / "demo-output")
    store = workdir / "store"
    if store.exists():
        shutil.rmtree(store)  # a fresh store each run, so the figures are a real crawl's
    keys = Keys()
    with LocalRedis() as server:
        log(f"Started a private redis-server on 127.0.0.1:{server.port}")
        demo, base_url = start_demo_server(hotels)
        try:
            log(f"Started the demo hotel server at {base_url}")
            client = redis.Redis.from_url(server.url)
            ids = catalogue.hotel_ids(hotels)
            client.lpush(keys.start_ids, *ids)
            log(f"Pushed {len(ids)} hotel IDs to {keys.start_ids}; crawling into {store} ...")
            started = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "scrapy", "crawl", "hotels", "-s", "HOTELS_IDLE_CLOSE_SECONDS=2",
                 "-s", "LOG_LEVEL=WARNING"],
                cwd=ROOT, env=crawl_env(server.url, base_url, store, "demo-node"), check=True,
            )
            summary = summarise(client, keys, time.monotonic() - started)
            client.close()
        finally:
            demo.terminate()
            demo.wait(10)
    return summary
