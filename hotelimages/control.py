"""Central pause and resume of the fleet or of one node, through a flag in Redis.

``pause(client, keys)`` sets field ``fleet`` of the hash ``hotels:paused``;
``pause(client, keys, node="pc12")`` sets ``node:pc12``; ``resume`` deletes them. Every node
reads the hash every ``HOTELS_CONTROL_SECONDS`` (``nodestate.NodeState``); while a flag names
it, it claims nothing, lets the hotels it holds finish, and waits. Nothing is given up:
a paused node's hotels are either finished or, if it is stopped meanwhile, returned to the
queue as on any stop.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from hotelimages.keys import Keys

FLEET = "fleet"


def field_for(node: str | None) -> str:
    """The ``hotels:paused`` field of the fleet (``node`` None) or of one NODE_ID."""
    return FLEET if not node else f"node:{node}"


def pause(client: Any, keys: Keys, node: str | None = None, note: str = "") -> None:
    """Pause the fleet, or one node (its NODE_ID); nodes obey within HOTELS_CONTROL_SECONDS."""
    record = {"since": time.time(), "by": socket.gethostname(), "note": note}
    client.hset(keys.paused, field_for(node), json.dumps(record))


def resume(client: Any, keys: Keys, node: str | None = None) -> bool:
    """Lift the fleet's pause, or one node's; returns whether that pause was set."""
    return bool(client.hdel(keys.paused, field_for(node)))


def pauses(client: Any, keys: Keys) -> dict[str, dict]:
    """Every pause in force: field (``fleet``, ``node:NAME``) -> its record."""
    out = {}
    for name, raw in client.hgetall(keys.paused).items():
        try:
            record = json.loads(raw)
        except ValueError:
            record = {}
        out[name.decode() if isinstance(name, bytes) else name] = record if isinstance(record, dict) else {}
    return out


def paused_state(fleet: Any, node: Any, schedule_active: bool) -> str:
    """What a node shows and obeys: ``""`` (working), ``"paused"`` or ``"paused (schedule)"``."""
    if fleet is not None or node is not None:
        return "paused"
    if not schedule_active:
        return "paused (schedule)"
    return ""


def main(action: str, argv: list[str] | None = None) -> int:
    """``pause [--node NAME]`` / ``resume [--node NAME]`` against REDIS_URL; prints what is in force."""
    import argparse  # noqa: PLC0415 - only the command line needs these
    import os  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from redis.exceptions import RedisError  # noqa: PLC0415

    from hotelimages import defaults  # noqa: PLC0415
    from hotelimages.redisconn import redact_url, sync_client  # noqa: PLC0415

    verb = "Pause" if action == "pause" else "Resume"
    parser = argparse.ArgumentParser(prog=action, description=f"{verb} the whole fleet, or one node, through Redis.")
    parser.add_argument("--node", metavar="NAME", help="only this node (its NODE_ID); default: the whole fleet")
    if action == "pause":
        parser.add_argument("--note", default="", help="why (shown by status)")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or defaults.REDIS_URL)
    parser.add_argument("--prefix", default=os.environ.get("HOTELS_KEY_PREFIX") or defaults.HOTELS_KEY_PREFIX)
    args = parser.parse_args(argv)
    keys = Keys(args.prefix)
    client = sync_client(args.redis_url, defaults.REDIS_PARAMS)
    what = f"node {args.node}" if args.node else "the fleet"
    try:
        if action == "pause":
            pause(client, keys, args.node, args.note)
            print(f"paused {what} on {redact_url(args.redis_url)}: nodes stop claiming within a few seconds")
        else:
            was = resume(client, keys, args.node)
            print(f"resumed {what}" if was else f"{what} was not paused")
        still = pauses(client, keys)
        if still:
            print("pauses in force: " + ", ".join(sorted(still)))
    except RedisError as exc:
        print(f"{action}: {exc}", file=sys.stderr)
        return 2
    return 0
