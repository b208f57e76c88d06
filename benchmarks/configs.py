"""The benchmark configurations and one interleaved run of them.

Every configuration downloads the same corpus from the same static server into
a fresh folder, is measured by ``measure.run_processes`` and checked by counting
what it stored. A configuration whose tool is missing is skipped with a note.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis
from scrapy.settings import default_settings as scrapy_defaults

from benchmarks import corpus as cp
from benchmarks.measure import Measurement, files_under, run_processes
from benchmarks.report import median
from benchmarks.server import StaticServer
from devtools.demo import ROOT, crawl_env, summarise
from hotelimages.keys import Keys

SPIDERS = Path(__file__).resolve().parent / "spiders"
#: Scrapy settings given to every comparison spider: the same concurrency as curl -Z and our node.
COMPARISON_SETTINGS = {
    "CONCURRENT_REQUESTS": "64",
    "CONCURRENT_REQUESTS_PER_DOMAIN": "64",
    "LOG_LEVEL": "WARNING",
    "TELNETCONSOLE_ENABLED": "False",
    "REMOTE_CONTROL_ENABLED": "False",
    "ROBOTSTXT_OBEY": "False",
}
#: Settings given to our node on top of the project's own (it closes soon after the queue empties).
NODE_SETTINGS = {"HOTELS_IDLE_CLOSE_SECONDS": "0.5", "LOG_LEVEL": "INFO"}


@dataclass
class RunResult:
    """One run of one configuration."""

    config: str
    round: int
    expected: int
    images: int = 0
    bytes_downloaded: int = 0
    wall: float = 0.0
    active: float = 0.0
    cpu: float = 0.0
    cpu_user: float = 0.0
    cpu_sys: float = 0.0
    peak_rss_sum: int = 0
    peak_rss_max: int = 0
    processes: int = 1
    server_cpu: float = 0.0
    ok: bool = False
    note: str = ""
    extra: dict = field(default_factory=dict)


@dataclass
class Context:
    """What every configuration needs: the corpus, the server, Redis and the work folder."""

    workdir: Path
    corpus: cp.Corpus
    server: StaticServer
    redis_url: str
    urls_file: Path
    hotel_ids: list[str]
    node_settings: dict[str, str] = field(default_factory=dict)
    keep: bool = False
    #: Stored files of finished runs, deleted when the benchmark ends (see ``defer_cleanup``).
    pending_cleanup: list[Path] = field(default_factory=list)

    @property
    def runs_dir(self) -> Path:
        return self.workdir / "runs"

    def defer_cleanup(self, folder: Path) -> None:
        """Delete ``folder`` when the benchmark ends, not now.

        ext4 skips the inodes of files deleted within about the last 35 s when it creates new
        ones, and scanning past them cost the next run up to 2.6 ms of kernel CPU per image
        (measured: sys 7.9 s instead of 2.1 s for 3,000 images right after a run's 3,000 files
        were deleted). A node never deletes thousands of files before it writes, so runs must
        not either. When the disk would run short, the oldest outputs go now after all.
        """
        self.pending_cleanup.append(folder)
        while len(self.pending_cleanup) > 1 and shutil.disk_usage(folder).free < 3 * self.corpus.total_bytes:
            print(f"bench: disk space is short; deleting {self.pending_cleanup[0]} now "
                  "(the next run may pay ext4's cost of recently deleted inodes)")
            shutil.rmtree(self.pending_cleanup.pop(0), ignore_errors=True)

    def cleanup(self) -> None:
        """Delete every deferred output and note when (``settle_after_cleanup`` waits on it)."""
        if not self.pending_cleanup:
            return
        for folder in self.pending_cleanup:
            shutil.rmtree(folder, ignore_errors=True)
        self.pending_cleanup.clear()
        note_cleanup(self.workdir)


#: When a benchmark last deleted its outputs (seconds since the epoch).
CLEANUP_STAMP = "last-cleanup"
#: How long after deleting many files new files cost extra on ext4 (dirty_expire 30 s + margin).
DELETED_INODE_WINDOW = 40.0


def delete_outputs(workdir: Path, folder: Path) -> None:
    """Delete a run's stored files now, and note when (see ``settle_after_cleanup``)."""
    shutil.rmtree(folder, ignore_errors=True)
    note_cleanup(workdir)


def note_cleanup(workdir: Path) -> None:
    (workdir / CLEANUP_STAMP).write_text(str(time.time()))


