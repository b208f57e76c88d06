"""Run a node: the hotels spider (scrapy crawl hotels) with the installed package.

    hotelimages node --env-file node.env               # REDIS_URL, IMAGES_STORE, NODE_ID, ...
    hotelimages node -s NODE_ID=pc12 -s LOG_LEVEL=DEBUG

Equivalent to ``scrapy crawl hotels`` inside a checkout: every argument but ``--env-file`` goes to
``scrapy crawl hotels``, and the project settings are ``hotelimages.settings`` unless
SCRAPY_SETTINGS_MODULE says otherwise, so no scrapy.cfg is needed. ``hotelimages-node`` is the same.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import MutableMapping
from pathlib import Path

from hotelimages.commands import UsageError

OPTIONS: tuple[str, ...] = ()
#: Unknown arguments are not an error: they are scrapy crawl's (``-s NAME=VALUE``, ``-L``, ...).
PASSTHROUGH = True
SETTINGS_MODULE = "hotelimages.settings"
SPIDER = "hotels"


def parse_env_file(text: str, source: str = "env file") -> dict[str, str]:
    """``NAME=VALUE`` lines (``#`` comments, blank lines, optional ``export``, optional quotes) as a dict."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name.isidentifier():
            raise ValueError(f"{source}:{number}: expected NAME=VALUE, got {line[:80]!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


def load_env_files(paths: list[Path], environ: MutableMapping[str, str]) -> None:
    """Put the files' variables into ``environ``; a variable already set there is kept (it wins)."""
    loaded: dict[str, str] = {}
    for path in paths:
        loaded.update(parse_env_file(path.read_text(encoding="utf-8"), str(path)))
    for name, value in loaded.items():
        environ.setdefault(name, value)


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
        raise UsageError(str(exc)) from exc
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", SETTINGS_MODULE)

    from scrapy.cmdline import execute  # noqa: PLC0415 - after the environment is complete

    try:
        execute(crawl_argv(args.rest))
    except SystemExit as exc:  # scrapy's execute() always exits with the crawl's code
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return 0
