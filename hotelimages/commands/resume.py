"""Resume the fleet, or one node, after ``hotelimages pause``: nodes claim again within seconds.

    hotelimages resume                         # lift the fleet's pause
    hotelimages resume --node office-pc-12     # lift one node's pause

A node paused both fleet-wide and by name stays paused until both are lifted.
"""

from __future__ import annotations

import argparse

from hotelimages.commands.pause import change

OPTIONS = ("redis", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node", metavar="NAME", help="only this node's pause (its NODE_ID); default: the fleet's")


def run(args: argparse.Namespace) -> int:
    return change(args, pause=False)
