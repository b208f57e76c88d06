"""The Redis work-queue protocol of hotelimages: every step that moves a hotel between keys.

Work is at-least-once over a Redis list, in the manner of rq's registries:

- **push**: operators LPUSH new entries (``push_batch``; skips done hotels inside Redis);
- **claim**: a node moves entries from the pending list into a lease sorted set (scored by
  deadline, in Redis server time, so node clocks do not matter) with its owner name;
- **renew**: the node extends its leases on a heartbeat;
- **record + ack**: once a hotel's outcome is known it is stored and the claim released in
  one step (``RECORD``); a hotel found done before listing is only acknowledged;
- **release**: a stopping node gives back what it has not finished;
- **requeue expired**: any node (and ``hotelimages requeue``) puts entries whose lease expired back
  on the pending list, so a node that dies loses nothing; ``release_owner`` does it for the
  leases of one dead owner at once;
- **retry failed**: failed hotels go back on the pending list (``retry_failed``).

Each Lua script is a ``LuaScript``: its source and the names of the keys it takes, so the key
list is built in one place (``LuaScript.keys``) for blocking (scripts) and asyncio (node)
callers alike. ``LeaseManager`` is one process's side of the protocol on an asyncio client;
the module functions are the operator's side on a blocking client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hotelimages.keys import Keys
from hotelimages.manifest import DoneRecord, parse_done_record

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LuaScript:
    """A Lua script of the protocol and the ``Keys`` attributes it takes as KEYS, in order."""

    name: str
    source: str
    key_names: tuple[str, ...]

    def keys(self, keys: Keys) -> list[str]:
        """The KEYS argument of this script for one deployment's key names."""
        return [getattr(keys, name) for name in self.key_names]


class BoundScripts:
    """The protocol's scripts registered on one client (blocking or asyncio) for one set of keys.

    ``run(script, *args)`` returns the script's reply on a blocking client and an awaitable
    on an asyncio one: both kinds of caller build the KEYS list the same way.
    """

    def __init__(self, client: Any, keys: Keys):
        self.client = client
        self.keys = keys
        self._registered: dict[str, Any] = {}

    def run(self, script: LuaScript, *args: Any, more_keys: Iterable[str] = ()) -> Any:
        """Run ``script`` with ``args`` as ARGV; ``more_keys`` (keys named per call) follow its own KEYS."""
        registered = self._registered.get(script.name)
        if registered is None:
            registered = self._registered[script.name] = self.client.register_script(script.source)
        return registered(keys=[*script.keys(self.keys), *more_keys], args=list(args))



# Memory. Redis (6 and 7 alike, for scripts without flags) decides at a script's start whether it is
# over maxmemory, and then refuses a command that may grow memory only if the script has not written
# yet: a script is refused whole or runs whole, never half. So each script's FIRST write says which
# it is: a no-op write that may grow memory (ZADD XX of a member that no entry can be: entries hold
# no newline) makes a script refuse to run when Redis is out of memory (claims: no new work); a no-op
# write that cannot (PERSIST of a key without a TTL) lets it finish work already done (renew, record,
# ack) past maxmemory. What the latter add is bounded by the hotels in flight: nothing new is claimed.
DENY_OOM = "redis.call('ZADD', KEYS[{leases}], 'XX', 0, '\\noom-probe')\n"
ALLOW_OOM = "redis.call('PERSIST', KEYS[{key}])\n"
#: Text of the error of a command (or script) refused for memory.
OOM_ERROR = "OOM command not allowed"

# KEYS: pending, leases, owners, stats. ARGV: count, lease seconds, owner.
CLAIM_LUA = DENY_OOM.format(leases=2) + """
local t = redis.call('TIME')
local deadline = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[2])
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local v = redis.call('RPOP', KEYS[1])
  if not v then break end
  if redis.call('ZSCORE', KEYS[2], v) then
    redis.call('HINCRBY', KEYS[4], 'claims/duplicate_in_flight', 1)
  else
    redis.call('ZADD', KEYS[2], deadline, v)
    redis.call('HSET', KEYS[3], v, ARGV[3])
    out[#out + 1] = v
  end
end
return out
"""

