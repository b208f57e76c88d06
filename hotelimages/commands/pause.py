"""Pause the whole fleet, or one node: nodes stop claiming within seconds; hotels in flight finish.

    hotelimages pause                          # every node
    hotelimages pause --node office-pc-12      # one node (its NODE_ID)
    hotelimages pause --note "network maintenance"

A flag in Redis (``hotels:paused``) that nodes read every HOTELS_CONTROL_SECONDS; nothing is lost
and no access to the nodes' machines is needed. ``hotelimages resume`` lifts it; ``status`` shows it.
"""

from __future__ import annotations

import argparse
import json
import sys

import redis

from hotelimages import control
from hotelimages.commands import connect
from hotelimages.redisconn import redact_url

OPTIONS = ("redis", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node", metavar="NAME", help="only this node (its NODE_ID); default: the whole fleet")
    parser.add_argument("--note", default="", help="why (shown by status)")


def run(args: argparse.Namespace) -> int:
    return change(args, pause=True)


def change(args: argparse.Namespace, pause: bool) -> int:
    """Set (``pause``) or clear the flag named by ``--node``; prints what is in force. Shared with ``resume``."""
    client, keys = connect(args)
    what = f"node {args.node}" if args.node else "the fleet"
    try:
        if pause:
            control.pause(client, keys, args.node, args.note)
            changed = True
        else:
            changed = control.resume(client, keys, args.node)
        in_force = control.pauses(client, keys)
    except redis.RedisError as exc:
        print(f"{'pause' if pause else 'resume'}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"paused": pause, "node": args.node, "changed": changed, "in_force": in_force}, indent=1))
    elif pause:
        print(f"paused {what} on {redact_url(args.redis_url)}: nodes stop claiming within a few seconds")
    else:
        print(f"resumed {what}" if changed else f"{what} was not paused")
    if in_force and not args.json:
        print("pauses in force: " + ", ".join(sorted(in_force)))
    return 0
