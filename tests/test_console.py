"""The console: chart series and metrics of literal figures, alerts, and the server against a real Redis."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import run_cli

from hotelimages import alerts, console, metrics
from hotelimages import status as st
from tests.consoleserver import console_server, request
from tests.test_status import KEYS, T0, fleet_state, literal_status  # noqa: F401 - fleet_state is a fixture


def s(t, images=0, nbytes=0, failures=0, done=0, pending=0, reasons=None):
    return st.Sample(t, images=images, bytes=nbytes, failures=failures, done=done, pending=pending,
                     reasons=reasons or {})


def node(owner, history, state="live"):
    return st.NodeStatus(owner=owner, node_id=owner.split("/")[0], state=state, history=history)


# ---------------------------------------------------------------- chart series


def test_chart_series_rates_per_node_and_fleet_with_gaps_as_nulls():
    # pc1 stores 10 photos/s for 40 s, is not heard from for 100 s, then again 10/s; pc2 5/s throughout.
    pc1 = [s(T0 + i * 10, images=100 * i) for i in range(5)] + [s(T0 + 140 + i * 10, 400 + 100 * i) for i in range(3)]
    pc2a = [s(T0 + i * 10, images=50 * i, nbytes=1_000_000 * i) for i in range(9)]
    pc2b = [s(T0 + 90 + i * 10, images=50 * i) for i in range(8)]  # a second process of pc2
    nodes = [node("pc1/1-a", pc1), node("pc2/2-b", pc2a), node("pc2/3-c", pc2b)]
    ch = console.chart_series(nodes, T0 + 160, 160, points=16)
    assert len(ch["t"]) == 16 and ch["t"][0] == T0 + 5
    assert list(ch["images"]) == ["fleet", "pc1", "pc2"]
    assert ch["images"]["pc1"][:4] == [10.0] * 4
    assert ch["images"]["pc1"][4:14] == [None] * 10  # the 100 s hole is a gap, not a slope
    assert ch["images"]["pc1"][14:] == [10.0, 10.0]
    assert ch["images"]["pc2"][:8] == [5.0] * 8 and ch["images"]["pc2"][8] is None  # between its processes
    assert ch["images"]["pc2"][9:] == [5.0] * 7
    assert ch["images"]["fleet"][0] == 15.0 and ch["images"]["fleet"][6] == 5.0
    assert ch["mb"]["pc2"][0] == 0.1 and ch["mb"]["pc2"][9] == 0.0
    assert ch["done"][0] == 0


def test_chart_series_done_and_pending_jump_where_they_jumped():
    h = [s(T0, done=0, pending=0), s(T0 + 10, done=0, pending=0), s(T0 + 20, done=0, pending=1996),
         s(T0 + 30, done=50, pending=1946)]
    h[3].in_flight = 16
    other = [s(T0 + 31, done=51, pending=1945)]
    other[0].in_flight = 8
    ch = console.chart_series([node("pc1/1", h), node("pc2/1", other)], T0 + 40, 40, points=4)
    assert ch["pending"] == [0, 0, 1996, 1945] and ch["done"] == [0, 0, 0, 51]
    assert ch["in_flight"] == [0, 0, 0, 24]


def test_chart_series_failures_per_minute_by_reason():
    h = [s(T0), s(T0 + 30, reasons={"image/http_404": 2}), s(T0 + 60, reasons={"image/http_404": 2, "hotel/x": 1})]
    ch = console.chart_series([node("pc1/1", h), node("pc2/1", [s(T0 + 200), s(T0 + 230)])], T0 + 240, 240, points=8)
    assert ch["reasons"]["image/http_404"][:2] == [4.0, 0.0]
    assert ch["reasons"]["hotel/x"][:2] == [0.0, 2.0]
    assert ch["reasons"]["hotel/x"][2:6] == [None] * 4  # nobody was heard from
    assert ch["reasons"]["hotel/x"][6:] == [0.0, 0.0]


def test_chart_series_without_history():
    assert console.chart_series([], T0, 3600)["t"] == []
    assert console.chart_series([node("pc1/1", [s(T0 - 7200)])], T0, 3600)["images"] == {}


# ---------------------------------------------------------------- alerts (pure)


def test_alerts_of_literal_figures():
    fleet = literal_status()
    fleet.last_progress_at = T0
    assert [a.name for a in alerts.check(fleet, alerts.Thresholds())] == ["gone_node_leases"]
    fleet.failure_rate, fleet.attempts = 0.5, 40
    fleet.last_progress_at = T0 - 601
    fleet.redis_memory = {"used_memory": 80, "maxmemory": 100}
    found = alerts.check(fleet, alerts.Thresholds())
    assert [a.name for a in found] == list(alerts.ALERT_NAMES)
    assert found[0].owner == "<pc2>/2-b" and "holds 2 leases" in found[0].message
    assert "50% of 40 attempts" in found[1].message and "no progress for 601s" in found[2].message
    fleet.attempts = 19  # too few attempts to judge; memory under the ratio; no limit at all
    fleet.redis_memory = {"used_memory": 79, "maxmemory": 100}
    assert [a.name for a in alerts.check(fleet, alerts.Thresholds())] == ["gone_node_leases", "no_progress"]
    fleet.pending = fleet.leased = 0  # nothing left: no stall
    fleet.redis_memory = {"used_memory": 10**9, "maxmemory": 0}
    assert [a.name for a in alerts.check(fleet, alerts.Thresholds())] == ["gone_node_leases"]


# ---------------------------------------------------------------- metrics (pure)


def test_metric_families_of_literal_figures():
    fleet = literal_status()
    fleet.reasons = {"image/http_404": 5, "hotel/listing_http_404": 3}
    fleet.nodes[0].reasons = {"image/http_404": 5}
    fleet.alerts = alerts.check(fleet, alerts.Thresholds())
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.FleetCollector(lambda: fleet))
    text = generate_latest(registry).decode()
    samples = {(x.name, tuple(sorted(x.labels.items()))): x.value
               for fam in text_string_to_metric_families(text) for x in fam.samples}
    assert samples[("hotelimages_hotels_total", (("status", "complete"),))] == 150
    assert samples[("hotelimages_hotels_total", (("status", "skipped_done"),))] == 0
    assert samples[("hotelimages_images_stored_total", ())] == 52_311
    assert samples[("hotelimages_failures_total", (("kind", "image"), ("reason", "http_404")))] == 5
    assert samples[("hotelimages_failures_total", (("kind", "hotel"), ("reason", "listing_http_404")))] == 3
    by_node = ("hotelimages_node_failures_total", (("kind", "image"), ("node", "pc1"), ("reason", "http_404")))
    assert samples[by_node] == 5
    assert samples[("hotelimages_pending_hotels", ())] == 800
    assert samples[("hotelimages_alerts", (("alert", "gone_node_leases"),))] == 1
    assert samples[("hotelimages_alerts", (("alert", "redis_memory"),))] == 0
    assert samples[("hotelimages_node_leases", (("node", "<pc2>"), ("owner", "<pc2>/2-b")))] == 2
    assert samples[("hotelimages_node_live", (("node", "<pc2>"), ("owner", "<pc2>/2-b")))] == 0
    assert samples[("hotelimages_node_images_per_second", (("node", "pc1"), ("owner", "pc1/1-a")))] == 41.25
    assert ("hotelimages_node_images_per_second", (("node", "<pc2>"), ("owner", "<pc2>/2-b"))) not in samples


# ---------------------------------------------------------------- the server, against a real Redis


def test_bind_addresses():
    assert console.parse_bind("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert console.parse_bind("[::1]:0") == ("::1", 0)
    with pytest.raises(ValueError, match="HOST:PORT"):
        console.parse_bind("8080")
    assert console.is_loopback("localhost") and console.is_loopback("::1") and console.is_loopback("127.0.0.2")
    assert not console.is_loopback("0.0.0.0") and not console.is_loopback("example.org")


def test_refuses_a_non_loopback_address_without_a_password(redis_url, capsys, monkeypatch):
    monkeypatch.delenv("HOTELS_CONSOLE_PASSWORD", raising=False)
    out = run_cli(capsys, "status", "--serve", "--bind", "0.0.0.0:0", "--redis-url", redis_url)
    assert out.code == 2
    assert "refusing to serve on 0.0.0.0 (not loopback) without a password" in out.err


@pytest.mark.usefixtures("fleet_state")
def test_controls_are_off_without_a_password(redis_url, redis_client):
    with console_server(redis_url) as srv:
        code, body = request(srv.url + "api/status?range=hour")
        assert code == 200 and json.loads(body)["controls"] == {"enabled": False, "pause": False}
        code, body = request(srv.url + "api/retry", {"reason": "listing_timeout"}, "ann", "")
        assert code == 403 and "HOTELS_CONSOLE_PASSWORD" in json.loads(body)["error"]
    assert redis_client.hlen(KEYS.failed) == 3


@pytest.mark.usefixtures("fleet_state")
def test_page_json_metrics_and_controls(redis_url, redis_client):
    with console_server(redis_url, "s3cret", "--refresh", "2") as srv:
        code, page = request(srv.url)
        assert code == 200 and b'src="static/uPlot.iife.min.js"' in page
        code, js = request(srv.url + "static/uPlot.iife.min.js")
        assert code == 200 and b"uPlot" in js
        code, body = request(srv.url + "api/status?range=day")
        data = json.loads(body)
        assert (data["pending"], data["done"], data["refresh"], data["range_seconds"]) == (5, 3, 2.0, 86400)
        assert data["controls"]["enabled"] is True
        assert [a["name"] for a in data["alerts"]] == ["gone_node_leases"]
        assert set(data["charts"]["images"]) == {"fleet", "pc1", "pc3"}
        assert request(srv.url + "api/status?range=week")[0] == 400

        code, text = request(srv.url + "metrics")
        names = {f.name for f in text_string_to_metric_families(text.decode())}
        assert {"hotelimages_hotels", "hotelimages_pending_hotels", "hotelimages_node_live"} <= names

        # Controls: no password, a wrong one, a bad body, then the right one.
        assert request(srv.url + "api/retry", {"reason": "listing_timeout"})[0] == 401
        assert request(srv.url + "api/retry", {"reason": "listing_timeout"}, "eve", "guess")[0] == 401
        assert request(srv.url + "api/retry", {"nothing": 1}, "ann", "s3cret")[0] == 400
        code, body = request(srv.url + "api/retry", {"reason": "listing_timeout"}, "ann", "s3cret")
        assert (code, json.loads(body)) == (200, {"moved": 1, "reason": "listing_timeout"})
        assert set(redis_client.hkeys(KEYS.failed)) == {b"13", b"14"}
        assert redis_client.lindex(KEYS.start_ids, 0) == b"15"

        code, body = request(srv.url + "api/requeue", {"owner": "pc2/7-z"}, "ann", "s3cret")
        assert code == 200 and json.loads(body)["requeued"] == 1
        code, body = request(srv.url + "api/requeue", {"owner": "pc1/1-a"}, "ann", "s3cret")
        assert json.loads(body)["live_skipped"] == {"pc1/1-a": 2}  # a live owner's leases are left alone

        assert request(srv.url + "api/failed.csv")[0] == 401
        code, csv_text = request(srv.url + "api/failed.csv", user="ann", password="s3cret")
        lines = sorted(csv_text.decode().splitlines())
        assert code == 200 and lines == ["13,listing_http_404,,,", "14,listing_http_404,,,",
                                         "hotel_id,reason,detail,node,at"]
        log = srv.log()
    assert "refused /api/retry from 127.0.0.1 (wrong or no password, user 'eve')" in log
    assert "ann from 127.0.0.1 retried 1 failed hotels with reason listing_timeout" in log
    assert "ann from 127.0.0.1 requeued 1 leases of pc2/7-z" in log
    assert "ann from 127.0.0.1 exported the failed hotels" in log


def test_docs_rules_and_dashboard_name_only_metrics_that_exist():
    import re

    from tests.conftest import ROOT

    fleet = literal_status()
    fleet.reasons = fleet.nodes[0].reasons = {"image/http_404": 1}
    fleet.last_progress_at = T0
    fleet.failure_rate, fleet.redis_memory = 0.1, {"used_memory": 1, "maxmemory": 2}
    exposed = set()
    for family in metrics.families(fleet):
        exposed.update(sample.name for sample in family.samples)
    for doc in ("docs/monitoring/alerts.yml", "docs/monitoring/grafana-dashboard.json", "docs/OPERATIONS.md"):
        named = set(re.findall(r"\bhotelimages_[a-z_]+[a-z]", (ROOT / doc).read_text()))
        assert named and named <= exposed, (doc, named - exposed)
