"""A polite fleet, end to end: real node processes, real Redis, a loopback server that counts per host.

Each test prints its measured figures (peak rates against budgets, bytes/s against the cap,
Redis commands per photo); run with ``-s`` to see them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from counting_server import IMAGE_HOST, LISTING_HOST, Behaviour, CountingServer, max_in_window

from devtools.demo import ROOT, crawl_env
from devtools.localredis import stop_process
from hotelimages import status
from hotelimages.keys import Keys
from hotelimages.manifest import parse_done_record
from tests.support import run_cli, run_script

FAST = ("HOTELS_IDLE_CLOSE_SECONDS=2", "HOTELS_POLL_SECONDS=0.2", "HOTELS_CONTROL_SECONDS=0.5",
        "HOTELS_PROGRESS_INTERVAL=1", "LOG_LEVEL=INFO")


def start_node(redis_url: str, srv: CountingServer, store: Path, node_id: str, *settings: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "scrapy", "crawl", "hotels"]
    for s in (*FAST, *settings):
        args += ["-s", s]
    base = srv.listing_url.split("/hotels/")[0]
    log = open(store.parent / f"{node_id}.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(args, cwd=ROOT, env=crawl_env(redis_url, base, store, node_id),
                            stdout=log, stderr=subprocess.STDOUT)


def push(client, hotels: int, prefix: str = "h") -> list[str]:
    ids = [f"{prefix}{i:03d}" for i in range(hotels)]
    client.lpush(Keys().start_ids, *ids)
    return ids


def wait_all(procs: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(max(1.0, deadline - time.monotonic()))
    finally:
        for p in procs:
            stop_process(p)


def assert_all_complete(client, ids: list[str], tmp_path: Path) -> None:
    keys = Keys()
    manifests = {k.decode(): parse_done_record(v) for k, v in client.hgetall(keys.manifests).items()}
    logs = "\n".join(p.read_text()[-3000:] for p in tmp_path.glob("*.log"))
    assert client.hlen(keys.failed) == 0, logs
    assert sorted(manifests) == sorted(ids), logs
    assert {m.status for m in manifests.values()} == {"complete"}, logs
    assert client.llen(keys.start_ids) == 0 and client.zcard(keys.leases) == 0


def rate_line(name: str, times: list[float], budget: float, after: float) -> int:
    peak = max_in_window(times, after)
    print(f"{name}: {len(times)} requests, peak {peak} in any 1 s window after the first second, budget {budget:g}/s")
    return peak


def command_stats(client) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in client.info("commandstats").items()}


def test_three_nodes_keep_the_fleet_budgets(redis_client, redis_url, tmp_path):
    """Images 30/s and listings 12/s across three nodes: the server never sees more than 1.1 x either."""
    budget, listing_budget = 30, 12
    with CountingServer(Behaviour(images_per_hotel=10)) as srv:
        ids = push(redis_client, 40)
        redis_client.config_resetstat()
        budgets = f"HOTELS_HOST_BUDGETS={IMAGE_HOST}={budget}/s; {LISTING_HOST}={listing_budget}/s"
        procs = [start_node(redis_url, srv, tmp_path / f"store{i}", f"node{i}", budgets, "HOTELS_MAX_IN_FLIGHT=4",
                            "HOTELS_CLAIM_BATCH=2") for i in range(3)]
        wait_all(procs, 90)
        stats = command_stats(redis_client)
        images, listings = srv.log.times(IMAGE_HOST), srv.log.times(LISTING_HOST)
    assert_all_complete(redis_client, ids, tmp_path)
    assert len(images) == 400
    peak = rate_line("images", images, budget, min(images) + 1.0)
    listing_peak = rate_line("listings", listings, listing_budget, min(listings) + 1.0)
    assert peak <= 1.1 * budget
    assert listing_peak <= 1.1 * listing_budget
    span = max(images) - min(images)
    print(f"images took {span:.1f}s (at the budget: {len(images) / budget:.1f}s)")
    assert span >= (len(images) - budget) / budget
    photos = len(images)
    total = sum(stats.values())
    top_level = sum(v for k, v in stats.items() if k in ("evalsha", "eval", "hset", "hmget", "hget", "llen", "hlen",
                                                         "time", "expire", "lpush", "ltrim", "delete", "info",
                                                         "ping", "client|setinfo", "script|load", "multi", "exec",
                                                         "zcard", "zrangebyscore"))
    grants = stats.get("evalsha", 0) + stats.get("eval", 0)
    print("INFO commandstats:", json.dumps(stats, sort_keys=True))
    print(f"Redis commands per photo: {total / photos:.3f} (all, including those inside Lua scripts); "
          f"script calls (EVALSHA) per photo: {grants / photos:.3f}; top-level commands ~{top_level / photos:.3f}")
    assert grants / photos < 1  # far fewer script calls than photos (claims and records included)


def test_back_off_converges_under_a_refusing_threshold(redis_client, redis_url, tmp_path):
    """The image host refuses above 15 req/s; the budget says 40/s. The fleet settles under 15/s, fails nothing."""
    threshold, budget = 15, 40
    with CountingServer(Behaviour(images_per_hotel=10, threshold=threshold)) as srv:
        ids = push(redis_client, 30)
        procs = [start_node(redis_url, srv, tmp_path / f"store{i}", f"node{i}",
                            f"HOTELS_HOST_BUDGETS={IMAGE_HOST}={budget}/s", "HOTELS_BUDGET_INCREASE=0.02",
                            "HOTELS_MAX_IN_FLIGHT=4", "HOTELS_CLAIM_BATCH=2") for i in range(3)]
        wait_all(procs, 120)
        all_times = srv.log.times(IMAGE_HOST)
        refused = srv.log.times(IMAGE_HOST, 429)
    assert_all_complete(redis_client, ids, tmp_path)
    t0 = min(all_times)
    settled = t0 + 6.0
    late = [t for t in all_times if t >= settled]
    late_refused = [t for t in refused if t >= settled]
    peak_early = max_in_window(all_times, t0)
    peak_late = max_in_window(all_times, settled)
    span = max(all_times) - settled
    print(f"threshold {threshold}/s, budget {budget}/s: first 6 s peak {peak_early}/s, {len(refused)} refused; "
          f"after 6 s: peak {peak_late}/s, mean {len(late) / span:.1f}/s, {len(late_refused)} refused of {len(late)}")
    assert refused and peak_early > threshold  # the server did push back
    assert len(late) / span <= threshold  # the fleet's rate settled under the threshold
    assert len(late_refused) <= 0.1 * len(late)  # only the occasional probe above it is refused


def test_retry_after_pauses_every_node_then_the_rate_climbs_back(redis_client, redis_url, tmp_path):
    """The 60th image request gets 429 + Retry-After: 5; no node sends anything to that host for 5 s."""
    budget, grace = 30, 0.3
    with CountingServer(Behaviour(images_per_hotel=10, pause_after=60, pause_seconds=5)) as srv:
        ids = push(redis_client, 30)
        procs = [start_node(redis_url, srv, tmp_path / f"store{i}", f"node{i}",
                            f"HOTELS_HOST_BUDGETS={IMAGE_HOST}={budget}/s",
                            "HOTELS_BUDGET_INCREASE=0.2", "HOTELS_MAX_IN_FLIGHT=4", "HOTELS_CLAIM_BATCH=2")
                 for i in range(3)]
        wait_all(procs, 120)
        t429 = srv.log.pause_started
        times = srv.log.times(IMAGE_HOST)
    assert_all_complete(redis_client, ids, tmp_path)
    assert t429 is not None
    # Requests already on their way when the 429 was sent may still arrive (the refusal reaches the
    # other nodes through Redis pub/sub in milliseconds); from then on, nothing until 5 s are over.
    stragglers = [round(t - t429, 3) for t in times if t429 < t < t429 + grace]
    during = [round(t - t429, 3) for t in times if t429 + grace <= t < t429 + 5.0]
    after = sorted(t - t429 for t in times if t >= t429 + 5.0)
    first_second = sum(1 for t in after if t < 6.0)
    best = max_in_window([t429 + t for t in after], t429 + 5.0)
    print(f"429 + Retry-After: 5 at t=0: {len(stragglers)} stragglers within {grace:.1f}s {stragglers}, "
          f"{len(during)} requests in [{grace:.1f}s, 5s); first after: {after[0]:.2f}s; "
          f"{first_second} in the first second after the pause, best 1 s window after it {best} (budget {budget})")
    assert during == []
    assert after[0] >= 4.9
    assert best > first_second  # the rate climbs back after the pause
    assert best >= 0.6 * budget


def test_bandwidth_cap_holds_over_ten_second_windows(redis_client, redis_url, tmp_path):
    """One node capped at 400 kB/s downloads ~50 kB photos: bytes/s at the server within 10% over 10 s windows."""
    cap = 400_000
    with CountingServer(Behaviour(images_per_hotel=10, image_side=128)) as srv:
        ids = push(redis_client, 12)
        size = len(srv.image(1))
        proc = start_node(redis_url, srv, tmp_path / "store", "capped", f"HOTELS_MAX_BYTES_PER_SEC={cap}")
        wait_all([proc], 90)
        with srv.log.lock:
            chunks = [(t, n) for h, t, n in srv.log.chunks if h == IMAGE_HOST]
    assert_all_complete(redis_client, ids, tmp_path)
    t0, t1 = chunks[0][0], chunks[-1][0]
    total = sum(n for _, n in chunks)
    windows = []
    start = t0 + 1.0
    while start + 10.0 <= t1:
        windows.append(sum(n for t, n in chunks if start <= t < start + 10.0) / 10.0)
        start += 0.5
    print(f"photo {size} bytes, {total} bytes in {t1 - t0:.1f}s (mean {total / (t1 - t0):.0f} B/s); cap {cap} B/s; "
          f"10 s windows: min {min(windows):.0f}, max {max(windows):.0f} B/s ({len(windows)} windows)")
    assert len(windows) >= 4
    assert max(windows) <= 1.1 * cap
    assert min(windows) >= 0.9 * cap


def _outside_hours_now() -> str:
    """A schedule that starts two hours from now (local time): now is outside it."""
    start = datetime.now() + timedelta(hours=2)
    end = start + timedelta(hours=1)
    return f"daily {start:%H:%M}-{end:%H:%M}"


def test_schedule_outside_hours_claims_nothing(redis_client, redis_url, tmp_path):
    with CountingServer(Behaviour()) as srv:
        push(redis_client, 5)
        proc = start_node(redis_url, srv, tmp_path / "store", "office-pc",
                          f"HOTELS_ACTIVE_HOURS={_outside_hours_now()}")
        try:
            deadline = time.monotonic() + 40
            activity = None
            while time.monotonic() < deadline:
                fleet = status.gather(redis_client, Keys())
                live = [n for n in fleet.live if n.node_id == "office-pc"]
                if live:
                    activity = live[0].activity
                    if activity == "paused (schedule)":
                        break
                time.sleep(0.3)
            time.sleep(4)  # several control checks, well past HOTELS_IDLE_CLOSE_SECONDS: it waits, it does not leave
            assert proc.poll() is None
            text = status.render_text(status.gather(redis_client, Keys()))
        finally:
            stop_process(proc, timeout=30)
        assert activity == "paused (schedule)"
        assert "paused (schedule)" in text
        assert redis_client.llen(Keys().start_ids) == 5 and redis_client.zcard(Keys().leases) == 0
        assert redis_client.hlen(Keys().failed) == 0
        assert srv.log.requests == []


def test_pause_and_resume_three_nodes(redis_client, redis_url, tmp_path):
    """Pause mid-run: no claims while paused; resume: every hotel complete, none failed or lost."""
    keys = Keys()
    with CountingServer(Behaviour(images_per_hotel=8)) as srv:
        ids = push(redis_client, 30)
        env = crawl_env(redis_url, "http://unused", tmp_path, "operator")
        procs = [start_node(redis_url, srv, tmp_path / f"store{i}", f"node{i}",
                            f"HOTELS_HOST_BUDGETS={IMAGE_HOST}=25/s", "HOTELS_MAX_IN_FLIGHT=2", "HOTELS_CLAIM_BATCH=1")
                 for i in range(3)]
        try:
            while redis_client.hlen(keys.manifests) < 3:
                time.sleep(0.2)
            out = run_script("pause", env=env)
            assert out.returncode == 0, out.stderr
            paused_at = time.monotonic()
            # Nodes obey within HOTELS_CONTROL_SECONDS (0.5 s here); their hotels in flight finish.
            time.sleep(1.5)
            pending = redis_client.llen(keys.start_ids)
            assert pending > 0
            samples = []
            while time.monotonic() < paused_at + 7:
                samples.append((redis_client.llen(keys.start_ids), redis_client.zcard(keys.leases)))
                time.sleep(0.25)
            states = {redis_client.hget(k, "state") for k in redis_client.scan_iter(keys.node_pattern)}
            text = status.render_text(status.gather(redis_client, keys))
            assert all(p.poll() is None for p in procs)  # paused nodes wait; they do not close
            out = run_script("resume", env=env)
            assert out.returncode == 0, out.stderr
            wait_all(procs, 90)
        finally:
            for p in procs:
                stop_process(p)
    print(f"paused with {pending} pending; during the pause (pending, leased): {samples[0]} .. {samples[-1]}; "
          f"node states {states}")
    assert {s[0] for s in samples} == {pending}  # nothing claimed while paused
    assert samples[-1][1] == 0  # what was held finished
    assert states == {b"paused"}
    assert "paused" in text
    assert_all_complete(redis_client, ids, tmp_path)


@pytest.mark.parametrize("command", ["pause", "resume"])
def test_pause_commands_report_redis_errors(command, capsys):
    result = run_cli(capsys, command, "--redis-url", "redis://127.0.0.1:1/0")
    assert result.code == 2 and result.err.startswith(f"{command}: ")


def test_pause_commands_print_what_is_in_force(redis_url, redis_client, capsys):
    result = run_cli(capsys, "pause", "--redis-url", redis_url, "--node", "pc12", "--note", "demo day")
    assert result.code == 0 and "paused node pc12" in result.out and "pauses in force: node:pc12" in result.out
    assert json.loads(redis_client.hget(Keys().paused, "node:pc12"))["note"] == "demo day"
    result = run_cli(capsys, "resume", "--redis-url", redis_url, "--json")
    assert json.loads(result.out) == {"paused": False, "node": None, "changed": False, "in_force": {
        "node:pc12": json.loads(redis_client.hget(Keys().paused, "node:pc12"))}}
    assert run_cli(capsys, "resume", "--redis-url", redis_url, "--node", "pc12").out.startswith("resumed node pc12")
    assert redis_client.hlen(Keys().paused) == 0
