"""Leased claims on hotels: at-least-once work over a Redis list.

A node moves entries from the pending list into a lease sorted set (scored by
deadline, in Redis server time, so node clocks do not matter) with its owner
name, in one Lua script. It renews its leases on a heartbeat, acknowledges an
entry once the hotel's outcome is recorded, and gives back what it has not
finished when it stops. Any node (and ``scripts/requeue``) puts entries whose
lease expired back on the pending list, so a node that dies loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections import Counter
from collections.abc import Mapping
from typing import Any

from hotelimages.keys import Keys

logger = logging.getLogger(__name__)

# KEYS: pending, leases, owners, stats. ARGV: count, lease seconds, owner.
CLAIM_LUA = """
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
RENEW_LUA = """
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

# KEYS: leases, owners, pending. ARGV: owner, requeue (0/1), entries... Returns how many were ours.
FINISH_LUA = """
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
REQUEUE_EXPIRED_LUA = """
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


# KEYS: leases, owners, manifests, failed, stats, reasons, the node's reasons.
# ARGV: owner, entry, hotel_id, kind ('manifest' | 'failed'), json, images, bytes, failed images, force (0/1),
# the manifest's status (passed in: decoding a manifest of thousands of images here would block Redis),
# then pairs of reason field (``image/<reason>``, ``hotel/<reason>``) and count.
# Records a hotel's outcome and acknowledges its claim in one step. A result for a
# hotel that is already recorded is dropped (returns 0) unless the claim was forced,
# so every hotel has exactly one result and the counters count it once.
RECORD_LUA = """
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
    local ok, m = pcall(cjson.decode, old)
    if ok and type(m) == 'table' and m.status then
      redis.call('HINCRBY', KEYS[5], 'hotels/' .. m.status, -1)
    end
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


def reason_counts(kind: str, text: str, image_reasons: Mapping[str, int] | None = None) -> dict[str, int]:
    """The reason counters one recorded outcome adds: ``hotel/<reason>`` or ``image/<reason>`` per failed image."""
    if kind == "failed":
        try:
            reason = json.loads(text).get("reason")
        except (ValueError, AttributeError):
            reason = None
        return {f"hotel/{str(reason or 'unknown')[:64]}": 1}
    if image_reasons is None:
        image_reasons = Counter(str(f.get("reason") or "unknown") for f in json.loads(text).get("failed") or ())
    return {f"image/{reason[:64]}": int(n) for reason, n in image_reasons.items() if n}


def giving_back(spider: Any) -> bool:
    """Whether this process is stopping and gives its hotels back (``LeaseManager.abandoned``)."""
    leases = getattr(spider, "leases", None)
    return bool(leases and leases.abandoned)


def new_owner(node_id: str) -> str:
    """A claim owner name: the node's name plus a token unique to this process."""
    return f"{node_id}/{os.getpid()}-{uuid.uuid4().hex[:8]}"


def requeue_expired(client: Any, keys: Keys, limit: int = 10_000) -> int:
    """Put every entry whose lease has expired back on the pending list (blocking client)."""
    script = client.register_script(REQUEUE_EXPIRED_LUA)
    total = 0
    while True:
        n = script(keys=[keys.leases, keys.lease_owners, keys.start_ids, keys.stats], args=[limit])
        total += n
        if n < limit:
            return total


class LeaseManager:
    """One process's claims: what it holds, claiming, renewing, acknowledging and giving back.

    ``in_flight`` is the set of claimed raw entries (bytes, exactly as they sat in
    the list); the spider and the pipelines share this object through the spider.
    """

    def __init__(self, client: Any, keys: Keys, owner: str, lease_seconds: int):
        self.client = client
        self.keys = keys
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.in_flight: set[bytes] = set()
        self.freed = asyncio.Event()
        # Set when a stop cut hotels short: their outcomes are not recorded, their claims go back.
        self.abandoned = False
        # Reason counters this process recorded (``image/<reason>``, ``hotel/<reason>``), for its progress samples.
        self.recorded_reasons: Counter[str] = Counter()
        self._claim = client.register_script(CLAIM_LUA)
        self._renew = client.register_script(RENEW_LUA)
        self._finish = client.register_script(FINISH_LUA)
        self._requeue = client.register_script(REQUEUE_EXPIRED_LUA)
        self._record = client.register_script(RECORD_LUA)

    async def claim(self, count: int) -> list[bytes]:
        """Take up to ``count`` entries from the pending list under a lease."""
        entries = await self._claim(
            keys=[self.keys.start_ids, self.keys.leases, self.keys.lease_owners, self.keys.stats],
            args=[count, self.lease_seconds, self.owner],
        )
        self.in_flight.update(entries)
        return list(entries)

    async def renew(self) -> list[bytes]:
        """Extend the leases of everything in flight; returns entries whose lease was lost."""
        if not self.in_flight:
            return []
        lost = await self._renew(
            keys=[self.keys.leases, self.keys.lease_owners],
            args=[self.lease_seconds, self.owner, *self.in_flight],
        )
        return list(lost)

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
        """Store a hotel's manifest (or failure record) and acknowledge its claim, atomically.

        Returns False if the hotel had already been recorded (by another claim, or
        earlier) and ``force`` is not set; this result is then dropped. The caller
        forgets the entry once this returns. ``status`` is the manifest's (read from it if not given);
        ``image_reasons`` counts its failed images by reason (read from it if not given).
        """
        kind, text = ("manifest", manifest_json) if manifest_json is not None else ("failed", failed_json)
        if kind == "manifest" and not status:
            status = json.loads(manifest_json)["status"]
        reasons = reason_counts(kind, text, image_reasons)
        k = self.keys
        n = await self._record(
            keys=[k.leases, k.lease_owners, k.manifests, k.failed, k.stats, k.reasons,
                  k.node_reasons(self.owner.rsplit("/", 1)[0])],
            args=[self.owner, entry, hotel_id, kind, text, images, nbytes, failed_images, 1 if force else 0, status,
                  *(x for pair in reasons.items() for x in pair)],
        )
        if n:
            self.recorded_reasons.update(reasons)
        return bool(n)

    def forget(self, entry: bytes) -> None:
        """Stop tracking an entry whose outcome is recorded (after the ack committed)."""
        self.in_flight.discard(entry)
        self.freed.set()

    async def ack(self, entry: bytes) -> bool:
        """Release the claim of a finished entry; idempotent. False if it was no longer ours."""
        n = await self._finish(
            keys=[self.keys.leases, self.keys.lease_owners, self.keys.start_ids], args=[self.owner, 0, entry]
        )
        self.forget(entry)
        return bool(n)

    async def release_all(self) -> int:
        """Give every unfinished claim back to the pending list (graceful stop)."""
        if not self.in_flight:
            return 0
        entries = list(self.in_flight)
        n = await self._finish(
            keys=[self.keys.leases, self.keys.lease_owners, self.keys.start_ids],
            args=[self.owner, 1, *entries],
        )
        self.in_flight.clear()
        return int(n)

    async def requeue_expired(self, limit: int = 1000) -> int:
        """Sweep expired leases of any owner back to the pending list."""
        return int(
            await self._requeue(
                keys=[self.keys.leases, self.keys.lease_owners, self.keys.start_ids, self.keys.stats],
                args=[limit],
            )
        )

    async def queue_state(self) -> tuple[int, int]:
        """(pending entries, leased entries) fleet-wide."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.llen(self.keys.start_ids)
            pipe.zcard(self.keys.leases)
            pending, leased = await pipe.execute()
        return int(pending), int(leased)
