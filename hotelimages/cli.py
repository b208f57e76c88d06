"""The ``hotelimages-node`` command: run the hotels spider where only the installed package is.

    hotelimages-node --env-file node.env               # REDIS_URL, IMAGES_STORE, NODE_ID, ...
    hotelimages-node -s NODE_ID=pc12 -s LOG_LEVEL=DEBUG

Equivalent to ``scrapy crawl hotels`` inside a checkout: every argument but ``--env-file``
goes to ``scrapy crawl hotels``, and the project settings are ``hotelimages.settings``
unless SCRAPY_SETTINGS_MODULE says otherwise, so no scrapy.cfg is needed. Env files may be
UTF-8 (with or without a BOM) or UTF-16 with a BOM, with any line ends (``hotelimages.envfile``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hotelimages.envfile import load_env_files
from hotelimages.envfile import parse_env_text as parse_env_file  # noqa: F401 - the older name

SETTINGS_MODULE = "hotelimages.settings"
SPIDER = "hotels"


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
        # One line, no usage text: the operator needs to know which file and line (never its text).
        print(f"hotelimages-node: {exc}", file=sys.stderr)
        sys.exit(2)
    os.environ.setdefault("SCRAPY_SETTINGS_MODULE", SETTINGS_MODULE)

    from scrapy.cmdline import execute  # noqa: PLC0415 - after the environment is complete

    execute(crawl_argv(rest))


if __name__ == "__main__":
    main()
