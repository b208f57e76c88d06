"""Reading and checking hotelimages' settings, and the environment overrides of settings.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scrapy.settings import Settings

from hotelimages import defaults
from hotelimages.config import ENV_SETTINGS, HotelsConfig, env_overrides
from hotelimages.keys import Keys

ROOT = Path(__file__).parent.parent


def config(**values) -> HotelsConfig:
    return HotelsConfig.from_settings(Settings(values))


def test_defaults():
    cfg = config(NODE_ID="office-pc-12")
    assert cfg.redis.url == "redis://127.0.0.1:6379/0"
    assert cfg.redis.params == {
        "socket_timeout": 30, "socket_connect_timeout": 10, "health_check_interval": 30, "encoding": "utf-8"}
    assert cfg.keys == Keys("hotels", "hotels:start_ids")
    assert cfg.listing_url == ""
    assert cfg.node_id == "office-pc-12"
    assert cfg.id_pattern == r"[A-Za-z0-9_-]{1,64}"
    assert cfg.image_id_pattern == r"[A-Za-z0-9_-]{1,64}"
    assert cfg.categories == ("cover", "exterior", "interior", "reviews")
    assert cfg.other_category == "other"
    assert cfg.shard_depth == 4
    assert cfg.claim_batch == 16
    assert cfg.max_in_flight == 48
    assert cfg.lease_seconds == 120
    assert cfg.heartbeat_seconds == 15.0
    assert cfg.idle_close_seconds == 10.0
    assert cfg.poll_seconds == 0.5
    assert cfg.force is False
    assert cfg.max_listing_pages == 100
    assert cfg.max_images == 5000
    assert cfg.allowed_formats == ("JPEG", "PNG", "WEBP", "GIF")
    assert cfg.full_decode is False
    assert cfg.max_image_pixels == 89_478_485
    assert cfg.image_hosts == ()
    assert cfg.fsync is False


def test_node_id_defaults_to_the_host_name():
    assert config().node_id == defaults.default_node_id()
    assert config().node_id != ""


def test_values_are_converted_from_strings():
    cfg = config(
        HOTELS_SHARD_DEPTH="2",
        HOTELS_LEASE_SECONDS="30",
        HOTELS_HEARTBEAT_SECONDS="2.5",
        HOTELS_FORCE="yes",
        HOTELS_FULL_DECODE="0",
        HOTELS_FSYNC="on",
        HOTELS_IDLE_CLOSE_SECONDS="0",
    )
    assert (cfg.shard_depth, cfg.lease_seconds, cfg.heartbeat_seconds) == (2, 30, 2.5)
    assert (cfg.force, cfg.full_decode, cfg.fsync) == (True, False, True)
    assert cfg.idle_close_seconds == 0.0


def test_falsy_values_are_kept_not_replaced_by_defaults():
    cfg = config(HOTELS_SHARD_DEPTH=0, HOTELS_FORCE=False, HOTELS_IDLE_CLOSE_SECONDS=0, HOTELS_CATEGORIES=[])
    assert cfg.shard_depth == 0
    assert cfg.force is False
    assert cfg.idle_close_seconds == 0.0
    assert cfg.categories == ()


def test_string_lists_are_split_on_commas_and_spaces():
    cfg = config(
        HOTELS_CATEGORIES="a,b c",
        HOTELS_ALLOWED_FORMATS="jpeg, png",
        HOTELS_IMAGE_HOSTS=" IMG.Example.com ,cdn.example.net ",
    )
    assert cfg.categories == ("a", "b", "c")
    assert cfg.allowed_formats == ("JPEG", "PNG")
    assert cfg.image_hosts == ("img.example.com", "cdn.example.net")


def test_lists_are_taken_as_lists():
    cfg = config(HOTELS_CATEGORIES=["cover", "pool"], HOTELS_IMAGE_HOSTS=["img.example.com"])
    assert cfg.categories == ("cover", "pool")
    assert cfg.image_hosts == ("img.example.com",)


def test_listing_url_and_keys():
    cfg = config(
        HOTEL_LISTING_URL="http://api.example.com/hotels/{hotel_id}/photos",
        HOTELS_KEY_PREFIX="staging",
        HOTELS_REDIS_KEY="staging:ids",
        REDIS_URL="redis://db.example.com:6380/2",
        REDIS_PARAMS={"socket_timeout": 5},
    )
    assert cfg.listing_url == "http://api.example.com/hotels/{hotel_id}/photos"
    assert cfg.keys == Keys("staging", "staging:ids")
    assert cfg.keys.leases == "staging:leases"
    assert cfg.redis.url == "redis://db.example.com:6380/2"
    assert cfg.redis.params == {
        "socket_timeout": 5, "socket_connect_timeout": 10, "health_check_interval": 30, "encoding": "utf-8"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"HOTELS_SHARD_DEPTH": "x"}, "setting HOTELS_SHARD_DEPTH must be an integer, got 'x'"),
        ({"HOTELS_SHARD_DEPTH": 41}, "setting HOTELS_SHARD_DEPTH must be <= 40, got 41"),
        ({"HOTELS_SHARD_DEPTH": -1}, "setting HOTELS_SHARD_DEPTH must be >= 0, got -1"),
        ({"HOTELS_LEASE_SECONDS": 0}, "setting HOTELS_LEASE_SECONDS must be >= 1, got 0"),
        (
            {"HOTELS_LEASE_SECONDS": 10, "HOTELS_HEARTBEAT_SECONDS": 10},
            "setting HOTELS_HEARTBEAT_SECONDS (10.0) must be below HOTELS_LEASE_SECONDS (10)",
        ),
        (
            {"HOTELS_LEASE_SECONDS": 10, "HOTELS_HEARTBEAT_SECONDS": "12.5"},
            "setting HOTELS_HEARTBEAT_SECONDS (12.5) must be below HOTELS_LEASE_SECONDS (10)",
        ),
        ({"HOTELS_HEARTBEAT_SECONDS": "soon"}, "setting HOTELS_HEARTBEAT_SECONDS must be a number, got 'soon'"),
        (
            {"HOTEL_LISTING_URL": "http://api.example.com/hotels/photos"},
            "setting HOTEL_LISTING_URL must contain {hotel_id}, got 'http://api.example.com/hotels/photos'",
        ),
        ({"HOTELS_ID_PATTERN": "("}, "setting HOTELS_ID_PATTERN is not a valid regular expression"),
        ({"HOTELS_IMAGE_ID_PATTERN": "[a-"}, "setting HOTELS_IMAGE_ID_PATTERN is not a valid regular expression"),
        ({"HOTELS_FORCE": "maybe"}, "setting HOTELS_FORCE must be a boolean, got 'maybe'"),
        (
            {"HOTELS_CATEGORIES": ["cover", "Bad Name"]},
            "setting HOTELS_CATEGORIES/HOTELS_OTHER_CATEGORY: bad category name 'Bad Name'",
        ),
        (
            {"HOTELS_CATEGORIES": "cover,Bad Name"},
            "setting HOTELS_CATEGORIES/HOTELS_OTHER_CATEGORY: bad category name 'Bad'",
        ),
        (
            {"HOTELS_OTHER_CATEGORY": "../other"},
            "setting HOTELS_CATEGORIES/HOTELS_OTHER_CATEGORY: bad category name '../other'",
        ),
        ({"HOTELS_CLAIM_BATCH": 0}, "setting HOTELS_CLAIM_BATCH must be >= 1, got 0"),
        ({"HOTELS_MAX_IMAGES": "lots"}, "setting HOTELS_MAX_IMAGES must be an integer, got 'lots'"),
    ],
)
def test_bad_values_name_the_setting_and_the_value(values, message):
    with pytest.raises(ValueError) as info:
        config(**values)
    assert str(info.value).startswith(message)


def test_the_invalid_pattern_is_shown():
    with pytest.raises(ValueError) as info:
        config(HOTELS_ID_PATTERN="(")
    assert str(info.value).endswith(": '('")


# ---------------------------------------------------------------- environment


def test_env_settings_names():
    assert ENV_SETTINGS == ("REDIS_URL", "HOTELS_REDIS_KEY", "HOTEL_LISTING_URL", "IMAGES_STORE", "NODE_ID")


def test_env_overrides_takes_only_the_five_names_and_skips_empty_values():
    environ = {
        "REDIS_URL": "redis://db:6379/3",
        "NODE_ID": "office-pc-12",
        "HOTELS_REDIS_KEY": "",
        "IMAGES_STORE": "D:/image",
        "HOTELS_SHARD_DEPTH": "2",
        "PATH": "/usr/bin",
        "redis_url": "lowercase is another variable",
    }
    assert env_overrides(environ) == {
        "REDIS_URL": "redis://db:6379/3",
        "NODE_ID": "office-pc-12",
        "IMAGES_STORE": "D:/image",
    }


def test_env_overrides_of_an_empty_environment():
    assert env_overrides({}) == {}


def _project_settings(env_extra: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ENV_SETTINGS and not k.startswith("SCRAPY_")}
    env.update(env_extra)
    code = (
        "import json\n"
        "from scrapy.utils.project import get_project_settings\n"
        "s = get_project_settings()\n"
        "print(json.dumps({n: s.get(n) for n in "
        "('REDIS_URL', 'NODE_ID', 'HOTELS_REDIS_KEY', 'HOTEL_LISTING_URL', 'IMAGES_STORE', 'BOT_NAME')}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_settings_py_applies_the_environment():
    got = _project_settings(
        {
            "REDIS_URL": "redis://10.0.0.5:6379/7",
            "NODE_ID": "office-pc-12",
            "HOTELS_REDIS_KEY": "staging:start_ids",
            "HOTEL_LISTING_URL": "http://api.example.com/hotels/{hotel_id}/photos",
            "IMAGES_STORE": "/srv/images",
        }
    )
    assert got == {
        "REDIS_URL": "redis://10.0.0.5:6379/7",
        "NODE_ID": "office-pc-12",
        "HOTELS_REDIS_KEY": "staging:start_ids",
        "HOTEL_LISTING_URL": "http://api.example.com/hotels/{hotel_id}/photos",
        "IMAGES_STORE": "/srv/images",
        "BOT_NAME": "hotelimages",
    }


def test_settings_py_without_the_environment_keeps_its_values():
    got = _project_settings({"NODE_ID": ""})
    assert got == {
        "REDIS_URL": None,
        "NODE_ID": None,
        "HOTELS_REDIS_KEY": None,
        "HOTEL_LISTING_URL": None,
        "IMAGES_STORE": "images",
        "BOT_NAME": "hotelimages",
    }


def project_settings() -> Settings:
    settings = Settings()
    settings.setmodule("hotelimages.settings", priority="project")
    return settings


def test_remote_control_and_cookies_are_off_as_plain_settings():
    settings = project_settings()
    assert settings.getbool("REMOTE_CONTROL_ENABLED") is False and settings.getbool("COOKIES_ENABLED") is False
    assert not settings.getdict("ADDONS")
    assert "hotelimages.nodestate.NodeState" in settings.getdict("EXTENSIONS")


def test_an_unknown_allowed_format_is_a_setting_error():
    with pytest.raises(ValueError, match="HOTELS_ALLOWED_FORMATS.*JPG"):
        HotelsConfig.from_settings(Settings({"HOTELS_ALLOWED_FORMATS": "JPG,PNG"}))