# KEYS: leases, owners. ARGV: lease seconds, owner, entries... Returns entries no longer ours.
RENEW_LUA = ALLOW_OOM.format(key=1) + """
local t = redis.call('TIME')
local deadline = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
local lost = {}
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[2] then
    redis.call('ZADD', KEYS[1], 'XX', deadline, ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"""

# KEYS: leases, owners, manifests. ARGV: owner, entry, hotel id, force (0/1).
# Seconds left on the lease if ``owner`` holds it; -1 if not; -2 if the hotel is recorded already (not forced).
HOLDS_LUA = """
if redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[1] then return '-1' end
local deadline = redis.call('ZSCORE', KEYS[1], ARGV[2])
if not deadline then return '-1' end
if ARGV[4] ~= '1' and redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then return '-2' end
local t = redis.call('TIME')
return tostring(tonumber(deadline) - (tonumber(t[1]) + tonumber(t[2]) / 1000000))
"""

# KEYS: leases, owners, pending. ARGV: owner, requeue (0/1), entries... Returns how many were ours.
FINISH_LUA = ALLOW_OOM.format(key=1) + """
local n = 0
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[1] then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    if ARGV[2] == '1' then redis.call('RPUSH', KEYS[3], ARGV[i]) end
    n = n + 1
  end
end
return n
"""

# KEYS: leases, owners, pending, stats. ARGV: limit. Puts expired entries back at the head of the queue.
REQUEUE_EXPIRED_LUA = ALLOW_OOM.format(key=1) + """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, v in ipairs(expired) do
  redis.call('ZREM', KEYS[1], v)
  redis.call('HDEL', KEYS[2], v)
  redis.call('RPUSH', KEYS[3], v)
end
if #expired > 0 then redis.call('HINCRBY', KEYS[4], 'claims/requeued_expired', #expired) end
return #expired
"""

# Lua: status, images, bytes and failed images of a hotels:manifests value, a compact record
# (a JSON array, version 2) or an old full manifest (a JSON object); nil status if unreadable.
DONE_FIGURES_LUA = """
local function done_figures(raw)
  local ok, m = pcall(cjson.decode, raw)
  if not ok or type(m) ~= 'table' then return nil, 0, 0, 0 end
  if m[1] ~= nil then
    local n = 0
    if type(m[6]) == 'table' then for _, c in pairs(m[6]) do n = n + (tonumber(c) or 0) end end
    return (type(m[5]) == 'string' and m[5] ~= '') and m[5] or nil, n, tonumber(m[7]) or 0, tonumber(m[8]) or 0
  end
  local n, b = 0, 0
  if type(m.images) == 'table' then
    for _, files in pairs(m.images) do
      if type(files) == 'table' then
        for _, f in ipairs(files) do
          n = n + 1
          if type(f) == 'table' then b = b + (tonumber(f.bytes) or 0) end
        end
      end
    end
  end
  local failed = type(m.failed) == 'table' and #m.failed or 0
  return (type(m.status) == 'string') and m.status or nil, n, b, failed
end
"""

# KEYS: leases, owners, manifests, failed, stats, reasons, then the node's reasons (``more_keys``).
# ARGV: owner, entry, hotel_id, kind ('manifest' | 'failed'), value (done record | failure JSON), images,
# bytes, failed images, force (0/1), status (passed in, so the script decodes nothing of the new result),
# then pairs of reason field (``image/<reason>``, ``hotel/<reason>``) and count.
# Records a hotel's outcome and acknowledges its claim in one step. A result for a
# hotel that is already recorded is dropped (returns 0) unless the claim was forced,
# so every hotel has exactly one result. The counters are the state of hotels:manifests: a forced
# redo takes the old record's status, images, bytes and failed images off before adding its own
# (the old value may be a compact record or an old full manifest).
RECORD_LUA = ALLOW_OOM.format(key=1) + DONE_FIGURES_LUA + """
local mine = redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[1]
local old = redis.call('HGET', KEYS[3], ARGV[3])
if mine then
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('HDEL', KEYS[2], ARGV[2])
end
if old and (ARGV[4] == 'failed' or ARGV[9] ~= '1' or not mine) then
  return 0
end
if ARGV[4] == 'manifest' then
  if old then
    local status, n, b, f = done_figures(old)
    if status then redis.call('HINCRBY', KEYS[5], 'hotels/' .. status, -1) end
    -- (0 - x, not -x: Lua's -0 is "-0", which HINCRBY refuses)
    redis.call('HINCRBY', KEYS[5], 'images/stored', 0 - n)
    redis.call('HINCRBY', KEYS[5], 'images/bytes', 0 - b)
    redis.call('HINCRBY', KEYS[5], 'images/failed', 0 - f)
  end
  redis.call('HSET', KEYS[3], ARGV[3], ARGV[5])
  redis.call('HDEL', KEYS[4], ARGV[3])
  redis.call('HINCRBY', KEYS[5], 'hotels/' .. ARGV[10], 1)
  redis.call('HINCRBY', KEYS[5], 'images/stored', tonumber(ARGV[6]))
  redis.call('HINCRBY', KEYS[5], 'images/bytes', tonumber(ARGV[7]))
  redis.call('HINCRBY', KEYS[5], 'images/failed', tonumber(ARGV[8]))
else
  redis.call('HSET', KEYS[4], ARGV[3], ARGV[5])
  redis.call('HINCRBY', KEYS[5], 'events/hotel_failed', 1)
end
for i = 11, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[6], ARGV[i], tonumber(ARGV[i + 1]))
  redis.call('HINCRBY', KEYS[7], ARGV[i], tonumber(ARGV[i + 1]))
end
return 1
"""

