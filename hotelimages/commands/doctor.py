"""Check a node's settings, Redis, listing URL and store, as the node does before it starts.

    hotelimages doctor --env-file node.env
    hotelimages doctor -s IMAGES_STORE=D:/image

Prints one line per check with ✔ or ✗ (⚠ for a warning) and exits 0 if every check passed, else 1.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from hotelimages import doctor
from hotelimages.commands import UsageError
from hotelimages.envfile import load_env_files

OPTIONS: tuple[str, ...] = ()
SETTINGS_MODULE = "hotelimages.settings"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env-file", type=Path, action="append", default=[], metavar="FILE",
                        help="NAME=VALUE lines to put into the environment first, as the node command does")
    parser.add_argument("-s", "--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting, as scrapy crawl -s (repeatable)")


def run(args: argparse.Namespace) -> int:
    try:
        load_env_files(args.env_file, os.environ)
    except (OSError, ValueError) as exc:
        print(f"✗ env file: {exc}")
        return 1
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", SETTINGS_MODULE)
    from scrapy.utils.project import get_project_settings  # noqa: PLC0415 - after the environment is complete

    settings = get_project_settings()
    for text in args.settings:
        name, sep, value = text.partition("=")
        if not sep or not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            raise UsageError(f"expected NAME=VALUE, got {name!r}")
        settings.set(name, value, priority="cmdline")
    return doctor.report(settings, sys.stdout)
