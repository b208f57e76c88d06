"""The circuit breaker (pure), node-local reasons, staged writes and the lease-renewal race."""

from __future__ import annotations

import asyncio
import errno
import os

import pytest
from scrapy.exceptions import CannotResolveHostError, DownloadConnectionRefusedError
from twisted.internet import error as twisted_error

from hotelimages.breaker import Breaker, next_wait, streak_eligible
from hotelimages.claims import LeaseManager
from hotelimages.keys import Keys
from hotelimages.reasons import NODE_LOCAL_REASONS, download_reason, listing_reason, node_local_text
from hotelimages.redisconn import async_client
from hotelimages.storage import (
    TEMP_SUFFIX,
    clean_hotel_folder,
    discard_staged,
    publish_staged,
    replace_retrying,
    write_staged,
)

KEYS = Keys()


# ---------------------------------------------------------------- reasons


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (DownloadConnectionRefusedError("refused"), "listing_connection_refused"),
        (twisted_error.ConnectionRefusedError(), "listing_connection_refused"),
        (CannotResolveHostError("no such host"), "listing_dns_error"),
        (twisted_error.DNSLookupError(), "listing_dns_error"),
        (OSError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), "listing_tls_error"),
    ],
)
def test_listing_failures_about_the_node_are_node_local(exc, reason):
    assert listing_reason(exc) == reason
    assert node_local_text(reason) == NODE_LOCAL_REASONS[reason]


@pytest.mark.parametrize("reason", ["listing_http_404", "listing_malformed_json", "invalid_id", "listing_timeout",
                                    "listing_next_loop", None])
def test_failures_about_the_hotel_are_not(reason):
    assert node_local_text(reason) is None


def test_a_tls_failure_wrapped_in_response_never_received_is_a_tls_error():
    class SSLError(Exception):
        pass

    class ResponseNeverReceived(Exception):
        def __init__(self, reasons):
            self.reasons = reasons

    assert download_reason(ResponseNeverReceived([SSLError("handshake failure")])) == "tls_error"
    assert download_reason(ResponseNeverReceived([ValueError("other")])) == "connection_error"


# ---------------------------------------------------------------- breaker


def test_threshold_node_local_failures_in_a_row_trip_and_any_other_outcome_resets():
    b = Breaker(threshold=3, same_failures=0)
    assert [b.node_local("listing_connection_refused", f"h{i}").trip for i in range(2)] == [None, None]
    b.succeeded("x")
    assert b.node_local("listing_connection_refused", "h2").trip is None
    assert b.node_local("listing_connection_refused", "h3").trip is None
    trip = b.node_local("listing_connection_refused", "h4").trip
    assert trip is not None and trip.text == "listing host refuses connections (3 in a row)" and not trip.permanent
    b.half_open()
    again = b.node_local("listing_connection_refused", "h5").trip
    assert again is not None and again.text == "listing host refuses connections (4 in a row)"


def test_no_listing_url_is_permanent_and_threshold_zero_never_trips():
    b = Breaker(threshold=1)
    trip = b.node_local("no_listing_url", "h1").trip
    assert trip.permanent and trip.text.startswith("no listing URL configured")
    never = Breaker(threshold=0)
    assert all(never.node_local("listing_dns_error", f"h{i}").trip is None for i in range(1000))


def test_a_hotel_that_fails_alone_again_and_again_while_others_succeed_is_recorded():
    b = Breaker(threshold=100, max_give_backs=3)
    for _ in range(3):
        assert b.node_local("listing_connection_error", "poison").give_back
        b.succeeded("other")
    assert b.node_local("listing_connection_error", "poison").give_back is False
    # Without successes between (the host is down for all), it is always given back.
    c = Breaker(threshold=100, max_give_backs=3)
    assert all(c.node_local("listing_connection_error", "h").give_back for _ in range(10))


def test_the_same_failure_while_the_fleet_succeeds_trips_and_names_the_hotels_to_put_back():
    b = Breaker(threshold=10, same_failures=3)
    assert b.failed("listing_http_403", "a", b"a", fleet_successes=100) is None
    assert b.failed("listing_http_403", "b", b"b", fleet_successes=120) is None
    trip = b.failed("listing_http_403", "c", b"c", fleet_successes=150)
    assert trip is not None and trip.retry == (("a", b"a"), ("b", b"b"), ("c", b"c"))
    assert "the last 3 hotels all failed with listing_http_403 while other nodes succeed" == trip.text


