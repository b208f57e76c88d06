"""Reading ID files, pushing hotel IDs, releasing leases and retrying failures, against a real Redis."""

from __future__ import annotations

import io
import json
import sys
import time

import pytest
from support import pending_ids as pending
from support import run_cli, run_script

from hotelimages import claims, idfiles, push
from hotelimages.claims import FINISH_LUA
from hotelimages.keys import Keys

KEYS = Keys()


def lines(text: str) -> list[str]:
    return io.StringIO(text).readlines()


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


# ---------------------------------------------------------------- the commands


def stdin_of(monkeypatch, text: str) -> None:
    """What ``hotelimages push -`` reads, as bytes on stdin."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-8"))))


def test_push_command_reads_stdin_and_csv(redis_url, redis_client, tmp_path, capsys, monkeypatch):
    stdin_of(monkeypatch, "1\n2\n2\nx/y\n")
    result = run_cli(capsys, "push", "--redis-url", redis_url)
    assert result.code == 0, result.err
    assert "pushed            2" in result.out and "<stdin>:4: 'x/y'" in result.out
    csv_file = tmp_path / "h.csv"
    csv_file.write_text("\ufeffid,name\n3,A\n1,B\n", encoding="utf-8")
    result = run_cli(capsys, "push", "--redis-url", redis_url, "--csv-column", "id", csv_file)
    assert "pushed            1" in result.out and "skipped pending   1" in result.out, result.out
    assert pending(redis_client) == ["1", "2", "3"]


def test_push_command_takes_redis_url_from_the_environment_and_prints_json(redis_url, redis_client, tmp_path,
                                                                           capsys, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    ids = tmp_path / "ids.txt"
    ids.write_text("7\n8\nbad/id\n")
    result = run_cli(capsys, "push", "--json", ids)
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert (report["read"], report["pushed"], report["invalid"]) == (3, 2, 1)
    assert report["invalid_examples"][0]["value"] == "bad/id"
    assert pending(redis_client) == ["7", "8"]


def test_push_command_refuses_a_missing_file_with_a_usage_error(redis_url, redis_client, capsys):
    result = run_cli(capsys, "push", "--redis-url", redis_url, "no-such-file.txt")
    assert result.code == 2 and "no such file: no-such-file.txt" in result.err
    assert pending(redis_client) == []


def test_push_never_prints_the_password(redis_url, capsys, monkeypatch):
    secret_url = redis_url.replace("redis://", "redis://user:s3cret@")
    stdin_of(monkeypatch, "1\n")
    result = run_cli(capsys, "push", "--redis-url", secret_url, "--dry-run")
    assert "s3cret" not in result.out + result.err


def test_requeue_and_retry_failed_commands(redis_url, redis_client, capsys):
    lease(redis_client, "1", "pc1/1-a", deadline=1)
    lease(redis_client, "2", "pc2/1-a")
    failure(redis_client, "3", "timeout")
    result = run_cli(capsys, "requeue", "--redis-url", redis_url, "--all-of-owner", "pc2")
    assert result.code == 0, result.err
    assert "expired leases requeued: 1" in result.out and "released 1 leases of pc2/1-a" in result.out
    result = run_cli(capsys, "retry-failed", "--redis-url", redis_url, "--reason", "timeout")
    assert result.code == 0, result.err
    assert "1  timeout" in result.out and "moved 1 of 1" in result.out
    assert sorted(pending(redis_client)) == ["1", "2", "3"]


def test_requeue_and_retry_failed_json(redis_url, redis_client, capsys):
    lease(redis_client, "1", "pc1/1-a", deadline=1)
    failure(redis_client, "3", "timeout")
    failure(redis_client, "4", "listing_http_503")
    result = run_cli(capsys, "requeue", "--redis-url", redis_url, "--json")
    assert result.code == 0 and json.loads(result.out)["expired_requeued"] == 1
    result = run_cli(capsys, "retry-failed", "--redis-url", redis_url, "--dry-run", "--json")
    assert json.loads(result.out) == {"by_reason": {"timeout": 1, "listing_http_503": 1}, "matched": 2,
                                      "moved": 0, "dry_run": True}
    assert pending(redis_client) == ["1"]


def test_a_redis_that_is_down_is_exit_code_2(redis_url, capsys):
    dead = redis_url.rsplit(":", 1)[0] + ":1/0"  # nothing listens on port 1
    for command in ("requeue", "retry-failed"):
        result = run_cli(capsys, command, "--redis-url", dead)
        assert result.code == 2 and f"{command}: " in result.err, (command, result.err)


@pytest.mark.parametrize(("script", "args", "stdin", "expected"), [
    ("push_ids", [], "1\n2\n", "pushed            2"),
    ("requeue", [], "", "expired leases requeued: 0"),
    ("retry_failed", ["--dry-run"], "", "would move 0 failed hotels"),
])
def test_scripts_run_as_processes(redis_url, script, args, stdin, expected):
    result = run_script(script, *args, env={"REDIS_URL": redis_url}, stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout


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
