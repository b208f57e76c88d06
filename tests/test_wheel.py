"""The wheel holds the product only, and installs into an empty venv with a working command."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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


def test_wheel_installs_into_an_empty_venv_and_its_command_runs(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)  # no system site-packages: only what the wheel declares
    python = env_dir / "bin" / "python"
    # The wheel's own dependencies, held to the versions requirements.txt pins.
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel),
                              "-c", str(ROOT / "requirements.txt")], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    out = subprocess.run([env_dir / "bin" / "hotelimages-node", "--help"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--env-file" in out.stdout
    where = subprocess.run([python, "-c", "import hotelimages, importlib.util as u; print(hotelimages.__file__);"
                            "print(u.find_spec('benchmarks'), u.find_spec('devtools'))"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True).stdout.split("\n")
    assert where[0].startswith(str(env_dir))  # the installed copy, not the checkout
    assert where[1] == "None None"
