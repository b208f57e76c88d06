"""Leased claims against a real Redis (a database of its own per test).

LeaseManager is async: each test runs its steps on a fresh
``redis.asyncio`` client (``support.run_with_client``), and looks at the keys with the blocking fixture client.
Expiry is simulated by moving a lease's deadline into the past with ZADD, so no
test sleeps.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from support import pending
from support import run_with_client as run

from hotelimages import claims
from hotelimages.claims import LeaseManager, new_owner
from hotelimages.keys import Keys

KEYS = Keys()
OWNER_A = "office-pc-12/100-aaaaaaaa"
OWNER_B = "office-pc-13/200-bbbbbbbb"


def leases(client) -> dict[bytes, float]:
    return dict(client.zrange(KEYS.leases, 0, -1, withscores=True))


def owners(client) -> dict[bytes, bytes]:
    return client.hgetall(KEYS.lease_owners)


def stats(client) -> dict[bytes, bytes]:
    return client.hgetall(KEYS.stats)


def expire(client, entry: bytes) -> None:
    """Move a lease's deadline into the past, as if its owner had stopped renewing it long ago."""
    assert client.zadd(KEYS.leases, {entry: 1_000_000}, xx=True, ch=True) == 1


def server_now(client) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1_000_000


# ---------------------------------------------------------------- owners


def test_new_owner_is_the_node_plus_a_process_token():
    owner = new_owner("office-pc-12")
    assert re.fullmatch(r"office-pc-12/\d+-[0-9a-f]{8}", owner)


def test_a_restarted_process_with_the_same_node_id_is_a_new_owner():
    assert new_owner("office-pc-12") != new_owner("office-pc-12")


# ---------------------------------------------------------------- claim


def test_claim_takes_the_oldest_entries_and_records_owner_and_deadline(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"1", b"2", b"3")  # LPUSH: "1" went in first

    async def steps(client):
        lm = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        got = await lm.claim(2)
        return got, lm.in_flight

    before = server_now(redis_client)
    got, in_flight = run(redis_url, steps)
    after = server_now(redis_client)
    assert got == [b"1", b"2"]
    assert in_flight == {b"1", b"2"}
    assert pending(redis_client) == [b"3"]
    assert owners(redis_client) == {b"1": OWNER_A.encode(), b"2": OWNER_A.encode()}
    deadlines = leases(redis_client)
    assert set(deadlines) == {b"1", b"2"}
    for deadline in deadlines.values():
        assert before + 120 <= deadline <= after + 120


def test_claim_of_an_empty_queue(redis_url, redis_client):
    async def steps(client):
        lm = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        return await lm.claim(5), lm.in_flight

    assert run(redis_url, steps) == ([], set())
    assert leases(redis_client) == {}


def test_claim_takes_no_more_than_asked_and_what_there_is(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"1", b"2")

    async def steps(client):
        lm = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        return await lm.claim(1), await lm.claim(10), await lm.claim(10)

    assert run(redis_url, steps) == ([b"1"], [b"2"], [])


def test_a_duplicate_of_a_leased_entry_is_dropped_and_counted(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"7892470")

    async def steps(client):
        lm = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        first = await lm.claim(1)
        await client.lpush(KEYS.start_ids, b"7892470", b"42")
        second = await lm.claim(5)
        return first, second, lm.in_flight

    first, second, in_flight = run(redis_url, steps)
    assert first == [b"7892470"]
    assert second == [b"42"]
    assert in_flight == {b"7892470", b"42"}
    assert pending(redis_client) == []
    assert stats(redis_client) == {b"claims/duplicate_in_flight": b"1"}
    assert owners(redis_client) == {b"7892470": OWNER_A.encode(), b"42": OWNER_A.encode()}


