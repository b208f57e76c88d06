"""convert_done: a Redis filled by the old version (full manifests) converted in place (issue 13.1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from hashlib import sha1

from hotelimages import claims
from hotelimages import manifest as mf
from hotelimages.convert_done import convert_done_records
from hotelimages.keys import Keys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = Keys()
RECORDS = 100_000


def old_manifest(i: int) -> str:
    """A full manifest as the old version stored it (two photos keep 100,000 of them quick to write)."""
    hid = str(5_000_000 + i)
    images = {"cover": [{"file": f"{i}1.jpg", "id": f"{i}1", "url": f"http://cdn.example/{hid}/1.jpg",
                         "bytes": 1000 + i % 7, "width": 8, "height": 8, "sha1": "0" * 40}],
              "interior": [{"file": f"{i}2.jpg", "id": f"{i}2", "url": f"http://cdn.example/{hid}/2.jpg",
                            "bytes": 2000, "width": 8, "height": 8, "sha1": "1" * 40}],
              "exterior": [], "reviews": [], "other": []}
    return mf.dumps({"schema": 1, "hotel_id": hid, "node": f"pc{i % 5}", "store": "/srv/store",
                     "dir": f"a/b/c/d/{hid}", "status": "complete", "images": images, "failed": [],
                     "started_at": "2026-11-30T08:00:00.000000Z", "finished_at": "2026-11-30T08:00:02.000000Z"})


def fill(client, count: int) -> dict[bytes, str]:
    values = {str(5_000_000 + i).encode(): old_manifest(i) for i in range(count)}
    items = list(values.items())
    for start in range(0, count, 5000):
        client.hset(KEYS.manifests, mapping=dict(items[start:start + 5000]))
    return values


def run_convert(redis_url: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, REDIS_URL=redis_url, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "convert_done"), *args], env=env,
                            stderr=subprocess.PIPE, text=True)


def test_conversion_of_100000_records_killed_halfway_and_rerun(redis_url, redis_client):
    values = fill(redis_client, RECORDS)
    redis_client.hset(KEYS.stats, mapping={"hotels/complete": RECORDS, "images/stored": 2 * RECORDS})
    stats_before = redis_client.hgetall(KEYS.stats)
    used_before = redis_client.info("memory")["used_memory"]

    proc = run_convert(redis_url, "--batch", "200")
    read = 0
    for line in proc.stderr:  # "read N, converted M" every 10,000 records
        if " read " in line and "converted" in line:
            read = int(line.split(" read ")[1].split(",")[0])
            if read >= RECORDS // 2:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    proc.stderr.close()
    assert RECORDS // 2 <= read < RECORDS, "the first run must be killed halfway"

    now = redis_client.hgetall(KEYS.manifests)
    assert len(now) == RECORDS
    converted = sum(mf.parse_done_record(v).version == 2 for v in now.values())
    assert 0 < converted < RECORDS
    for hid, value in now.items():  # each value is either untouched or exactly its compact record
        assert value.decode() in (values[hid], mf.done_record(mf.parse_done_record(values[hid]).manifest,
                                                              values[hid]))

    rerun = run_convert(redis_url)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-2000:]
    assert f"already compact {converted}" in err or f"converted {RECORDS - converted}," in err, err[-500:]

    after = redis_client.hgetall(KEYS.manifests)
    assert len(after) == RECORDS
    for hid, value in after.items():
        record = mf.parse_done_record(value)
        assert record.version == 2 and record.manifest is None
        assert record.sha1 == sha1(values[hid].encode()).hexdigest()  # still names the file on disk
        assert (record.images, record.status) == (2, "complete")
    assert redis_client.hgetall(KEYS.stats) == stats_before  # converting changes no counter
    assert redis_client.info("memory")["used_memory"] < used_before / 2

    # A third run finds nothing to do.
    report = convert_done_records(redis_client, KEYS)
    assert (report.read, report.converted, report.compact) == (RECORDS, 0, RECORDS)


def test_a_value_changed_since_it_was_read_is_left_alone(redis_client):
    old = old_manifest(1)
    redis_client.hset(KEYS.manifests, "5000001", old)
    scripts = claims.BoundScripts(redis_client, KEYS)
    compact = mf.done_record(mf.parse_done_record(old).manifest, old)
    redone = mf.done_record(mf.parse_done_record(old_manifest(2)).manifest)
    redis_client.hset(KEYS.manifests, "5000001", redone)  # the hotel was redone meanwhile
    assert scripts.run(claims.CONVERT_DONE, "5000001", sha1(old.encode()).hexdigest(), compact) == 0
    assert redis_client.hget(KEYS.manifests, "5000001").decode() == redone


def test_conversion_keeps_full_manifests_compressed_when_asked(redis_client):
    fill(redis_client, 50)
    report = convert_done_records(redis_client, KEYS, full=True, batch=7)
    assert (report.read, report.converted) == (50, 50)
    for hid, value in redis_client.hgetall(KEYS.manifests).items():
        assert mf.parse_done_record(value).manifest == mf.parse_done_record(old_manifest(int(hid) - 5_000_000)).manifest


def test_conversion_runs_while_nodes_record(redis_client):
    """Records written by this version meanwhile are compact already and are counted, not touched."""
    fill(redis_client, 10)
    new = mf.done_record(mf.parse_done_record(old_manifest(99)).manifest)
    redis_client.hset(KEYS.manifests, "new1", new)
    started = time.monotonic()
    report = convert_done_records(redis_client, KEYS)
    assert time.monotonic() - started < 60
    assert (report.converted, report.compact, report.unreadable) == (10, 1, 0)
    assert redis_client.hget(KEYS.manifests, "new1").decode() == new
