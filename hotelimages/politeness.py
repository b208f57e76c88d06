"""Fleet-wide host budgets with adaptive back-off (``HOTELS_HOST_BUDGETS``), shared through Redis.

``HOTELS_HOST_BUDGETS = "img.example.com=300/s,64; api.example.com=50/s; *.cdn.example=100/s"``
gives a host (or an ``fnmatch`` pattern of host names) a fleet-wide rate in requests per
second and, optionally, a fleet-wide number of requests in flight. Hosts not listed are
unlimited and cost no Redis traffic. The listing API and the image CDN are different hosts,
so they have separate budgets.

How the fleet shares a budget (one Lua call per batch of requests, ``GRANT``): the Redis hash
``hotels:budget:<host>`` holds the host's current fleet rate and the time its next request may
start (``tat``, in Redis server time). A node asks for up to as many start times as it has
requests waiting; the script hands out consecutive start times ``1/rate`` apart, no further
ahead than ``HOTELS_BUDGET_GRANT_SECONDS``, and moves ``tat`` past them. A node with many
requests waiting waits until half a horizon's worth is free, so calls stay few per request. So the fleet's
requests to the host are spaced ``1/rate`` apart whichever node sends them, and a node that
dies holds nothing: its unused start times simply pass.

Back-off: a 429 or 503 from a budgeted host is reported at once (``REFUSE``): the fleet rate is
halved (at most once a second, down to a floor) and a ``Retry-After`` (seconds or HTTP-date)
sets ``until``; ``GRANT`` hands out no start time before ``until``. The script publishes the
change on ``hotels:budget:events``; every node drops the start times it holds for that host
(``HostGate.listen``), so a pause reaches the whole fleet in milliseconds, not a horizon later. Good answers are counted
locally and sent with the next ``GRANT``, which raises the rate by
``HOTELS_BUDGET_INCREASE`` × budget per second back up to the configured budget (AIMD). The
refused request is retried after the pause and does not count against ``RETRY_TIMES``, up to
``HOTELS_BUDGET_MAX_REFUSALS`` refusals per request; then the 429/503 is its answer.

``HostGate`` is one node's side (asyncio): ``await gate.acquire(host)`` before a request starts,
``gate.release(host, status, retry_after)`` when its answer is in. ``HostBudgetMiddleware``
applies it to listing requests in Scrapy's downloader; ``fetcher.ImageFetcher`` to images.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from redis.exceptions import RedisError

from hotelimages.claims import BoundScripts, LuaScript
from hotelimages.keys import Keys

logger = logging.getLogger(__name__)

#: Statuses that mean "slow down".
REFUSAL_STATUSES = frozenset({429, 503})
#: The fleet rate never drops below this fraction of the budget.
MIN_RATE_FRACTION = 0.05
#: A start time not taken this long after it came is dropped (it would bunch requests up).
LATE_SECONDS = 0.05
#: Seconds between two multiplicative decreases of one host's rate.
CUT_INTERVAL = 1.0
#: Seconds a node counts as a user of a host's in-flight budget after its last grant.
NODE_SEEN_SECONDS = 10
#: A node waits until this share of a horizon's start times is free before it asks again.
MIN_BATCH_SHARE = 0.5
#: Longest pause a Retry-After may impose (a broken header must not stop the fleet for days).
MAX_RETRY_AFTER = 3600.0


@dataclass(frozen=True)
class HostBudget:
    """A host pattern's fleet-wide budget: ``rate`` requests/s, at most ``in_flight`` at once (0 = any)."""

    pattern: str
    rate: float
    in_flight: int = 0


def parse_host_budgets(text: str | None) -> tuple[HostBudget, ...]:
    """Parse ``HOTELS_HOST_BUDGETS`` (``host=RATE/s[,IN_FLIGHT]; ...``); raises ValueError naming the bad part."""
    budgets = []
    for raw in (text or "").replace("\n", ";").split(";"):
        part = raw.strip()
        if not part:
            continue
        host, eq, value = part.partition("=")
        host = host.strip().lower()
        rate_text, _, flight_text = value.partition(",")
        rate_text = rate_text.strip().lower().removesuffix("/s").strip()
        try:
            rate = float(rate_text)
            in_flight = int(flight_text) if flight_text.strip() else 0
        except ValueError:
            rate, in_flight = -1.0, -1
        if not eq or not host or any(c in host for c in " /:@") or rate <= 0 or in_flight < 0:
            raise ValueError(f"setting HOTELS_HOST_BUDGETS: expected 'host=RATE/s[,IN_FLIGHT]' (RATE > 0), "
                             f"got {part!r}")
        budgets.append(HostBudget(host, rate, in_flight))
    return tuple(budgets)