def test_a_duplicate_within_one_batch_is_dropped_and_counted(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"1", b"1", b"2")

    async def steps(client):
        return await LeaseManager(client, KEYS, OWNER_A, lease_seconds=120).claim(3)

    assert run(redis_url, steps) == [b"1", b"2"]
    assert stats(redis_client) == {b"claims/duplicate_in_flight": b"1"}


def test_binary_entries_survive_claim_and_release_byte_exactly(redis_url, redis_client):
    entries = [b"\xff\xfe\x00\x01bin", b'{"hotel_id": "h\xc3\xb4tel"}', b" 7892470\r\n", b"\x80"]
    redis_client.lpush(KEYS.start_ids, *entries)

    async def steps(client):
        lm = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        got = await lm.claim(10)
        lost = await lm.renew()
        released = await lm.release_all()
        return got, lost, released

    got, lost, released = run(redis_url, steps)
    assert got == entries
    assert lost == []
    assert released == 4
    assert sorted(pending(redis_client)) == sorted(entries)
    assert leases(redis_client) == {}
    assert owners(redis_client) == {}


# ---------------------------------------------------------------- renew


def test_renew_extends_own_leases(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"1", b"2")

    async def steps(client):
        lm = LeaseManager(client, KEYS, OWNER_A, lease_seconds=300)
        await lm.claim(2)
        await client.zadd(KEYS.leases, {b"1": 5, b"2": 5}, xx=True)
        return await lm.renew()

    before = server_now(redis_client)
    assert run(redis_url, steps) == []
    after = server_now(redis_client)
    for deadline in leases(redis_client).values():
        assert before + 300 <= deadline <= after + 300


def test_renew_with_nothing_in_flight(redis_url, redis_client):
    async def steps(client):
        return await LeaseManager(client, KEYS, OWNER_A, lease_seconds=120).renew()

    assert run(redis_url, steps) == []


def test_renew_returns_entries_lost_to_another_owner_and_leaves_their_lease_alone(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"1", b"2")

    async def steps(client):
        a = LeaseManager(client, KEYS, OWNER_A, lease_seconds=1000)
        b = LeaseManager(client, KEYS, OWNER_B, lease_seconds=100)
        await a.claim(2)
        expire(redis_client, b"1")
        assert await b.requeue_expired() == 1
        assert await b.claim(1) == [b"1"]
        lost = await a.renew()
        return lost, a.in_flight

    before = server_now(redis_client)
    lost, in_flight = run(redis_url, steps)
    after = server_now(redis_client)
    assert lost == [b"1"]
    assert in_flight == {b"1", b"2"}  # renew reports, the caller decides
    assert owners(redis_client) == {b"1": OWNER_B.encode(), b"2": OWNER_A.encode()}
    deadlines = leases(redis_client)
    assert before + 100 <= deadlines[b"1"] <= after + 100  # B's deadline, not A's 1000 s
    assert before + 1000 <= deadlines[b"2"] <= after + 1000


def test_renew_does_not_resurrect_a_requeued_lease(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"1")

    async def steps(client):
        lm = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        await lm.claim(1)
        expire(redis_client, b"1")
        assert await lm.requeue_expired() == 1
        return await lm.renew()

    assert run(redis_url, steps) == [b"1"]
    assert leases(redis_client) == {}
    assert owners(redis_client) == {}
    assert pending(redis_client) == [b"1"]


# ---------------------------------------------------------------- ack


def test_ack_releases_the_claim_and_is_idempotent(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"1", b"2")

    async def steps(client):
        lm = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        await lm.claim(2)
        first = await lm.ack(b"1")
        freed = lm.freed.is_set()
        second = await lm.ack(b"1")
        return first, freed, second, lm.in_flight

    first, freed, second, in_flight = run(redis_url, steps)
    assert (first, freed, second) == (True, True, False)
    assert in_flight == {b"2"}
    assert set(leases(redis_client)) == {b"2"}
    assert owners(redis_client) == {b"2": OWNER_A.encode()}
    assert pending(redis_client) == []  # an ack never puts the entry back


