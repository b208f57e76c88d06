"""Fleet status: gathering from a hand-made Redis state, and rendering literal figures."""

from __future__ import annotations

import json

import pytest
from support import run_cli, run_script

from hotelimages import alerts
from hotelimages import status as st
from hotelimages.keys import Keys

KEYS = Keys()


def redis_now(client) -> float:
    secs, micros = client.time()
    return secs + micros / 1e6


def sample(t: float, hotels: int, images: int, nbytes: int, **extra) -> str:
    return json.dumps({"t": t, "hotels": hotels, "images": images, "bytes": nbytes, "failures": 0,
                       "done": extra.pop("done", 0), "pending": extra.pop("pending", 0), **extra})


@pytest.fixture
def fleet_state(redis_client):
    """One live process, one that stopped cleanly, one that died holding a lease."""
    now = redis_now(redis_client)
    redis_client.lpush(KEYS.start_ids, "1", "2", "3", "4", "5")
    redis_client.zadd(KEYS.leases, {"6": now + 100, "7": now + 60, "8": now - 10})
    redis_client.hset(KEYS.lease_owners, mapping={"6": "pc1/1-a", "7": "pc1/1-a", "8": "pc2/7-z"})
    redis_client.hset(KEYS.manifests, mapping={"10": "{}", "11": "{}", "12": "{}"})
    redis_client.hset(KEYS.failed, mapping={
        "13": json.dumps({"hotel_id": "13", "reason": "listing_http_404"}),
        "14": json.dumps({"hotel_id": "14", "reason": "listing_http_404"}),
        "15": json.dumps({"hotel_id": "15", "reason": "listing_timeout"}),
    })
    redis_client.hset(KEYS.stats, mapping={
        "hotels/complete": 2, "hotels/partial": 1, "hotels/failed": 3, "images/stored": 700,
        "images/bytes": 70_000_000, "images/failed": 4, "claims/requeued_expired": 9,
    })
    redis_client.hset(KEYS.node("pc1/1-a"), mapping={
        "node_id": "pc1", "owner": "pc1/1-a", "pid": 1, "interval": 150, "started_at": now - 400,
        "updated_at": now, "state": "running", "hotels": 30, "images": 600, "bytes": 60_000_000,
        "failures": 2, "in_flight": 2, "images_per_s": 9, "mb_per_s": 9, "hotels_per_s": 9,
    })
    redis_client.expire(KEYS.node("pc1/1-a"), 60)
    redis_client.lpush(
        "hotels:history:pc1/1-a",
        sample(now - 450, 0, 0, 0),  # outside the 300 s window
        sample(now - 300, 0, 0, 0, done=0, pending=40),
        sample(now - 150, 10, 100, 10_000_000, done=2, pending=20),
        sample(now, 30, 600, 60_000_000, done=3, pending=5),
    )
    redis_client.lpush(
        "hotels:history:pc3/5-q",
        sample(now - 200, 5, 100, 10_000_000),
        sample(now - 100, 6, 120, 12_000_000, state="closed:finished"),
    )
    return now


