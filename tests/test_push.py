"""Reading ID files, pushing hotel IDs, releasing leases and retrying failures, against a real Redis."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

import pytest

from hotelimages import claims, idfiles, push
from hotelimages.claims import FINISH_LUA
from hotelimages.keys import Keys
from tests.conftest import ROOT

KEYS = Keys()


def lines(text: str) -> list[str]:
    return io.StringIO(text).readlines()


def pending(client) -> list[str]:
    """The pending list in the order nodes will take it (they pop from the right)."""
    return [x.decode() for x in reversed(client.lrange(KEYS.start_ids, 0, -1))]


# ---------------------------------------------------------------- parsing


def test_parse_lines_skips_blanks_and_comments_and_numbers_lines():
    out = list(idfiles.parse_lines(lines("# ids\n7892470\n\n  42 \nbad/id\n"), "ids.txt"))
    assert out[0] == idfiles.Candidate("ids.txt", 2, "7892470", "7892470")
    assert out[1] == idfiles.Candidate("ids.txt", 4, "42", "42")
    assert isinstance(out[2], idfiles.Rejected)
    assert (out[2].source, out[2].line, out[2].value) == ("ids.txt", 5, "bad/id")
    assert len(out) == 3


def test_parse_lines_uses_the_given_pattern():
    out = list(idfiles.parse_lines(["123\n", "abc\n"], pattern=r"[0-9]+"))
    assert [type(x).__name__ for x in out] == ["Candidate", "Rejected"]


def test_parse_csv_reads_the_named_column_with_physical_line_numbers():
    text = 'name,hotel_id\n"Hotel ""A""",7892470\n"Two\nlines",55\nC,\n'
    out = list(idfiles.parse_csv(io.StringIO(text, newline=""), "hotel_id", "h.csv"))
    assert out[0] == idfiles.Candidate("h.csv", 2, "7892470", "7892470")
    assert out[1] == idfiles.Candidate("h.csv", 4, "55", "55")
    assert isinstance(out[2], idfiles.Rejected) and out[2].line == 5


def test_parse_csv_without_the_column_names_the_header():
    with pytest.raises(ValueError, match=r"no column 'id'.*\['name', 'hotel_id'\]"):
        list(idfiles.parse_csv(io.StringIO("name,hotel_id\nA,1\n"), "id", "h.csv"))


def test_parse_jsonl_normalises_numeric_ids_and_rejects_bad_records():
    text = (
        '{"hotel_id": 7892470, "images": [{"id": "1", "url": "http://x/1.jpg"}]}\n'
        "not json\n"
        '{"images": []}\n'
        '{"hotel_id": "9", "images": "nope"}\n'
        '{"hotel_id": "../x"}\n'
    )
    out = list(idfiles.parse_jsonl(lines(text), "l.jsonl"))
    assert out[0] == idfiles.Candidate(
        "l.jsonl", 1, "7892470", '{"hotel_id":"7892470","images":[{"id":"1","url":"http://x/1.jpg"}]}'
    )
    assert [(r.line, r.why.split(":")[0]) for r in out[1:]] == [
        (2, "malformed JSON"),
        (3, "expected a JSON object with a hotel_id"),
        (4, "'images' must be a list"),
        (5, "invalid hotel id '../x'"),
    ]


def test_entry_hotel_id_reads_bare_ids_and_json_records():
    assert claims.entry_hotel_id(b"7892470") == "7892470"
    assert claims.entry_hotel_id(b'{"hotel_id": 5, "images": []}') == "5"
    assert claims.entry_hotel_id(b"{broken") is None


# ---------------------------------------------------------------- load_ids


def test_load_ids_counts_every_kind_of_skip_and_keeps_input_order(redis_client):
    redis_client.hset(KEYS.manifests, "done1", "{}")
    redis_client.lpush(KEYS.start_ids, "queued1", json.dumps({"hotel_id": "queued2", "images": []}))
    redis_client.zadd(KEYS.leases, {"leased1": 9e9})
    text = "h1\ndone1\nh2\nqueued1\nh1\nqueued2\nleased1\nbad id\nh3\n../x\n"
    report = push.load_ids(redis_client, KEYS, idfiles.parse_lines(lines(text), "in.txt"), batch_size=2)
    assert (report.read, report.pushed, report.skipped_done, report.skipped_pending) == (10, 3, 1, 3)
    assert (report.skipped_duplicate, report.invalid) == (1, 2)
    assert [(r.line, r.value) for r in report.invalid_examples] == [(8, "bad id"), (10, "../x")]
    assert pending(redis_client) == ["queued1", '{"hotel_id": "queued2", "images": []}', "h1", "h2", "h3"]
    text_report = push.format_load_report(report)
    assert "in.txt:8: 'bad id'" in text_report and "pushed            3" in text_report