def settle_after_cleanup(workdir: Path, log: Callable[[str], None] = print) -> None:
    """Wait until the previous benchmark's deletions are out of ext4's recently-deleted window."""
    try:
        last = float((workdir / CLEANUP_STAMP).read_text())
    except (OSError, ValueError):
        return
    wait = DELETED_INODE_WINDOW - (time.time() - last)
    if wait > 0:
        log(f"bench: waiting {wait:.0f}s: the previous benchmark deleted its outputs just now "
            "(ext4 would charge the first runs for it)")
        time.sleep(wait)


def node_crawl_args(settings: dict[str, str] | None = None) -> list[str]:
    """``scrapy crawl hotels`` with the benchmark's node settings (NODE_SETTINGS, then ``settings``)."""
    return ["scrapy", "crawl", "hotels", *_settings_args({**NODE_SETTINGS, **(settings or {})})]


def _settings_args(settings: dict[str, str]) -> list[str]:
    args = []
    for name, value in settings.items():
        args += ["-s", f"{name}={value}"]
    return args


class Config:
    """One way of downloading the corpus; subclasses fill in the commands and the check."""

    name = ""
    label = ""

    def available(self, ctx: Context) -> str | None:
        """None if this configuration can run here, else why not."""
        return None

    def prepare(self, ctx: Context, out: Path) -> None:
        """Set up anything a run needs (queue contents, input files) before the clock starts."""

    def commands(self, ctx: Context, out: Path) -> tuple[list[list[str]], list[dict[str, str]]]:
        raise NotImplementedError

    def cwd(self, out: Path) -> Path:
        """Where the processes run: the run folder, so no ``scrapy.cfg`` of this project is found."""
        return out

    def count(self, ctx: Context, out: Path) -> tuple[int, int, float, float]:
        """Files stored: count, bytes, first and last mtime."""
        return files_under(out / "store")

    def check(self, ctx: Context, out: Path, result: RunResult) -> None:
        """Set ``result.ok`` and ``note`` from what the run left behind."""
        result.ok = result.images == result.expected and all(c == 0 for c in result.extra.get("exit_codes", [0]))
        if not result.ok:
            result.note = f"stored {result.images} of {result.expected}; exit codes {result.extra.get('exit_codes')}"


class OurNode(Config):
    """``scrapy crawl hotels``: claims, listings, checks, sharded original-bytes store, manifests."""

    def __init__(self, processes: int = 1, name: str = "", label: str = "", settings: dict[str, str] | None = None):
        self.processes = processes
        self.name = name or ("node" if processes == 1 else f"node{processes}p")
        self.label = label or (
            "our node, 1 process" if processes == 1 else f"our node, {processes} processes (one per core)"
        )
        self.settings = settings or {}

    def prepare(self, ctx: Context, out: Path) -> None:
        client = redis.Redis.from_url(ctx.redis_url)
        client.flushdb()  # our own private redis-server, started by the benchmark
        keys = Keys()
        # LPUSH in order: nodes pop from the right, so they take hotels in corpus order.
        for i in range(0, len(ctx.hotel_ids), 10_000):
            client.lpush(keys.start_ids, *ctx.hotel_ids[i : i + 10_000])
        client.config_resetstat()
        client.close()

    def commands(self, ctx: Context, out: Path) -> tuple[list[list[str]], list[dict[str, str]]]:
        cmds, envs = [], []
        crawl = [sys.executable, "-m", *node_crawl_args({**self.settings, **ctx.node_settings})]
        for i in range(self.processes):
            env = crawl_env(ctx.redis_url, ctx.server.base_url, out / "store", f"bench-{chr(97 + i)}")
            env["HOTEL_LISTING_URL"] = f"{ctx.server.base_url}/listings/{{hotel_id}}.json"
            cmds.append(crawl)
            envs.append(env)
        return cmds, envs

    def cwd(self, out: Path) -> Path:
        return ROOT  # the project's scrapy.cfg and settings

    def check(self, ctx: Context, out: Path, result: RunResult) -> None:
        client = redis.Redis.from_url(ctx.redis_url)
        keys = Keys()
        manifests = client.hlen(keys.manifests)
        failed = client.hlen(keys.failed)
        stats = {k.decode(): int(v) for k, v in client.hgetall(keys.stats).items()}
        statuses = summarise(client, keys).hotels_by_status
        commands = {
            name: info.get("calls", 0) for name, info in client.info("commandstats").items()
        }
        client.close()
        manifest_files = sum(1 for _ in (out / "store").rglob("manifest.json")) if (out / "store").exists() else 0
        hotels = len(ctx.hotel_ids)
        result.extra.update(
            manifests=manifests, manifest_files=manifest_files, failed_hotels=failed, statuses=statuses,
            stats_images_stored=stats.get("images/stored", 0), redis_commands=commands,
        )
        problems = []
        if result.images != result.expected:
            problems.append(f"stored {result.images} of {result.expected} images")
        if result.bytes_downloaded != ctx.corpus.total_bytes:
            problems.append(f"stored {result.bytes_downloaded} bytes, corpus has {ctx.corpus.total_bytes}")
        if manifests != hotels or manifest_files != hotels or statuses.get("complete", 0) != hotels:
            problems.append(f"{manifests} manifests in Redis, {manifest_files} files, statuses {statuses}; "
                            f"expected {hotels} complete")
        if stats.get("images/stored", 0) != result.expected:
            problems.append(f"hotels:stats images/stored={stats.get('images/stored', 0)}")
        if any(result.extra.get("exit_codes", [])):
            problems.append(f"exit codes {result.extra['exit_codes']}")
        result.ok = not problems
        result.note = "; ".join(problems)


