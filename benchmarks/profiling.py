"""A profile of one run of our node: py-spy (sampling, low overhead) or cProfile, as tables.

py-spy's raw output (one line per distinct stack with a sample count) becomes
self and cumulative tables per function, plus a split by layer: each sample is
charged to the innermost frame that belongs to Scrapy, Twisted, asyncio, redis,
Pillow or hotelimages, so time in the standard library (hashlib, file writes)
counts for the layer that called it; samples under an import count as startup.
"""

from __future__ import annotations

import argparse
import pstats
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from benchmarks.configs import ROOT, Context, OurNode, delete_outputs, node_crawl_args
from benchmarks.harness import Bench
from benchmarks.measure import files_under, run_processes

#: (layer, package folder) in the order they are tried; py-spy names files relative to sys.path.
LAYERS = (
    ("hotelimages", "hotelimages"),
    ("scrapy", "scrapy"),
    ("twisted", "twisted"),
    ("twisted", "zope"),
    ("redis", "redis"),
    ("pillow", "PIL"),
    ("asyncio", "asyncio"),
    ("worker threads", "concurrent"),
)
STARTUP = "startup (imports)"
#: Leaf frames of threads that wait for work: py-spy counts a thread blocked on a lock in C
#: as active, but these samples are not CPU. They are dropped and counted apart.
IDLE_LEAVES = frozenset({
    "concurrent/futures/thread.py:_worker",
    "threading.py:Condition.wait",
    "threading.py:Event.wait",
    "queue.py:Queue.get",
    "selectors.py:EpollSelector.select",
})
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass
class Hotspot:
    """One function's share of the samples."""

    function: str
    samples: int
    share: float


def frame_layer(frame: str) -> str | None:
    """The layer a py-spy frame ``func (file[:line])`` belongs to, or None for the stdlib and the rest."""
    m = _FRAME.match(frame)
    path = m["file"] if m else frame
    for layer, folder in LAYERS:
        if path.startswith(folder + "/") or f"/{folder}/" in path:
            return layer
    return None