def test_ack_of_a_lease_now_owned_by_another_is_false_and_leaves_it(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"1")

    async def steps(client):
        a = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        b = LeaseManager(client, KEYS, OWNER_B, lease_seconds=120)
        await a.claim(1)
        expire(redis_client, b"1")
        await b.requeue_expired()
        await b.claim(1)
        return await a.ack(b"1"), a.in_flight, b.in_flight

    acked, a_in_flight, b_in_flight = run(redis_url, steps)
    assert acked is False
    assert a_in_flight == set()  # forgotten by A all the same
    assert b_in_flight == {b"1"}
    assert owners(redis_client) == {b"1": OWNER_B.encode()}
    assert set(leases(redis_client)) == {b"1"}


# ---------------------------------------------------------------- release


def test_release_all_gives_unfinished_entries_back_to_be_claimed_first(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"1", b"2", b"3", b"4")

    async def steps(client):
        a = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        await a.claim(3)
        await a.ack(b"2")
        released = await a.release_all()
        b = LeaseManager(client, KEYS, OWNER_B, lease_seconds=120)
        return released, a.in_flight, set(await b.claim(2)), await b.claim(2)

    released, in_flight, first, then = run(redis_url, steps)
    assert released == 2
    assert in_flight == set()
    assert first == {b"1", b"3"}
    assert then == [b"4"]
    assert owners(redis_client) == {b"1": OWNER_B.encode(), b"3": OWNER_B.encode(), b"4": OWNER_B.encode()}


def test_release_all_does_not_push_back_an_entry_lost_to_another(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"1", b"2")

    async def steps(client):
        a = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        b = LeaseManager(client, KEYS, OWNER_B, lease_seconds=120)
        await a.claim(2)
        expire(redis_client, b"1")
        await b.requeue_expired()
        await b.claim(1)
        return await a.release_all()

    assert run(redis_url, steps) == 1
    assert pending(redis_client) == [b"2"]
    assert owners(redis_client) == {b"1": OWNER_B.encode()}


def test_release_all_with_nothing_in_flight(redis_url, redis_client):
    async def steps(client):
        return await LeaseManager(client, KEYS, OWNER_A, lease_seconds=120).release_all()

    assert run(redis_url, steps) == 0
    assert pending(redis_client) == []


# ---------------------------------------------------------------- expiry


def test_lease_manager_requeue_expired_moves_only_expired_leases(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"1", b"2", b"3", b"later")

    async def steps(client):
        a = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        b = LeaseManager(client, KEYS, OWNER_B, lease_seconds=120)
        await a.claim(2)
        await b.claim(1)
        expire(redis_client, b"1")
        expire(redis_client, b"3")
        first = await a.requeue_expired()
        again = await a.requeue_expired()
        return first, again

    assert run(redis_url, steps) == (2, 0)
    assert set(leases(redis_client)) == {b"2"}
    assert owners(redis_client) == {b"2": OWNER_A.encode()}
    # Expired entries go back to the head of the queue, ahead of entries never claimed.
    assert set(pending(redis_client)[:2]) == {b"1", b"3"}
    assert pending(redis_client)[2:] == [b"later"]
    assert stats(redis_client) == {b"claims/requeued_expired": b"2"}


def test_a_lease_whose_deadline_is_ahead_is_not_requeued(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"1")

    async def steps(client):
        lm = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        await lm.claim(1)
        await client.zadd(KEYS.leases, {b"1": server_now(redis_client) + 60}, xx=True)
        return await lm.requeue_expired()

    assert run(redis_url, steps) == 0
    assert pending(redis_client) == []
    assert stats(redis_client) == {}


