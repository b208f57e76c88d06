"""Benchmark a node against stock Scrapy, a raw spider, curl -Z and img2dataset (needs a checkout).

    hotelimages bench --quick                 # ~600 images, 3 interleaved rounds
    hotelimages bench --help                  # the benchmark's own options

The benchmark lives in the checkout's ``benchmarks/`` (not in the wheel) and needs
requirements-tools.txt; every argument goes to it. docs/PERFORMANCE.md has its results.
"""

from __future__ import annotations

import argparse

from hotelimages.commands import dev_tool

OPTIONS: tuple[str, ...] = ()
PASSTHROUGH = True
#: ``--help`` too goes to the benchmark, which explains its own options.
OWN_HELP = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options of its own: everything is the benchmark's."""


def run(args: argparse.Namespace) -> int:
    main = dev_tool("bench", "benchmarks.cli", "benchmarks")
    return 2 if main is None else main(args.rest)
