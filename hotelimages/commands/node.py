"""Run a node: the hotels spider (scrapy crawl hotels) with the installed package.

    hotelimages node --env-file node.env               # REDIS_URL, IMAGES_STORE, NODE_ID, ...
    hotelimages node -s NODE_ID=pc12 -s LOG_LEVEL=DEBUG

Equivalent to ``scrapy crawl hotels`` inside a checkout: every argument but ``--env-file`` goes to
``scrapy crawl hotels``, and the project settings are ``hotelimages.settings`` unless
SCRAPY_SETTINGS_MODULE says otherwise, so no scrapy.cfg is needed. ``hotelimages-node`` is the same.
Env files may be UTF-8 (with or without a BOM) or UTF-16 with a BOM, with any line ends
(``hotelimages.envfile``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hotelimages.envfile import load_env_files
from hotelimages.envfile import parse_env_text as parse_env_file  # noqa: F401 - the name tests and tools know

OPTIONS: tuple[str, ...] = ()
#: Unknown arguments are not an error: they are scrapy crawl's (``-s NAME=VALUE``, ``-L``, ...).
PASSTHROUGH = True
SETTINGS_MODULE = "hotelimages.settings"
SPIDER = "hotels"


def crawl_argv(rest: list[str]) -> list[str]:
    """The ``scrapy`` command line that the node runs."""
    return ["scrapy", "crawl", SPIDER, *rest]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env-file", type=Path, action="append", default=[], metavar="FILE",
                        help="NAME=VALUE lines to put into the environment first (REDIS_URL, IMAGES_STORE, NODE_ID); "
                             "other arguments, such as -s NAME=VALUE, go to scrapy crawl")


def run(args: argparse.Namespace) -> int:
    try:
        load_env_files(args.env_file, os.environ)
    except (OSError, ValueError) as exc:
        # One line, no usage text: which file and line (never its text: a value may be a password).
        print(f"hotelimages node: {exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", SETTINGS_MODULE)

    from scrapy.cmdline import execute  # noqa: PLC0415 - after the environment is complete

    try:
        execute(crawl_argv(args.rest))
    except SystemExit as exc:  # scrapy's execute() always exits with the crawl's code
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return 0