#: Path prefixes cut from py-spy's file names: packages, this checkout, the standard library.
_PATH_CUTS = ("site-packages/", f"{ROOT}/", f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/")


def short_frame(frame: str) -> str:
    """``func (path/to/site-packages/pkg/mod.py)`` shortened to ``pkg/mod.py:func``."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for cut in _PATH_CUTS:
        if cut in path:
            path = path.split(cut, 1)[1]
            break
    return f"{path}:{m['func']}"


def parse_collapsed(lines: list[str]) -> tuple[Counter, Counter, Counter, int]:
    """Self, cumulative and per-layer sample counts from py-spy's raw (collapsed) output.

    Samples whose leaf is in IDLE_LEAVES are left out of the tables and counted
    under the layer ``idle (waiting threads)``; ``total`` excludes them.
    """
    self_c: Counter = Counter()
    cum_c: Counter = Counter()
    layer_c: Counter = Counter()
    total = 0
    for line in lines:
        line = line.rstrip("\n")
        if not line or " " not in line:
            continue
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        frames = [short_frame(f) for f in stack.split(";") if f]
        raw = stack.split(";")
        if not frames:
            continue
        if frames[-1] in IDLE_LEAVES:
            layer_c["idle (waiting threads, not in total)"] += count
            continue
        total += count
        self_c[frames[-1]] += count
        for f in set(frames):
            cum_c[f] += count
        if any("importlib" in f for f in raw):
            owner = STARTUP
        else:
            owner = next((frame_layer(f) for f in reversed(raw) if frame_layer(f)), None)
        layer_c[owner or "other (stdlib, interpreter)"] += count
    return self_c, cum_c, layer_c, total


#: The stages of our node's work, in the order they are tried: a sample belongs to the first
#: stage that has a frame (a substring of py-spy's ``func (file)``) anywhere in its stack.
STAGES = (
    ("start-up (imports)", ("importlib",)),
    ("image download (fetcher, HTTP client)", ("ImageFetcher", "CurlLoop", "pycurl")),
    ("image check (Pillow header, path)", ("ShardedImagesPipeline._check ",)),
    ("write and sha1 (writer threads)", ("_write_and_hash",)),
    ("rest of media_downloaded (thread hand-off)", ("media_downloaded",)),
    ("media pipeline machinery (Scrapy)", ("MediaPipeline", "ShardedImagesPipeline")),
    ("manifests and the Redis record", ("pipelines/manifests.py",)),
    ("claims, listings (spider)", ("spiders/hotels.py", "hotelimages/claims.py")),
    ("listing downloads (Scrapy downloader)", ("scrapy/core/downloader",)),
    ("Scrapy engine, scraper, signals", ("scrapy/core/", "scrapy/utils/", "scrapy/signalmanager")),
    ("redis-py", ("redis/",)),
    ("event loop (callbacks, sockets, timers)", ("asyncio/", "twisted/")),
)


def parse_stages(lines: list[str]) -> tuple[Counter, int]:
    """On-CPU samples per stage of STAGES (``other`` for the rest) and their total."""
    stages: Counter = Counter()
    total = 0
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        raw = stack.split(";")
        if short_frame(raw[-1]) in IDLE_LEAVES:
            continue
        count = int(count_text)
        total += count
        name = next((name for name, keys in STAGES if any(k in f for f in raw for k in keys)), "other")
        stages[name] += count
    return stages, total


def top(counter: Counter, total: int, n: int) -> list[Hotspot]:
    return [Hotspot(name, c, c / total if total else 0.0) for name, c in counter.most_common(n)]


def format_hotspots(title: str, spots: list[Hotspot]) -> str:
    lines = [f"{title}", "| # | share | samples | function |", "|---|---|---|---|"]
    for i, s in enumerate(spots, 1):
        lines.append(f"| {i} | {s.share:.1%} | {s.samples} | `{s.function}` |")
    return "\n".join(lines)


def format_cprofile(path: Path, n: int) -> str:
    out = []
    for key, title in (("tottime", "self time"), ("cumulative", "cumulative time")):
        stats = pstats.Stats(str(path))
        total = stats.total_tt
        rows = sorted(stats.stats.items(), key=lambda kv: -(kv[1][2] if key == "tottime" else kv[1][3]))[:n]
        out.append(f"cProfile, top {n} by {title} (total {total:.2f}s; cProfile inflates call-heavy code)")
        out.append("| # | self s | cum s | calls | function |")
        out.append("|---|---|---|---|---|")
        for i, ((file, line, func), (_cc, nc, tt, ct, _callers)) in enumerate(rows, 1):
            where = short_frame(f"{func} ({file}:{line})")
            out.append(f"| {i} | {tt:.2f} | {ct:.2f} | {nc} | `{where}` |")
        out.append("")
    return "\n".join(out)


def run_profile(args: argparse.Namespace) -> int:
    tool = args.profile_tool
    py_spy = shutil.which("py-spy") or (str(Path(sys.executable).parent / "py-spy")
                                        if (Path(sys.executable).parent / "py-spy").exists() else None)
    if tool == "auto":
        tool = "py-spy" if py_spy else "cprofile"
    if tool == "py-spy" and not py_spy:
        print("bench --profile: py-spy not found (pip install py-spy); use --profile-tool cprofile")
        return 2
    with Bench(args, args.image_count) as ctx:
        ctx: Context
        node = OurNode(1)
        out = ctx.runs_dir / f"profile-{tool}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        node.prepare(ctx, out)
        _cmds, envs = node.commands(ctx, out)
        crawl = node_crawl_args(ctx.node_settings)
        if tool == "py-spy":
            result = out / "py-spy.txt"
            cmd = [py_spy, "record", "--format", "raw", "--rate", "250", "--nolineno", "-o", str(result),
                   "--", sys.executable, "-m", *crawl]
        else:
            result = out / "cprofile.out"
            cmd = [sys.executable, "-m", "cProfile", "-o", str(result), "-m", *crawl]
        m = run_processes([cmd], env=envs, cwd=ROOT, logs=[out / "process0.log"])
        count, _size, _first, _last = files_under(out / "store")
        delete_outputs(ctx.workdir, out / "store")
    print(f"Profile ({tool}) of one node process: {count}/{ctx.corpus.images} images in {m.wall:.1f}s, "
          f"CPU {m.cpu:.1f}s ({1000 * m.cpu / max(count, 1):.2f} ms/img under the profiler); raw output {result}")
    if tool == "py-spy":
        if not result.exists():
            print(f"py-spy wrote nothing; see {out / 'process0.log'}")
            return 1
        self_c, cum_c, layer_c, total = parse_collapsed(result.read_text().splitlines())
        print(f"{total} samples at 250 Hz (on-CPU only)\n")
        print(format_hotspots("Top 25 by self time", top(self_c, total, 25)))
        print()
        print(format_hotspots("Top 40 by cumulative time", top(cum_c, total, 40)))
        print()
        print("Samples by layer (the innermost Scrapy/Twisted/asyncio/redis/Pillow/hotelimages frame):")
        print("| layer | share |")
        print("|---|---|")
        for layer, c in layer_c.most_common():
            print(f"| {layer} | {c / total:.1%} |")
        stages, stage_total = parse_stages(result.read_text().splitlines())
        print()
        print("Samples by stage of the node's work (the first stage with a frame in the stack):")
        print("| stage | share | ms per image |")
        print("|---|---|---|")
        for name, c in stages.most_common():
            share = c / max(stage_total, 1)
            print(f"| {name} | {share:.1%} | {1000 * m.cpu * share / max(count, 1):.2f} |")
    else:
        print(format_cprofile(result, 30))
    return 0 if count == ctx.corpus.images else 1