def budget_for(budgets: tuple[HostBudget, ...], host: str) -> HostBudget | None:
    """The budget of ``host``: an exact entry first, then the first matching pattern; None = unlimited."""
    host = host.lower()
    for budget in budgets:
        if budget.pattern == host:
            return budget
    for budget in budgets:
        if fnmatch.fnmatchcase(host, budget.pattern):
            return budget
    return None


def retry_after_seconds(value: bytes | str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks to wait (delta-seconds or HTTP-date), capped; None if absent or bad."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


# KEYS: the host's budget hash, its users sorted set.
# ARGV: budget, want, good answers since the last call, increase (fraction of the budget per second),
# horizon seconds, key TTL, owner, track users (0/1), share of a horizon worth a call (fewer: wait for them).
# Returns {granted, first start in seconds from now, interval, rate, wait, users, paused seconds}.
GRANT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local budget = tonumber(ARGV[1])
local horizon = tonumber(ARGV[5])
local v = redis.call('HMGET', KEYS[1], 'rate', 'tat', 'until', 'cut', 'grew', 'misses')
local rate = tonumber(v[1]) or budget
if rate > budget then rate = budget end
local tat = tonumber(v[2]) or 0
local untl = tonumber(v[3]) or 0
local cut = tonumber(v[4]) or 0
local grew = tonumber(v[5]) or now
if tonumber(ARGV[3]) > 0 and now - cut >= 1 and now >= untl and rate < budget then
  -- time since the last grant, a cut or the end of a pause, whichever is latest (at most a second)
  local since = math.min(math.max(now - math.max(grew, cut, untl), 0), 1)
  rate = math.min(budget, rate + budget * tonumber(ARGV[4]) * since)
end
local users = 0
if ARGV[8] == '1' then
  redis.call('ZADD', KEYS[2], now, ARGV[7])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 10)
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[6]))
  users = redis.call('ZCARD', KEYS[2])
end
local start = math.max(tat, now, untl)
local want = tonumber(ARGV[2])
-- at least this share of a horizon at the current rate per call (never more than fits in one)
local need = math.min(want, math.max(1, math.floor(rate * horizon * tonumber(ARGV[9]))))
local n = 0
local wait = 0
local misses = tonumber(v[6]) or 0
if tat < now then misses = 0 end  -- nobody is queueing when start times go unasked
if start + (need - 1) / rate > now + horizon then
  -- come back when these start times are free, behind the nodes already told to wait (a queue)
  wait = start + (need - 1) / rate - now - horizon + misses * need / rate
  misses = misses + 1
else
  n = math.min(want, math.floor((now + horizon - start) * rate) + 1)
  tat = start + n / rate
  misses = math.max(misses - 1, 0)  -- one waiting node served: the queue is one shorter
end
redis.call('HSET', KEYS[1], 'rate', rate, 'tat', tat, 'grew', now, 'budget', budget, 'seen', now, 'misses', misses)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
return {n, tostring(start - now), tostring(1 / rate), tostring(rate), tostring(wait), users,
        tostring(math.max(untl - now, 0))}
"""

# KEYS: the host's budget hash, the events channel. ARGV: budget, retry-after seconds (-1: none), decrease
# factor, floor fraction, key TTL, cut interval, host. Returns {rate, paused seconds}. A cut or a new pause
# is published, so every node drops the start times it holds at once; the next ones come at the new rate.
REFUSE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local budget = tonumber(ARGV[1])
local v = redis.call('HMGET', KEYS[1], 'rate', 'until', 'cut', 'recent_since')
local rate = tonumber(v[1]) or budget
if rate > budget then rate = budget end
local untl = tonumber(v[2]) or 0
local news = false
if now - (tonumber(v[3]) or 0) >= tonumber(ARGV[6]) then
  rate = math.max(budget * tonumber(ARGV[4]), rate * tonumber(ARGV[3]))
  redis.call('HSET', KEYS[1], 'cut', now, 'tat', now)
  news = true
end
local retry = tonumber(ARGV[2])
if retry >= 0 and now + retry > untl then
  untl = now + retry
  redis.call('HSET', KEYS[1], 'until', untl)
  news = true
end
if news then
  redis.call('PUBLISH', KEYS[2], cjson.encode({host = ARGV[7], paused = math.max(untl - now, 0), rate = rate}))
end
if now - (tonumber(v[4]) or 0) >= 60 then
  redis.call('HSET', KEYS[1], 'recent_since', now, 'recent', 0)
end
redis.call('HINCRBY', KEYS[1], 'recent', 1)
redis.call('HINCRBY', KEYS[1], 'refused', 1)
redis.call('HSET', KEYS[1], 'rate', rate, 'budget', budget, 'last_refusal', now)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return {tostring(rate), tostring(math.max(untl - now, 0))}
"""