def test_a_lease_that_is_not_renewed_expires_in_real_time(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"short", b"long")

    async def steps(client):
        short = LeaseManager(client, KEYS, OWNER_A, lease_seconds=1)
        long = LeaseManager(client, KEYS, OWNER_B, lease_seconds=30)
        await short.claim(1)
        await long.claim(1)
        await asyncio.sleep(2.1)
        return await long.requeue_expired()

    assert run(redis_url, steps) == 1
    assert pending(redis_client) == [b"short"]
    assert owners(redis_client) == {b"long": OWNER_B.encode()}


def test_lease_manager_requeue_expired_honours_its_limit(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"1", b"2", b"3")

    async def steps(client):
        lm = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        for entry in await lm.claim(3):
            expire(redis_client, entry)
        return await lm.requeue_expired(limit=2), await lm.requeue_expired(limit=2)

    assert run(redis_url, steps) == (2, 1)
    assert stats(redis_client) == {b"claims/requeued_expired": b"3"}


def test_sync_requeue_expired_moves_every_expired_lease_in_batches(redis_url, redis_client):
    entries = [str(i).encode() for i in range(5)] + [b"fresh"]
    redis_client.lpush(KEYS.start_ids, *entries)

    async def steps(client):
        return await LeaseManager(client, KEYS, OWNER_A, lease_seconds=120).claim(6)

    assert run(redis_url, steps) == entries
    for entry in entries[:5]:
        expire(redis_client, entry)
    assert claims.requeue_expired(redis_client, KEYS, limit=2) == 5
    assert claims.requeue_expired(redis_client, KEYS, limit=2) == 0
    assert sorted(pending(redis_client)) == sorted(entries[:5])
    assert set(leases(redis_client)) == {b"fresh"}
    assert owners(redis_client) == {b"fresh": OWNER_A.encode()}
    assert stats(redis_client) == {b"claims/requeued_expired": b"5"}


def test_sync_requeue_expired_with_nothing_expired(redis_client):
    assert claims.requeue_expired(redis_client, KEYS) == 0
    assert stats(redis_client) == {}


def test_a_restarted_process_cannot_renew_or_ack_its_predecessors_leases(redis_url, redis_client):
    # Documented behaviour: the owner token is per process, so after a restart with the
    # same NODE_ID the old leases are strangers; they go back to the queue on expiry.
    redis_client.lpush(KEYS.start_ids, b"7892470")

    async def steps(client):
        old = LeaseManager(client, KEYS, new_owner("office-pc-12"), lease_seconds=120)
        await old.claim(1)
        new = LeaseManager(client, KEYS, new_owner("office-pc-12"), lease_seconds=120)
        assert new.owner != old.owner
        new.in_flight.add(b"7892470")  # even if it knew the entry...
        lost = await new.renew()
        acked = await new.ack(b"7892470")
        still_old = await client.hget(KEYS.lease_owners, b"7892470") == old.owner.encode()
        expire(redis_client, b"7892470")
        requeued = await new.requeue_expired()
        reclaimed = await new.claim(1)
        return lost, acked, still_old, requeued, reclaimed, new.owner

    lost, acked, still_old, requeued, reclaimed, owner = run(redis_url, steps)
    assert lost == [b"7892470"]
    assert acked is False
    assert still_old is True
    assert requeued == 1
    assert reclaimed == [b"7892470"]
    assert owners(redis_client) == {b"7892470": owner.encode()}


def test_queue_state(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"1", b"2", b"3")

    async def steps(client):
        lm = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        before = await lm.queue_state()
        await lm.claim(2)
        return before, await lm.queue_state()

    assert run(redis_url, steps) == ((3, 0), (1, 2))


def test_keys_with_another_prefix_are_used(redis_url, redis_client):
    keys = Keys("staging", "staging:ids")
    redis_client.lpush("staging:ids", b"1")

    async def steps(client):
        lm = LeaseManager(client, keys, OWNER_A, lease_seconds=120)
        return await lm.claim(1)

    assert run(redis_url, steps) == [b"1"]
    assert redis_client.hgetall("staging:lease_owners") == {b"1": OWNER_A.encode()}
    assert redis_client.zcard("staging:leases") == 1
    assert redis_client.exists(KEYS.leases, KEYS.lease_owners) == 0


