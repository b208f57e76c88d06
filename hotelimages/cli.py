"""The ``hotelimages-node`` command: run the hotels spider where only the installed package is.

    hotelimages-node --env-file node.env               # REDIS_URL, IMAGES_STORE, NODE_ID, ...
    hotelimages-node -s NODE_ID=pc12 -s LOG_LEVEL=DEBUG

Equivalent to ``scrapy crawl hotels`` inside a checkout: every argument but ``--env-file``
goes to ``scrapy crawl hotels``, and the project settings are ``hotelimages.settings``
unless SCRAPY_SETTINGS_MODULE says otherwise, so no scrapy.cfg is needed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

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


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``hotelimages-node``; exits with scrapy's exit code."""
    parser = argparse.ArgumentParser(
        prog="hotelimages-node", allow_abbrev=False,
        description="Run the hotels spider (scrapy crawl hotels) with the installed hotelimages package. "
                    "Other arguments, such as -s NAME=VALUE, go to scrapy crawl.",
    )
    parser.add_argument("--env-file", type=Path, action="append", default=[], metavar="FILE",
                        help="NAME=VALUE lines to put into the environment first (REDIS_URL, IMAGES_STORE, NODE_ID)")
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    try:
        load_env_files(args.env_file, os.environ)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", SETTINGS_MODULE)

    from scrapy.cmdline import execute  # noqa: PLC0415 - after the environment is complete

    execute(crawl_argv(rest))


if __name__ == "__main__":
    main()