def test_gather_reads_exact_figures(redis_client, fleet_state):
    now = fleet_state
    redis_client.hset(KEYS.reasons, mapping={"image/http_404": 3, "hotel/listing_http_404": 2})
    redis_client.hset(KEYS.node_reasons("pc1"), mapping={"image/http_404": 3})
    fleet = st.gather(redis_client, KEYS, lease_seconds=120, window=300,
                      thresholds=alerts.Thresholds(stall_seconds=300))
    assert fleet.at == pytest.approx(now, abs=2)
    assert (fleet.pending, fleet.leased, fleet.done, fleet.failed_hotels) == (5, 3, 3, 3)
    assert fleet.failed_by_reason == {"listing_http_404": 2, "listing_timeout": 1}
    assert fleet.counter("hotels/partial") == 1 and fleet.counter("images/bytes") == 70_000_000
    assert fleet.counter("hotels/empty") == 0
    assert [(n.owner, n.state) for n in fleet.nodes] == [
        ("pc1/1-a", "live"), ("pc2/7-z", "lost"), ("pc3/5-q", "stopped")]
    live, lost, stopped = fleet.nodes
    assert (live.node_id, live.pid, live.hotels, live.images, live.in_flight, live.leases) == (
        "pc1", 1, 30, 600, 2, 2)
    assert live.oldest_lease_age == pytest.approx(60, abs=2)  # deadline now+60 with 120 s leases
    # Over the 300 s window: 30 hotels, 600 images, 60 MB (the heartbeat's instant rates are ignored).
    assert (live.hotels_per_s, live.images_per_s, live.mb_per_s) == pytest.approx((0.1, 2.0, 0.2))
    assert len(live.history) == 3  # only what the window and stall span need: 300 s / 150 s + 1
    assert (live.activity, live.failure_rate, live.reasons) == ("running", 0.0, {"image/http_404": 3})
    assert fleet.reasons == {"image/http_404": 3, "hotel/listing_http_404": 2}
    assert fleet.redis_memory["used_memory"] > 0 and "maxmemory" in fleet.redis_memory
    assert [(a.name, a.owner) for a in fleet.alerts] == [("gone_node_leases", "pc2/7-z")]
    assert (fleet.failure_rate, fleet.attempts) == (0.0, 600)
    assert (lost.leases, lost.last_seen, lost.hotels) == (1, None, 0)
    assert lost.oldest_lease_age == pytest.approx(130, abs=2)
    assert (stopped.node_id, stopped.hotels, stopped.images, stopped.last_seen) == ("pc3", 6, 120, now - 100)
    assert (fleet.hotels_per_s, fleet.images_per_s) == pytest.approx((0.1, 2.0))
    assert fleet.eta_seconds == pytest.approx(80)  # (5 pending + 3 leased) / 0.1 hotels/s


def test_gather_full_history_for_charts(redis_client, fleet_state):
    fleet = st.gather(redis_client, KEYS, full_history=True)
    assert [len(n.history) for n in fleet.nodes] == [4, 0, 2]
    assert fleet.nodes[0].history[0].t < fleet.nodes[0].history[-1].t


def test_gather_on_an_empty_database(redis_client):
    fleet = st.gather(redis_client, KEYS)
    assert (fleet.pending, fleet.nodes, fleet.eta_seconds, fleet.failed_by_reason) == (0, [], 0.0, {})
    assert (fleet.reasons, fleet.alerts, fleet.percent_done, fleet.last_progress_at) == ({}, [], None, None)
    assert "live processes\n  none" in st.render_text(fleet)


# ---------------------------------------------------------------- pure functions on literal figures

T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


def literal_status() -> st.FleetStatus:
    live = st.NodeStatus(
        owner="pc1/1-a", node_id="pc1", state="live", pid=1, started_at=T0 - 3600, last_seen=T0,
        hotels=1200, images=52_311, bytes=6_120_400_000, failures=3, in_flight=48, leases=48,
        oldest_lease_age=14.0, images_per_s=41.25, mb_per_s=4.81, hotels_per_s=0.9,
        activity="draining", failure_rate=0.05, disk_free=412_300_000_000,
        history=[st.Sample(T0 - 60, 1100, 50_000, 0, done=100, pending=900), st.Sample(T0 - 30, 1150, 51_000, 0),
                 st.Sample(T0, 1200, 52_311, 0, done=200, pending=800)],
    )
    gone = st.NodeStatus(owner="<pc2>/2-b", node_id="<pc2>", state="lost", last_seen=T0 - 125, hotels=7, leases=2,
                         oldest_lease_age=125.0,
                         history=[st.Sample(T0 - 185, 0, 0, 0), st.Sample(T0 - 125, 7, 600, 0)])
    return st.FleetStatus(
        at=T0, redis="redis://***@db:6379/0", pending=800, leased=50, done=200, failed_hotels=3,
        counters={"hotels/complete": 150, "hotels/partial": 40, "hotels/failed": 10, "images/stored": 52_311,
                  "images/bytes": 6_120_400_000, "images/failed": 26, "claims/requeued_expired": 2},
        failed_by_reason={"listing_http_404": 3}, nodes=[live, gone], window=300,
        hotels_per_s=0.9, images_per_s=41.25, mb_per_s=4.81, eta_seconds=850 / 0.9,
    )


