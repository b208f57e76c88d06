"""The console end to end: real crawls, a real console process, a real headless Chromium, real alerts.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` (``scripts/dev.sh test`` installs
them when run as root); it is skipped, saying so, where they are missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from crawling import demo_server
from prometheus_client.parser import text_string_to_metric_families

from devtools import demo_hotels as catalogue
from devtools.localredis import stop_process
from hotelimages.keys import Keys
from tests.conftest import ROOT
from tests.consoleserver import STATUS, console_server, half_broken_server, request, start_node

KEYS = Keys()
PASSWORD = "correct horse"
#: Slow enough that a page refreshing every second sees the counts move.
SLOW_CRAWL = ("HOTELS_MAX_IN_FLIGHT=1", "CONCURRENT_REQUESTS=2")
FAULTS = "image_404:3,listing_404:7,image_slow:4"


def wait_for(predicate, timeout: float, what: str, every: float = 0.2):
    """Poll ``predicate`` until it returns something true; fail saying ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def stop_nodes(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        stop_process(proc)


def status_json(redis_url: str) -> dict:
    out = subprocess.run([sys.executable, STATUS, "--json"], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={**os.environ, "REDIS_URL": redis_url}, check=True)
    return json.loads(out.stdout)


def check(redis_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, STATUS, "--check", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, env={**os.environ, "REDIS_URL": redis_url})


# ---------------------------------------------------------------- the page in a real browser


@pytest.fixture
def browser(tmp_path):
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/dev.sh test installs them)")
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                "--window-size=1280,1350"):
        options.add_argument(arg)
    drv = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield drv
    finally:
        drv.quit()


def text(drv, element_id: str) -> str:
    return drv.find_element("id", element_id).text


def number(drv, element_id: str) -> float:
    raw = text(drv, element_id).replace(",", "")
    try:
        return float(raw)
    except ValueError:
        return -1.0


def test_live_page_during_a_two_node_crawl(redis_url, redis_client, browser, tmp_path):
    from selenium.webdriver.support import expected_conditions as ec  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    hotels = catalogue.hotel_ids(400)
    listing_404 = [h for h in hotels if "listing_404" in catalogue.faults_for(h, catalogue.parse_faults(FAULTS))]
    with demo_server(len(hotels), FAULTS, slow_seconds=0.3) as base, \
            console_server(redis_url, PASSWORD, "--refresh", "1") as srv:
        browser.get(srv.url)
        wait_for(lambda: text(browser, "done") == "0", 30, "the page's first update")
        browser.execute_script("window.notReloaded = true;")
        redis_client.lpush(KEYS.start_ids, *hotels)
        nodes = [start_node(redis_url, base, tmp_path / f"store{i}", f"node{i}", *SLOW_CRAWL) for i in (1, 2)]
        try:
            first = wait_for(lambda: number(browser, "done") > 0 and number(browser, "done"), 60, "a done count")
            wait_for(lambda: number(browser, "done") > first, 60, "the done count to grow without a reload")
            wait_for(lambda: number(browser, "photos") > 0, 30, "photos/s above 0")
            photos = {text(browser, "photos")}
            wait_for(lambda: photos.add(text(browser, "photos")) or len(photos) > 1, 30, "photos/s to change")
            assert browser.execute_script("return window.notReloaded === true;")
            live = browser.find_elements("css selector", "#live tbody tr")
            assert len(live) == 2 and {r.text.split()[0] for r in live} == {"node1", "node2"}
            # The failure reasons chart shows the reason the demo server injected (image_404 -> http_404).
            shown = """const c = window.hotelConsole.charts['chart-reasons'];
                if (!c) return false;
                const i = c.plot.series.findIndex(s => s.label === 'image/http_404');
                return i > 0 && c.data[i].some(v => v > 0);"""
            wait_for(lambda: browser.execute_script(shown), 60, "image/http_404 in the failure reasons chart")
            legend = browser.find_element("css selector", "#chart-reasons .u-legend").text
            assert "image/http_404" in legend
            for proc in nodes:
                proc.wait(180)
        finally:
            stop_nodes(nodes)
        assert redis_client.llen(KEYS.start_ids) == 0 and redis_client.zcard(KEYS.leases) == 0
        assert redis_client.hlen(KEYS.failed) == len(listing_404)
        wait_for(lambda: text(browser, "percent") == "100.0%", 30, "100% done on the page")
        assert browser.execute_script("return window.notReloaded === true;")
        browser.find_element("css selector", "#ranges button[data-range='job']").click()
        wait_for(lambda: browser.execute_script("return window.hotelConsole.data.range_seconds === 0;"), 10,
                 "the whole job's charts")
        browser.save_screenshot(str(tmp_path / "console.png"))
        if os.environ.get("HOTELIMAGES_SCREENSHOT"):  # how docs/console.png was made
            shutil.copy(tmp_path / "console.png", os.environ["HOTELIMAGES_SCREENSHOT"])

        # Retry by reason: a confirmation, then the password (a wrong one first), then it works.
        retry = wait_for(lambda: browser.find_elements("css selector", "tr[data-reason='listing_http_404'] button"),
                         30, "the retry button")
        retry[0].click()
        WebDriverWait(browser, 10).until(ec.alert_is_present())
        assert "failed hotels with reason listing_http_404" in browser.switch_to.alert.text
        browser.switch_to.alert.accept()
        dialog = browser.find_element("id", "login")
        wait_for(lambda: dialog.is_displayed(), 10, "the password dialog")
        browser.find_element("id", "login-password").send_keys("wrong")
        browser.find_element("id", "login-ok").click()
        wait_for(lambda: text(browser, "login-error") == "Wrong password.", 10, "the wrong password to be refused")
        assert redis_client.hlen(KEYS.failed) == len(listing_404)
        browser.find_element("id", "login-password").send_keys(PASSWORD)
        browser.find_element("id", "login-ok").click()
        wait_for(lambda: text(browser, "message").startswith("Moved "), 20, "the retry's answer")
        moved = f"Moved {len(listing_404)} hotels with reason listing_http_404 back to the queue"
        assert text(browser, "message") == moved
        assert redis_client.hlen(KEYS.failed) == 0
        assert sorted(redis_client.lrange(KEYS.start_ids, 0, -1)) == sorted(h.encode() for h in listing_404)
        log = srv.log()
    assert "refused /api/retry from 127.0.0.1 (wrong or no password, user 'operator')" in log
    assert f"operator from 127.0.0.1 retried {len(listing_404)} failed hotels with reason listing_http_404" in log
    assert (tmp_path / "console.png").stat().st_size > 10_000


