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