class ScrapySpiderConfig(Config):
    """One of the comparison spiders in ``spiders/``, run with ``scrapy runspider``."""

    def __init__(self, name: str, label: str, script: str, store_setting: str | None):
        self.name, self.label, self.script, self.store_setting = name, label, script, store_setting

    def commands(self, ctx: Context, out: Path) -> tuple[list[list[str]], list[dict[str, str]]]:
        args = [sys.executable, "-m", "scrapy", "runspider", str(SPIDERS / self.script), "-a", f"urls={ctx.urls_file}"]
        settings = dict(COMPARISON_SETTINGS)
        if self.store_setting:
            settings[self.store_setting] = str(out / "store")
        else:
            args += ["-a", f"out={out / 'store'}"]
        env = {k: v for k, v in os.environ.items() if k not in ("SCRAPY_SETTINGS_MODULE", "SCRAPY_PROJECT")}
        return [args + _settings_args(settings)], [env]


class Curl(Config):
    name = "curl"
    label = "curl -Z --parallel-max 64"

    def available(self, ctx: Context) -> str | None:
        curl = shutil.which("curl")
        if not curl:
            return "curl not installed"
        out = subprocess.run([curl, "--help", "all"], capture_output=True, text=True)
        return None if "--parallel-max" in out.stdout else "this curl has no --parallel-max (needs 7.66+)"

    def prepare(self, ctx: Context, out: Path) -> None:
        (out / "store").mkdir(parents=True, exist_ok=True)
        lines = []
        for url in ctx.urls_file.read_text().split():
            lines.append(f'url = "{url}"\noutput = "{out / "store" / url.rsplit("/", 1)[-1]}"\n')
        (out / "curl.conf").write_text("".join(lines))

    def commands(self, ctx: Context, out: Path) -> tuple[list[list[str]], list[dict[str, str]]]:
        return [["curl", "-Z", "--parallel-max", "64", "-s", "-S", "-f", "-K", str(out / "curl.conf")]], [None]


class ClientFloor(Config):
    """An HTTP library alone (``benchmarks.floor``): pycurl is the floor of our node."""

    def __init__(self, client: str, name: str, label: str):
        self.client = client
        self.name = name
        self.label = label

    def prepare(self, ctx: Context, out: Path) -> None:
        (out / "store").mkdir(parents=True, exist_ok=True)

    def commands(self, ctx: Context, out: Path) -> tuple[list[list[str]], list[dict[str, str]]]:
        # 32 at a time: the node's CONCURRENT_REQUESTS_PER_DOMAIN (hotelimages/settings.py).
        return [[sys.executable, "-m", "benchmarks.floor", "--urls", str(ctx.urls_file),
                 "--out", str(out / "store"), "--per-host", "32", "--client", self.client]], [
            dict(os.environ, PYTHONPATH=str(ROOT))]


