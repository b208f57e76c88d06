"""Deploying with scrapyd: a real scrapyd, the real scrapyd-deploy, jobs crawling the demo server from the egg.

Also the pure parts of scheduling (hosts file, form data, skip rule, credentials) and the
``hotelimages-node`` console script run from a ``pip install``-ed copy outside the checkout.
"""

from __future__ import annotations

import base64
import configparser
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from crawling import demo_server, expected_files, files_under, recorded_manifest
from support import run_cli, run_script

from devtools import demo_hotels as catalogue
from devtools.localredis import free_port, stop_process
from hotelimages import scrapyd_jobs as jobs
from hotelimages.commands.node import crawl_argv, load_env_files, parse_env_file
from hotelimages.config import ENV_SETTINGS
from hotelimages.keys import Keys
from hotelimages.sharding import hotel_dir

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
KEYS = Keys()
USER, PASSWORD = "ops", "pw-7f3a-secret"
CREDS = jobs.Credentials(USER, PASSWORD)
#: What a build copies from the checkout: the package and the files that describe it.
SOURCE_FILES = ("pyproject.toml", "setup.py", "scrapy.cfg")


# Pure parts ---------------------------------------------------------------------------------------

def test_hosts_file_lines_give_url_settings_and_credentials():
    hosts = jobs.parse_hosts(
        "# office PCs\n"
        "\n"
        "http://10.0.0.12:6800  NODE_ID=pc12 IMAGES_STORE=D:/image\n"
        "https://ops:p%40ss@pc13.lan:6800/scrapyd NODE_ID=pc13\n"
        "pc14:6800\n"
    )
    assert hosts == [
        jobs.Host("http://10.0.0.12:6800/", (("NODE_ID", "pc12"), ("IMAGES_STORE", "D:/image"))),
        jobs.Host("https://pc13.lan:6800/scrapyd/", (("NODE_ID", "pc13"),), jobs.Credentials("ops", "p@ss")),
        jobs.Host("http://pc14:6800/"),
    ]
    assert "p@ss" not in repr(hosts) and "p%40ss" not in repr(hosts)


@pytest.mark.parametrize("line, message", [
    ("http://pc12:6800 NODE_ID", "NAME=VALUE"),
    ("http://pc12:6800 node_id=x", "upper-case"),
    ("ftp://pc12/ NODE_ID=x", "not an http(s) URL"),
])
def test_bad_hosts_file_line_names_the_line(line, message):
    with pytest.raises(jobs.HostsFileError, match=rf"hosts.txt:2: .*{re.escape(message)}"):
        jobs.parse_hosts("http://ok:6800\n" + line, "hosts.txt")


def test_bad_url_error_does_not_show_the_password():
    with pytest.raises(jobs.HostsFileError) as info:
        jobs.parse_host_line("ftp://ops:hunter2@pc12/")
    assert "hunter2" not in str(info.value)


def test_form_data_repeats_setting_and_host_settings_win():
    settings = jobs.merged_settings([("REDIS_URL", "redis://q:6379/0"), ("NODE_ID", "x")], [("NODE_ID", "pc12")])
    assert jobs.form_data(settings) == [
        ("project", "hotelimages"), ("spider", "hotels"),
        ("setting", "REDIS_URL=redis://q:6379/0"), ("setting", "NODE_ID=pc12"),
    ]


def test_active_job_finds_a_pending_or_running_hotels_job_only():
    assert jobs.active_job({"pending": [], "running": [], "finished": [{"id": "f", "spider": "hotels"}]}) is None
    assert jobs.active_job({"running": [{"id": "o", "spider": "other"}]}) is None
    assert jobs.active_job({"pending": [{"id": "p", "spider": "hotels"}]}) == ("p", "pending")
    both = {"pending": [{"id": "p", "spider": "hotels"}], "running": [{"id": "r", "spider": "hotels"}]}
    assert jobs.active_job(both) == ("r", "running")


def test_credentials_from_arguments_then_environment():
    env = {"SCRAPYD_USERNAME": "envuser", "SCRAPYD_PASSWORD": "envpw"}
    assert jobs.resolve_credentials(None, None, {}) is None
    assert jobs.resolve_credentials(None, None, env) == jobs.Credentials("envuser", "envpw")
    assert jobs.resolve_credentials("ops", "pw", env) == jobs.Credentials("ops", "pw")
    only_password = {"SCRAPYD_PASSWORD": "envpw"}
    assert jobs.resolve_credentials("ops", None, only_password) == jobs.Credentials("ops", "envpw")
    typed = jobs.resolve_credentials("ops", None, {}, ask=lambda user: f"typed-for-{user}")
    assert typed == jobs.Credentials("ops", "typed-for-ops")
    own = jobs.Host("http://pc:6800/", credentials=jobs.Credentials("a", "b"))
    assert jobs.pick_credentials(own, CREDS) == own.credentials
    assert jobs.pick_credentials(jobs.Host("http://pc:6800/"), CREDS) == CREDS