# KEYS: manifests. ARGV: triples of hotel id, sha1 of the value read, compact record.
# Replaces each value that is still the one read (same sha1) by its compact record; returns how
# many. A value changed meanwhile (the hotel redone) is left alone. Shrinks memory, so it runs
# past maxmemory: it is how a full Redis is brought back under its limit.
CONVERT_DONE_LUA = ALLOW_OOM.format(key=1) + """
local n = 0
for i = 1, #ARGV, 3 do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v and redis.sha1hex(v) == ARGV[i + 1] then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    n = n + 1
  end
end
return n
"""

# KEYS: manifests, pending. ARGV: skip done (0/1), write (0/1), hotel ids and entries, each joined by newlines.
# Returns the 1-based positions of the hotels skipped as done; LPUSHes the others' entries in order.
# One argument per batch rather than one per ID: packing 10,000 arguments costs more in the client
# than the whole script costs in Redis. Neither a valid ID nor a JSON dump can hold a newline.
PUSH_NEW_LUA = """
local ids, entries, done, push = {}, {}, {}, {}
for s in string.gmatch(ARGV[3], '[^\\n]+') do ids[#ids + 1] = s end
for s in string.gmatch(ARGV[4], '[^\\n]+') do entries[#entries + 1] = s end
for i = 1, #ids do
  if ARGV[1] == '1' and redis.call('HEXISTS', KEYS[1], ids[i]) == 1 then
    done[#done + 1] = i
  else
    push[#push + 1] = entries[i]
  end
end
if ARGV[2] == '1' then
  for i = 1, #push, 1000 do
    redis.call('LPUSH', KEYS[2], unpack(push, i, math.min(i + 999, #push)))
  end
end
return done
"""

# KEYS: failed, pending. ARGV: pairs of hotel id, entry. Moves each that is still failed; returns how many.
RETRY_FAILED_LUA = """
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[i + 1])
    n = n + 1
  end
end
return n
"""

CLAIM = LuaScript("claim", CLAIM_LUA, ("start_ids", "leases", "lease_owners", "stats"))
RENEW = LuaScript("renew", RENEW_LUA, ("leases", "lease_owners"))
HOLDS = LuaScript("holds", HOLDS_LUA, ("leases", "lease_owners", "manifests"))
FINISH = LuaScript("finish", FINISH_LUA, ("leases", "lease_owners", "start_ids"))
REQUEUE_EXPIRED = LuaScript("requeue_expired", REQUEUE_EXPIRED_LUA, ("leases", "lease_owners", "start_ids", "stats"))
RECORD = LuaScript("record", RECORD_LUA, ("leases", "lease_owners", "manifests", "failed", "stats", "reasons"))
PUSH_NEW = LuaScript("push_new", PUSH_NEW_LUA, ("manifests", "start_ids"))
RETRY_FAILED = LuaScript("retry_failed", RETRY_FAILED_LUA, ("failed", "start_ids"))
CONVERT_DONE = LuaScript("convert_done", CONVERT_DONE_LUA, ("manifests",))

