"""Merge at the job's size: the ledger of merged shards, the store lock, no-shard errors,
``--prefer newest``, and completing a killed merge (real processes where it matters)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support import ROOT, run_script
from test_pack_merge import images_only, jpeg, make_store, snapshot, tree, write_hotel

from hotelimages import manifest as manifest_format
from hotelimages import merging
from hotelimages.central_catalog import Catalog, default_catalog_path
from hotelimages.items import StoredImage
from hotelimages.manifest import MANIFEST_NAME, build_manifest, dumps
from hotelimages.merging import NoShards, ledger_path, lock_path, merge
from hotelimages.packing import pack, parse_size
from hotelimages.sharding import hotel_dir, image_relpath
from hotelimages.shards import sha1_file, shard_paths

HOTELS = [str(2001 + i) for i in range(10)]


@pytest.fixture()
def shards(tmp_path: Path) -> Path:
    store = make_store(tmp_path / "node", "n", HOTELS)
    out = tmp_path / "shards"
    assert len(pack(store, out, max_shard_bytes=parse_size("24K")).shards) > 2
    return out


def test_merged_shard_is_skipped_without_being_read_and_reverify_reads_it(shards: Path, tmp_path: Path):
    central = tmp_path / "central"
    first = merge([shards], central)
    assert first.ok and sorted(first.hotels_added) == HOTELS and not first.skipped
    ledger = [json.loads(line) for line in ledger_path(central).read_text().splitlines()]
    assert {e["name"] for e in ledger} == {p.name for p in shard_paths([shards])}
    assert all({"name", "size", "sha256", "merged_at"} <= set(e) for e in ledger)
    # Overwrite one shard with garbage of the same size and time: reading it would refuse it.
    victim = shard_paths([shards])[1]
    st = victim.stat()
    victim.write_bytes(b"\0" * st.st_size)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    before = snapshot(central)
    again = merge([shards], central)
    assert again.ok and again.merged and not again.changed and not again.verified
    assert sorted(again.skipped) == sorted(str(p) for p in shard_paths([shards]))
    assert again.hotels_unchanged == len(HOTELS)
    assert snapshot(central) == before
    reread = merge([shards], central, reverify=True)
    assert [(r.shard, r.reason) for r in reread.refused] == [(str(victim), "sha256_mismatch")]


def test_a_shard_touched_since_its_merge_is_verified_again(shards: Path, tmp_path: Path):
    central = tmp_path / "central"
    merge([shards], central)
    victim = shard_paths([shards])[0]
    victim.write_bytes(b"\0" * victim.stat().st_size)  # same size, new modification time
    report = merge([shards], central)
    assert [r.reason for r in report.refused] == ["sha256_mismatch"] and not report.merged


@pytest.mark.parametrize("where", ["empty", "missing"])
def test_no_shard_found_is_an_error_exit_2(tmp_path: Path, where: str):
    folder = tmp_path / "shards"
    if where == "empty":
        folder.mkdir()
    with pytest.raises(NoShards):
        merge([folder], tmp_path / "central")
    done = run_script("merge", folder, "--store", tmp_path / "central")
    assert done.returncode == 2, done.stdout + done.stderr
    assert ("no shard" if where == "empty" else "no such shard") in done.stderr
    assert not (tmp_path / "central").exists()


HOLD_LOCK = textwrap.dedent("""
    import sys, time
    from filelock import FileLock
    lock = FileLock(sys.argv[1], timeout=0)
    lock.acquire()
    print("locked", flush=True)
    time.sleep(120)