def test_load_ids_force_pushes_done_and_pending_but_not_duplicates(redis_client):
    redis_client.hset(KEYS.manifests, "a", "{}")
    redis_client.lpush(KEYS.start_ids, "b")
    report = push.load_ids(redis_client, KEYS, idfiles.parse_lines(["a\n", "b\n", "a\n"]), force=True)
    assert (report.pushed, report.skipped_done, report.skipped_pending, report.skipped_duplicate) == (2, 0, 0, 1)
    # Forced entries are records that make a node redo the hotel even though it is done.
    assert pending(redis_client) == ["b", '{"hotel_id":"a","force":true}', '{"hotel_id":"b","force":true}']


def test_load_ids_dry_run_writes_nothing(redis_client):
    redis_client.hset(KEYS.manifests, "a", "{}")
    report = push.load_ids(redis_client, KEYS, idfiles.parse_lines(["a\n", "b\n", "c\n"]), dry_run=True)
    assert (report.pushed, report.skipped_done, report.dry_run) == (2, 1, True)
    assert redis_client.keys("*") == [KEYS.manifests.encode()]


def test_load_ids_pushes_jsonl_records_and_skips_their_queued_ids(redis_client):
    redis_client.lpush(KEYS.start_ids, "2")
    text = '{"hotel_id": "1", "images": []}\n{"hotel_id": 2, "images": []}\n'
    report = push.load_ids(redis_client, KEYS, idfiles.parse_jsonl(lines(text)))
    assert (report.pushed, report.skipped_pending) == (1, 1)
    assert pending(redis_client) == ["2", '{"hotel_id":"1","images":[]}']


def test_load_600000_ids(redis_client):
    ids = [f"{7_000_000 + i}" for i in range(600_000)]
    started = time.monotonic()
    report = push.load_ids(redis_client, KEYS, idfiles.parse_lines(x + "\n" for x in ids))
    seconds = time.monotonic() - started
    assert report.pushed == 600_000
    assert redis_client.llen(KEYS.start_ids) == 600_000
    assert redis_client.rpop(KEYS.start_ids) == b"7000000"
    memory = redis_client.memory_usage(KEYS.start_ids)
    print(f"\npushed 600,000 IDs in {seconds:.2f}s ({600_000 / seconds:,.0f}/s); list ~{memory / 600_000:.1f} B/ID")
    again = push.load_ids(redis_client, KEYS, idfiles.parse_lines(x + "\n" for x in ids[:1000]))
    assert (again.pushed, again.skipped_pending) == (1, 999)  # the one popped above goes back on


# ---------------------------------------------------------------- leases of a dead owner, failures


def lease(client, entry: str, owner: str, deadline: float = 9e9) -> None:
    client.zadd(KEYS.leases, {entry: deadline})
    client.hset(KEYS.lease_owners, entry, owner)


def test_owner_matches_a_process_or_a_whole_node():
    assert claims.owner_matches("pc1/42-ab", "pc1")
    assert claims.owner_matches("pc1/42-ab", "pc1/42-ab")
    assert not claims.owner_matches("pc10/42-ab", "pc1")


def test_release_owner_requeues_dead_owners_and_spares_live_ones(redis_client):
    lease(redis_client, "1", "pc1/1-a")
    lease(redis_client, "2", "pc1/2-b")
    lease(redis_client, "3", "pc10/3-c")
    redis_client.hset(KEYS.node("pc1/2-b"), "pid", 2)
    dry = claims.release_owner(redis_client, KEYS, "pc1", dry_run=True)
    assert (dry.released, dry.live_skipped) == ({"pc1/1-a": 1}, {"pc1/2-b": 1})
    assert redis_client.llen(KEYS.start_ids) == 0
    report = claims.release_owner(redis_client, KEYS, "pc1")
    assert (report.released, report.total) == ({"pc1/1-a": 1}, 1)
    assert pending(redis_client) == ["1"]
    assert claims.release_owner(redis_client, KEYS, "pc1", force=True).released == {"pc1/2-b": 1}
    assert sorted(redis_client.hkeys(KEYS.lease_owners)) == [b"3"]
    assert redis_client.zrange(KEYS.leases, 0, -1) == [b"3"]
    # The owner's own acknowledgement now finds nothing, so the hotel is not acknowledged twice.
    finish = redis_client.register_script(FINISH_LUA)
    assert finish(keys=[KEYS.leases, KEYS.lease_owners, KEYS.start_ids], args=["pc1/1-a", 0, "1"]) == 0


