"""The demo crawl: private Redis + demo server, 300 hotels, one real ``scrapy crawl hotels``, a summary.

Everything it starts, it stops. ``python -m devtools.demo`` (``scripts/demo``) prints the summary,
one hotel's folder and its manifest.
"""

from __future__ import annotations

import argparse
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

from devtools import demo_hotels
from devtools.localredis import LocalRedis
from hotelimages import manifest
from hotelimages.keys import Keys
from hotelimages.manifest import parse_done_record
from hotelimages.sharding import hotel_dir

#: The checkout: the demo and tests run ``scrapy crawl`` here, where scrapy.cfg is.
ROOT = Path(__file__).resolve().parent.parent


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
        record = parse_done_record(raw)  # a done record points to the manifest on disk
        m = record.manifest or manifest.loads((Path(record.store) / record.dir / manifest.MANIFEST_NAME).read_bytes())
        statuses[m["status"]] += 1
        for listed in manifest.listed_files(m):
            out.images += 1
            out.bytes += listed.bytes
        image_failures.update(f["reason"] for f in m["failed"])
    failed = Counter(json.loads(raw)["reason"] for _, raw in client.hscan_iter(keys.failed, count=1000))
    out.hotels_by_status = dict(statuses)
    out.failed_by_reason = dict(failed)
    out.image_failures_by_reason = dict(image_failures)
    out.pending = client.llen(keys.start_ids)
    out.leased = client.zcard(keys.leases)
    return out


def start_demo_server(hotels: int, faults: str = "", slow_seconds: float = 3.0) -> tuple[subprocess.Popen, str]:
    """Start the demo server (``devtools.demo_server``) on a free port; returns the process and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.demo_server", "--hotels", str(hotels),
         "--faults", faults, "--slow-seconds", str(slow_seconds)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
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
            ids = demo_hotels.hotel_ids(hotels)
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


def main(argv: list[str] | None = None) -> None:
    """Run the demo and print what it left; exits non-zero if a hotel has no recorded outcome."""
    parser = argparse.ArgumentParser(prog="scripts/demo", description=__doc__.split("\n")[0])
    parser.add_argument("--hotels", type=int, default=300)
    parser.add_argument("--workdir", type=Path, default=ROOT / "demo-output", help="where the store goes")
    args = parser.parse_args(argv)
    s = run_demo(args.hotels, args.workdir)
    print("\n=== Demo summary ===")
    print(f"hotels by status : {json.dumps(s.hotels_by_status, sort_keys=True)}")
    print(f"hotels failed    : {json.dumps(s.failed_by_reason, sort_keys=True)}")
    print(f"images stored    : {s.images}  ({s.bytes / 1e6:.1f} MB)")
    print(f"image failures   : {json.dumps(s.image_failures_by_reason, sort_keys=True)}")
    print(f"left in queue    : {s.pending} pending, {s.leased} claimed")
    print(f"elapsed          : {s.elapsed:.1f} s, {s.images_per_second:.0f} images/s (including start-up)")
    hotel = demo_hotels.hotel_ids(1)[0]
    folder = args.workdir / "store" / hotel_dir(hotel)
    print(f"\n=== One hotel: {folder} ===")
    for path in sorted(folder.rglob("*")):
        print(("  " * (len(path.relative_to(folder).parts) - 1)) + path.name + ("/" if path.is_dir() else ""))
    print(f"\n=== {folder / 'manifest.json'} ===")
    print(json.dumps(json.loads((folder / "manifest.json").read_text()), indent=2))
    if s.pending or s.leased or sum(s.hotels_by_status.values()) + sum(s.failed_by_reason.values()) < args.hotels:
        sys.exit("demo incomplete: some hotels have no recorded outcome")


if __name__ == "__main__":
    main()
