"""Host budgets, back-off, byte cap, schedules and pause flags as functions and Lua scripts (real Redis)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime

import pytest
import redis.asyncio as aioredis

from hotelimages import control
from hotelimages.activehours import parse_active_hours, parse_bytes_per_sec
from hotelimages.bandwidth import ByteBudget
from hotelimages.claims import BoundScripts
from hotelimages.keys import Keys
from hotelimages.politeness import (
    GRANT,
    REFUSE,
    GatePolicy,
    HostBudget,
    HostGate,
    budget_for,
    host_budget_rows,
    parse_host_budgets,
    retry_after_seconds,
)

# ------------------------------------------------------------------ pure parsers


def test_host_budgets_parse():
    budgets = parse_host_budgets("img.example.com=300/s,64; api.example.com=50/s ;*.cdn.example=2.5/s")
    assert budgets == (
        HostBudget("img.example.com", 300.0, 64),
        HostBudget("api.example.com", 50.0, 0),
        HostBudget("*.cdn.example", 2.5, 0),
    )
    assert parse_host_budgets("") == ()
    assert budget_for(budgets, "IMG.example.com") == budgets[0]
    assert budget_for(budgets, "a.cdn.example") == budgets[2]
    assert budget_for(budgets, "other.example.com") is None


@pytest.mark.parametrize("bad", ["img.example.com", "img.example.com=0/s", "=5/s", "a=5/s,x", "a:80=5/s", "a=-1/s"])
def test_host_budgets_refuse_bad_values(bad):
    with pytest.raises(ValueError, match="HOTELS_HOST_BUDGETS"):
        parse_host_budgets(bad)


def test_retry_after_seconds_and_http_date():
    assert retry_after_seconds(b"5") == 5.0
    assert retry_after_seconds("120") == 120.0
    now = 1_000_000_000.0  # Sun, 09 Sep 2001 01:46:40 GMT
    assert retry_after_seconds("Sun, 09 Sep 2001 01:46:50 GMT", now) == 10.0
    assert retry_after_seconds("Sun, 09 Sep 2001 01:46:30 GMT", now) == 0.0  # in the past: go on
    assert retry_after_seconds("99999999") == 3600.0  # capped
    for bad in (None, "", "soon", b"-3", "Sun, 99 Foo"):
        assert retry_after_seconds(bad) is None


def test_active_hours_literal_times():
    s = parse_active_hours("Mon-Fri 19:00-07:00; Sat-Sun all")
    at = lambda text: s.at(datetime.fromisoformat(text))[0]  # noqa: E731
    # 2026-12-07 is a Monday.
    assert not at("2026-12-07 18:59")
    assert at("2026-12-07 19:00")
    assert at("2026-12-08 06:59")  # Tuesday morning: Monday's span past midnight
    assert not at("2026-12-08 07:00")
    assert at("2026-12-12 12:00")  # Saturday
    assert at("2026-12-12 06:00")  # Saturday early: Friday's span, and Saturday's own
    assert not at("2026-12-07 03:00")  # Monday early: Sunday's 'all' ended at midnight
    assert parse_active_hours("").at(datetime(2026, 12, 7, 12)) == (True, None)


def test_active_hours_caps_and_errors():
    s = parse_active_hours("Mon-Fri 07:00-19:00 200KB/s; daily all")
    assert s.at(datetime(2026, 12, 7, 12)) == (True, 200_000)
    assert s.at(datetime(2026, 12, 7, 20)) == (True, None)
    assert s.next_change(datetime(2026, 12, 7, 12, 30)) == datetime(2026, 12, 7, 19, 0)
    assert parse_bytes_per_sec("2MB/s") == 2_000_000
    assert parse_bytes_per_sec("1MiB/s") == 1_048_576
    assert parse_bytes_per_sec("1500") == 1500
    for bad in ("Mon-Fry 19:00-07:00", "Mon 25:00-07:00", "Mon 19:00", "Mon", "Mon 19:00-07:00 fast"):
        with pytest.raises(ValueError, match="HOTELS_ACTIVE_HOURS"):
            parse_active_hours(bad)


def test_byte_budget_on_a_fake_clock():
    now = [0.0]
    b = ByteBudget(100_000, clock=lambda: now[0])
    assert b.delay() > 0  # starts empty: a new cap holds from now
    now[0] = 1.0
    assert b.delay() == 0  # refilled (up to its burst)
    taken = b.start()
    assert taken == 64 * 1024
    assert b.delay() > 0  # in debt after one photo's estimate
    b.finish(taken, 10_000)  # the photo was smaller: the rest comes back
    assert b.estimate < 64 * 1024
    b.take(200_000)
    assert b.over() == pytest.approx(-b.level / 100_000) and b.over() > 1.0  # in debt: paused this long
    b.set_rate(0)
    assert b.delay() == 0 and b.start() == 0 and b.over() == 0


def test_pause_state_rules():
    assert control.paused_state(None, None, True) == ""
    assert control.paused_state(b"{}", None, True) == "paused"
    assert control.paused_state(None, b"{}", False) == "paused"
    assert control.paused_state(None, None, False) == "paused (schedule)"


def test_pause_and_resume_flags(redis_client):
    keys = Keys("t15")
    control.pause(redis_client, keys)
    control.pause(redis_client, keys, node="pc12", note="owner presenting")
    assert set(control.pauses(redis_client, keys)) == {"fleet", "node:pc12"}
    assert control.pauses(redis_client, keys)["node:pc12"]["note"] == "owner presenting"
    assert control.resume(redis_client, keys) is True
    assert control.resume(redis_client, keys) is False
    assert set(control.pauses(redis_client, keys)) == {"node:pc12"}


# ------------------------------------------------------------------ the Lua scripts on a real Redis


def test_grant_spaces_start_times_fleet_wide(redis_client):
    scripts = BoundScripts(redis_client, Keys("t15"))
    key, users = "t15:budget:h", "t15:budget:h:users"

    def grant(want, good=0):
        r = scripts.run(GRANT, 10, want, good, 0.05, 0.5, 60, "a", 0, 0.01, more_keys=(key, users))
        return int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4])

    n1, first1, interval, rate, _ = grant(100)
    assert (n1, rate, interval) == (6, 10.0, 0.1)  # 0.5 s ahead at 10/s: now, +0.1 ... +0.5
    assert first1 == pytest.approx(0.0, abs=0.01)
    n2, first2, *_ = grant(100)  # a second node: its start times follow the first's
    assert n2 == 0  # the horizon is used up
    time.sleep(0.3)
    n3, first3, *_ = grant(2)
    assert n3 == 2 and first3 == pytest.approx(0.3, abs=0.05)  # 0.6 s after the first grant, 0.3 s from now
    assert redis_client.ttl(key) > 0


def next_message(pubsub, timeout: float):
    """The next published message (subscription confirmations skipped), or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
        if message is not None:
            return message
    return None