#: Entries per script call when giving back many leases at once.
RELEASE_BATCH = 1000
#: Stats field counting claimed hotels found done before listing.
SKIPPED_DONE_FIELD = "hotels/skipped_done"
#: Stats fields of hotels recorded with a manifest (the fleet's successes, for the circuit breaker).
SUCCESS_FIELDS = ("hotels/complete", "hotels/partial", "hotels/empty")


# ---------------------------------------------------------------- memory (pure)


def is_oom(exc: BaseException) -> bool:
    """True if a Redis error is a refusal for memory (over ``maxmemory`` with ``noeviction``)."""
    return OOM_ERROR in str(exc)


def redis_memory(info: dict[str, Any]) -> tuple[int, int]:
    """(used_memory, maxmemory) from the reply of ``INFO memory``."""
    return int(info.get("used_memory", 0) or 0), int(info.get("maxmemory", 0) or 0)


def oom_message(used: int, maxmemory: int) -> str:
    """The one line a node logs when Redis refuses its claims for memory."""
    used_mib, max_mib = used / 2**20, maxmemory / 2**20
    return f"Redis is out of memory (used {used_mib:,.1f} MiB of maxmemory {max_mib:,.1f} MiB): claiming paused"


# ---------------------------------------------------------------- entries and owners (pure)


def reason_counts(kind: str, text: str, image_reasons: Mapping[str, int] | None = None) -> dict[str, int]:
    """The reason counters one recorded outcome adds: ``hotel/<reason>`` or ``image/<reason>`` per failed image."""
    if kind == "failed":
        try:
            reason = json.loads(text).get("reason")
        except (ValueError, AttributeError):
            reason = None
        return {f"hotel/{str(reason or 'unknown')[:64]}": 1}
    if image_reasons is None:  # only a full manifest lists its failures; a compact record counts them
        manifest = parse_done_record(text).manifest or {}
        image_reasons = Counter(str(f.get("reason") or "unknown") for f in manifest.get("failed") or ())
    return {f"image/{reason[:64]}": int(n) for reason, n in image_reasons.items() if n}



def new_owner(node_id: str) -> str:
    """A claim owner name: the node's name plus a token unique to this process."""
    return f"{node_id}/{os.getpid()}-{uuid.uuid4().hex[:8]}"


def owner_matches(owner: str, wanted: str) -> bool:
    """True if ``owner`` (``NODE_ID/pid-token``) is ``wanted`` or belongs to node ``wanted``."""
    return owner == wanted or owner.startswith(wanted.rstrip("/") + "/")


def entry_hotel_id(entry: bytes | str) -> str | None:
    """The hotel ID of a pending-list entry (a bare ID or a JSON record), or None if it has none."""
    text = entry.decode("utf-8", "replace") if isinstance(entry, bytes) else entry
    if not text.startswith("{"):
        return text
    try:
        record = json.loads(text)
    except ValueError:
        return None
    hotel_id = record.get("hotel_id") if isinstance(record, dict) else None
    return None if hotel_id is None else str(hotel_id)


def failed_record_reason(raw: bytes | str) -> str:
    """The ``reason`` of a ``hotels:failed`` record, or ``unreadable`` if the record is not JSON."""
    try:
        record = json.loads(raw)
    except ValueError:
        return "unreadable"
    reason = record.get("reason") if isinstance(record, dict) else None
    return str(reason) if reason else "unknown"


def _retry_entry(hotel_id: bytes, raw: bytes) -> bytes | str:
    # A record that kept its original entry (a JSON record with inline images) is retried as it was.
    try:
        record = json.loads(raw)
    except ValueError:
        return hotel_id
    entry = record.get("entry") if isinstance(record, dict) else None
    return entry if isinstance(entry, str) and entry else hotel_id


# ---------------------------------------------------------------- push (blocking client)


def queued_hotel_ids(client: Any, keys: Keys, chunk: int = 10_000) -> set[str]:
    """Hotel IDs on the pending list or under a lease, read in chunks.

    Nodes pop from the right while this reads from the left, which shifts no
    index; a concurrent LPUSH shifts entries right, so some may be read twice
    but none is missed.
    """
    found: set[str] = set()
    start = 0
    while True:
        entries = client.lrange(keys.start_ids, start, start + chunk - 1)
        for entry in entries:
            hotel_id = entry_hotel_id(entry)
            if hotel_id is not None:
                found.add(hotel_id)
        if len(entries) < chunk:
            break
        start += chunk
    for entry, _deadline in client.zscan_iter(keys.leases, count=chunk):
        hotel_id = entry_hotel_id(entry)
        if hotel_id is not None:
            found.add(hotel_id)
    return found