def test_schedule_host_skips_a_running_job_and_reports_errors_as_data():
    calls = []

    def running(method, url, fields, creds, timeout):
        calls.append((method, url))
        return {"status": "ok", "running": [{"id": "job1", "spider": "hotels"}], "pending": []}

    result = jobs.schedule_host(jobs.Host("http://pc:6800/"), transport=running)
    assert result == jobs.HostResult("http://pc:6800/", "skipped", "job1", "running")
    assert result.line() == "http://pc:6800/: skipped: job job1 still running"
    assert calls == [("GET", "http://pc:6800/listjobs.json?project=hotelimages")]

    def refused(method, url, fields, creds, timeout):
        raise jobs.ScrapydError("401 unauthorized (check the user name and password)")

    result = jobs.schedule_host(jobs.Host("http://pc:6800/"), transport=refused)
    assert not result.ok
    assert result.line() == "http://pc:6800/: error: 401 unauthorized (check the user name and password)"


def test_shown_settings_redact_redis_passwords():
    shown = jobs.shown_settings({"REDIS_URL": "redis://:hunter2@q:6379/0", "NODE_ID": "pc12"})
    assert shown == {"REDIS_URL": "redis://***@q:6379/0", "NODE_ID": "pc12"}


def test_describe_shows_settings_without_passwords():
    host = jobs.parse_host_line("http://ops:hunter2@pc12:6800 NODE_ID=pc12")
    text = jobs.describe(host, [("REDIS_URL", "redis://:sesame@q:6379/0"), ("NODE_ID", "x")])
    assert text == "http://pc12:6800/ as ops: would schedule hotels -s REDIS_URL=redis://***@q:6379/0 -s NODE_ID=pc12"


def test_env_file_lines_and_precedence():
    text = '# node\nexport REDIS_URL=redis://q:6379/0\nIMAGES_STORE="D:/image"\n\nNODE_ID = pc12\n'
    assert parse_env_file(text) == {"REDIS_URL": "redis://q:6379/0", "IMAGES_STORE": "D:/image", "NODE_ID": "pc12"}
    with pytest.raises(ValueError, match=r"node.env:1: expected NAME=VALUE"):
        parse_env_file("REDIS_URL redis://q\n", "node.env")
    assert crawl_argv(["-s", "NODE_ID=pc12"]) == ["scrapy", "crawl", "hotels", "-s", "NODE_ID=pc12"]


def test_env_file_does_not_override_the_environment(tmp_path):
    path = tmp_path / "node.env"
    path.write_text("NODE_ID=from-file\nIMAGES_STORE=/srv/img\n")
    environ = {"NODE_ID": "from-env"}
    load_env_files([path], environ)
    assert environ == {"NODE_ID": "from-env", "IMAGES_STORE": "/srv/img"}


# A real scrapyd --------------------------------------------------------------------------------