""")


def test_lock_keeps_a_second_merge_out_and_a_dead_holder_does_not(shards: Path, tmp_path: Path):
    central = tmp_path / "central"
    lock_path(central).parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock_path(central))], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        done = run_script("merge", shards, "--store", central, "--quiet")
        assert done.returncode == 2 and "another merge is using" in done.stderr, done.stdout + done.stderr
        assert not any(central.glob("?/?/?/?/*/" + MANIFEST_NAME))
    finally:
        holder.send_signal(signal.SIGKILL if os.name == "posix" else signal.SIGTERM)
        holder.wait(10)
    # The holder died without cleaning up: its lock file is still there, the OS released the lock.
    assert lock_path(central).exists()
    done = run_script("merge", shards, "--store", central, "--quiet")
    assert done.returncode == 0 and f"added {len(HOTELS)} hotels" in done.stdout, done.stdout + done.stderr


def test_two_concurrent_merges_do_not_both_add_the_hotels(tmp_path: Path):
    hotels = [str(3001 + i) for i in range(60)]
    store = make_store(tmp_path / "node", "n", hotels)
    out = tmp_path / "shards"
    pack(store, out, max_shard_bytes=parse_size("32K"))
    central = tmp_path / "central"
    command = [sys.executable, "scripts/merge", str(out), "--store", str(central), "--json", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]
    results = [(p.wait(60), p.stdout.read(), p.stderr.read()) for p in runs]
    for p in runs:
        p.stdout.close()
        p.stderr.close()
    added: list[str] = []
    for code, stdout, stderr in results:
        if code == 2:
            assert "another merge is using" in stderr
        else:
            assert code == 0, stderr
            added += json.loads(stdout)["hotels_added"]
    assert sorted(added) == hotels  # each hotel added exactly once, whoever got the lock
    with Catalog(default_catalog_path(central)) as catalog:
        assert catalog.summary().hotels == len(hotels)


def test_prefer_newest_replaces_a_forced_redo_and_keeps_history(tmp_path: Path):
    store = tmp_path / "node"
    write_hotel(store, "n", "1005", "2026-11-30T08:00:00.000000Z")
    old_files = set(images_only(tree(store)))
    pack(store, tmp_path / "first")
    central = tmp_path / "central"
    merge([tmp_path / "first"], central)
    # The hotel redone on purpose: one image changed, one gone, one new, a later finished_at.
    folder = store / hotel_dir("1005")
    manifest = manifest_format.read(folder / MANIFEST_NAME)[0]
    listed = manifest_format.listed_files(manifest)
    (store / listed[0].path).write_bytes(jpeg(77))
    (store / listed[1].path).unlink()
    new_rel = image_relpath("1005", "cover", "100599", "jpg")
    (store / new_rel).write_bytes(jpeg(99))
    keep = [listed[0].path, *[f.path for f in listed[2:]], new_rel]
    stored = [
        StoredImage(id=Path(p).stem, url=f"http://demo/{Path(p).name}", category=p.split("/")[-2],
                    file=Path(p).name, bytes=(store / p).stat().st_size, width=16, height=12,
                    sha1=sha1_file(store / p))
        for p in keep
    ]
    redo = build_manifest(hotel_id="1005", node="n", store=str(store), hotel_dir=hotel_dir("1005"), stored=stored,
                          failed=[], categories=("cover",), started_at="2026-12-02T08:00:00.000000Z",
                          finished_at="2026-12-02T08:00:01.000000Z")
    (folder / MANIFEST_NAME).write_text(dumps(redo))
    assert pack(store, tmp_path / "second").hotels_packed == ["1005"]

    kept_first = merge([tmp_path / "second"], central)  # default: the first copy stays
    assert [(c.hotel_id, c.replaced) for c in kept_first.conflicts] == [("1005", False)]
    assert set(images_only(tree(central))) == old_files

    done = run_script("merge", tmp_path / "second", "--store", central, "--prefer", "newest", "--reverify",
                      "--json", "--quiet")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert [(c["hotel_id"], c["replaced"]) for c in report["conflicts"]] == [("1005", True)]
    assert images_only(tree(central)) == images_only(tree(store))  # new files in place, the removed one gone
    assert not list(central.rglob("*.part"))
    central_manifest = json.loads((central / hotel_dir("1005") / MANIFEST_NAME).read_text())
    assert central_manifest["finished_at"] == "2026-12-02T08:00:01.000000Z"
    assert [(s["finished_at"][:10], s["kept"]) for s in central_manifest["sources"]] == [
        ("2026-11-30", False), ("2026-12-02", True)
    ]
    with Catalog(default_catalog_path(central)) as catalog:
        (conflict,) = catalog.conflicts()
        assert conflict["kept"] == {"node": "n", "shard": Path(report["shards"][0]).name}
        assert len(conflict["others"]) == 1
        (record,) = catalog.hotels(["1005"])
        assert record.images == len(keep)
    # An older copy never replaces a newer one.
    older = merge([tmp_path / "first"], central, prefer="newest", reverify=True)
    assert older.hotels_unchanged == 1 and not older.conflicts and older.files_written == 0
    assert images_only(tree(central)) == images_only(tree(store))


KILL_AT_THIRD_RENAME = textwrap.dedent("""
    import os, signal, sys
    calls = 0
    real_replace = os.replace
    def replace(src, dst, *args, **kwargs):
        global calls
        if str(src).endswith(".part") and "/.hotelimages/" not in str(dst):
            calls += 1
            if calls == 3:
                os.kill(os.getpid(), signal.SIGKILL)  # after the file was written, before its rename
        return real_replace(src, dst, *args, **kwargs)
    os.replace = replace
    from hotelimages.merging import merge
    merge([sys.argv[1]], sys.argv[2])
""")


@pytest.mark.skipif(os.name != "posix", reason="kills itself with SIGKILL")
def test_killed_merge_is_completed_by_a_rerun_on_a_nearly_full_disk(tmp_path: Path, monkeypatch):
    hotels = [str(4001 + i) for i in range(3)]
    store = make_store(tmp_path / "node", "n", hotels)
    out = tmp_path / "shards"
    pack(store, out)
    (shard,) = shard_paths([out])
    central = tmp_path / "central"
    killed = subprocess.run([sys.executable, "-c", KILL_AT_THIRD_RENAME, str(shard), str(central)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    leftovers = list(central.rglob(".*.part"))
    written = [p for p in central.rglob("*.jpg")]
    assert leftovers and len(written) == 2 and not ledger_path(central).exists()

    needed_all = sum(len(v) for v in images_only(tree(store)).values())
    already = sum(p.stat().st_size for p in written)
    free = needed_all - already + 100  # room for what is left, not for all of it again
    assert free < needed_all
    monkeypatch.setattr(merging, "_free_bytes", lambda path: free)
    report = merge([out], central)
    assert report.ok and report.merged and sorted(report.hotels_added) == hotels
    assert report.files_unchanged == 2 and report.temp_files_removed == len(leftovers)
    assert not list(central.rglob("*.part"))
    assert images_only(tree(central)) == images_only(tree(store))
    with Catalog(default_catalog_path(central)) as catalog:
        assert catalog.summary().hotels == len(hotels)

    monkeypatch.setattr(merging, "_free_bytes", lambda path: 10)
    (central / hotel_dir(hotels[0]) / MANIFEST_NAME).unlink()
    next((central / hotel_dir(hotels[0])).rglob("*.jpg")).unlink()
    with pytest.raises(OSError, match="not enough free space"):  # the check itself still counts what is missing
        merge([out], central, reverify=True)