def failure(client, hotel_id: str, reason: str, **extra) -> None:
    record = {"hotel_id": hotel_id, "reason": reason, "detail": "", "node": "pc1", "at": "2026-01-01T00:00:00Z"}
    client.hset(KEYS.failed, hotel_id, json.dumps({**record, **extra}))


def test_retry_failed_by_reason_and_all(redis_client):
    failure(redis_client, "1", "listing_http_503")
    failure(redis_client, "2", "listing_http_404")
    failure(redis_client, "3", "listing_http_503", entry='{"hotel_id":"3","images":[]}')
    redis_client.hset(KEYS.failed, "4", "not json")
    dry = claims.retry_failed(redis_client, KEYS, dry_run=True)
    assert dry.by_reason == {"listing_http_503": 2, "listing_http_404": 1, "unreadable": 1} and dry.moved == 0
    assert redis_client.hlen(KEYS.failed) == 4
    some = claims.retry_failed(redis_client, KEYS, reasons=["listing_http_503"])
    assert (some.matched, some.moved) == (2, 2)
    assert sorted(pending(redis_client)) == ["1", '{"hotel_id":"3","images":[]}']
    rest = claims.retry_failed(redis_client, KEYS)
    assert (rest.matched, rest.moved) == (2, 2)
    assert redis_client.hlen(KEYS.failed) == 0
    assert redis_client.llen(KEYS.start_ids) == 4


# ---------------------------------------------------------------- the scripts as processes


def run_script(name: str, redis_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "REDIS_URL": redis_url}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args],
        input=stdin, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=False,
    )


def test_push_ids_script_reads_stdin_and_csv(redis_url, redis_client, tmp_path):
    result = run_script("push_ids", redis_url, stdin="1\n2\n2\nx/y\n")
    assert result.returncode == 0, result.stderr
    assert "pushed            2" in result.stdout and "<stdin>:4: 'x/y'" in result.stdout
    csv_file = tmp_path / "h.csv"
    csv_file.write_text("\ufeffid,name\n3,A\n1,B\n", encoding="utf-8")
    result = run_script("push_ids", redis_url, "--csv-column", "id", str(csv_file))
    assert "pushed            1" in result.stdout and "skipped pending   1" in result.stdout, result.stdout
    assert pending(redis_client) == ["1", "2", "3"]


def test_push_ids_script_never_prints_the_password(redis_url):
    secret_url = redis_url.replace("redis://", "redis://user:s3cret@")
    result = run_script("push_ids", secret_url, "--dry-run", stdin="1\n")
    assert "s3cret" not in result.stdout + result.stderr


def test_requeue_and_retry_failed_scripts(redis_url, redis_client):
    lease(redis_client, "1", "pc1/1-a", deadline=1)
    lease(redis_client, "2", "pc2/1-a")
    failure(redis_client, "3", "timeout")
    result = run_script("requeue", redis_url, "--all-of-owner", "pc2")
    assert result.returncode == 0, result.stderr
    assert "expired leases requeued: 1" in result.stdout and "released 1 leases of pc2/1-a" in result.stdout
    result = run_script("retry_failed", redis_url, "--reason", "timeout")
    assert result.returncode == 0, result.stderr
    assert "1  timeout" in result.stdout and "moved 1 of 1" in result.stdout
    assert sorted(pending(redis_client)) == ["1", "2", "3"]


def test_ordered_pusher_keeps_order_and_hands_errors_to_the_caller():
    from hotelimages.push import _OrderedPusher

    pushed: list[int] = []

    def push(batch):
        if batch == [3]:
            raise ConnectionError("redis went away")
        pushed.append(batch[0])

    pusher = _OrderedPusher(push)
    for n in (1, 2):
        pusher.submit([n])
    pusher.close()
    assert pushed == [1, 2]

    pusher = _OrderedPusher(push)
    with pytest.raises(ConnectionError):
        for n in range(1, 10):
            pusher.submit([n])
        pusher.close()
    assert pushed[2:] == [1, 2]  # nothing after the failed batch
