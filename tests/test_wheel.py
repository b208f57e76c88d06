"""The wheel holds the product only, and installs into an empty venv with a working command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from crawling import demo_server

from devtools import demo_hotels as catalogue
from hotelimages.commands import COMMANDS
from hotelimages.config import ENV_SETTINGS
from hotelimages.keys import Keys
from hotelimages.sharding import hotel_dir

ROOT = Path(__file__).resolve().parent.parent
KEYS = Keys()
#: What a build leaves behind or a checkout collects, none of which a build may read.
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                     ".ruff_cache", "demo-output")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel pip builds from a copy of the checkout (a build writes build/ and *.egg-info beside its sources)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=NOT_SOURCES)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(src)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    (built,) = (tmp / "dist").glob("hotelimages-*.whl")
    return built


def test_wheel_holds_only_the_product_modules_and_its_metadata(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    product = {p.relative_to(ROOT).as_posix() for p in (ROOT / "hotelimages").rglob("*.py")}
    # The console's page, script and style, and the charting library it serves (package data).
    product |= {p.relative_to(ROOT).as_posix() for p in (ROOT / "hotelimages" / "console_static").iterdir()}
    modules = {n for n in names if not n.startswith("hotelimages-0.1.0.dist-info/")}
    # Every product module and the console's files, and nothing else (no benchmarks, devtools, tests, scripts).
    assert modules == product
    assert not any(part in ("bench", "demo", "localredis.py") for n in names for part in n.split("/"))
    assert {n.split("/", 1)[1] for n in names if n not in modules} == {
        "METADATA", "WHEEL", "entry_points.txt", "top_level.txt", "RECORD"}
    assert zipfile.ZipFile(wheel).read("hotelimages-0.1.0.dist-info/top_level.txt").split() == [b"hotelimages"]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """An empty venv (no system site-packages) with the wheel and its declared dependencies installed; its bin/."""
    env_dir = tmp_path_factory.mktemp("venv") / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # The wheel's own dependencies, held to the versions requirements.txt pins.
    # Without the checkout on PYTHONPATH: pip would take its hotelimages.egg-info (from `pip install -e .`)
    # for an installed hotelimages and skip the wheel.
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel),
                              "-c", str(ROOT / "requirements.txt")], capture_output=True, text=True, timeout=300,
                             env=outside_the_checkout())
    assert install.returncode == 0, install.stdout + install.stderr
    return env_dir / "bin"


def outside_the_checkout(**extra: str) -> dict[str, str]:
    """The environment of an operator's shell: nothing pointing at the checkout or at a queue."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "SCRAPY_SETTINGS_MODULE", "VIRTUAL_ENV") and k not in ENV_SETTINGS}
    return {**env, **extra}


def test_wheel_installs_into_an_empty_venv_and_its_command_runs(installed, tmp_path):
    out = subprocess.run([installed / "hotelimages-node", "--help"], cwd=tmp_path, env=outside_the_checkout(),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--env-file" in out.stdout
    where = subprocess.run([installed / "python", "-c", "import hotelimages, importlib.util as u;"
                            "print(hotelimages.__file__); print(u.find_spec('benchmarks'), u.find_spec('devtools'))"],
                           cwd=tmp_path, env=outside_the_checkout(), capture_output=True, text=True, timeout=60,
                           check=True).stdout.split("\n")
    assert where[0].startswith(str(installed.parent))  # the installed copy, not the checkout
    assert where[1] == "None None"


def test_every_subcommand_works_from_the_installed_wheel(installed, redis_url, redis_client, tmp_path):
    """``pip install`` of the wheel gives ``hotelimages`` with every subcommand, against a real Redis."""
    env = outside_the_checkout(REDIS_URL=redis_url)

    def hotelimages(*args: str | Path, stdin: str = "", code: int = 0) -> subprocess.CompletedProcess:
        done = subprocess.run([installed / "hotelimages", *map(str, args)], cwd=tmp_path, env=env, input=stdin,
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == code, (args, done.stdout[-2000:], done.stderr[-3000:])
        return done

    listed = hotelimages("--help").stdout
    assert all(name in listed for name in COMMANDS)
    for name in COMMANDS:
        if name not in ("bench", "demo"):
            assert hotelimages(name, "--help").stdout.startswith(f"usage: hotelimages {name} ")

    ids = catalogue.hotel_ids(3)
    assert "pushed            4" in hotelimages("push", stdin="\n".join([*ids, "42"]) + "\n").stdout
    status = json.loads(hotelimages("status", "--json").stdout)
    assert (status["pending"], status["done"]) == (4, 0)

    store = tmp_path / "store"
    with demo_server(3) as base_url:  # hotel 42 is not on the demo server: its listing is a 404
        (tmp_path / "node.env").write_text(f"HOTEL_LISTING_URL={base_url}/hotels/{{hotel_id}}/photos\n"
                                           f"IMAGES_STORE={store}\nNODE_ID=wheel-node\n")
        checked = hotelimages("doctor", "--env-file", "node.env").stdout
        assert checked.splitlines()[-1].endswith("checks passed") and "would not start" not in checked
        node = hotelimages("node", "--env-file", "node.env", "-s", "HOTELS_IDLE_CLOSE_SECONDS=1",
                           "-s", "HOTELS_POLL_SECONDS=0.2")
    assert "Traceback" not in node.stderr
    assert sorted(h.decode() for h in redis_client.hkeys(KEYS.manifests)) == sorted(ids)
    status = json.loads(hotelimages("status", "--json").stdout)
    assert (status["pending"], status["done"], status["failed_hotels"]) == (0, 3, 1)

    assert "expired leases requeued: 0" in hotelimages("requeue").stdout
    assert "1  listing_http_404" in hotelimages("retry-failed", "--dry-run").stdout
    assert "moved 1 of 1" in hotelimages("retry-failed", "--reason", "listing_http_404").stdout
    assert redis_client.lrange(KEYS.start_ids, 0, -1) == [b"42"]

    packed = json.loads(hotelimages("pack", "--store", store, "--out", tmp_path / "shards", "--json").stdout)
    assert packed["hotels_packed"] == 3
    merged = json.loads(hotelimages("merge", tmp_path / "shards", "--store", tmp_path / "central", "--json").stdout)
    assert sorted(merged["hotels_added"]) == sorted(ids)
    where = hotelimages("catalog", "--store", tmp_path / "central", "where", ids[0]).stdout
    assert where.startswith(f"{ids[0]}\t{tmp_path / 'central' / hotel_dir(ids[0])}\tcomplete\t")
    summary = json.loads(hotelimages("catalog", "--store", tmp_path / "central", "summary", "--json").stdout)
    assert summary["hotels"] == 3

    plan = hotelimages("schedule", "--dry-run", "http://127.0.0.1:6800", "-s", "NODE_ID=pc12").stdout
    assert "http://127.0.0.1:6800" in plan and "NODE_ID=pc12" in plan
    for tool, folder in (("bench", "benchmarks"), ("demo", "devtools")):
        done = hotelimages(tool, "--quick" if tool == "bench" else "--hotels=1", code=2)
        assert done.stdout == "" and done.stderr.count("\n") == 1
        assert f"hotelimages {tool}: needs a checkout of hotelimages ({folder}/ is not" in done.stderr