def test_refuse_halves_pauses_and_recovers(redis_client):
    scripts = BoundScripts(redis_client, Keys("t15"))
    key, users = "t15:budget:r", "t15:budget:r:users"
    events = redis_client.pubsub(ignore_subscribe_messages=True)
    events.subscribe("t15:budget:events")
    rate, paused = scripts.run(REFUSE, 40, 2, 0.5, 0.05, 60, 1.0, "r", more_keys=(key, "t15:budget:events"))
    assert float(rate) == 20.0 and 1.9 < float(paused) <= 2.0
    rate, _ = scripts.run(REFUSE, 40, -1, 0.5, 0.05, 60, 1.0, "r", more_keys=(key, "t15:budget:events"))
    assert float(rate) == 20.0  # a second refusal within the cut interval does not cut again
    message = next_message(events, 2.0)
    assert json.loads(message["data"]) == {"host": "r", "paused": pytest.approx(2.0, abs=0.1), "rate": 20}
    assert next_message(events, 0.3) is None  # nothing new the second time: no event
    events.close()
    r = scripts.run(GRANT, 40, 5, 3, 0.5, 0.5, 60, "a", 0, 0.01, more_keys=(key, users))
    assert int(r[0]) == 0 and float(r[6]) > 1.5  # paused: no start time before the deadline
    time.sleep(2.1)
    r1 = float(scripts.run(GRANT, 40, 1, 3, 0.2, 0.5, 60, "a", 0, 0.01, more_keys=(key, users))[3])
    time.sleep(0.5)
    r2 = float(scripts.run(GRANT, 40, 1, 3, 0.2, 0.5, 60, "a", 0, 0.01, more_keys=(key, users))[3])
    assert 20.0 <= r1 < 30.0  # the pause's time did not count towards the increase
    assert 3.0 <= r2 - r1 <= 6.0  # + 0.2 x 40 per second of good answers
    # A deep cut (to the floor, 2/s) still grants: the batch a node waits for follows the current rate.
    redis_client.hset(key, mapping={"rate": 2, "cut": 0})
    r = scripts.run(GRANT, 40, 30, 0, 0.5, 1.0, 60, "a", 0, 0.5, more_keys=(key, users))
    assert int(r[0]) >= 1
    rows = host_budget_rows(redis_client, Keys("t15"))
    row = next(r for r in rows if r["host"] == "r")
    assert row["budget"] == 40.0 and row["recent_refusals"] == 2 and row["paused_seconds"] == 0


