"""``scripts/bench``: argument parsing and the order of the steps (corpus, server, runs, report)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import report
from benchmarks.configs import (
    all_configs,
    install_img2dataset,
    measure_idle_node,
    result_dict,
    run_rounds,
)
from benchmarks.harness import Bench
from benchmarks.server import StaticServer

DEFAULT_WORKDIR = Path(os.environ.get("HOTELIMAGES_BENCH_DIR", "/tmp/hotelimages-bench"))
FULL_IMAGES = 3000
QUICK_IMAGES = 600


def machine_info(server: StaticServer | None = None) -> dict[str, str]:
    """Machine and tool versions for the report."""
    import scrapy  # noqa: PLC0415
    import twisted  # noqa: PLC0415

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    curl = shutil.which("curl")
    curl_version = subprocess.run([curl, "--version"], capture_output=True, text=True).stdout.split()[1] if curl else ""
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "scrapy": scrapy.__version__,
        "twisted": twisted.__version__,
        "server": f"{server.kind} {server.version}" if server else "",
        "curl": curl_version,
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    names = [c.name for c in all_configs(Path("."))]
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Benchmark our node against stock Scrapy pipelines, a raw spider, curl -Z and img2dataset "
        "on a generated photo corpus served from a local static server. Prints a table and ratios.",
        epilog=f"configurations: {', '.join(names)}",
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_IMAGES} images instead of {FULL_IMAGES}")
    parser.add_argument("--images", type=int, help="corpus size (overrides --quick)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3; medians quoted)")
    parser.add_argument("--only", help="comma-separated configurations to run")
    parser.add_argument("--skip", help="comma-separated configurations to leave out")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help=f"corpus and outputs ({DEFAULT_WORKDIR})")
    parser.add_argument("--json", type=Path, help="write machine-readable results to this file")
    parser.add_argument("--keep", action="store_true", help="keep each run's stored files")
    parser.add_argument("--server", choices=["nginx", "asyncio"], default="nginx", help="preferred static server")
    parser.add_argument("--node-set", action="append", default=[], metavar="NAME=VALUE",
                        help="extra Scrapy setting for our node (repeatable), e.g. CONCURRENT_ITEMS=1")
    parser.add_argument("--no-install", action="store_true", help="do not create a venv for img2dataset")
    parser.add_argument("--memory", action="store_true", help="long-run memory check instead of the comparison")
    parser.add_argument("--memory-images", type=int, default=200_000, help="tiny images for --memory (200000)")
    parser.add_argument("--redis", action="store_true", help="Redis figures instead of the comparison")
    parser.add_argument("--redis-ids", type=int, default=600_000, help="IDs to load for --redis (600000)")
    parser.add_argument("--profile", action="store_true", help="profile one run of our node instead")
    parser.add_argument("--profile-tool", choices=["auto", "py-spy", "cprofile"], default="auto")
    parser.add_argument("--scale", action="store_true", help="the scale run of issue 13 (benchmarks/scale.py)")
    parser.add_argument("--scale-parts", default="redis,ops,crawl,pack,catalog,shards",
                        help="parts of --scale to run (default: all)")
    parser.add_argument("--scale-hotels", type=int, default=600_000, help="hotels of the job for --scale (600000)")
    parser.add_argument("--crawl-hotels", type=int, default=8_500, help="hotels crawled for real by --scale (8500)")
    parser.add_argument("--photos", type=int, default=120, help="photos per crawled hotel for --scale (120)")
    parser.add_argument("--processes", type=int, default=2, help="processes of the crawling node for --scale (2)")
    args = parser.parse_args(argv)
    for item in args.node_set:
        if "=" not in item:
            parser.error(f"--node-set expects NAME=VALUE, got {item!r}")
    chosen = set(names)
    if args.only:
        wanted = {n.strip() for n in args.only.split(",") if n.strip()}
        unknown = wanted - chosen
        if unknown:
            parser.error(f"unknown configuration(s) {sorted(unknown)}; known: {names}")
        chosen = wanted
    if args.skip:
        chosen -= {n.strip() for n in args.skip.split(",")}
    args.configs = [n for n in names if n in chosen]
    args.image_count = args.images or (QUICK_IMAGES if args.quick else FULL_IMAGES)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def run_comparison(args: argparse.Namespace) -> int:
    configs = [c for c in all_configs(args.workdir) if c.name in args.configs]
    if "img2dataset" in args.configs and not args.no_install:
        why = install_img2dataset(args.workdir / "img2dataset-venv")
        if why:
            print(f"bench: {why}")
    with Bench(args, args.image_count) as ctx:
        runnable, skipped = [], {}
        for c in configs:
            why = c.available(ctx)
            if why:
                skipped[c.name] = why
                print(f"bench: skipping {c.name}: {why}")
            else:
                runnable.append(c)
        info = machine_info(ctx.server)
        print(f"bench: {len(runnable)} configurations x {args.rounds} rounds, interleaved; "
              f"machine {info['nproc']} x {info['cpu']}, load {info['load_average']}")
        results = []
        started = time.monotonic()

        def save() -> None:
            if args.json:
                args.json.write_text(json.dumps({
                    "command": " ".join(["scripts/bench", *sys.argv[1:]]), "machine": info,
                    "corpus": {"images": ctx.corpus.images, "mean_bytes": ctx.corpus.mean_bytes,
                               "total_bytes": ctx.corpus.total_bytes},
                    "skipped": skipped, "results": [result_dict(r) for r in results],
                }, indent=1))

        def on_result(r) -> None:
            results.append(r)
            save()

        idle = None
        if any(c.name.startswith("node") for c in runnable):
            idle = measure_idle_node(ctx)
            print(f"bench: one node process with an empty queue: wall {idle[0]:.2f}s, CPU {idle[1]:.2f}s")
            info["idle_node"] = f"wall {idle[0]:.2f}s, CPU {idle[1]:.2f}s"
        run_rounds(ctx, runnable, args.rounds, on_result=on_result)
        labels = {c.name: c.label for c in runnable}
        summaries = report.summarise([result_dict(r) for r in results], labels)
        info["load_average_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        save()
    print()
    print(f"Corpus: {ctx.corpus.images} JPEGs 1024x768, mean {ctx.corpus.mean_bytes / 1024:.1f} KiB; "
          f"server: {ctx.server.kind} {ctx.server.version}; {args.rounds} rounds interleaved, medians; "
          f"total {time.monotonic() - started:.0f}s")
    print("Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print()
    print(report.format_results(summaries))
    if idle:
        print()
        print(report.format_net_of_startup(summaries, ctx.corpus.images, *idle))
    for name, why in skipped.items():
        print(f"- skipped {name}: {why}")
    return 0 if all(r.ok for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.memory:
        from benchmarks.memory import run_memory_check  # noqa: PLC0415

        return run_memory_check(args)
    if args.redis:
        from benchmarks.redisfig import run_redis_figures  # noqa: PLC0415

        return run_redis_figures(args)
    if args.scale:
        from benchmarks.scale import run_scale  # noqa: PLC0415

        return run_scale(args)
    if args.profile:
        from benchmarks.profiling import run_profile  # noqa: PLC0415

        return run_profile(args)
    return run_comparison(args)