GRANT = LuaScript("budget_grant", GRANT_LUA, ())
REFUSE = LuaScript("budget_refuse", REFUSE_LUA, ())


@dataclass
class GatePolicy:
    """How a node's gate behaves; read from settings by ``from_settings``."""

    budgets: tuple[HostBudget, ...] = ()
    horizon: float = 1.0  # HOTELS_BUDGET_GRANT_SECONDS
    increase: float = 0.05  # HOTELS_BUDGET_INCREASE
    decrease: float = 0.5  # HOTELS_BUDGET_DECREASE
    max_refusals: int = 20  # HOTELS_BUDGET_MAX_REFUSALS
    key_ttl: int = 3600

    @classmethod
    def from_settings(cls, settings: Any) -> GatePolicy:
        from hotelimages.config import _float, _get, _int  # noqa: PLC0415 - config imports nothing of ours back

        decrease = _float(settings, "HOTELS_BUDGET_DECREASE")
        if not 0 < decrease < 1:
            raise ValueError(f"setting HOTELS_BUDGET_DECREASE must be between 0 and 1, got {decrease}")
        return cls(
            budgets=parse_host_budgets(str(_get(settings, "HOTELS_HOST_BUDGETS") or "")),
            horizon=_float(settings, "HOTELS_BUDGET_GRANT_SECONDS", 0.05),
            increase=_float(settings, "HOTELS_BUDGET_INCREASE"),
            decrease=decrease,
            max_refusals=_int(settings, "HOTELS_BUDGET_MAX_REFUSALS"),
        )


@dataclass
class _Host:
    """A node's view of one budgeted host: start times granted to it, requests waiting and in flight."""

    budget: HostBudget
    key: str
    users_key: str
    starts: deque = field(default_factory=deque)  # local monotonic start times, ascending
    waiting: int = 0
    holding: int = 0  # waiters that took a start time and sleep until it
    in_flight: int = 0
    flight_limit: int = 0  # this node's share of the host's in-flight budget (0 = none)
    good: int = 0  # good answers not yet reported
    epoch: int = 0  # bumped when a refusal voids the start times held
    paused_until: float = 0.0  # local monotonic
    asking: asyncio.Future | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # an in-flight request ended
    fired: asyncio.Event = field(default_factory=asyncio.Event)  # a held start time came
    # For status: the fleet figures from the last call.
    rate: float = 0.0
    refusals: int = 0