def test_render_text_of_literal_figures():
    text = st.render_text(literal_status())
    assert text.splitlines()[:8] == [
        "hotelimages fleet at 2027-01-15 08:00:00 UTC  (redis://***@db:6379/0)",
        "",
        "queue       pending 800   in flight 50   done 200   failed 3   ETA 15m 44s",
        "progress    19.3% done   failure rate - of 0 attempts   redis memory 0 B (no maxmemory)",
        "hotels      done: complete 150  partial 40  failed 10  empty 0   not done: failed as a whole 3  rejected 0"
        "   skipped as done 0",
        "images      stored 52,311 (6.1 GB)   failed 26",
        "throughput  last 5m 0s: 0.9 hotels/s, 41.2 img/s, 4.81 MB/s   (nodes live 1, gone 1)",
        "claims      requeued after expiry 2   duplicate in flight 0",
    ]
    assert "          3  listing_http_404" in text
    row = "  pc1/1-a" + " " * 29 + "1,200     52,311     6.1 GB     0.90     41.2    4.81     48     48     14s"
    row += "    1h 0m   5.0%   412.3 GB draining"
    assert row in text.splitlines()
    gone = "  <pc2>/2-b" + " " * 24 + "lost    last seen 2m 5s ago, 7 hotels, holds 2 leases (oldest 2m 5s)"
    assert gone in text.splitlines()
    assert "\x1b" not in text


def test_format_helpers():
    durations = [st.format_duration(s) for s in (None, 45, 725, 11_520, 187_200)]
    assert durations == ["-", "45s", "12m 5s", "3h 12m", "2d 4h"]
    assert [st.format_bytes(n) for n in (512, 1_500, 412_300_000_000)] == ["512 B", "1.5 kB", "412.3 GB"]


def test_window_rates_uses_the_oldest_sample_inside_the_window():
    history = [st.Sample(0, 0, 0, 0), st.Sample(100, 10, 100, 1_000_000), st.Sample(400, 40, 400, 4_000_000)]
    assert st.window_rates(history, 300) == pytest.approx((0.1, 1.0, 0.01))
    assert st.window_rates(history, 10) == pytest.approx((0.1, 1.0, 0.01))  # falls back to the previous sample
    assert st.window_rates(history[:1], 300) is None


def test_to_json_omits_samples_unless_asked():
    data = literal_status().to_json()
    assert (data["pending"], data["live_nodes"], data["gone_nodes"]) == (800, 1, 1)
    assert "history" not in data["nodes"][0]
    assert len(literal_status().to_json(history=True)["nodes"][0]["history"]) == 3
    json.dumps(data)


def test_status_command_json_and_html(redis_url, redis_client, fleet_state, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    out = run_cli(capsys, "status", "--json")
    assert out.code == 0, out.err
    data = json.loads(out.out)
    assert (data["pending"], data["leased"], data["done"], data["live_nodes"]) == (5, 3, 3, 1)
    page = tmp_path / "status.html"
    out = run_cli(capsys, "status", "--html", page)
    html = page.read_text()
    assert "wrote" in out.out and "<svg" not in html and "window.SNAPSHOT = " in html
    assert 'src="' not in html and "uPlot" in html  # one self-contained file: the live page's scripts inlined
    out = run_cli(capsys, "status")
    assert "pending 5   in flight 3   done 3" in out.out


def test_status_of_a_redis_that_is_down_is_exit_code_2(redis_url, capsys):
    out = run_cli(capsys, "status", "--redis-url", redis_url.rsplit(":", 1)[0] + ":1/0")
    assert out.code == 2 and out.err.startswith("status: redis://127.0.0.1:1/0: ")


def test_status_script_runs_as_a_process(redis_url, fleet_state):
    out = run_script("status", "--json", env={"REDIS_URL": redis_url})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["pending"] == 5