def push_batch(
    scripts: BoundScripts, hotel_ids: list[str], entries: list[str], *, skip_done: bool = True, write: bool = True
) -> list[int]:
    """LPUSH ``entries`` in order, but those whose hotel (same index in ``hotel_ids``) is done.

    Returns the 1-based positions skipped as done. With ``write`` False nothing is pushed
    (a dry run still learns which are done).
    """
    return list(
        scripts.run(PUSH_NEW, 1 if skip_done else 0, 1 if write else 0, "\n".join(hotel_ids), "\n".join(entries))
    )


# ---------------------------------------------------------------- requeue and release (blocking client)


def requeue_expired(client: Any, keys: Keys, limit: int = 10_000) -> int:
    """Put every entry whose lease has expired back on the pending list (blocking client)."""
    scripts = BoundScripts(client, keys)
    total = 0
    while True:
        n = scripts.run(REQUEUE_EXPIRED, limit)
        total += n
        if n < limit:
            return total


@dataclass
class ReleaseReport:
    """What ``release_owner`` did: entries given back per owner, and live owners left alone."""

    released: dict[str, int] = field(default_factory=dict)
    live_skipped: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.released.values())


def leases_by_owner(client: Any, keys: Keys) -> dict[str, list[bytes]]:
    """Every leased entry, grouped by the owner that holds it."""
    grouped: dict[str, list[bytes]] = {}
    for entry, owner in client.hscan_iter(keys.lease_owners, count=1000):
        grouped.setdefault(owner.decode("utf-8", "replace"), []).append(entry)
    return grouped


def release_owner(client: Any, keys: Keys, wanted: str, *, force: bool = False, dry_run: bool = False) -> ReleaseReport:
    """Put every entry leased by owner (or node) ``wanted`` back at the head of the pending list.

    An owner whose heartbeat key or liveness key (``LeaseManager.mark_alive``, written by the
    lease heartbeat even when the progress heartbeat is off) is still present is alive: its
    leases are left alone unless ``force``, because the hotels would then be done twice.
    Ownership is checked again inside the script, entry by entry.
    """
    report = ReleaseReport()
    scripts = BoundScripts(client, keys)
    for owner, entries in sorted(leases_by_owner(client, keys).items()):
        if not owner_matches(owner, wanted):
            continue
        if not force and client.exists(keys.node(owner), keys.alive(owner)):
            report.live_skipped[owner] = len(entries)
            continue
        if dry_run:
            report.released[owner] = len(entries)
            continue
        n = 0
        for i in range(0, len(entries), RELEASE_BATCH):
            n += int(scripts.run(FINISH, owner, 1, *entries[i : i + RELEASE_BATCH]))
        report.released[owner] = n
    return report


# ---------------------------------------------------------------- retry failed (blocking client)


@dataclass
class RetryReport:
    """Failed hotels moved back to the pending list (or that would be, with ``dry_run``), by reason."""

    by_reason: Counter = field(default_factory=Counter)
    moved: int = 0
    dry_run: bool = False

    @property
    def matched(self) -> int:
        return sum(self.by_reason.values())


def failed_by_reason(client: Any, keys: Keys) -> dict[str, int]:
    """Failed hotels counted by reason, most frequent first (one HSCAN over ``hotels:failed``)."""
    counts = Counter(failed_record_reason(raw) for _hotel, raw in client.hscan_iter(keys.failed, count=1000))
    return dict(counts.most_common())