class HostGate:
    """One node's access to the fleet's host budgets (see the module docstring)."""

    def __init__(self, client: Any, keys: Keys, owner: str, policy: GatePolicy):
        self.scripts = BoundScripts(client, keys)
        self.keys = keys
        self.owner = owner
        self.policy = policy
        self._hosts: dict[str, _Host | None] = {}
        #: ``grants``, ``grants/empty``, ``starts``, ``starts/late``, ``refusals`` (Scrapy stats at close).
        self.counts: Counter[str] = Counter()

    def __bool__(self) -> bool:
        return bool(self.policy.budgets)

    async def listen(self) -> None:
        """Follow the fleet's back-off events (until cancelled): a cut or pause voids the start times held.

        Without it a node would learn of a pause only at its next grant, up to a horizon later.
        """
        client = self.scripts.client
        while True:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.keys.budget_events)
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None:
                        self.on_event(message.get("data"))
            except RedisError as exc:
                logger.debug("Budget events: %s; subscribing again", exc)
                await asyncio.sleep(1.0)
            finally:
                try:
                    await pubsub.aclose()
                except (RedisError, OSError):
                    pass

    def on_event(self, raw: bytes | str | None) -> None:
        """A back-off event from any node (JSON: host, paused seconds, rate)."""
        try:
            event = json.loads(raw or b"")
            host, paused, rate = str(event["host"]), float(event["paused"]), float(event["rate"])
        except (ValueError, KeyError, TypeError):
            return
        state = self._hosts.get(host)
        if state is None:
            return
        state.starts.clear()
        state.epoch += 1
        state.rate = rate
        if paused > 0:
            state.paused_until = max(state.paused_until, time.monotonic() + paused)

    def host(self, host: str) -> _Host | None:
        """The node's state of a budgeted host; None for an unlimited one."""
        try:
            return self._hosts[host]
        except KeyError:
            budget = budget_for(self.policy.budgets, host)
            state = None
            if budget is not None:
                state = _Host(budget, self.keys.budget(host), self.keys.budget_users(host))
            self._hosts[host] = state
            return state

    async def acquire(self, host: str) -> bool:
        """Wait until a request to ``host`` may start; returns whether the host is budgeted."""
        state = self.host(host)
        if state is None:
            return False
        state.waiting += 1
        try:
            while True:
                now = time.monotonic()
                if state.flight_limit and state.in_flight >= state.flight_limit:
                    state.changed.clear()
                    try:
                        await asyncio.wait_for(state.changed.wait(), 0.5)
                    except TimeoutError:
                        pass
                    continue
                while state.starts and state.starts[0] < now - LATE_SECONDS:
                    state.starts.popleft()
                    self.counts["starts/late"] += 1
                if state.starts and now >= state.paused_until:
                    start, epoch = state.starts.popleft(), state.epoch
                    if start > now:
                        state.holding += 1
                        try:
                            await asyncio.sleep(start - now)
                        finally:
                            state.holding -= 1
                            state.fired.set()
                    if epoch != state.epoch:
                        continue  # a refusal came in meanwhile: that start time is void
                    if time.monotonic() > start + LATE_SECONDS:
                        self.counts["starts/late"] += 1
                        continue  # the loop was held up past it: using it now would bunch requests up
                    state.in_flight += 1
                    return True
                if now < state.paused_until:
                    await asyncio.sleep(state.paused_until - now)
                    continue
                if state.asking is None:
                    unserved = state.waiting - state.holding - len(state.starts)
                    if state.holding and unserved < state.holding:
                        # Requests still hold start times: ask once half the node's waiters lack one,
                        # so one call serves many (a call per returning request would cost one per photo).
                        state.fired.clear()
                        try:
                            await asyncio.wait_for(state.fired.wait(), 0.5)
                        except TimeoutError:
                            pass
                        continue
                    state.asking = asyncio.ensure_future(self._grant(host, state))
                await asyncio.shield(state.asking)
        finally:
            state.waiting -= 1

    def release(self, host: str, status: int | None, retry_after: bytes | str | None = None) -> bool:
        """A request to ``host`` is over (``status`` None: no answer); returns whether it was refused (429/503)."""
        state = self.host(host)
        if state is None:
            return False
        state.in_flight = max(0, state.in_flight - 1)
        state.changed.set()
        if status not in REFUSAL_STATUSES:
            if status is not None:
                state.good += 1
            return False
        state.refusals += 1
        self.counts["refusals"] += 1
        seconds = retry_after_seconds(retry_after)
        if seconds is not None:
            state.paused_until = max(state.paused_until, time.monotonic() + seconds)
            state.starts.clear()
            state.epoch += 1
        asyncio.ensure_future(self._refuse(host, state, seconds))
        return True

    async def _grant(self, host: str, state: _Host) -> None:
        """Ask Redis for start times (one Lua call); on a Redis error, wait a second and let the caller ask again."""
        try:
            want = max(1, state.waiting - state.holding - len(state.starts))
            good, state.good = state.good, 0
            budget = state.budget
            reply = await self.scripts.run(
                GRANT, budget.rate, want, good, self.policy.increase, self.policy.horizon, self.policy.key_ttl,
                self.owner, 1 if budget.in_flight else 0, MIN_BATCH_SHARE,
                more_keys=(state.key, state.users_key),
            )
            granted, first, interval, rate, wait, users, paused = (
                int(reply[0]), float(reply[1]), float(reply[2]), float(reply[3]), float(reply[4]), int(reply[5]),
                float(reply[6]),
            )
            now = time.monotonic()
            self.counts["grants"] += 1
            self.counts["starts"] += granted
            if not granted:
                self.counts["grants/empty"] += 1
            state.rate = rate
            if budget.in_flight:
                state.flight_limit = max(1, budget.in_flight // max(1, users))
            if paused > 0:
                state.paused_until = max(state.paused_until, now + paused)
            state.starts.extend(now + first + i * interval for i in range(granted))
            if not granted:
                await asyncio.sleep(max(wait, 0.01))
        except RedisError as exc:
            logger.warning("Host budget of %s: Redis unreachable (%s); requests to it wait", host, exc)
            await asyncio.sleep(1.0)
        finally:
            state.asking = None

    async def _refuse(self, host: str, state: _Host, retry_after: float | None) -> None:
        try:
            rate, paused = await self.scripts.run(
                REFUSE, state.budget.rate, -1 if retry_after is None else retry_after, self.policy.decrease,
                MIN_RATE_FRACTION, self.policy.key_ttl, CUT_INTERVAL, host,
                more_keys=(state.key, self.keys.budget_events),
            )
            state.rate = float(rate)
            if float(paused) > 0:
                state.paused_until = max(state.paused_until, time.monotonic() + float(paused))
            logger.info("Host %s refused a request: fleet rate now %.1f/s%s", host, state.rate,
                        f", paused {float(paused):.1f}s" if float(paused) > 0 else "")
        except RedisError as exc:
            logger.warning("Could not report a refusal by %s to Redis (%s)", host, exc)


def host_budget_rows(client: Any, keys: Keys) -> list[dict[str, Any]]:
    """Every budgeted host's fleet state, for ``status``: budget, current rate, pause left, recent refusals."""
    now = client.time()
    now = now[0] + now[1] / 1e6
    rows = []
    prefix = keys.budget("")
    for key in sorted(client.scan_iter(match=keys.budget_pattern, count=1000)):
        name = key.decode() if isinstance(key, bytes) else key
        if name.endswith(":users"):
            continue
        raw = {k.decode(): v.decode() for k, v in client.hgetall(key).items()}
        if not raw:
            continue

        def num(field: str, default: float = 0.0, raw: dict = raw) -> float:
            try:
                return float(raw.get(field, default))
            except ValueError:
                return default

        recent = int(num("recent")) if now - num("recent_since") < 120 else 0
        rows.append({
            "host": name[len(prefix):],
            "budget": num("budget"),
            "rate": round(num("rate"), 2),
            "paused_seconds": round(max(0.0, num("until") - now), 1),
            "recent_refusals": recent,
            "refusals": int(num("refused")),
            "last_refusal_seconds_ago": round(now - num("last_refusal"), 1) if raw.get("last_refusal") else None,
        })
    return rows


class HostBudgetMiddleware:
    """Downloader middleware: the fleet's host budgets for requests through Scrapy's downloader (listings).

    ``process_request`` waits for the host's next start time (before the request takes a
    downloader slot); ``process_response`` reports the answer, and sends a 429/503 from a
    budgeted host back to the scheduler (to wait out the fleet's pause) instead of to
    RetryMiddleware, up to ``HOTELS_BUDGET_MAX_REFUSALS`` times per request. Its order (590)
    puts it after every stock middleware on the way out and before RetryMiddleware (550) on
    the way back. Not enabled (NotConfigured) when no budget is set.
    """

    REFUSALS_META = "hotels_refusals"
    BUDGETED_META = "hotels_budgeted"

    def __init__(self, gate: HostGate, stats: Any = None):
        self.gate = gate
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler: Any) -> HostBudgetMiddleware:
        from scrapy.exceptions import NotConfigured  # noqa: PLC0415

        from hotelimages.nodestate import NodeState  # noqa: PLC0415 - nodestate builds the gate from this module

        node = crawler.get_extension(NodeState)
        if node is None or node.gate is None:
            raise NotConfigured  # no HOTELS_HOST_BUDGETS: the usual case, so Scrapy logs nothing
        return cls(node.gate, crawler.stats)

    @staticmethod
    def _host(request: Any) -> str:
        from urllib.parse import urlsplit  # noqa: PLC0415

        return urlsplit(request.url).hostname or ""

    async def process_request(self, request: Any) -> None:
        if await self.gate.acquire(self._host(request)):
            request.meta[self.BUDGETED_META] = True

    def process_response(self, request: Any, response: Any) -> Any:
        if not request.meta.pop(self.BUDGETED_META, False):
            return response
        refused = self.gate.release(self._host(request), response.status, response.headers.get(b"Retry-After"))
        if not refused:
            return response
        count = request.meta.get(self.REFUSALS_META, 0) + 1
        if count > self.gate.policy.max_refusals:
            return response  # the host keeps refusing: RetryMiddleware, then the errback, decide
        if self.stats is not None:
            self.stats.inc_value("hotelimages/listings/refused")
        logger.debug("Listing %s refused (HTTP %d): again after the host's back-off", request.url[:200],
                     response.status)
        retry = request.replace(dont_filter=True)
        retry.meta[self.REFUSALS_META] = count
        return retry

    def process_exception(self, request: Any, exception: Exception) -> None:
        if request.meta.pop(self.BUDGETED_META, False):
            self.gate.release(self._host(request), None)