def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without anything that would point a child at the checkout or a setting."""
    env = dict(os.environ)
    for name in (*ENV_SETTINGS, "PYTHONPATH", "SCRAPY_SETTINGS_MODULE", "SCRAPY_PROJECT",
                 "SCRAPYD_USERNAME", "SCRAPYD_PASSWORD"):
        env.pop(name, None)
    env.update(extra)
    return env


def copy_source(dest: Path) -> Path:
    """The package and its build files, copied so that builds leave nothing in the checkout."""
    dest.mkdir(parents=True)
    shutil.copytree(ROOT / "hotelimages", dest / "hotelimages", ignore=shutil.ignore_patterns("__pycache__"))
    for name in SOURCE_FILES:
        shutil.copy2(ROOT / name, dest / name)
    return dest


def build_artefacts() -> set[str]:
    return {p.name for p in ROOT.iterdir() if p.name in ("build", "dist") or p.name.endswith(".egg-info")}


@dataclass
class Scrapyd:
    url: str
    home: Path
    deploy_seconds: float

    def api(self, path: str, fields: list[tuple[str, str]] | None = None) -> dict:
        return jobs.http_json("POST" if fields is not None else "GET", self.url + path, fields, CREDS)

    def text(self, path: str) -> str:
        request = urllib.request.Request(self.url + path.lstrip("/"))
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode("utf-8", errors="replace")

    def host(self, **settings: str) -> jobs.Host:
        return jobs.Host(self.url, tuple(settings.items()))

    def wait_state(self, jobid: str, states: tuple[str, ...], timeout: float = 45.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = self.api("listjobs.json?project=hotelimages")
            for state in states:
                for job in jobs[state]:
                    if job["id"] == jobid:
                        return job
            time.sleep(0.2)
        raise AssertionError(f"job {jobid} not {states} within {timeout}s: {jobs}")

    def wait_log(self, jobid: str, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        log = ""
        while time.monotonic() < deadline:
            try:
                log = self.text(f"logs/hotelimages/hotels/{jobid}.log")
            except urllib.error.HTTPError:
                log = ""
            if text in log:
                return log
            time.sleep(0.2)
        raise AssertionError(f"{text!r} not in the log of job {jobid}:\n{log[-2000:]}")


@pytest.fixture(scope="module")
def scrapyd(tmp_path_factory):
    """A scrapyd with basic auth on a free loopback port, the project deployed by scrapyd-deploy."""
    home = tmp_path_factory.mktemp("scrapyd")
    port = free_port()
    (home / "scrapyd.conf").write_text(
        "[scrapyd]\n"
        "bind_address = 127.0.0.1\n"
        f"http_port = {port}\n"
        f"username = {USER}\n"
        f"password = {PASSWORD}\n"
        f"eggs_dir = {home / 'eggs'}\n"
        f"logs_dir = {home / 'logs'}\n"
        f"dbs_dir = {home / 'dbs'}\n"
        "items_dir =\n"
        "poll_interval = 0.2\n"
        "max_proc = 4\n"
        "jobs_to_keep = 20\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "scrapyd", "--logfile", str(home / "scrapyd.log"),
         "--pidfile", str(home / "scrapyd.pid")],
        cwd=home, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                jobs.http_json("GET", url + "daemonstatus.json", None, CREDS, 2)
                break
            except jobs.ScrapydError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (home / "scrapyd.log").read_text() if (home / "scrapyd.log").exists() else ""
                    raise RuntimeError(f"scrapyd did not start:\n{log[-3000:]}") from None
                time.sleep(0.1)

        src = copy_source(home / "src")
        with (src / "scrapy.cfg").open("a") as cfg:
            cfg.write(f"\n[deploy:test]\nurl = {url}\nproject = hotelimages\n"
                      f"username = {USER}\npassword = {PASSWORD}\n")
        before = build_artefacts()
        started = time.monotonic()
        deploy = subprocess.run([str(BIN / "scrapyd-deploy"), "test", "--version", "r1"], cwd=src, env=clean_env(),
                                capture_output=True, text=True, timeout=120)
        deploy_seconds = time.monotonic() - started
        assert deploy.returncode == 0, deploy.stdout + deploy.stderr
        assert json.loads(deploy.stdout)["status"] == "ok", deploy.stdout
        assert build_artefacts() == before  # the build ran in the copy, not the checkout
        yield Scrapyd(url, home, deploy_seconds)
    finally:
        try:  # a job left by a failed test must not outlive scrapyd
            for job in jobs.http_json("GET", url + "listjobs.json", None, CREDS, 2)["running"]:
                jobs.http_json("POST", url + "cancel.json",
                                   [("project", job["project"]), ("job", job["id"]), ("signal", "KILL")], CREDS, 2)
        except jobs.ScrapydError:
            pass
        stop_process(proc, 15)


def test_deploy_uploads_an_egg_of_the_whole_package_with_its_settings(scrapyd):
    egg = scrapyd.home / "eggs" / "hotelimages" / "r1.egg"
    with zipfile.ZipFile(egg) as z:
        names = set(z.namelist())
        entry_points = configparser.ConfigParser()
        entry_points.read_string(z.read("EGG-INFO/entry_points.txt").decode())
    for module in ROOT.joinpath("hotelimages").rglob("*.py"):
        assert module.relative_to(ROOT).as_posix() in names
    assert "hotelimages/spiders/hotels.py" in names
    assert not any(n.startswith(("tests/", "scripts/")) for n in names)
    assert entry_points["scrapy"]["settings"] == "hotelimages.settings"
    assert scrapyd.api("listspiders.json?project=hotelimages")["spiders"] == ["hotels"]
    assert scrapyd.api("listversions.json?project=hotelimages")["versions"] == ["r1"]
    print(f"deploy (build + upload) took {scrapyd.deploy_seconds:.1f}s")


def test_requests_without_or_with_wrong_credentials_are_refused(scrapyd):
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(scrapyd.url + "daemonstatus.json", timeout=5)
    assert info.value.code == 401
    wrong = jobs.Credentials(USER, "not-the-password")
    result = jobs.schedule_host(scrapyd.host(NODE_ID="x"), credentials=wrong)
    assert result.status == "error" and "401" in result.message
    assert scrapyd.api("listjobs.json?project=hotelimages")["pending"] == []


def check_crawl(redis_client, store: Path, base_url: str, ids: list[str], node: str) -> None:
    expected = {}
    for hid in ids:
        expected.update(expected_files(hid, base_url))
    on_disk = files_under(store)
    assert on_disk == expected
    for hid in ids:
        manifest = json.loads((store / hotel_dir(hid) / "manifest.json").read_text())
        assert manifest == recorded_manifest(redis_client, hid)
        assert (manifest["status"], manifest["node"], manifest["store"]) == ("complete", node, str(store))


def check_job_log(scrapyd: Scrapyd, jobid: str) -> str:
    log = scrapyd.text(f"logs/hotelimages/hotels/{jobid}.log")
    assert "claiming hotels" in log
    assert "'BOT_NAME': 'hotelimages'" in log  # the settings module came from the egg's entry point
    assert "Queue empty" in log
    assert "Traceback" not in log and PASSWORD not in log
    return log


def test_scheduled_jobs_crawl_from_the_egg_with_per_node_settings(scrapyd, redis_url, redis_client, tmp_path, capsys,
                                                                  monkeypatch):
    with demo_server(30) as base_url:
        ids = catalogue.hotel_ids(30)
        first, second = ids[:20], ids[20:]
        redis_client.lpush(KEYS.start_ids, *first)
        common = {"REDIS_URL": redis_url, "HOTEL_LISTING_URL": f"{base_url}/hotels/{{hotel_id}}/photos",
                  "HOTELS_IDLE_CLOSE_SECONDS": "1", "HOTELS_POLL_SECONDS": "0.2"}

        # 1. the function, as a scheduling job would call it
        started = time.monotonic()
        [result] = jobs.schedule_all(
            [scrapyd.host(IMAGES_STORE=str(tmp_path / "store-a"), NODE_ID="node-a")], common.items(), credentials=CREDS)
        assert result.status == "scheduled", result.line()
        scrapyd.wait_state(result.jobid, ("finished",))
        print(f"schedule -> finished (20 hotels): {time.monotonic() - started:.1f}s")
        check_crawl(redis_client, tmp_path / "store-a", base_url, first, "node-a")
        check_job_log(scrapyd, result.jobid)
        assert redis_client.hlen(KEYS.manifests) == 20

        # 2. the command, with a hosts file: credentials in the URL, a second host that is down
        redis_client.lpush(KEYS.start_ids, *second)
        hosts = tmp_path / "hosts.txt"
        authed = scrapyd.url.replace("http://", f"http://{USER}:{PASSWORD}@")
        hosts.write_text(f"# the fleet\n{authed} NODE_ID=node-b IMAGES_STORE={tmp_path / 'store-b'}\n"
                         f"http://127.0.0.1:{free_port()}/ NODE_ID=down\n")
        args = ["schedule", "--hosts", str(hosts)]
        for name, value in common.items():
            args += ["-s", f"{name}={value}"]
        for name in set(os.environ) - set(clean_env()):
            monkeypatch.delenv(name)
        proc = run_cli(capsys, *args)
        out = proc.out + proc.err
        assert proc.code == 1, out
        assert PASSWORD not in out
        lines = proc.out.splitlines()
        assert lines[0].startswith(f"{scrapyd.url}: scheduled job "), out
        assert lines[1].endswith("error: unreachable ([Errno 111] Connection refused)"), out
        jobid = lines[0].rsplit(" ", 1)[1]
        scrapyd.wait_state(jobid, ("finished",))
        check_crawl(redis_client, tmp_path / "store-b", base_url, second, "node-b")
        check_job_log(scrapyd, jobid)

    assert redis_client.hlen(KEYS.manifests) == 30
    assert redis_client.hlen(KEYS.failed) == 0
    assert redis_client.llen(KEYS.start_ids) == 0 and redis_client.zcard(KEYS.leases) == 0


def test_second_schedule_is_skipped_while_a_job_runs_and_cancel_drains(scrapyd, redis_url, redis_client, tmp_path):
    host = scrapyd.host(REDIS_URL=redis_url, IMAGES_STORE=str(tmp_path / "store"), NODE_ID="idle",
                        HOTEL_LISTING_URL="http://127.0.0.1:9/hotels/{hotel_id}/photos",  # never fetched: no work
                        HOTELS_IDLE_CLOSE_SECONDS="30", HOTELS_POLL_SECONDS="0.2")
    first = jobs.schedule_host(host, credentials=CREDS)
    assert first.status == "scheduled", first.line()
    second = jobs.schedule_host(host, credentials=CREDS)  # still pending or already running
    assert second.status == "skipped" and second.jobid == first.jobid, second.line()

    scrapyd.wait_state(first.jobid, ("running",))
    scrapyd.wait_log(first.jobid, "claiming hotels")  # its stop handler is in place
    third = jobs.schedule_host(host, credentials=CREDS)
    assert third.line() == f"{scrapyd.url}: skipped: job {first.jobid} still running"
    assert len(scrapyd.api("listjobs.json?project=hotelimages")["running"]) == 1

    cancelled = time.monotonic()
    answer = scrapyd.api("cancel.json", [("project", "hotelimages"), ("job", first.jobid)])
    assert answer["prevstate"] == "running"
    scrapyd.wait_state(first.jobid, ("finished",), timeout=20)
    assert time.monotonic() - cancelled < 15  # drained at once, not after the 30 s idle close
    log = scrapyd.text(f"logs/hotelimages/hotels/{first.jobid}.log")
    assert "Received SIGINT: no new claims" in log
    assert "Traceback" not in log


# A node without the source tree ----------------------------------------------------------------

def test_hotelimages_node_runs_from_an_installed_package(redis_url, redis_client, tmp_path):
    src = copy_source(tmp_path / "src")
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site)]
    # Without network the isolated build cannot fetch setuptools; build here when this environment can.
    if importlib.util.find_spec("wheel") or _setuptools_has_bdist_wheel():
        pip.append("--no-build-isolation")
    started = time.monotonic()
    subprocess.run([*pip, str(src)], check=True, cwd=tmp_path, env=clean_env(), timeout=180)
    print(f"pip install . took {time.monotonic() - started:.1f}s")
    script = site / "bin" / "hotelimages-node"
    assert script.exists()

    run = tmp_path / "run"  # outside the checkout: no scrapy.cfg, no hotelimages package nearby
    run.mkdir()
    env = clean_env(PYTHONPATH=str(site))
    where = subprocess.run([sys.executable, "-c", "import hotelimages; print(hotelimages.__file__)"],
                           cwd=run, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.strip() == str(site / "hotelimages" / "__init__.py")

    with demo_server(5) as base_url:
        ids = catalogue.hotel_ids(5)
        redis_client.lpush(KEYS.start_ids, *ids)
        store = tmp_path / "store"
        (run / "node.env").write_text(
            f"# office PC\nREDIS_URL={redis_url}\nHOTEL_LISTING_URL={base_url}/hotels/{{hotel_id}}/photos\n"
            f"IMAGES_STORE={store}\nNODE_ID=from-env-file\n"
        )
        proc = subprocess.run(
            [sys.executable, str(script), "--env-file", "node.env", "-s", "NODE_ID=pc12",
             "-s", "HOTELS_IDLE_CLOSE_SECONDS=1", "-s", "HOTELS_POLL_SECONDS=0.2"],
            cwd=run, env=env, capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "claiming hotels" in proc.stderr and "Traceback" not in proc.stderr
        check_crawl(redis_client, store, base_url, ids, "pc12")  # -s passed through, beats the env file
    assert redis_client.hlen(KEYS.manifests) == 5


def _setuptools_has_bdist_wheel() -> bool:
    return importlib.util.find_spec("setuptools.command.bdist_wheel") is not None


def test_schedule_script_dry_run_as_a_process(tmp_path):
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("http://ops:s3cret@10.0.0.12:6800 NODE_ID=pc12\n")
    out = run_script("schedule", "--dry-run", "--hosts", hosts, "-s", "REDIS_URL=redis://:pw@queue:6379/0",
                     env={"SCRAPYD_PASSWORD": ""})
    assert out.returncode == 0, out.stderr
    assert "http://10.0.0.12:6800" in out.stdout and "NODE_ID=pc12" in out.stdout
    assert "s3cret" not in out.stdout + out.stderr and ":pw@" not in out.stdout


def test_schedule_without_hosts_is_a_usage_error(capsys):
    out = run_cli(capsys, "schedule")
    assert out.code == 2 and "no hosts: give URLs or --hosts FILE" in out.err