# ---------------------------------------------------------------- record (outcome + ack in one step)


def manifest_json(status: str) -> str:
    return json.dumps({"hotel_id": "7892470", "status": status})


def test_record_a_manifest_acknowledges_and_counts(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"7892470")
    redis_client.hset(KEYS.failed, "7892470", "an earlier failure")

    async def steps(client):
        lm = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        await lm.claim(1)
        return await lm.record(
            b"7892470", "7892470", manifest_json=manifest_json("partial"), images=3, nbytes=1234, failed_images=1
        )

    assert run(redis_url, steps) is True
    assert leases(redis_client) == {}
    assert owners(redis_client) == {}
    assert redis_client.hgetall(KEYS.manifests) == {b"7892470": manifest_json("partial").encode()}
    assert redis_client.hgetall(KEYS.failed) == {}
    assert stats(redis_client) == {
        b"hotels/partial": b"1",
        b"images/stored": b"3",
        b"images/bytes": b"1234",
        b"images/failed": b"1",
    }


def test_record_a_failure(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"../x")

    async def steps(client):
        lm = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        await lm.claim(1)
        return await lm.record(b"../x", "../x", failed_json='{"reason": "invalid_hotel_id"}')

    assert run(redis_url, steps) is True
    assert leases(redis_client) == {}
    assert redis_client.hgetall(KEYS.failed) == {b"../x": b'{"reason": "invalid_hotel_id"}'}
    assert stats(redis_client) == {b"events/hotel_failed": b"1"}


def test_record_after_another_claim_recorded_the_hotel_is_dropped(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, b"7892470")

    async def steps(client):
        a = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        b = LeaseManager(client, KEYS, OWNER_B, lease_seconds=120)
        await a.claim(1)
        expire(redis_client, b"7892470")
        await b.requeue_expired()
        await b.claim(1)
        by_b = await b.record(b"7892470", "7892470", manifest_json=manifest_json("complete"), images=2)
        late_a = await a.record(b"7892470", "7892470", manifest_json=manifest_json("partial"), images=1)
        return by_b, late_a

    assert run(redis_url, steps) == (True, False)
    assert redis_client.hgetall(KEYS.manifests) == {b"7892470": manifest_json("complete").encode()}
    assert stats(redis_client) == {
        b"claims/requeued_expired": b"1",
        b"hotels/complete": b"1",
        b"images/stored": b"2",
        b"images/bytes": b"0",
        b"images/failed": b"0",
    }


def test_a_failure_never_replaces_a_manifest(redis_url, redis_client):
    redis_client.hset(KEYS.manifests, "7892470", manifest_json("complete"))
    redis_client.lpush(KEYS.start_ids, b"7892470")

    async def steps(client):
        lm = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        await lm.claim(1)
        return await lm.record(b"7892470", "7892470", failed_json='{"reason": "listing_http_503"}')

    assert run(redis_url, steps) is False
    assert leases(redis_client) == {}  # the claim is acknowledged all the same
    assert redis_client.hgetall(KEYS.manifests) == {b"7892470": manifest_json("complete").encode()}
    assert redis_client.hgetall(KEYS.failed) == {}


def second_result_by_the_owner(redis_url, redis_client, force: bool) -> bool:
    """Hotel 7892470 is recorded "partial"; its new owner claims it and records "complete"."""
    redis_client.hset(KEYS.manifests, "7892470", manifest_json("partial"))
    redis_client.hset(KEYS.stats, "hotels/partial", 1)
    redis_client.lpush(KEYS.start_ids, b"7892470")

    async def steps(client):
        lm = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        await lm.claim(1)
        return await lm.record(b"7892470", "7892470", manifest_json=manifest_json("complete"), images=4, force=force)

    return run(redis_url, steps)


