"""Run the demo: a private Redis and demo server, 300 hotels, one real crawl, a summary (needs a checkout).

    hotelimages demo                  # what `bash scripts/dev.sh demo` runs
    hotelimages demo --hotels 50 --workdir /tmp/demo

The demo lives in the checkout's ``devtools/`` (not in the wheel); every argument goes to it.
"""

from __future__ import annotations

import argparse

from hotelimages.commands import dev_tool

OPTIONS: tuple[str, ...] = ()
PASSTHROUGH = True
OWN_HELP = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own: everything is the demo's."""


def run(args: argparse.Namespace) -> int:
    main = dev_tool("demo", "devtools.demo", "devtools")
    if main is None:
        return 2
    main(args.rest)
    return 0