class Aria2(Config):
    name = "aria2c"
    label = "aria2c -j64"

    def available(self, ctx: Context) -> str | None:
        return None if shutil.which("aria2c") else "aria2c not installed"

    def prepare(self, ctx: Context, out: Path) -> None:
        (out / "store").mkdir(parents=True, exist_ok=True)
        (out / "aria2.txt").write_text("".join(f"{u}\n" for u in ctx.urls_file.read_text().split()))

    def commands(self, ctx: Context, out: Path) -> tuple[list[list[str]], list[dict[str, str]]]:
        return [["aria2c", "-j64", "-x1", "-q", "--allow-overwrite=true", "--auto-file-renaming=false",
                 "--file-allocation=none", "-d", str(out / "store"), "-i", str(out / "aria2.txt")]], [None]


class Img2dataset(Config):
    name = "img2dataset"
    label = "img2dataset, 2 processes x 64 threads, no re-encoding"
    processes = 2

    def __init__(self, venv: Path):
        self.venv = venv

    @property
    def binary(self) -> Path:
        return self.venv / "bin" / "img2dataset"

    def available(self, ctx: Context) -> str | None:
        if self.binary.exists():
            return None
        return f"img2dataset not installed in {self.venv} (the benchmark installs it unless --no-install is given)"

    def commands(self, ctx: Context, out: Path) -> tuple[list[list[str]], list[dict[str, str]]]:
        shard = max(1, -(-ctx.corpus.images // 8))  # 8 shards: both processes stay busy
        cmd = [
            str(self.binary), "--url_list", str(ctx.urls_file), "--input_format", "txt",
            "--output_folder", str(out / "store"), "--output_format", "files",
            "--processes_count", str(self.processes), "--thread_count", "64", "--number_sample_per_shard", str(shard),
            "--resize_mode", "no", "--encode_format", "jpg", "--disable_all_reencoding", "True",
            "--extract_exif", "False", "--timeout", "30", "--retries", "0", "--enable_wandb", "False",
        ]
        env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="disabled")
        return [cmd], [env]

    def count(self, ctx: Context, out: Path) -> tuple[int, int, float, float]:
        return files_under(out / "store", skip_suffixes=(".json", ".parquet", ".txt"))


def install_img2dataset(venv: Path, log=print) -> str | None:
    """Create ``venv`` and pip-install img2dataset into it; None on success, else why not."""
    if (venv / "bin" / "img2dataset").exists():
        return None
    log(f"bench: installing img2dataset into {venv} (a separate venv; takes a minute) ...")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "img2dataset"], check=True,
                       stdout=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"could not install img2dataset: {exc}"
    return None


#: Our node as it was before the speed work of issue 6: images through Scrapy's downloader, and
#: Scrapy's own Downloader at that (every queued image started at once, a new connection each),
#: file writes on the reactor thread, CONCURRENT_ITEMS=16 and Scrapy's full set of downloader
#: middlewares.
BEFORE_SETTINGS = {
    "HOTELS_IMAGE_FETCHER": "scrapy",
    "DOWNLOADER": "scrapy.core.downloader.Downloader",
    "HOTELS_WRITE_THREADS": "0",
    "CONCURRENT_ITEMS": "16",
    "DOWNLOADER_MIDDLEWARES": "{}",
    # Scrapy's own base lists: every component imported at start, as before.
    "EXTENSIONS_BASE": json.dumps(scrapy_defaults.EXTENSIONS_BASE),
    "DOWNLOADER_MIDDLEWARES_BASE": json.dumps(scrapy_defaults.DOWNLOADER_MIDDLEWARES_BASE),
}


#: Our node with images through Scrapy's (bounded) downloader instead of the direct fetcher.
SCRAPY_FETCHER_SETTINGS = {"HOTELS_IMAGE_FETCHER": "scrapy"}

#: Scrapy 2.19's experimental aiohttp download handler (aiohttp is already a Scrapy dependency),
#: with images through Scrapy's downloader so that the handler is the one fetching them.
AIOHTTP_SETTINGS = {
    **SCRAPY_FETCHER_SETTINGS,
    "DOWNLOAD_HANDLERS": json.dumps({
        scheme: "scrapy.core.downloader.handlers._aiohttp.AiohttpDownloadHandler" for scheme in ("http", "https")
    }),
}


