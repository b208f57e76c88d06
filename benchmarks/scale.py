"""The scale run (issue 13.4): the real job's structures, loopback only.

    python -m benchmarks --scale                              # every part
    python -m benchmarks --scale --scale-parts redis,ops      # some parts (each has its own flag)

Parts, in order (each prints its figures as it ends):

- ``redis``: 600,000 IDs pushed with ``scripts/push_ids``; then the done state of 600,000 hotels
  made through the code path that records a hotel: ``claims.CLAIM`` takes the entries under a
  lease and ``claims.RECORD`` stores each one's compact record (``manifest.done_record`` of a
  120-photo manifest) and acks it, pipelined 1,000 at a time. Redis ``used_memory`` per pending ID,
  per done hotel and for the whole job; 6,000 more hotels recorded failed.
- ``ops``: ``scripts/status``, ``scripts/requeue``, ``scripts/retry_failed`` and ``scripts/push_ids``
  (dedupe against the 600,000 done) timed as processes against those structures.
- ``crawl``: a real crawl of ``--crawl-hotels`` x ``--photos`` tiny photos (default 8,500 x 120 =
  1,020,000 files) by one node of ``--processes`` processes (one store, one NODE_ID), from the
  loopback static server: photos/s, CPU per photo, RSS at 10/50/100%, Redis per done hotel.
- ``pack``: pack and merge of the crawled store, and a second merge, through
  ``benchmarks.scale_merge`` (files/s, MB/s, peak RSS); skipped if that module is absent.
- ``catalog``: a catalogue of 600,000 hotels (written with ``Catalog.upsert``), then
  ``scripts/catalog where``, ``summary`` and ``hotels --format tsv`` timed as processes.
- ``shards``: entries per folder at each level of the crawled store, and computed for 600,000 IDs.

Everything goes under ``--workdir``/scale; the crawled store is deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import redis

from benchmarks import corpus as cp
from benchmarks.configs import ROOT, delete_outputs, node_crawl_args, settle_after_cleanup
from benchmarks.measure import run_processes
from benchmarks.memory import tiny_records
from benchmarks.report import MIB, rss_at_progress
from benchmarks.server import StaticServer
from devtools.demo import crawl_env
from devtools.localredis import LocalRedis
from hotelimages import claims
from hotelimages import manifest as mf
from hotelimages.central_catalog import Catalog
from hotelimages.keys import Keys
from hotelimages.sharding import hotel_dir

PARTS = ("redis", "ops", "crawl", "pack", "catalog", "shards")
CATEGORIES = ("cover", "exterior", "interior", "reviews")
FAILED_EXTRA = 6_000
LEASED_EXTRA = 5_000
OWNER = "scale-node-01/1-synth"


def say(text: str) -> None:
    print(text, flush=True)


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def job_ids(n: int) -> list[str]:
    return [str(10_000_000 + i) for i in range(n)]


def synthetic_manifest(hotel_id: str, photos: int = 120) -> dict[str, Any]:
    """What ``done_record`` reads of a 120-photo hotel (counts and bytes per category), ~190 KB a photo."""
    per = photos // len(CATEGORIES)
    return {
        "hotel_id": hotel_id, "node": "scale-node-01", "store": "/srv/hotelimages/store", "dir": hotel_dir(hotel_id),
        "status": "complete", "images": {c: [{"bytes": 190_000}] * per for c in CATEGORIES}, "failed": [],
        "finished_at": mf.utc_now(),
    }


def checkout_env() -> dict[str, str]:
    """The environment with this checkout first on the import path (scripts/ are thin CLI wrappers)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def timed_process(name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    m = run_processes([cmd], cwd=ROOT, env=env or checkout_env(), logs=[log], timeout=3600)
    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
    say(f"  {name:<34} {m.wall:7.2f} s wall, {m.cpu:6.2f} s CPU, exit {m.exit_codes[0]}   | {' / '.join(tail)[:150]}")
    return {"wall_s": m.wall, "cpu_s": m.cpu, "exit": m.exit_codes[0], "peak_rss": m.peak_rss_max, "tail": tail}


# ---------------------------------------------------------------- redis and ops


def record_done(client: redis.Redis, keys: Keys, ids: list[str], *, batch: int = 1000, failed: bool = False) -> None:
    """Claim ``ids`` (already pending, in order) and record each as done (or failed), as a node does."""
    scripts = claims.BoundScripts(client, keys)
    for _ in range(0, len(ids), batch):
        entries = scripts.run(claims.CLAIM, batch, 600, OWNER)
        pipe = client.pipeline(transaction=False)
        bound = claims.BoundScripts(pipe, keys)
        for entry in entries:
            hid = entry.decode()
            if failed:
                value = json.dumps({"hotel_id": hid, "reason": "listing_http_503", "detail": "synthetic",
                                    "node": "scale-node-01", "at": mf.utc_now()})
                bound.run(claims.RECORD, OWNER, entry, hid, "failed", value, 0, 0, 0, 0, "failed")
            else:
                m = synthetic_manifest(hid)
                value = mf.done_record(m, f"{hid}:manifest".encode())
                bound.run(claims.RECORD, OWNER, entry, hid, "manifest", value, 120, 120 * 190_000, 0, 0, "complete")
        pipe.execute()


def part_redis(out: Path, n: int, figures: dict) -> tuple[LocalRedis, Path]:
    server = LocalRedis(workdir=out / "redis").start()
    client = redis.Redis.from_url(server.url)
    keys = Keys()
    ids_file = out / f"ids-{n}.txt"
    ids_file.write_text("".join(f"{h}\n" for h in job_ids(n)))
    base = used_memory(client)
    push = timed_process(f"push_ids ({n:,} new IDs)", [sys.executable, str(ROOT / "scripts" / "push_ids"),
                         "--redis-url", server.url, str(ids_file)], out / "push1.log")
    pending = client.llen(keys.start_ids)
    after_push = used_memory(client)
    client.config_resetstat()
    started = time.monotonic()
    record_done(client, keys, job_ids(n))
    synth_s = time.monotonic() - started
    stats = client.info("commandstats")
    calls = sum(int(v["calls"]) for v in stats.values())
    usec = sum(int(v["usec"]) for v in stats.values())
    done = client.hlen(keys.manifests)
    after_done = used_memory(client)
    hash_bytes = int(client.memory_usage(keys.manifests, samples=0) or 0)
    encoding = client.object("encoding", keys.manifests)
    figures["redis"] = {
        "ids": n, "push": push, "pending": pending, "used_base": base, "used_after_push": after_push,
        "per_pending_id": (after_push - base) / max(pending, 1), "synth_s": synth_s, "done": done,
        "used_after_done": after_done, "per_done_hotel": (after_done - base) / max(done, 1),
        "manifests_hash_bytes": hash_bytes, "encoding": encoding.decode() if encoding else "",
        "record_sample": client.hget(keys.manifests, job_ids(1)[0]).decode(),
        "calls_per_hotel_synth": calls / max(done, 1), "redis_usec_per_hotel": usec / max(done, 1),
    }
    say(f"  {n:,} IDs: used_memory +{(after_push - base) / MIB:.1f} MiB = {(after_push - base) / pending:.1f} B per "
        f"pending ID")
    say(f"  {done:,} done hotels recorded through CLAIM + RECORD in {synth_s:.1f} s ({done / synth_s:,.0f}/s); "
        f"used_memory {after_done / MIB:.1f} MiB = {(after_done - base) / done:.1f} B per done hotel "
        f"(hotels:manifests {hash_bytes / done:.1f} B per field, {encoding.decode()})")
    say(f"  Redis CPU inside commands: {usec / max(done, 1):.1f} us per hotel (claim + record), "
        f"{calls / max(done, 1):.1f} commands per hotel counting those inside the scripts")
    say(f"  a record: {figures['redis']['record_sample']}")
    # 6,000 more hotels recorded failed (for retry_failed) and 5,000 more pending (for requeue).
    extra = [str(20_000_000 + i) for i in range(FAILED_EXTRA + LEASED_EXTRA)]
    client.lpush(keys.start_ids, *extra[:FAILED_EXTRA])
    record_done(client, keys, extra[:FAILED_EXTRA], failed=True)
    client.lpush(keys.start_ids, *extra[FAILED_EXTRA:])
    figures["redis"]["used_whole_job"] = used_memory(client)
    client.close()
    return server, ids_file


def part_ops(out: Path, server: LocalRedis, ids_file: Path, figures: dict) -> None:
    client = redis.Redis.from_url(server.url)
    keys = Keys()
    py = sys.executable
    ops: dict[str, Any] = {}
    ops["status"] = timed_process("status", [py, str(ROOT / "scripts" / "status"), "--redis-url", server.url],
                                  out / "status.log")
    ops["status_json"] = timed_process("status --json", [py, str(ROOT / "scripts" / "status"), "--json",
                                       "--redis-url", server.url], out / "status-json.log")
    # 5,000 leases that expire at once, then the sweep.
    claims.BoundScripts(client, keys).run(claims.CLAIM, LEASED_EXTRA, 1, "gone-node/9-dead")
    time.sleep(1.5)
    ops["requeue"] = timed_process("requeue (5,000 expired)", [py, str(ROOT / "scripts" / "requeue"),
                                   "--redis-url", server.url], out / "requeue.log")
    ops["retry_failed_dry"] = timed_process("retry_failed --dry-run (6,000)", [
        py, str(ROOT / "scripts" / "retry_failed"), "--dry-run", "--redis-url", server.url], out / "retry-dry.log")
    ops["retry_failed"] = timed_process("retry_failed (6,000)", [
        py, str(ROOT / "scripts" / "retry_failed"), "--redis-url", server.url], out / "retry.log")
    before = client.llen(keys.start_ids)
    ops["push_dedupe"] = timed_process("push_ids (the same IDs, all done)", [
        py, str(ROOT / "scripts" / "push_ids"), "--redis-url", server.url, str(ids_file)], out / "push2.log")
    ops["push_dedupe"]["pushed"] = client.llen(keys.start_ids) - before
    figures["ops"] = ops
    client.close()


# ---------------------------------------------------------------- crawl


def part_crawl(args: argparse.Namespace, out: Path, figures: dict) -> Path:
    hotels, photos = args.crawl_hotels, args.photos
    total = hotels * photos
    root = args.workdir / "corpus"
    cp.ensure_corpus(root, 0)  # tiny.jpg
    store = out / "store"
    shutil.rmtree(store, ignore_errors=True)
    with StaticServer(root, args.workdir, prefer=args.server) as server, \
            LocalRedis(workdir=out / "redis-crawl") as local_redis:
        client = redis.Redis.from_url(local_redis.url)
        keys = Keys()
        say(f"  {hotels:,} hotels x {photos} tiny photos = {total:,} files from {server.kind} at {server.base_url}; "
            f"one node, {args.processes} processes")
        records = tiny_records(total, server.base_url, per_hotel=photos)
        for i in range(0, len(records), 1000):
            client.lpush(keys.start_ids, *records[i:i + 1000])
        base = used_memory(client) - int(client.memory_usage(keys.start_ids, samples=0) or 0)
        samples: list[tuple[float, int, int]] = []
        last = [0.0]

        def on_sample(now: float, rss: int) -> None:
            if now - last[0] < 3.0:
                return
            last[0] = now
            done = int(client.hget(keys.stats, "images/stored") or 0)
            samples.append((now, done, rss))
            if len(samples) % 20 == 0:
                say(f"    {now:6.0f} s  {done:>9,}/{total:,} photos  RSS {rss / MIB:6.1f} MiB")

        env = crawl_env(local_redis.url, server.base_url, store, "scale-node-01")
        settings = {"LOG_LEVEL": "WARNING", **dict(s.split("=", 1) for s in args.node_set)}
        logs = [out / f"crawl{i}.log" for i in range(args.processes)]
        m = run_processes([[sys.executable, "-m", *node_crawl_args(settings)]] * args.processes, env=env, cwd=ROOT,
                          logs=logs, interval=0.5, on_sample=on_sample, timeout=6 * 3600)
        done = int(client.hget(keys.stats, "images/stored") or 0)
        if m.samples:
            samples.append((m.wall, done, m.samples[-1][1]))
        hotels_done = client.hlen(keys.manifests)
        per_hotel = (used_memory(client) - base) / max(hotels_done, 1)
        client.close()
    at = rss_at_progress(samples, total)
    figures["crawl"] = {
        "hotels": hotels, "photos": photos, "files": total, "stored": done, "hotels_done": hotels_done,
        "wall_s": m.wall, "cpu_s": m.cpu, "photos_per_s": done / m.wall,
        "cpu_ms_per_photo": 1000 * m.cpu / max(done, 1),
        "rss_at": {f"{k:.0%}": v for k, v in at.items()}, "peak_rss_sum": m.peak_rss_sum,
        "peak_rss_max": m.peak_rss_max, "exit_codes": m.exit_codes, "redis_per_done_hotel": per_hotel,
        "processes": args.processes,
    }
    say(f"  crawled {done:,}/{total:,} photos of {hotels_done:,} hotels in {m.wall:.0f} s: "
        f"{done / m.wall:,.0f} photos/s, "
        f"{1000 * m.cpu / max(done, 1):.2f} ms CPU per photo; exit codes {m.exit_codes}")
    say("  RSS (all processes) at " + ", ".join(
        f"{k:.0%}: {'-' if v is None else f'{v / MIB:.0f} MiB'}" for k, v in at.items())
        + f"; peak per process {m.peak_rss_max / MIB:.0f} MiB")
    say(f"  Redis used_memory per done hotel after the crawl (real records): {per_hotel:.0f} B")
    return store


# ---------------------------------------------------------------- pack and merge, catalogue, shards


PHASE_CODE = """
import json, sys, time
from pathlib import Path
phase, a, b, limit = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
t = time.monotonic()
if phase == "pack":
    from hotelimages.packing import pack
    r = pack(store=a, out=b, max_shard_bytes=limit)
    out = {"shards": len(r.shards), "members": r.files}
else:
    from hotelimages.merging import merge
    r = merge(shards=[a], central=b)
    out = {"files": r.files_written, "skipped": len(r.skipped), "verified": len(r.verified),
           "hotels_added": len(r.hotels_added), "ok": r.ok}
out["seconds"] = time.monotonic() - t
print(json.dumps(out))
"""


def run_phase(phase: str, a: Path, b: Path, limit: int, log: Path) -> dict[str, Any]:
    """One pack or merge in a process of its own: its seconds and its peak RSS (VmHWM, sampled)."""
    m = run_processes([[sys.executable, "-c", PHASE_CODE, phase, str(a), str(b), str(limit)]], cwd=ROOT,
                      env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, logs=[log], interval=0.5,
                      timeout=6 * 3600)
    lines = log.read_text(errors="replace").strip().splitlines()
    result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"error": lines[-3:]}
    return {**result, "wall_s": m.wall, "cpu_s": m.cpu, "peak_rss": m.peak_rss_max, "exit": m.exit_codes[0]}


