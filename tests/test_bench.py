"""Smoke tests of the benchmark's pure parts, its asyncio static server and ``scripts/bench --help``."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from benchmarks import corpus as cp
from benchmarks import report
from benchmarks.cli import parse_args
from benchmarks.measure import files_under, run_processes
from benchmarks.memory import tiny_records
from benchmarks.profiling import frame_layer, parse_collapsed, short_frame
from benchmarks.server import StaticServer
from hotelimages.listing import check_images, parse_listing_document, parse_queue_entry

ROOT = Path(__file__).resolve().parent.parent


def test_hotel_plan_and_listing_follow_the_listing_contract():
    assert cp.hotel_id(3) == "bench000003"
    assert cp.hotel_images(2, 45) == list(range(40, 45))
    doc = cp.listing(0, 45, "http://h:1")
    assert doc["images"][1] == {"id": "i000001", "url": "http://h:1/img/000001.jpg", "category": "exterior"}
    page = parse_listing_document(doc)
    checked = check_images(page.images, categories=cp.CATEGORIES, other_category="other",
                           image_id_pattern=r"[A-Za-z0-9_-]{1,64}", max_images=5000)
    assert len(checked.images) == 20 and not checked.failed
    assert cp.image_urls(2, "http://h:1") == ["http://h:1/img/000000.jpg", "http://h:1/img/000001.jpg"]


def test_tiny_records_are_valid_queue_entries():
    records = tiny_records(45, "http://h:1")
    assert len(records) == 3
    entry = parse_queue_entry(records[2].encode(), r"[A-Za-z0-9_-]{1,64}")
    assert entry.hotel_id == "tiny000002"
    assert [i["url"] for i in entry.inline_images] == [f"http://h:1/tiny/0000{n}.jpg" for n in range(40, 45)]


def test_photo_is_a_photo_sized_jpeg():
    data = cp.photo(7)
    img = Image.open(io.BytesIO(data))
    assert (img.format, img.size) == ("JPEG", (1024, 768))
    assert 80_000 < len(data) < 320_000


def _run(config: str, images: int, wall: float, cpu: float, rss: int, ok: bool = True, active: float = 0.0) -> dict:
    return {"config": config, "round": 1, "images": images, "bytes_downloaded": images * 1_000_000, "wall": wall,
            "active": active, "cpu": cpu, "peak_rss_sum": rss, "peak_rss_max": rss, "server_cpu": 0.0,
            "ok": ok, "note": "" if ok else "short", "processes": 1}


def test_summaries_are_medians_and_ratios_use_the_references():
    runs = [
        _run("images", 100, 10.0, 5.0, 100 * report.MIB),
        _run("images", 100, 20.0, 5.0, 300 * report.MIB),
        _run("images", 100, 12.5, 5.0, 200 * report.MIB),
        _run("curl", 100, 1.0, 0.1, 4 * report.MIB, active=0.5),
    ]
    by_name = {s.config: s for s in report.summarise(runs, {"images": "stock"})}
    assert by_name["images"].images_per_s == 8.0
    assert by_name["images"].cpu_ms_per_image == 50.0
    assert by_name["images"].peak_rss_sum_mib == 200.0
    assert by_name["images"].label == "stock"
    assert by_name["curl"].active_images_per_s == 200.0
    text = report.format_results(list(by_name.values()))
    assert "| curl   | 12.50x" in text
    assert report.ratio(1.0, 0.0) is None
    assert report.median([]) == 0.0


def test_rss_at_progress_takes_the_first_sample_past_each_mark():
    samples = [(1.0, 5, 10), (2.0, 12, 11), (3.0, 55, 12), (4.0, 100, 13)]
    assert report.rss_at_progress(samples, 100) == {0.1: 11, 0.5: 12, 1.0: 13}
    assert report.rss_at_progress(samples[:1], 100)[1.0] is None


def test_parse_collapsed_counts_self_cumulative_and_layers():
    lines = [
        "main (scrapy/cmdline.py);_store (hotelimages/pipelines/images.py);openssl_sha1 (hashlib.py) 3",
        "main (scrapy/cmdline.py);dataReceived (twisted/web/_newclient.py) 2",
        "main (scrapy/cmdline.py);_find_and_load (<frozen importlib._bootstrap>) 1",
        "_bootstrap (threading.py);_worker (concurrent/futures/thread.py) 7",
    ]
    self_c, cum_c, layers, total = parse_collapsed(lines)
    assert total == 6
    assert self_c["hashlib.py:openssl_sha1"] == 3
    assert cum_c["scrapy/cmdline.py:main"] == 6
    assert layers == {"hotelimages": 3, "twisted": 2, "startup (imports)": 1,
                      "idle (waiting threads, not in total)": 7}
    assert short_frame("f (/x/lib/python3.11/site-packages/scrapy/a.py:12)") == "scrapy/a.py:f"
    assert frame_layer("g (zope/interface/ro.py)") == "twisted"
    assert frame_layer("g (os.py)") is None


def test_run_processes_measures_cpu_and_files_under_counts(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"12345")
    (tmp_path / "a" / "manifest.json").write_text("{}")
    (tmp_path / "a" / ".x.jpg.1-1.part").write_bytes(b"1")
    assert files_under(tmp_path)[:2] == (1, 5)
    m = run_processes([[sys.executable, "-c", "sum(range(3_000_000))"]], logs=[tmp_path / "log"])
    assert m.exit_codes == [0]
    assert m.cpu > 0 and m.wall >= m.cpu * 0.5


def test_asyncio_static_server_serves_files_and_tiny_images(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "1.jpg").write_bytes(b"x" * 70_000)
    (tmp_path / "tiny.jpg").write_bytes(cp.tiny_jpeg())
    with StaticServer(tmp_path, tmp_path / "work", prefer="asyncio") as server:
        assert server.kind.startswith("asyncio")
        with urllib.request.urlopen(f"{server.base_url}/img/1.jpg") as r:
            assert r.read() == b"x" * 70_000
        with urllib.request.urlopen(f"{server.base_url}/tiny/123.jpg") as r:
            assert r.headers["Content-Type"] == "image/jpeg" and r.read() == cp.tiny_jpeg()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{server.base_url}/../etc/passwd")
        # The server's own process tree, read through psutil: its start-up alone costs CPU, and 0.0 is what
        # a lost process (wrong pid, already gone) reads as.
        assert 0.0 < server.cpu_seconds() < 60.0
    assert server.cpu_seconds() == 0.0  # stopped: nothing left to measure


def test_parse_args_selects_configurations():
    args = parse_args(["--quick", "--only", "node,curl", "--node-set", "CONCURRENT_ITEMS=1"])
    assert args.configs == ["node", "curl"] and args.image_count == 600
    assert parse_args(["--skip", "img2dataset"]).configs[-1] == "aria2c"
    with pytest.raises(SystemExit):
        parse_args(["--only", "nope"])


def test_bench_help_runs_as_a_script_and_as_a_module(tmp_path):
    # scripts/bench from anywhere, with the checkout on the import path as the venv of scripts/dev.sh has it;
    # python -m benchmarks from the checkout's root, in any venv with the requirements.
    script = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench"), "--help"], cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=60)
    module = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    for out in (script, module):
        assert out.returncode == 0, out.stderr
        assert "--quick" in out.stdout and "img2dataset" in out.stdout


def test_comparison_spiders_run_outside_the_checkout(tmp_path):
    from benchmarks.configs import ROOT as BENCH_ROOT
    from benchmarks.configs import OurNode, all_configs

    for config in all_configs(tmp_path):
        expected = BENCH_ROOT if isinstance(config, OurNode) else tmp_path
        assert config.cwd(tmp_path) == expected, config.name  # else scrapy.cfg loads our settings


def test_net_of_startup_takes_out_one_wall_and_one_cpu_per_process():
    runs = [_run("node", 1000, 10.0, 5.0, report.MIB), _run("images", 1000, 50.0, 40.0, report.MIB)]
    runs.append({**_run("node2p", 1000, 6.0, 6.0, report.MIB), "processes": 2})
    summaries = report.summarise(runs)
    text = report.format_net_of_startup(summaries, 1000, idle_wall=2.0, idle_cpu=1.0)
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in text.splitlines()
            if line.startswith("| node")}
    assert rows["node"] == ["100", "125", "5.00", "4.00"]  # 1000/(10-2); (5-1)/1000
    assert rows["node2p"] == ["167", "250", "6.00", "4.00"]  # 1000/(6-2); (6-2*1)/1000
    assert "images" not in rows


def test_profile_stages_take_the_first_matching_stage_and_skip_idle_threads():
    from benchmarks.profiling import parse_stages

    lines = [
        "run (a.py);_find_and_load (<frozen importlib._bootstrap>);f (x.py) 5",
        "run (a.py);fetch (hotelimages/fetcher.py);ImageFetcher._get (hotelimages/fetcher.py)"
        ";send (aiohttp/client.py) 7",
        "_bootstrap (threading.py);_worker (concurrent/futures/thread.py) 100",
        "run (a.py);_run_once (asyncio/base_events.py) 3",
        "run (a.py);mystery (m.py) 1",
    ]
    stages, total = parse_stages(lines)
    assert total == 16  # the idle worker is not CPU
    assert stages == {"start-up (imports)": 5, "image download (fetcher, HTTP client)": 7,
                      "event loop (callbacks, sockets, timers)": 3, "other": 1}