def all_configs(workdir: Path) -> list[Config]:
    """Every configuration, in the order they run within a round."""
    return [
        OurNode(1),
        OurNode(1, "node-before", "our node, 1 process, without the issue-6 changes", BEFORE_SETTINGS),
        OurNode(1, "node-scrapy", "our node, 1 process, images through Scrapy's downloader", SCRAPY_FETCHER_SETTINGS),
        OurNode(2),
        OurNode(1, "node-aiohttp", "our node, 1 process, Scrapy's experimental aiohttp handler", AIOHTTP_SETTINGS),
        ScrapySpiderConfig("images", "stock Scrapy ImagesPipeline", "stock_images.py", "IMAGES_STORE"),
        ScrapySpiderConfig("files", "stock Scrapy FilesPipeline", "stock_files.py", "FILES_STORE"),
        ScrapySpiderConfig("raw", "raw Scrapy spider writing response.body", "raw_body.py", None),
        ClientFloor("pycurl", "client", "pycurl (libcurl) alone as the fetcher drives it: GET, sha1, write in 4 threads"
                    " (the node's floor)"),
        ClientFloor("aiohttp", "aiohttp", "aiohttp alone: GET, sha1, write in 4 threads"),
        Curl(),
        Aria2(),
        Img2dataset(workdir / "img2dataset-venv"),
    ]


def measure_idle_node(ctx: Context, runs: int = 3) -> tuple[float, float]:
    """Median wall and CPU seconds of one node process that finds the queue empty (start-up + idle close)."""
    node = OurNode(1)
    walls, cpus = [], []
    for i in range(runs):
        out = ctx.runs_dir / f"node-idle-{i}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        client = redis.Redis.from_url(ctx.redis_url)
        client.flushdb()
        client.close()
        cmds, envs = node.commands(ctx, out)
        m = run_processes(cmds, env=envs, cwd=node.cwd(out), logs=[out / "process0.log"])
        if m.exit_codes != [0]:
            raise RuntimeError(f"empty-queue node run failed: see {out / 'process0.log'}")
        walls.append(m.wall)
        cpus.append(m.cpu)
    return median(walls), median(cpus)


def run_once(ctx: Context, config: Config, round_no: int, timeout: float = 1800.0) -> RunResult:
    """One measured run of ``config`` into a fresh folder."""
    out = ctx.runs_dir / f"{config.name}-r{round_no}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    config.prepare(ctx, out)
    cmds, envs = config.commands(ctx, out)
    logs = [out / f"process{i}.log" for i in range(len(cmds))]
    server_before = ctx.server.cpu_seconds()
    m: Measurement = run_processes(
        cmds, env=envs, cwd=config.cwd(out), logs=logs, timeout=timeout,
    )
    server_cpu = ctx.server.cpu_seconds() - server_before
    count, size, first, last = config.count(ctx, out)
    result = RunResult(
        config=config.name, round=round_no, expected=ctx.corpus.images, images=count,
        # Bytes downloaded, not stored: stock ImagesPipeline stores re-encoded files of another size.
        bytes_downloaded=size if config.name != "images" else int(count * ctx.corpus.mean_bytes),
        wall=m.wall, active=max(0.0, last - first), cpu=m.cpu, cpu_user=m.cpu_user, cpu_sys=m.cpu_sys,
        peak_rss_sum=m.peak_rss_sum, peak_rss_max=m.peak_rss_max, processes=len(cmds), server_cpu=server_cpu,
        extra={"exit_codes": m.exit_codes},
    )
    config.check(ctx, out, result)
    if not ctx.keep:
        ctx.defer_cleanup(out / "store")
    # Write this run's files back now, outside any measurement: the next run must not pay for
    # the kernel's writeback of 500+ MB of dirty pages that this one left behind.
    if hasattr(os, "sync"):
        os.sync()
    return result


def run_rounds(
    ctx: Context, configs: list[Config], rounds: int, log: Callable[[str], None] = print,
    on_result: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Run every configuration once per round, interleaved (A B C A B C ...)."""
    results: list[RunResult] = []
    for r in range(1, rounds + 1):
        for config in configs:
            started = time.monotonic()
            res = run_once(ctx, config, r)
            results.append(res)
            log(
                f"  round {r} {config.name:<12} {res.images:>6}/{res.expected} images  wall {res.wall:6.1f}s  "
                f"{res.images / res.wall if res.wall else 0:7.1f} img/s  cpu {res.cpu:6.1f}s  "
                f"rss {res.peak_rss_sum / 2**20:6.0f} MB  {'ok' if res.ok else 'FAILED: ' + res.note}"
                f"  ({time.monotonic() - started:.0f}s)"
            )
            if on_result:
                on_result(res)
    return results


def result_dict(result: RunResult) -> dict:
    return asdict(result)