# ---------------------------------------------------------------- /metrics during a crawl


def samples_of(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_during_a_crawl_equal_status_json(redis_url, redis_client, tmp_path):
    hotels = catalogue.hotel_ids(300)
    with demo_server(len(hotels), FAULTS, slow_seconds=0.3) as base, console_server(redis_url) as srv:
        redis_client.lpush(KEYS.start_ids, *hotels)
        nodes = [start_node(redis_url, base, tmp_path / f"store{i}", f"node{i}", *SLOW_CRAWL) for i in (1, 2)]
        try:
            wait_for(lambda: redis_client.hlen(KEYS.manifests) >= 30 and redis_client.hget(KEYS.reasons,
                     "image/http_404"), 60, "the crawl to be under way")
            # Hold both nodes still (SIGSTOP), so that both readers see one state of the fleet.
            for proc in nodes:
                os.kill(proc.pid, signal.SIGSTOP)
            time.sleep(0.5)
            code, body = request(srv.url + "metrics")
            fleet = status_json(redis_url)
            for proc in nodes:
                os.kill(proc.pid, signal.SIGCONT)
            assert code == 200
            got = samples_of(body.decode())
            assert fleet["pending"] > 0 and fleet["leased"] > 0  # mid-crawl
            assert got[("hotelimages_pending_hotels", ())] == fleet["pending"]
            assert got[("hotelimages_in_flight_hotels", ())] == fleet["leased"]
            assert got[("hotelimages_done_hotels", ())] == fleet["done"]
            assert got[("hotelimages_failed_hotels", ())] == fleet["failed_hotels"]
            for name, value in fleet["counters"].items():
                if name.startswith("hotels/"):
                    assert got[("hotelimages_hotels_total", (("status", name[7:]),))] == value
            assert got[("hotelimages_images_stored_total", ())] == fleet["counters"]["images/stored"]
            assert got[("hotelimages_image_bytes_total", ())] == fleet["counters"]["images/bytes"]
            assert got[("hotelimages_images_failed_total", ())] == fleet["counters"]["images/failed"]
            failures = {f"{dict(k[1])['kind']}/{dict(k[1])['reason']}": v for k, v in got.items()
                        if k[0] == "hotelimages_failures_total"}
            assert failures == fleet["reasons"] and fleet["reasons"]["image/http_404"] > 0
            live = {dict(k[1])["owner"] for k, v in got.items() if k[0] == "hotelimages_node_live" and v == 1}
            assert live == {n["owner"] for n in fleet["nodes"] if n["state"] == "live"} and len(live) == 2
            for proc in nodes:
                proc.wait(180)
        finally:
            stop_nodes(nodes)
        # Once done, the fleet counters agree with what the crawl recorded.
        code, body = request(srv.url + "metrics")
        got = samples_of(body.decode())
        assert got[("hotelimages_done_hotels", ())] + got[("hotelimages_failed_hotels", ())] == len(hotels)
        assert got[("hotelimages_failures_total", (("kind", "image"), ("reason", "http_404")))] == sum(
            int(v) for k, v in redis_client.hgetall(KEYS.reasons).items() if k == b"image/http_404")


# ---------------------------------------------------------------- status --check with real processes


def test_check_flags_a_node_killed_holding_leases_and_no_progress(redis_url, redis_client, tmp_path):
    hotels = catalogue.hotel_ids(40)
    with demo_server(len(hotels), "listing_slow:1", slow_seconds=120) as base:
        redis_client.lpush(KEYS.start_ids, *hotels)
        node = start_node(redis_url, base, tmp_path / "store", "doomed")
        try:
            wait_for(lambda: redis_client.zcard(KEYS.leases) and redis_client.keys("hotels:node:doomed/*"), 60,
                     "the node to hold leases")
            healthy = check(redis_url)
            assert (healthy.returncode, healthy.stdout) == (0, "OK: no alerts\n"), healthy.stderr
            node.send_signal(signal.SIGKILL)
            node.wait(10)
        finally:
            stop_process(node)
        held = redis_client.zcard(KEYS.leases)
        # Its heartbeat expires (30 s at most); its leases stay until they expire or are requeued.
        wait_for(lambda: not redis_client.keys("hotels:node:doomed/*"), 45, "the heartbeat to expire", every=1)
        out = check(redis_url)
        assert out.returncode == 1
        assert out.stdout.startswith("ALERT gone_node_leases: doomed/") and f"holds {held} leases" in out.stdout
        assert "no_progress" not in out.stdout  # 10 minutes by default
        out = check(redis_url, "--stall-minutes", "0.1")
        assert out.returncode == 1 and "ALERT no_progress: no progress for " in out.stdout
        assert f"with {len(hotels)} hotels left" in out.stdout


def test_check_flags_a_server_failing_half_the_photos(redis_url, redis_client, tmp_path):
    with half_broken_server(delay=0.03) as base:
        redis_client.lpush(KEYS.start_ids, *catalogue.hotel_ids(300))
        node = start_node(redis_url, base, tmp_path / "store", "unlucky", "CONCURRENT_REQUESTS=4")
        try:
            out = wait_for(lambda: (c := check(redis_url, "--failure-rate", "0.4")).returncode == 1 and c, 90,
                           "the failure rate alert")
            found = re.match(r"ALERT failure_rate: (\d+)% of (\d+) attempts failed over the last 300s", out.stdout)
            assert found and 40 <= int(found[1]) <= 60 and int(found[2]) >= 20, out.stdout
            assert "ALERT" not in check(redis_url, "--failure-rate", "0.8").stdout  # half is well under 80%
        finally:
            stop_process(node)


def test_check_flags_redis_memory_near_maxmemory(redis_url, redis_client):
    before = redis_client.config_get("maxmemory")["maxmemory"]
    used = redis_client.info("memory")["used_memory"]
    try:
        redis_client.config_set("maxmemory", int(used / 0.85))
        out = check(redis_url)
        assert out.returncode == 1 and out.stdout.startswith("ALERT redis_memory: Redis uses 8")
        assert check(redis_url, "--memory-ratio", "0.95").returncode == 0
    finally:
        redis_client.config_set("maxmemory", before)
    out = check(redis_url)
    assert (out.returncode, out.stdout) == (0, "OK: no alerts\n")
