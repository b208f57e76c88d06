"""Counters that agree (issue 12.5): status, the progress line, the manifests and the catalogue.

A real node crawls hotels with failed images, hotels that fail as a whole and rejected IDs; then
some done hotels are redone with ``--force``. Every figure is then read four ways.
"""

from __future__ import annotations

import json
import re
from collections import Counter

from crawling import demo_server, run_crawl

from devtools import demo_hotels as catalogue
from hotelimages import central_catalog as catalog
from hotelimages import status
from hotelimages.idfiles import parse_lines
from hotelimages.keys import Keys
from hotelimages.manifest import STATUSES
from hotelimages.push import load_ids

KEYS = Keys()
FAULTS = "listing_404:7,image_404:5,image_html:11"
HOSTILE = ["a/b", "../x", "bad id"]
PROGRESS = re.compile(
    r"Progress: (?P<hotels>\d+) hotels done \(complete (?P<complete>\d+), partial (?P<partial>\d+), "
    r"failed (?P<failed>\d+), empty (?P<empty>\d+)\), (?P<failed_whole>\d+) failed as a whole, "
    r"(?P<rejected>\d+) rejected; (?P<images>\d+) images, [0-9.]+ MB; .*; (?P<images_failed>\d+) image failures"
)


def last_progress(log: str) -> dict[str, int]:
    found = PROGRESS.findall(log)
    assert found, log[-3000:]
    return dict(zip(PROGRESS.groupindex, map(int, found[-1]), strict=True))


def manifests_on_disk(store) -> dict[str, dict]:
    return {json.loads(p.read_text())["hotel_id"]: json.loads(p.read_text()) for p in store.rglob("manifest.json")}


def totals(manifests: dict[str, dict]) -> dict:
    return {
        "by_status": dict(Counter(m["status"] for m in manifests.values())),
        "images": sum(len(f) for m in manifests.values() for f in m["images"].values()),
        "bytes": sum(x["bytes"] for m in manifests.values() for f in m["images"].values() for x in f),
        "images_failed": sum(len(m["failed"]) for m in manifests.values()),
    }


def fleet_figures(client) -> dict:
    fleet = status.gather(client, KEYS)
    c = fleet.counter
    return {
        "done": fleet.done,
        "by_status": {s: c(f"hotels/{s}") for s in STATUSES if c(f"hotels/{s}")},
        "images": c("images/stored"), "bytes": c("images/bytes"), "images_failed": c("images/failed"),
        "failed_whole": fleet.failed_whole, "rejected": fleet.rejected, "queue_failed": fleet.failed_hotels,
        "text": status.render_text(fleet),
    }


def catalogue_figures(store, tmp_path) -> dict:
    path = tmp_path / "catalog.sqlite"
    catalog.rebuild(store, path)
    with catalog.Catalog(path, create=False) as cat:
        s = cat.summary()
    return {"hotels": s.hotels, "by_status": s.by_status, "images": s.images, "bytes": s.bytes,
            "images_failed": s.failed_images}


def test_status_progress_manifests_and_catalogue_agree(redis_client, redis_url, tmp_path):
    ids = catalogue.hotel_ids(70)
    faults = catalogue.parse_faults(FAULTS)
    whole = [h for h in ids if "listing_404" in catalogue.faults_for(h, faults)]
    store = tmp_path / "store"
    with demo_server(len(ids), FAULTS) as base_url:
        redis_client.lpush(KEYS.start_ids, *ids, *HOSTILE)
        first = run_crawl(redis_url, base_url, store, "node-count")
        assert first.returncode == 0, first.stderr[-3000:]

        on_disk = totals(manifests_on_disk(store))
        fleet = fleet_figures(redis_client)
        line = last_progress(first.stderr)
        cat = catalogue_figures(store, tmp_path)
        done = len(ids) - len(whole)
        assert whole and on_disk["images_failed"] and len(on_disk["by_status"]) >= 2  # the plan has each case

        # Done hotels, by status, images, bytes, failed images: four readings, one set of figures.
        assert fleet["done"] == line["hotels"] == cat["hotels"] == done
        assert fleet["by_status"] == on_disk["by_status"] == cat["by_status"]
        assert {s: line[s] for s in STATUSES if line[s]} == on_disk["by_status"]
        assert fleet["images"] == line["images"] == on_disk["images"] == cat["images"]
        assert fleet["bytes"] == on_disk["bytes"] == cat["bytes"]
        assert fleet["images_failed"] == line["images_failed"] == on_disk["images_failed"] == cat["images_failed"]
        # Hotels not done: the queue line's "failed" is the hotels line's "failed as a whole" + "rejected".
        assert fleet["failed_whole"] == line["failed_whole"] == len(whole)
        assert fleet["rejected"] == line["rejected"] == len(HOSTILE)
        assert fleet["queue_failed"] == len(whole) + len(HOSTILE) == redis_client.hlen(KEYS.failed)
        assert f"failed as a whole {len(whole)}  rejected {len(HOSTILE)}" in fleet["text"]

        # A forced redo of 15 done hotels: redone, and counted once.
        redo = [h for h in ids if h not in whole][:15]
        report = load_ids(redis_client, KEYS, parse_lines([h + "\n" for h in redo], "stdin", r"[0-9]+"), force=True)
        assert report.pushed == 15
        second = run_crawl(redis_url, base_url, store, "node-count")
        assert second.returncode == 0, second.stderr[-3000:]

    redone = {h: m for h, m in manifests_on_disk(store).items() if h in redo}
    again = fleet_figures(redis_client)
    line2 = last_progress(second.stderr)
    cat2 = catalogue_figures(store, tmp_path)
    after = totals(manifests_on_disk(store))
    # This run recorded 15 hotels; its images were downloaded or found up to date on disk (reused).
    reused = re.search(r"'hotelimages/images/uptodate': (\d+)", second.stderr)
    assert line2["hotels"] == 15
    assert line2["images"] + (int(reused.group(1)) if reused else 0) == totals(redone)["images"]
    assert again["done"] == cat2["hotels"] == done
    assert again["by_status"] == after["by_status"] == cat2["by_status"]
    assert again["images"] == after["images"] == cat2["images"] == on_disk["images"]  # not added twice
    assert again["bytes"] == after["bytes"] == cat2["bytes"]
    assert again["images_failed"] == after["images_failed"] == cat2["images_failed"]
    assert (again["failed_whole"], again["rejected"]) == (len(whole), len(HOSTILE))
