"""Stalled, killed and stopped node processes never spoil a hotel: real Redis, HTTP server, processes.

- a process stopped (SIGSTOP) past its lease while an image was in flight, resumed after another
  process recorded the hotel, writes nothing into it (the recorded manifest's sha1s hold, pack takes it);
- what a process killed mid-hotel (SIGKILL) left in the store is never packed, and is cleaned when
  the hotel is next done;
- a listing whose ``next`` loops is caught on the first repeat;
- a second Ctrl+C stops at once and gives the hotels in flight back.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from crawling import recorded_manifest
from nodeprocs import Node, listing_server, wait_until

from devtools.demo import ROOT
from hotelimages.keys import Keys
from hotelimages.sharding import hotel_dir
from hotelimages.storage import TEMP_SUFFIX

KEYS = Keys()
SHORT_LEASE = ("HOTELS_LEASE_SECONDS=4", "HOTELS_HEARTBEAT_SECONDS=1")


def files_of(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file() and p.name != "manifest.json"}


def manifest_files(manifest: dict) -> dict[str, str]:
    return {f"{cat}/{e['file']}": e["sha1"] for cat, entries in manifest["images"].items() for e in entries}


def temp_files(store: Path) -> list[Path]:
    return [p for p in store.rglob(f"*{TEMP_SUFFIX}")]


def run_pack(store: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "pack"), str(store), "--out", str(out), "--json",
                           "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=120)


def packed_members(out: Path) -> list[str]:
    names: list[str] = []
    for shard in sorted(out.glob("*.tar*")):
        if shard.name.endswith(".tar"):
            with tarfile.open(shard) as tar:
                names += tar.getnames()
    return names


def test_a_process_stalled_past_its_lease_never_writes_into_the_hotel_another_recorded(
    tmp_path, redis_url, redis_client
):
    store = tmp_path / "store"
    redis_client.lpush(KEYS.start_ids, "h1")
    with listing_server("slow", slow_seconds=3) as srv:
        listing = f"{srv.url}/hotels/{{hotel_id}}/photos"
        stalled = Node(tmp_path, "stalled", redis_url, listing, store,
                       settings=(*SHORT_LEASE, "HOTELS_IDLE_CLOSE_SECONDS=3"))
        try:
            assert wait_until(lambda: srv.hits["/img/h1/slow1"] == 1, 60), stalled.log[-2000:]
            stalled.signal(signal.SIGSTOP)  # its image is in flight; the server answers meanwhile
            other = Node(tmp_path, "other", redis_url, listing, store,
                         settings=(*SHORT_LEASE, "HOTELS_IDLE_CLOSE_SECONDS=2"))
            assert other.wait(120) == 0, other.log[-3000:]
            assert redis_client.hexists(KEYS.manifests, "h1")
            stalled.signal(signal.SIGCONT)
            assert stalled.wait(120) == 0, stalled.log[-3000:]
        finally:
            stalled.signal(signal.SIGCONT) if stalled.proc.poll() is None else None
            stalled.stop()
    assert srv.hits["/img/h1/slow1"] == 2  # fetched by each process: two different bodies
    assert "the lease of this process expired" in stalled.log
    manifest = recorded_manifest(redis_client, "h1")  # the file whose sha1 Redis records
    folder = store / hotel_dir("h1")
    assert json.loads((folder / "manifest.json").read_bytes()) == manifest
    assert files_of(folder) == manifest_files(manifest)
    assert not temp_files(store)
    done = run_pack(store, tmp_path / "packed")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["hotels_packed"] == 1


def test_leftovers_of_a_killed_process_are_never_packed_and_are_cleaned_when_the_hotel_is_done(
    tmp_path, redis_url, redis_client
):
    store = tmp_path / "store"
    redis_client.lpush(KEYS.start_ids, "h1")
    folder = store / hotel_dir("h1")
    with listing_server("slow", slow_seconds=60) as srv:
        listing = f"{srv.url}/hotels/{{hotel_id}}/photos"
        killed = Node(tmp_path, "killed", redis_url, listing, store, settings=SHORT_LEASE)
        try:
            # The fast image is written (under a temporary name), the slow one is in flight: kill it.
            assert wait_until(lambda: bool(temp_files(store)) and srv.hits["/img/h1/slow1"] == 1, 60), killed.log
            killed.signal(signal.SIGKILL)
            killed.wait(30)
        finally:
            killed.stop()
        left = temp_files(store)
        assert left and not (folder / "manifest.json").exists()
        # A partial folder as a kill between two renames would leave it: a final name, no manifest.
        (folder / "interior").mkdir(parents=True, exist_ok=True)
        (folder / "interior" / "stale.jpg").write_bytes(b"left by a killed process")
        first = run_pack(store, tmp_path / "packed")
        assert first.returncode == 0, first.stdout + first.stderr
        assert json.loads(first.stdout)["hotels_packed"] == 0 and packed_members(tmp_path / "packed") == []

        srv.slow_seconds = 0.2
        again = Node(tmp_path, "again", redis_url, listing, store, settings=SHORT_LEASE)
        assert again.wait(120) == 0, again.log[-3000:]
    manifest = recorded_manifest(redis_client, "h1")  # the file whose sha1 Redis records
    assert manifest["status"] == "complete"
    assert not temp_files(store)
    assert files_of(folder) == manifest_files(manifest)  # the stale file is gone too
    second = run_pack(store, tmp_path / "packed")
    assert second.returncode == 0, second.stdout + second.stderr
    members = packed_members(tmp_path / "packed")
    rel = hotel_dir("h1")
    assert sorted(members) == sorted([f"{rel}/manifest.json", *(f"{rel}/{f}" for f in manifest_files(manifest))])


def test_a_looping_next_is_caught_on_the_first_repeat(tmp_path, redis_url, redis_client):
    with listing_server() as srv:
        for template, ids in (("/loop/{hotel_id}", ["s1", "s2"]), ("/loopab/{hotel_id}/a", ["ab1"])):
            redis_client.lpush(KEYS.start_ids, *ids)
            node = Node(tmp_path, template.split("/")[1], redis_url, srv.url + template, tmp_path / "store")
            assert node.wait(120) == 0, node.log[-3000:]
    failed = {k.decode(): json.loads(v) for k, v in redis_client.hgetall(KEYS.failed).items()}
    assert {k: v["reason"] for k, v in failed.items()} == {
        "s1": "listing_next_loop", "s2": "listing_next_loop", "ab1": "listing_next_loop"}
    # Each page fetched once: no request for a page already fetched.
    listing_hits = {p: n for p, n in srv.hits.items() if p.startswith("/loop")}
    assert listing_hits == {"/loop/s1": 1, "/loop/s2": 1, "/loopab/ab1/a": 1, "/loopab/ab1/b": 1}


def test_a_second_ctrl_c_stops_at_once_and_gives_the_hotels_back(tmp_path, redis_url, redis_client):
    ids = [f"h{i}" for i in range(20)]
    redis_client.lpush(KEYS.start_ids, *ids)
    with listing_server("slow", slow_seconds=120) as srv:
        node = Node(tmp_path, "ctrlc", redis_url, f"{srv.url}/hotels/{{hotel_id}}/photos", tmp_path / "store",
                    settings=("HOTELS_MAX_IN_FLIGHT=5", "HOTELS_STOP_GRACE_SECONDS=300"))
        try:
            assert wait_until(lambda: sum(n for p, n in srv.hits.items() if p.endswith("/slow1")) >= 5, 60)
            node.signal(signal.SIGINT)
            assert node.wait_for_log("no new claims; finishing 5 hotels in flight", 30), node.log[-2000:]
            node.signal(signal.SIGINT)
            second = time.monotonic()
            code = node.wait(60)
            took = time.monotonic() - second
        finally:
            node.stop()
    log = node.log
    assert took < 30, log[-2000:]  # at once, not after HOTELS_STOP_GRACE_SECONDS (300)
    assert code == 0  # stopped on request: nothing lost, nothing wrong with the node
    assert "Received SIGINT again: stopping now; 5 hotels in flight go back to the queue" in log
    assert "Send again to force" not in log and "shutting down gracefully" not in log
    assert "Returned 5 unfinished hotels to the queue" in log
    assert redis_client.zcard(KEYS.leases) == 0 and redis_client.hlen(KEYS.failed) == 0
    assert sorted(e.decode() for e in redis_client.lrange(KEYS.start_ids, 0, -1)) == sorted(ids)