def test_gate_drops_its_start_times_on_a_pause_event(redis_url):
    """Start times a node holds are void once any node reports a pause: nothing starts before it ends."""

    async def main():
        client = aioredis.Redis.from_url(redis_url)
        gate = HostGate(client, Keys("t15e"), "n", GatePolicy(budgets=parse_host_budgets("h.test=5/s"), horizon=1.0))
        listener = asyncio.ensure_future(gate.listen())
        await asyncio.sleep(0.3)
        done: list[float] = []

        async def one():
            await gate.acquire("h.test")
            done.append(time.monotonic())

        tasks = [asyncio.ensure_future(one()) for _ in range(4)]
        await asyncio.sleep(0.1)  # one started now; three hold start times 0.2 s apart
        event_at = time.monotonic()
        await client.publish("t15e:budget:events", json.dumps({"host": "h.test", "paused": 1.0, "rate": 2.5}))
        await asyncio.gather(*tasks)
        listener.cancel()
        await client.aclose()
        return event_at, done, gate.host("h.test").rate

    event_at, done, rate = asyncio.run(main())
    assert rate == 5.0  # the next grant brought the fleet's own figure back (the event was a test's)
    assert sum(1 for t in done if t < event_at) == 1
    assert all(t >= event_at + 0.9 for t in done if t >= event_at)  # the held start times were dropped


def test_gate_keeps_a_rate_across_two_gates(redis_url):
    """Two gates (two nodes) sharing a 20/s budget start about 20 requests per second together."""

    async def main():
        clients = [aioredis.Redis.from_url(redis_url) for _ in range(2)]
        policy = GatePolicy(budgets=parse_host_budgets("h.test=20/s"), horizon=0.3)
        gates = [HostGate(c, Keys("t15g"), f"n{i}", policy) for i, c in enumerate(clients)]
        starts: list[float] = []

        async def worker(gate):
            for _ in range(15):
                assert await gate.acquire("h.test")
                starts.append(time.monotonic())
                gate.release("h.test", 200)

        assert not await gates[0].acquire("other.test")  # unlimited: no wait, no Redis
        t0 = time.monotonic()
        await asyncio.gather(*(worker(g) for g in gates for _ in range(4)))
        for c in clients:
            await c.aclose()
        return t0, starts

    t0, starts = asyncio.run(main())
    assert len(starts) == 120
    elapsed = max(starts) - t0
    assert elapsed >= (120 - 8) / 20  # at most 20/s (one horizon's worth may start at once)
    starts.sort()
    assert max(sum(1 for t in starts if a <= t < a + 1.0) for a in starts) <= 22