def test_a_forced_redo_by_the_owner_replaces_the_manifest_and_moves_the_status_count(redis_url, redis_client):
    assert second_result_by_the_owner(redis_url, redis_client, force=True) is True
    assert redis_client.hgetall(KEYS.manifests) == {b"7892470": manifest_json("complete").encode()}
    counts = stats(redis_client)
    assert counts[b"hotels/partial"] == b"0"
    assert counts[b"hotels/complete"] == b"1"


def test_an_unforced_second_result_by_the_owner_is_dropped(redis_url, redis_client):
    # A node whose claim expired recorded the hotel first; the new owner's result is dropped.
    assert second_result_by_the_owner(redis_url, redis_client, force=False) is False
    assert leases(redis_client) == {}  # acknowledged all the same
    assert redis_client.hgetall(KEYS.manifests) == {b"7892470": manifest_json("partial").encode()}
    counts = stats(redis_client)
    assert counts[b"hotels/partial"] == b"1" and b"images/stored" not in counts


@pytest.mark.parametrize("kind", ["manifest", "failed"])
def test_record_without_a_claim_and_without_a_previous_result_is_kept(redis_url, redis_client, kind):
    # A late result of a claim that expired, while nobody else has recorded the hotel yet.
    async def steps(client):
        lm = LeaseManager(client, KEYS, OWNER_A, lease_seconds=120)
        if kind == "manifest":
            return await lm.record(b"1", "1", manifest_json=manifest_json("complete"))
        return await lm.record(b"1", "1", failed_json="{}")

    assert run(redis_url, steps) is True
    key = KEYS.manifests if kind == "manifest" else KEYS.failed
    assert redis_client.hlen(key) == 1


# ---------------------------------------------------------------- done-check, key lists


def test_done_check_finds_recorded_hotels_and_skip_done_acks_and_counts(redis_url, redis_client):
    redis_client.hset(KEYS.manifests, "2", "{}")
    redis_client.lpush(KEYS.start_ids, "1", "2")

    async def steps(client):
        leases = LeaseManager(client, KEYS, OWNER_A, 60)
        entries = await leases.claim(2)
        done = await leases.done_among(["1", "2"])
        await leases.skip_done(b"2")
        return entries, done, await leases.done_among([]), leases.in_flight

    entries, done, none, in_flight = run(redis_url, steps)
    assert (sorted(entries), done, none, in_flight) == ([b"1", b"2"], {"2"}, set(), {b"1"})
    assert set(leases(redis_client)) == {b"1"}
    assert stats(redis_client)[b"hotels/skipped_done"] == b"1"


def test_each_script_builds_its_key_list_from_the_key_names_once():
    staging = Keys("staging", "staging:ids")
    assert claims.CLAIM.keys(staging) == ["staging:ids", "staging:leases", "staging:lease_owners", "staging:stats"]
    assert claims.PUSH_NEW.keys(staging) == ["staging:manifests", "staging:ids"]
    assert claims.RETRY_FAILED.keys(staging) == ["staging:failed", "staging:ids"]
    scripts = [v for v in vars(claims).values() if isinstance(v, claims.LuaScript)]
    assert len(scripts) == 9 and all(len(s.keys(staging)) == len(s.key_names) for s in scripts)


def test_the_same_script_object_serves_blocking_and_asyncio_clients(redis_url, redis_client):
    redis_client.lpush(KEYS.start_ids, "a", "b")
    blocking = claims.BoundScripts(redis_client, KEYS)
    assert blocking.run(claims.CLAIM, 1, 60, OWNER_A) == [b"a"]

    async def steps(client):
        return await claims.BoundScripts(client, KEYS).run(claims.CLAIM, 1, 60, OWNER_B)

    assert run(redis_url, steps) == [b"b"]
    assert owners(redis_client) == {b"a": OWNER_A.encode(), b"b": OWNER_B.encode()}