def retry_failed(
    client: Any, keys: Keys, *, reasons: Iterable[str] = (), dry_run: bool = False, batch_size: int = 1000
) -> RetryReport:
    """Move failed hotels (all, or only those with one of ``reasons``) to the back of the pending list."""
    wanted = set(reasons)
    report = RetryReport(dry_run=dry_run)
    scripts = BoundScripts(client, keys)
    batch: list[bytes | str] = []

    def flush() -> None:
        if batch and not dry_run:
            report.moved += int(scripts.run(RETRY_FAILED, *batch))
        batch.clear()

    # Count first, then move, so a dry run and a real run report the same figures.
    matched: list[tuple[bytes, bytes]] = []
    for hotel_id, raw in client.hscan_iter(keys.failed, count=1000):
        reason = failed_record_reason(raw)
        if wanted and reason not in wanted:
            continue
        report.by_reason[reason] += 1
        matched.append((hotel_id, raw))
    for hotel_id, raw in matched:
        batch.extend((hotel_id, _retry_entry(hotel_id, raw)))
        if len(batch) >= 2 * batch_size:
            flush()
    flush()
    return report


# ---------------------------------------------------------------- one process's claims (asyncio client)


class LeaseManager:
    """One process's claims: what it holds, claiming, renewing, recording, acknowledging, giving back.

    ``in_flight`` is the set of claimed raw entries (bytes, exactly as they sat in
    the list); ``freed`` is set whenever one is settled, so a claim loop waiting for
    room wakes up. The node's components reach this object through
    ``hotelimages.nodestate.NodeState``.
    """

    def __init__(self, client: Any, keys: Keys, owner: str, lease_seconds: int):
        self.client = client
        self.keys = keys
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.in_flight: set[bytes] = set()
        self.freed = asyncio.Event()
        self._scripts = BoundScripts(client, keys)
        # Entries whose record/ack/release is on its way to Redis: a renewal that races with it
        # reports them as not ours, which is no lost lease (the settle took them).
        self._settling: set[bytes] = set()
        # Reason counters this process recorded (``image/<reason>``, ``hotel/<reason>``), for its progress samples.
        self.recorded_reasons: Counter[str] = Counter()

    async def claim(self, count: int) -> list[bytes]:
        """Take up to ``count`` entries from the pending list under a lease."""
        entries = await self._scripts.run(CLAIM, count, self.lease_seconds, self.owner)
        self.in_flight.update(entries)
        return list(entries)

    async def renew(self) -> list[bytes]:
        """Extend the leases of everything in flight; returns entries whose lease was lost."""
        if not self.in_flight:
            return []
        lost = await self._scripts.run(RENEW, self.lease_seconds, self.owner, *self.in_flight)
        # Settled meanwhile (recorded, acknowledged, given back): not lost, only gone.
        return [e for e in lost if e in self.in_flight and e not in self._settling]

    async def holds(self, entry: bytes, hotel_id: str, force: bool = False) -> float:
        """Seconds left on this process's lease of ``entry`` (Redis server time); -1 if it is not
        ours, -2 if the hotel is recorded already and ``force`` is not set (the check before publishing)."""
        return float(await self._scripts.run(HOLDS, self.owner, entry, hotel_id, 1 if force else 0))

    async def release(self, entry: bytes) -> bool:
        """Give one claim back to the head of the pending list, unfailed; False if it was no longer ours."""
        self._settling.add(entry)
        try:
            n = await self._scripts.run(FINISH, self.owner, 1, entry)
        finally:
            self._settling.discard(entry)
        self.forget(entry)
        return bool(n)

    async def fleet_successes(self) -> int:
        """Hotels recorded with a manifest by the whole fleet so far (the stats counters)."""
        values = await self.client.hmget(self.keys.stats, list(SUCCESS_FIELDS))
        return sum(int(v or 0) for v in values)

    async def retry_failed(self, hotels: Iterable[tuple[str, bytes]]) -> int:
        """Move these (hotel ID, entry) pairs from ``hotels:failed`` back to the pending list."""
        args: list[Any] = []
        for hotel_id, entry in hotels:
            args += [hotel_id, entry]
        return int(await self._scripts.run(RETRY_FAILED, *args)) if args else 0

    async def mark_alive(self, heartbeat_seconds: float) -> None:
        """Say this process is alive for three heartbeats (``requeue --all-of-owner`` leaves it alone)."""
        ttl = max(2, math.ceil(3 * heartbeat_seconds))
        await self.client.set(self.keys.alive(self.owner), str(int(time.time())), ex=ttl)

    async def done_among(self, hotel_ids: list[str]) -> set[str]:
        """The hotels of ``hotel_ids`` that already have a manifest (the check before listing)."""
        if not hotel_ids:
            return set()
        found = await self.client.hmget(self.keys.manifests, hotel_ids)
        return {hid for hid, m in zip(hotel_ids, found, strict=True) if m is not None}

    async def skip_done(self, entry: bytes) -> None:
        """Acknowledge the claim of a hotel found done, and count it fleet-wide."""
        await self.ack(entry)
        await self.client.hincrby(self.keys.stats, SKIPPED_DONE_FIELD, 1)

    async def record(
        self,
        entry: bytes,
        hotel_id: str,
        *,
        manifest_json: str | None = None,
        failed_json: str | None = None,
        images: int = 0,
        nbytes: int = 0,
        failed_images: int = 0,
        force: bool = False,
        status: str = "",
        image_reasons: Mapping[str, int] | None = None,
    ) -> bool:
        """Store a hotel's done record (or failure record) and acknowledge its claim, atomically.

        ``manifest_json`` is the value for ``hotels:manifests``: a compact done record
        (``manifest.done_record``), or for old callers a full manifest; both are read alike.

        Returns False if the hotel had already been recorded (by another claim, or
        earlier) and ``force`` is not set; this result is then dropped. The caller
        forgets the entry once this returns. ``status`` is the manifest's (read from it if not given);
        ``image_reasons`` counts its failed images by reason (read from it if not given).
        """
        kind, text = ("manifest", manifest_json) if manifest_json is not None else ("failed", failed_json)
        if kind == "manifest" and not status:
            status = parse_done_record(manifest_json).status
        reasons = reason_counts(kind, text, image_reasons)
        self._settling.add(entry)
        try:
            n = await self._scripts.run(
                RECORD, self.owner, entry, hotel_id, kind, text, images, nbytes, failed_images, 1 if force else 0,
                status, *(x for pair in reasons.items() for x in pair),
                more_keys=(self.keys.node_reasons(self.owner.rsplit("/", 1)[0]),),
            )
        finally:
            self._settling.discard(entry)
        if n:
            self.recorded_reasons.update(reasons)
        return bool(n)

    async def recorded_manifest(self, hotel_id: str) -> bytes | None:
        """The raw ``hotels:manifests`` value of ``hotel_id`` (a done record or an old full manifest), if any."""
        return await self.client.hget(self.keys.manifests, hotel_id)

    async def recorded(self, hotel_id: str) -> DoneRecord | None:
        """What Redis holds of a done hotel (compact or old full record, read alike), or None if not done."""
        raw = await self.recorded_manifest(hotel_id)
        return None if raw is None else parse_done_record(raw)

    async def memory(self) -> tuple[int, int]:
        """Redis's (used_memory, maxmemory) in bytes; maxmemory 0 means no limit."""
        return redis_memory(await self.client.info("memory"))

    def drop(self, *entries: bytes) -> None:
        """Stop tracking entries without settling them: no longer renewed, they are requeued on expiry."""
        self.in_flight.difference_update(entries)

    def forget(self, entry: bytes) -> None:
        """Stop tracking an entry whose outcome is recorded (after the ack committed)."""
        self.in_flight.discard(entry)
        self.freed.set()

    async def ack(self, entry: bytes) -> bool:
        """Release the claim of a finished entry; idempotent. False if it was no longer ours."""
        self._settling.add(entry)
        try:
            n = await self._scripts.run(FINISH, self.owner, 0, entry)
        finally:
            self._settling.discard(entry)
        self.forget(entry)
        return bool(n)

    async def release_all(self) -> int:
        """Give every unfinished claim back to the pending list (graceful stop)."""
        if not self.in_flight:
            return 0
        entries = list(self.in_flight)
        self._settling.update(entries)
        try:
            n = await self._scripts.run(FINISH, self.owner, 1, *entries)
        finally:
            self._settling.difference_update(entries)
        self.in_flight.clear()
        return int(n)

    async def requeue_expired(self, limit: int = 1000) -> int:
        """Sweep expired leases of any owner back to the pending list."""
        return int(await self._scripts.run(REQUEUE_EXPIRED, limit))

    async def queue_state(self) -> tuple[int, int]:
        """(pending entries, leased entries) fleet-wide."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.llen(self.keys.start_ids)
            pipe.zcard(self.keys.leases)
            pending, leased = await pipe.execute()
        return int(pending), int(leased)