def test_the_same_failure_while_nobody_succeeds_or_a_404_streak_does_not_trip():
    b = Breaker(same_failures=3)
    assert all(b.failed("listing_http_503", f"h{i}", b"", fleet_successes=7) is None for i in range(10))
    assert all(b.failed("listing_http_404", f"h{i}", b"", fleet_successes=i) is None for i in range(10))
    assert not streak_eligible("listing_http_404") and streak_eligible("listing_http_502")
    mixed = Breaker(same_failures=3)
    mixed.failed("listing_timeout", "a", b"", 1)
    mixed.failed("listing_http_403", "b", b"", 2)
    assert mixed.failed("listing_timeout", "c", b"", 3) is None


def test_the_wait_doubles_up_to_its_maximum():
    waits = [30.0]
    for _ in range(6):
        waits.append(next_wait(waits[-1], 30, 600))
    assert waits == [30, 60, 120, 240, 480, 600, 600] and next_wait(0, 30, 600) == 30


# ---------------------------------------------------------------- storage


def test_a_transient_permission_error_on_rename_is_retried_then_counts(tmp_path):
    calls, pauses = [], []

    def flaky(src, dst):
        calls.append(src)
        if len(calls) < 3:
            raise PermissionError(errno.EACCES, "held by antivirus")
        os.replace(src, dst)

    (tmp_path / "a").write_bytes(b"x")
    replace_retrying(str(tmp_path / "a"), str(tmp_path / "b"), attempts=5, replace=flaky, sleep=pauses.append)
    assert (tmp_path / "b").read_bytes() == b"x" and len(calls) == 3 and pauses == [0.05, 0.1]

    def always(src, dst):
        raise PermissionError(errno.EACCES, "denied")

    with pytest.raises(PermissionError):
        replace_retrying("x", "y", attempts=4, replace=always, sleep=pauses.append)
    assert pauses[2:] == [0.05, 0.1, 0.2]


def test_staged_files_appear_under_their_names_only_when_published(tmp_path):
    final = str(tmp_path / "h" / "cover" / "1.jpg")
    tmp = write_staged(final, b"bytes", "123-abcd")
    assert tmp.endswith(TEMP_SUFFIX) and "123-abcd" in tmp and not os.path.exists(final)
    publish_staged([(tmp, final)])
    assert open(final, "rb").read() == b"bytes" and not os.path.exists(tmp)
    other = write_staged(final, b"other", "999-ffff")
    discard_staged([(other, final)])
    assert not os.path.exists(other) and open(final, "rb").read() == b"bytes"


def test_cleaning_a_hotel_folder_keeps_only_the_files_of_the_manifest(tmp_path):
    folder = tmp_path / "hotel"
    (folder / "cover").mkdir(parents=True)
    (folder / "interior").mkdir()
    (folder / "cover" / "1.jpg").write_bytes(b"keep")
    (folder / "cover" / f".2.jpg.1-x-0{TEMP_SUFFIX}").write_bytes(b"temp of a killed process")
    (folder / "interior" / "9.jpg").write_bytes(b"stale")
    (folder / f".manifest.json.1-0{TEMP_SUFFIX}").write_bytes(b"temp manifest")
    (folder / "manifest.json").write_bytes(b"{}")
    assert clean_hotel_folder(folder, {"cover/1.jpg"}) == 3
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "cover/1.jpg", "manifest.json"]
    assert clean_hotel_folder(tmp_path / "missing", set()) == 0


# ---------------------------------------------------------------- the lease-renewal race (item 6)


def test_a_renewal_racing_with_a_record_reports_no_lost_lease(redis_url, redis_client):
    """Renewals sent while hotels are being recorded must not call those hotels lost."""
    redis_client.lpush(KEYS.start_ids, *[f"h{i}" for i in range(200)])

    async def steps():
        client = async_client(redis_url)
        leases = LeaseManager(client, KEYS, "pc1/1-a", 120)
        lost: list[bytes] = []
        try:
            entries = await leases.claim(200)

            async def record(entry: bytes) -> None:
                await leases.record(entry, entry.decode(), failed_json="{}")
                leases.forget(entry)

            for entry in entries:
                # The record goes out first, the renewal right after it, on another connection.
                results = await asyncio.gather(record(entry), leases.renew())
                lost += results[1]
            # A lease that really expired is still reported.
            redis_client.lpush(KEYS.start_ids, "x")
            (x,) = await leases.claim(1)
            redis_client.hset(KEYS.lease_owners, x, "someone-else")
            really = await leases.renew()
        finally:
            await client.aclose()
        return lost, really

    lost, really = asyncio.run(steps())
    assert lost == [] and really == [b"x"]