def part_pack(store: Path, out: Path, figures: dict) -> None:
    try:
        from benchmarks import scale_merge  # noqa: F401, PLC0415 - the merge of issue 13.3 comes with it
    except ImportError:
        say("  skipped: benchmarks/scale_merge.py (the merge of issue 13.3) is not in this checkout")
        figures["pack"] = {"skipped": "no benchmarks.scale_merge"}
        return
    files = nbytes = 0
    for dirpath, _dirs, names in os.walk(store):
        for name in names:
            if name.endswith(".jpg"):
                files += 1
                nbytes += os.stat(os.path.join(dirpath, name)).st_size
    shards, central = out / "shards", out / "central"
    shutil.rmtree(shards, ignore_errors=True)
    shutil.rmtree(central, ignore_errors=True)
    # Shards cut at 22,000 members, as scale_merge does: a 4 GiB shard of ~190 KB photos.
    per_member = 2 * tarfile.BLOCKSIZE + -(-(nbytes // max(files, 1)) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    max_shard = 22_000 * per_member + tarfile.RECORDSIZE
    packed = run_phase("pack", store, shards, max_shard, out / "pack.log")
    merged = run_phase("merge", shards, central, 0, out / "merge.log")
    again = run_phase("merge", shards, central, 0, out / "merge2.log")
    figures["pack"] = {"files": files, "bytes": nbytes, "pack": packed, "merge": merged, "second_merge": again}
    for name, r in (("pack", packed), ("merge", merged), ("second merge", again)):
        say(f"  {name:<13} {r['wall_s']:8.1f} s  {files / r['wall_s']:9,.0f} files/s  "
            f"{nbytes / 1e6 / r['wall_s']:7.2f} MB/s  CPU {r['cpu_s']:.0f} s  peak RSS {r['peak_rss'] / MIB:6.1f} MiB  "
            + ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("seconds", "peak_rss", "wall_s", "cpu_s")))
    shutil.rmtree(shards, ignore_errors=True)
    shutil.rmtree(central, ignore_errors=True)


def part_catalog(out: Path, n: int, figures: dict) -> None:
    path = out / "catalog.sqlite"
    path.unlink(missing_ok=True)
    started = time.monotonic()
    with Catalog(path, "/srv/central") as catalog:
        for i, hid in enumerate(job_ids(n)):
            m = synthetic_manifest(hid)
            catalog.upsert(m, f"{i:040x}")
            if i % 50_000 == 49_999:
                catalog.commit()
    build_s = time.monotonic() - started
    size = path.stat().st_size
    say(f"  catalogue of {n:,} hotels written in {build_s:.0f} s: {size / 1e6:.1f} MB ({size / n:.0f} B per hotel)")
    py, cat = sys.executable, str(ROOT / "scripts" / "catalog")
    some = job_ids(n)[n // 2: n // 2 + 10]
    cats: dict[str, Any] = {"hotels": n, "bytes": size, "build_s": build_s}
    cats["where"] = timed_process("catalog where (10 IDs)", [py, cat, "--catalog", str(path), "where", *some],
                                  out / "cat-where.log")
    cats["summary"] = timed_process("catalog summary", [py, cat, "--catalog", str(path), "summary"],
                                    out / "cat-summary.log")
    tsv = out / "hotels.tsv"
    m = run_processes([[py, cat, "--catalog", str(path), "hotels", "--format", "tsv"]], cwd=ROOT, logs=[tsv],
                      env=checkout_env())
    rows = sum(1 for _ in tsv.open()) - 1
    cats["hotels_tsv"] = {"wall_s": m.wall, "cpu_s": m.cpu, "rows": rows, "peak_rss": m.peak_rss_max,
                          "exit": m.exit_codes[0]}
    say(f"  {'catalog hotels --format tsv':<34} {m.wall:7.2f} s wall, {m.cpu:6.2f} s CPU, {rows:,} rows, "
        f"peak RSS {m.peak_rss_max / MIB:.0f} MiB")
    with sqlite3.connect(path) as db:
        cats["rows"] = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # noqa: S608 - fixed names
                        for t in ("hotels", "categories", "sources")}
    figures["catalog"] = cats
    tsv.unlink(missing_ok=True)


def fanout(paths: list[str], depth: int) -> list[dict[str, float]]:
    """Per level: folders at that level and entries per folder (min, mean, max), from relative hotel dirs."""
    levels = []
    for level in range(depth + 1):
        children: dict[str, set[str]] = {}
        for p in paths:
            parts = p.split("/")
            children.setdefault("/".join(parts[:level]), set()).add(parts[level])
        sizes = [len(c) for c in children.values()]
        levels.append({"level": level, "folders": len(sizes), "min": min(sizes), "mean": sum(sizes) / len(sizes),
                       "max": max(sizes)})
    return levels


def part_shards(store: Path | None, n: int, figures: dict) -> None:
    depth = 4
    computed = fanout([hotel_dir(h) for h in job_ids(n)], depth)
    out: dict[str, Any] = {"computed": computed}
    if store is not None and store.exists():
        dirs = [p.parent.relative_to(store).as_posix() for p in store.glob("*/*/*/*/*/manifest.json")]
        out["crawled"] = fanout(dirs, depth) if dirs else []
        out["crawled_hotels"] = len(dirs)
    figures["shards"] = out
    for name in ("computed", "crawled"):
        for lv in out.get(name, []):
            what = "hotel folders" if lv["level"] == depth else "sub-folders"
            say(f"  {name:<8} level {lv['level']}: {lv['folders']:>6,} folders, {what} per folder "
                f"min {lv['min']}, mean {lv['mean']:.1f}, max {lv['max']}")


# ---------------------------------------------------------------- the run


def run_scale(args: argparse.Namespace) -> int:
    parts = [p.strip() for p in args.scale_parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        say(f"bench --scale: unknown part(s) {sorted(unknown)}; known: {', '.join(PARTS)}")
        return 2
    out = args.workdir / "scale"
    out.mkdir(parents=True, exist_ok=True)
    settle_after_cleanup(args.workdir)
    figures: dict[str, Any] = {"command": " ".join(["python -m benchmarks", *sys.argv[1:]]),
                               "load_before": os.getloadavg(), "nproc": os.cpu_count(), "timings": {}}
    say(f"bench --scale: parts {','.join(parts)}; {os.cpu_count()} CPUs, load {os.getloadavg()}")
    server = None
    store = out / "store"
    started = time.monotonic()
    try:
        for part in PARTS:
            if part not in parts:
                continue
            t0 = time.monotonic()
            say(f"[{part}]")
            if part == "redis":
                server, ids_file = part_redis(out, args.scale_hotels, figures)
            elif part == "ops":
                if server is None:
                    say("  skipped: needs the redis part in the same run")
                    continue
                part_ops(out, server, ids_file, figures)
            elif part == "crawl":
                store = part_crawl(args, out, figures)
            elif part == "pack":
                if store.exists():
                    part_pack(store, out, figures)
                else:
                    say("  skipped: no crawled store (run the crawl part, with --keep to reuse it)")
            elif part == "catalog":
                part_catalog(out, args.scale_hotels, figures)
            elif part == "shards":
                part_shards(store if store.exists() else None, args.scale_hotels, figures)
            figures["timings"][part] = time.monotonic() - t0
            say(f"  ({part}: {figures['timings'][part]:.0f} s)")
            if args.json:
                args.json.write_text(json.dumps(figures, indent=1, default=str))
    finally:
        if server is not None:
            server.close()
        if store.exists() and not args.keep:
            delete_outputs(args.workdir, store)
    figures["total_s"] = time.monotonic() - started
    figures["load_after"] = os.getloadavg()
    say(f"bench --scale: {figures['total_s']:.0f} s in all; load after {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1, default=str))
    return 0
