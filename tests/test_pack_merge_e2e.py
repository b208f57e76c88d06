"""Issue 5's proof with real crawls: two nodes crawl the demo server, pack, and merge onto one disk."""

from __future__ import annotations

import io
import tarfile

import pytest
from crawling import crawl_ids, demo_server, files_under

from devtools import demo_hotels as catalogue
from hotelimages.central_catalog import Catalog, default_catalog_path
from hotelimages.keys import Keys
from hotelimages.merging import merge
from hotelimages.packing import pack

KEYS = Keys()
IDS = catalogue.hotel_ids(40)


def crawl(redis_server: str, db: int, base_url: str, store, node: str, ids: list[str]) -> None:
    assert len(crawl_ids(redis_server, db, base_url, store, node, ids)) == len(ids)


@pytest.fixture(scope="module")
def stores(redis_server, tmp_path_factory):
    """Node A crawls hotels 0-24, node B 15-39 (overlap 15-24), a single node all 40."""
    root = tmp_path_factory.mktemp("packmerge")
    with demo_server(len(IDS)) as base_url:
        crawl(redis_server, 4001, base_url, root / "a", "node-a", IDS[:25])
        crawl(redis_server, 4002, base_url, root / "b", "node-b", IDS[15:])
        crawl(redis_server, 4003, base_url, root / "single", "node-single", IDS)
    shards = []
    for node in ("a", "b"):
        result = pack(root / node, root / f"out-{node}")
        assert len(result.hotels_packed) == 25
        shards += [s.path for s in result.shards]
    return root, shards


def test_merged_store_equals_a_single_node_crawl(stores):
    root, shards = stores
    central = root / "central"
    report = merge(shards, central)

    assert report.merged and not report.refused
    assert files_under(central) == files_under(root / "single")  # same paths, same bytes
    assert sorted(c.hotel_id for c in report.conflicts) == sorted(IDS[15:25])
    assert all(c.same_files for c in report.conflicts)
    with Catalog(default_catalog_path(central)) as cat:
        assert sorted(h.hotel_id for h in cat.hotels()) == sorted(IDS)
        assert cat.summary().hotels == len(IDS)

    again = merge(shards, central)
    assert again.files_written == 0 and again.manifests_written == 0 and not again.hotels_added


def test_flipped_byte_and_dotdot_member_are_refused_with_the_store_unchanged(stores, tmp_path):
    root, shards = stores
    central = tmp_path / "central"
    central.mkdir()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    bad = corrupt / shards[0].name
    data = bytearray(shards[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    for suffix in (".index.jsonl", ".sha256"):
        side = shards[0].with_name(shards[0].name + suffix)
        if side.exists():
            (corrupt / side.name).write_bytes(side.read_bytes())
    report = merge([bad], central)
    assert not report.merged and report.refused
    assert list(central.rglob("*.jpg")) == []

    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../evil.jpg")
        payload = b"x" * 10
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    report = merge([evil], central)
    assert not report.merged and report.refused
    assert not (tmp_path / "evil.jpg").exists()
    assert list(central.rglob("*.jpg")) == []
