"""Start-up checks (doctor), unknown-setting detection, Redis URL redaction and checking, exit statuses."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hotelimages import doctor
from hotelimages import scrapyd_jobs as jobs
from hotelimages.config import HotelsConfig, check_names, check_redis_url, unknown_environment, unknown_settings
from hotelimages.redisconn import redact_url, sync_client
from hotelimages.scrapy_commands.crawl import exit_status

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- path lengths (pure)


def test_longest_paths_of_the_default_layout():
    paths = doctor.longest_paths("D:/image", hotel_id_length=64, image_id_length=64, shard_depth=4,
                                 category_length=8, extension_length=4)
    # D:/image /6/8/c/2 /<64> /exterior /.<64>.webp.<10>-<10>.part
    assert paths == doctor.PathLengths(folder=8 + 8 + 65 + 9, file=90 + 1 + 97, name=97)
    assert doctor.temp_name_length(len("manifest.json")) == 41


def test_longest_paths_count_the_store_once_without_a_trailing_separator():
    a = doctor.longest_paths("C:\\data\\img\\", hotel_id_length=10, image_id_length=16, shard_depth=0,
                             category_length=5, extension_length=3)
    b = doctor.longest_paths("C:\\data\\img", hotel_id_length=10, image_id_length=16, shard_depth=0,
                             category_length=5, extension_length=3)
    assert a == b
    assert b.file == 11 + 1 + 10 + 1 + 5 + 1 + doctor.temp_name_length(16 + 4)


@pytest.mark.parametrize(("pattern", "high"), [(r"[A-Za-z0-9_-]{1,64}", 64), (r"\d{7}", 7), (r"(ab|c){2}", 4),
                                               (r"\d+", None), (r"[a-z]*", None)])
def test_pattern_max_length(pattern, high):
    assert doctor.pattern_max_length(pattern) == high


def test_windows_path_limit_with_and_without_long_paths():
    cfg = HotelsConfig()
    short = doctor.check_path_length(cfg, "D:/image", on_windows=True, long_paths=lambda: False)
    assert short.ok and not short.warning and "longest path 188 characters" in short.detail
    deep = "C:/Users/a.colleague/OneDrive - Example Corporation/Documents/hotel photo download/store/images"
    too_long = doctor.check_path_length(cfg, deep, on_windows=True, long_paths=lambda: False)
    assert not too_long.ok and "over Windows' limit of 259" in too_long.detail
    assert doctor.check_path_length(cfg, deep, on_windows=True, long_paths=lambda: True).ok
    assert doctor.check_path_length(cfg, deep, on_windows=False).ok


def test_unbounded_id_pattern_warns_on_windows_and_long_names_fail_everywhere():
    cfg = HotelsConfig.from_settings({"HOTELS_ID_PATTERN": r"[0-9]+"})
    check = doctor.check_path_length(cfg, "D:/i", on_windows=True, long_paths=lambda: False)
    assert check.ok and check.warning and "HOTELS_ID_PATTERN do not bound" in check.detail
    assert "an ID over 139 characters would not fit" in check.detail  # 64 + 259 - (4 + 8 + 65 + 9 + 1 + 97)
    cfg = HotelsConfig.from_settings({"HOTELS_IMAGE_ID_PATTERN": r"[0-9]{1,250}"})
    assert not doctor.check_path_length(cfg, "/srv/img", on_windows=False).ok


# ---------------------------------------------------------------- unknown settings (pure)


def test_unknown_settings_that_look_like_ours():
    found = {u.name: u.suggestion for u in unknown_settings(
        ["HOTELS_IDLE_CLOSE_SECOND", "HOTELS_MAX_INFLIGHT", "IMAGE_STORE", "DOWNLOAD_TIMEOUTS", "HOTELS_FORCE",
         "LOG_LEVEL", "IMAGES_STORE", "REDIS_URL", "ZYTE_API_KEY", "MYMIDDLEWARE_ENABLED"])}
    assert found == {"HOTELS_IDLE_CLOSE_SECOND": "HOTELS_IDLE_CLOSE_SECONDS",
                     "HOTELS_MAX_INFLIGHT": "HOTELS_MAX_IN_FLIGHT", "IMAGE_STORE": "IMAGES_STORE",
                     "DOWNLOAD_TIMEOUTS": "DOWNLOAD_TIMEOUT"}


def test_unknown_environment_variables():
    environ = {"IMAGE_STORE": "x", "HOTEL_LISTING_ULR": "x", "HOTELS_REDIS_KEYS": "x", "PATH": "/bin",
               "NODE_ENV": "production", "REDIS_URL": "redis://h", "HOTELS_CONSOLE_PASSWORD": "p",
               "HOTELS_IDLE_CLOSE_SECONDS": "2", "HOTELS_KEY_PREFIX": "staging"}
    messages = [u.message() for u in unknown_environment(environ, {"HOTELS_KEY_PREFIX": "staging"})]
    assert messages == [
        "environment variable HOTELS_IDLE_CLOSE_SECONDS is not read by a node; give the node the same value as "
        "a setting (-s HOTELS_IDLE_CLOSE_SECONDS=... or in the scrapyd job)",
        "unknown environment variable HOTELS_REDIS_KEYS; did you mean HOTELS_REDIS_KEY?",
        "unknown environment variable HOTEL_LISTING_ULR; did you mean HOTEL_LISTING_URL?",
        "unknown environment variable IMAGE_STORE; did you mean IMAGES_STORE?",
    ]
    # the scripts' HOTELS_KEY_PREFIX with another value than the node's setting
    assert [u.name for u in unknown_environment({"HOTELS_KEY_PREFIX": "staging"}, {})] == ["HOTELS_KEY_PREFIX"]


def test_check_names_errors_or_warnings():
    errors, warnings = check_names({"HOTELS_MAX_INFLIGHT": "4"}, {})
    assert errors == ["unknown setting HOTELS_MAX_INFLIGHT; did you mean HOTELS_MAX_IN_FLIGHT? "
                      "(HOTELS_UNKNOWN_SETTINGS=warn makes this a warning)"] and warnings == []
    errors, warnings = check_names({"HOTELS_MAX_INFLIGHT": "4", "HOTELS_UNKNOWN_SETTINGS": "warn"}, {})
    assert errors == [] and warnings == ["unknown setting HOTELS_MAX_INFLIGHT; did you mean HOTELS_MAX_IN_FLIGHT?"]
    errors, _ = check_names({"HOTELS_UNKNOWN_SETTINGS": "ignore"}, {})
    assert errors == ["setting HOTELS_UNKNOWN_SETTINGS must be one of error, warn, got 'ignore'"]


def test_schedule_refuses_unknown_settings_before_sending():
    hosts = [jobs.parse_host_line("http://pc12:6800 NODE_ID=pc12 IMAGE_STORE=D:/image"),
             jobs.parse_host_line("http://pc13:6800 NODE_ID=pc13")]
    errors, warnings = jobs.setting_problems(hosts, [("HOTELS_IDLE_CLOSE_SECOND", "2")])
    assert errors == [
        "http://pc12:6800/: unknown setting HOTELS_IDLE_CLOSE_SECOND; did you mean HOTELS_IDLE_CLOSE_SECONDS? "
        "(HOTELS_UNKNOWN_SETTINGS=warn makes this a warning)",
        "http://pc12:6800/: unknown setting IMAGE_STORE; did you mean IMAGES_STORE? "
        "(HOTELS_UNKNOWN_SETTINGS=warn makes this a warning)",
        "http://pc13:6800/: unknown setting HOTELS_IDLE_CLOSE_SECOND; did you mean HOTELS_IDLE_CLOSE_SECONDS? "
        "(HOTELS_UNKNOWN_SETTINGS=warn makes this a warning)",
    ] and warnings == []


def test_schedule_dry_run_with_a_typo_sends_nothing_and_exits_2():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "schedule"), "--dry-run",
                           "http://127.0.0.1:9", "-s", "HOTELS_MAX_INFLIGHT=4"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines()[-1] == "schedule: nothing sent"


# ---------------------------------------------------------------- Redis URLs (pure)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://***@h:6379/0"),
        ("rediss://user:pw@h:6380/1", "rediss://***@h:6380/1"),
        ("redis://h:6379/0?password=pw", "redis://h:6379/0?password=***"),
        ("redis://h/0?username=u&password=pw&socket_timeout=5", "redis://h/0?username=***&password=***&socket_timeout=5"),
        ("unix:///run/redis.sock?db=2&password=pw", "unix:///run/redis.sock?db=2&password=***"),
        ("unix://:pw@/run/redis.sock", "unix://***@/run/redis.sock"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("127.0.0.1:6379", "127.0.0.1:6379"),
        ("user:pw@h:6379", "***@h:6379"),
        (":pw@h:6379?password=pw", "***@h:6379?***"),
    ],
)
def test_redact_url_hides_both_password_forms(url, shown):
    assert redact_url(url) == shown
    assert "pw" not in shown.replace("password", "")


@pytest.mark.parametrize("url", ["127.0.0.1:6379", "localhost", "http://h:6379/0", "redis://h:port/0",
                                 ":s3cret@h:6379"])
def test_check_redis_url_refuses_what_redis_py_would_not_take(url):
    with pytest.raises(ValueError, match="setting REDIS_URL must look like redis://") as info:
        check_redis_url(url)
    assert "s3cret" not in str(info.value)


def test_exit_status_from_the_close_reason():
    assert exit_status({"finish_reason": "finished"}) == 0
    assert exit_status({"finish_reason": "shutdown"}) == 0
    assert exit_status({"finish_reason": "closespider_itemcount"}) == 0
    assert exit_status({"finish_reason": "store_unwritable"}) == 1
    assert exit_status({"finish_reason": "finished", "hotelimages/exit_status": 3}) == 3


# ---------------------------------------------------------------- checks against real Redis and disks


def test_wrong_key_types_fail_the_redis_check(redis_url, redis_client):
    redis_client.set("hotels:leases", "not a zset")
    redis_client.lpush("hotels:manifests", "x")
    cfg = HotelsConfig.from_settings({"REDIS_URL": redis_url})
    client = sync_client(cfg.redis)
    try:
        reachable, keys = doctor.check_redis(cfg, client)
    finally:
        client.close()
    assert reachable.ok
    assert not keys.ok
    assert "hotels:leases is a string, not a zset; hotels:manifests is a list, not a hash" in keys.detail


def test_store_checks(tmp_path):
    (tmp_path / "a-file").write_text("x")
    bad = doctor.check_store(HotelsConfig(store=str(tmp_path / "a-file" / "store")))
    assert len(bad) == 1 and not bad[0].ok and "cannot be written" in bad[0].detail
    new = tmp_path / "new" / "store"
    good = doctor.check_store(HotelsConfig(store=str(new), store_min_free_mb=10**12))
    assert [c.ok for c in good] == [True, True, True]
    assert "can be made" in good[0].detail
    assert good[1].warning and "under HOTELS_STORE_MIN_FREE_MB=1000000000000" in good[1].detail
    assert not (tmp_path / "new").exists()  # the check left nothing behind
    assert list(tmp_path.iterdir()) == [tmp_path / "a-file"]


def test_doctor_command(redis_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "HOTEL_LISTING_URL", "IMAGES_STORE")}
    env.update(REDIS_URL=redis_url, IMAGES_STORE=str(tmp_path / "store"), PYTHONPATH=ROOT, PYTHONIOENCODING="utf-8",
               HOTEL_LISTING_URL="http://127.0.0.1:9/hotels/{hotel_id}/photos?api_key=K3Y")
    doctor_script = os.path.join(ROOT, "scripts", "doctor")
    ok = subprocess.run([sys.executable, doctor_script], capture_output=True, text=True, timeout=60, env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    lines = ok.stdout.splitlines()
    assert [line[0] for line in lines[:-1]] == ["✔"] * 7
    assert lines[-1] == "7 of 7 checks passed"
    assert "K3Y" not in ok.stdout  # the listing URL's query is not shown

    env["IMAGE_STORE"] = env.pop("IMAGES_STORE")
    bad = subprocess.run([sys.executable, doctor_script, "-s", "HOTELS_LEASE_SECONDS=0"], capture_output=True,
                         text=True, timeout=60, env=env)
    assert bad.returncode == 1
    assert "✗ settings: unknown environment variable IMAGE_STORE; did you mean IMAGES_STORE?" in bad.stdout
    assert "✗ settings: setting HOTELS_LEASE_SECONDS must be >= 1, got 0" in bad.stdout
    assert bad.stdout.splitlines()[-1] == "0 of 2 checks passed; the node would not start"


def test_acl_users_without_info_pass_and_without_scripts_fail(redis_url, redis_client):
    host_db = redis_url.split("://", 1)[1]
    users = {"hi-node-noinfo": "-@dangerous", "hi-node-noscript": "-@scripting"}
    for user, denied in users.items():
        redis_client.execute_command("ACL", "SETUSER", user, "on", ">node-pw", "~*", "&*", "+@all", denied)
    try:
        results = {}
        for user in users:
            cfg = HotelsConfig.from_settings({"REDIS_URL": f"redis://{user}:node-pw@{host_db}"})
            client = sync_client(cfg.redis)
            try:
                results[user] = doctor.check_redis(cfg, client)
            finally:
                client.close()
    finally:
        redis_client.execute_command("ACL", "DELUSER", *users)
    assert [c.ok for c in results["hi-node-noinfo"]] == [True, True]
    (denied,) = results["hi-node-noscript"]
    assert not denied.ok and "the ACL user may not do what a node needs" in denied.detail
    assert "node-pw" not in denied.detail
