"""Packing node stores into shards, merging them into a central store, and the catalogue.

Two synthetic node stores (as two crawls of the same demo server would leave them:
overlapping hotels have byte-identical files) and a single-node store with every
hotel are built with real JPEG bytes at the sharded paths and real manifests.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from PIL import Image
from support import run_cli, run_script

from hotelimages.central_catalog import Catalog, default_catalog_path, rebuild
from hotelimages.items import FailedImage, StoredImage
from hotelimages.manifest import MANIFEST_NAME, build_manifest, dumps
from hotelimages.merging import ShardRefused, check_member_name, merge, verify_shard
from hotelimages.packing import pack, parse_size, shard_paths
from hotelimages.sharding import hotel_dir, image_relpath

CATEGORIES = ("cover", "exterior", "interior", "reviews")
ALL_HOTELS = [str(1001 + i) for i in range(12)]
NODE_A = ALL_HOTELS[:8]
NODE_B = ALL_HOTELS[4:]
OVERLAP = sorted(set(NODE_A) & set(NODE_B))
PARTIAL = "1003"  # one image failed
EMPTY = "1010"  # listing without images


def jpeg(seed: int) -> bytes:
    img = Image.new("RGB", (16, 12), ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def write_hotel(store: Path, node: str, hotel_id: str, finished_at: str) -> None:
    """A settled hotel as the crawler leaves it: images at their sharded paths, then its manifest."""
    stored: list[StoredImage] = []
    failed: list[FailedImage] = []
    count = 0 if hotel_id == EMPTY else 2 + int(hotel_id) % 4
    for i in range(count):
        category = CATEGORIES[i % len(CATEGORIES)]
        image_id = f"{hotel_id}{i:02d}"
        data = jpeg(int(image_id))
        rel = image_relpath(hotel_id, category, image_id, "jpg")
        (store / rel).parent.mkdir(parents=True, exist_ok=True)
        (store / rel).write_bytes(data)
        stored.append(StoredImage(
            id=image_id, url=f"http://demo/img/{image_id}.jpg", category=category, file=f"{image_id}.jpg",
            bytes=len(data), width=16, height=12, sha1=hashlib.sha1(data).hexdigest(),
        ))
    if hotel_id == PARTIAL:
        failed.append(FailedImage(id="999", url="http://demo/img/999.jpg", category="cover", reason="http_404"))
    folder = hotel_dir(hotel_id)
    manifest = build_manifest(
        hotel_id=hotel_id, node=node, store=str(store), hotel_dir=folder, stored=stored, failed=failed,
        categories=CATEGORIES, started_at=finished_at, finished_at=finished_at,
    )
    (store / folder).mkdir(parents=True, exist_ok=True)
    (store / folder / MANIFEST_NAME).write_text(dumps(manifest), encoding="utf-8")


def make_store(store: Path, node: str, hotels: list[str], finished_at: str = "2026-11-30T08:00:00.000000Z") -> Path:
    for hotel_id in hotels:
        write_hotel(store, node, hotel_id, finished_at)
    return store


def tree(store: Path, with_state: bool = False) -> dict[str, bytes]:
    """Every file under a store by relative POSIX path (state folder excluded unless asked)."""
    return {
        p.relative_to(store).as_posix(): p.read_bytes()
        for p in sorted(store.rglob("*"))
        if p.is_file() and (with_state or ".hotelimages" not in p.relative_to(store).parts)
    }


def snapshot(store: Path) -> dict[str, tuple[bytes, int]]:
    """Everything under a folder, state included, with modification times: to prove nothing was touched."""
    if not store.exists():
        return {}
    return {p.relative_to(store).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(store.rglob("*")) if p.is_file()}


def images_only(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if not k.endswith("/" + MANIFEST_NAME)}


def manifest_content(data: bytes) -> dict:
    m = json.loads(data)
    return {k: m[k] for k in ("hotel_id", "dir", "status", "images", "failed")}


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("nodes")
    return {
        "a": make_store(base / "node-a", "a", NODE_A, "2026-11-30T08:00:00.000000Z"),
        "b": make_store(base / "node-b", "b", NODE_B, "2026-11-30T09:00:00.000000Z"),
        "single": make_store(base / "single", "single", ALL_HOTELS),
    }


@pytest.fixture(scope="module")
def packed(stores: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both nodes packed into small shards, so each node gives several."""
    base = tmp_path_factory.mktemp("shards")
    out = {}
    for node in ("a", "b"):
        out[node] = base / node
        result = pack(stores[node], out[node], max_shard_bytes=parse_size("24K"))
        assert len(result.shards) > 1
        assert sorted(result.hotels_packed) == sorted(NODE_A if node == "a" else NODE_B)
    return out


@pytest.fixture(scope="module")
def merged(packed: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    central = tmp_path_factory.mktemp("central") / "store"
    report = merge([packed["a"], packed["b"]], central)
    return central, report


def test_parse_size():
    assert parse_size("4G") == 4 * 1024**3
    assert parse_size("500MiB") == 500 * 1024**2
    assert parse_size("1.5k") == 1536
    assert parse_size("123") == 123
    with pytest.raises(ValueError):
        parse_size("lots")


def test_shards_have_index_and_sha256(packed: dict[str, Path]):
    shard_of_hotel: dict[str, set[str]] = {}
    for shard in shard_paths([packed["a"]]):
        digest = Path(f"{shard}.sha256").read_text().split()[0]
        assert digest == hashlib.sha256(shard.read_bytes()).hexdigest()
        index = [json.loads(line) for line in Path(f"{shard}.index.jsonl").read_text().splitlines()]
        with tarfile.open(shard) as tar:
            members = tar.getmembers()
        assert [m.name for m in members] == [e["path"] for e in index]
        assert all(m.isreg() for m in members)
        assert {e.keys() == {"path", "bytes", "sha1", "hotel_id"} for e in index} == {True}
        assert shard.stat().st_size <= 24 * 1024
        # A hotel lies whole in one shard, its manifest last.
        hotels = {e["hotel_id"] for e in index}
        for hotel_id in hotels:
            shard_of_hotel.setdefault(hotel_id, set()).add(shard.name)
            paths = [e["path"] for e in index if e["hotel_id"] == hotel_id]
            assert paths[-1] == f"{hotel_dir(hotel_id)}/{MANIFEST_NAME}"
    assert sorted(shard_of_hotel) == NODE_A
    assert all(len(names) == 1 for names in shard_of_hotel.values())


def test_merge_equals_single_node_crawl(stores: dict[str, Path], merged):
    central, report = merged
    assert report.ok and report.merged and report.changed
    assert sorted(report.hotels_added) == ALL_HOTELS
    single, got = tree(stores["single"]), tree(central)
    assert images_only(got) == images_only(single)  # same paths, same bytes
    assert got.keys() == single.keys()
    for path in single:
        if path.endswith(MANIFEST_NAME):
            assert manifest_content(got[path]) == manifest_content(single[path])
    assert not list(central.rglob(".*.part"))


def test_central_manifests_record_store_node_and_conflicts(merged):
    central, report = merged
    assert sorted(c.hotel_id for c in report.conflicts) == OVERLAP
    assert all(c.kept_node == "a" and c.other_node == "b" and c.same_files for c in report.conflicts)
    for hotel_id in ALL_HOTELS:
        m = json.loads((central / hotel_dir(hotel_id) / MANIFEST_NAME).read_text())
        assert m["store"] == central.resolve().as_posix()
        expected_nodes = ["a", "b"] if hotel_id in OVERLAP else ["a" if hotel_id in NODE_A else "b"]
        assert m["node"] == expected_nodes[0]
        assert [s["node"] for s in m["sources"]] == expected_nodes


def test_catalogue_has_every_hotel(stores: dict[str, Path], merged):
    central, _ = merged
    with Catalog(default_catalog_path(central), create=False) as catalog:
        records = {r.hotel_id: r for r in catalog.hotels()}
        assert sorted(records) == ALL_HOTELS
        for hotel_id, record in records.items():
            manifest = json.loads((stores["single"] / hotel_dir(hotel_id) / MANIFEST_NAME).read_text())
            assert record.path == f"{central.resolve().as_posix()}/{hotel_dir(hotel_id)}"
            assert record.status == manifest["status"]
            for category, files in manifest["images"].items():
                assert record.categories[category].images == len(files)
                assert record.categories[category].bytes == sum(f["bytes"] for f in files)
            assert record.conflict == (hotel_id in OVERLAP)
        summary = catalog.summary()
        assert summary.hotels == len(ALL_HOTELS)
        assert summary.images == sum(len(images_only(tree(stores["single"]))) for _ in [0])
        assert summary.bytes == sum(len(v) for v in images_only(tree(stores["single"])).values())
        assert summary.conflicts == len(OVERLAP)
        assert summary.by_status == {"complete": 10, "empty": 1, "partial": 1}
        assert sorted(c["hotel_id"] for c in catalog.conflicts()) == OVERLAP


def test_catalogue_rebuild_matches(merged, tmp_path: Path):
    central, _ = merged
    rebuilt = tmp_path / "rebuilt.sqlite"
    assert rebuild(central, rebuilt) == len(ALL_HOTELS)
    with Catalog(default_catalog_path(central)) as a, Catalog(rebuilt) as b:
        assert [r.to_dict() for r in a.hotels()] == [r.to_dict() for r in b.hotels()]


def test_second_merge_is_a_noop(packed: dict[str, Path], merged):
    central, _ = merged
    before = snapshot(central)
    report = merge([packed["a"], packed["b"]], central)
    assert report.ok and report.merged and not report.changed
    assert report.hotels_added == [] and report.conflicts == [] and report.files_written == 0
    assert report.hotels_unchanged == len(NODE_A) + len(NODE_B)
    assert snapshot(central) == before


def copy_shard(shard: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in ("", ".sha256", ".index.jsonl"):
        shutil.copy2(f"{shard}{suffix}", folder / f"{shard.name}{suffix}")
    return folder / shard.name


@pytest.fixture()
def central_copy(merged, tmp_path: Path) -> Path:
    """A populated central store the test may damage."""
    central = tmp_path / "central"
    shutil.copytree(merged[0], central)
    return central


@pytest.mark.parametrize("where", ["middle", "header"])
def test_flipped_byte_is_refused(packed: dict[str, Path], tmp_path: Path, central_copy: Path, where: str):
    shard = copy_shard(shard_paths([packed["b"]])[0], tmp_path / "bad")
    data = bytearray(shard.read_bytes())
    data[len(data) // 2 if where == "middle" else 100] ^= 0x01
    shard.write_bytes(bytes(data))
    for central in (central_copy, tmp_path / "empty"):
        before = snapshot(central)
        report = merge([shard], central)
        assert not report.ok and not report.merged
        assert [r.reason for r in report.refused] == ["sha256_mismatch"]
        assert "corrupt" in report.refused[0].message
        assert snapshot(central) == before
    assert not (tmp_path / "empty").exists()


def test_one_bad_shard_stops_the_merge_unless_keep_going(packed: dict[str, Path], tmp_path: Path):
    good = shard_paths([packed["a"]])[0]
    bad = copy_shard(shard_paths([packed["a"]])[1], tmp_path / "bad")
    Path(f"{bad}.sha256").unlink()
    central = tmp_path / "central"
    report = merge([good, bad], central)
    assert [r.reason for r in report.refused] == ["incomplete"] and not central.exists()
    report = merge([good, bad], central, keep_going=True)
    assert report.merged and report.hotels_added and [r.reason for r in report.refused] == ["incomplete"]


def test_truncated_shard_is_refused(packed: dict[str, Path], tmp_path: Path):
    shard = copy_shard(shard_paths([packed["a"]])[0], tmp_path / "cut")
    shard.write_bytes(shard.read_bytes()[:5000])
    with pytest.raises(ShardRefused) as exc:
        verify_shard(shard, tmp_path / "central")
    assert exc.value.reason == "sha256_mismatch"


def hand_made_shard(folder: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """A tar with the given members and a correct index and sha256, so only the members can be at fault."""
    folder.mkdir(parents=True, exist_ok=True)
    shard = folder / "evil.tar"
    index = []
    with tarfile.open(shard, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                index.append({"path": info.name, "bytes": len(data), "sha1": hashlib.sha1(data).hexdigest(),
                              "hotel_id": "1001"})
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    Path(f"{shard}.index.jsonl").write_text("".join(json.dumps(e) + "\n" for e in index))
    Path(f"{shard}.sha256").write_text(f"{hashlib.sha256(shard.read_bytes()).hexdigest()}  evil.tar\n")
    return shard


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "/tmp/evil", "C:/evil", "6/8/c/..\\evil"])
def test_dangerous_paths_are_refused(tmp_path: Path, central_copy: Path, name: str):
    shard = hand_made_shard(tmp_path / "shards", [(tarfile.TarInfo(name), b"owned")])
    before, outside = snapshot(central_copy), snapshot(tmp_path / "shards")
    report = merge([shard], central_copy)
    assert [r.reason for r in report.refused] == ["unsafe_member"], report.refused
    assert snapshot(central_copy) == before
    assert snapshot(tmp_path / "shards") == outside
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize(
    "kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE],
    ids=["symlink", "hardlink", "device", "fifo"],
)
def test_links_and_devices_are_refused(tmp_path: Path, central_copy: Path, kind: bytes):
    info = tarfile.TarInfo(f"{hotel_dir('1001')}/cover/link.jpg")
    info.type = kind
    info.linkname = "../../../../../../etc/passwd"
    shard = hand_made_shard(tmp_path / "shards", [(info, None)])
    before = snapshot(central_copy)
    report = merge([shard], central_copy)
    assert [r.reason for r in report.refused] == ["unsafe_member"]
    assert snapshot(central_copy) == before


def test_member_outside_its_hotel_is_refused(tmp_path: Path):
    """A safe-looking path that is not where the manifest puts the hotel's files is refused too."""
    stray = tarfile.TarInfo("stray.jpg")
    shard = hand_made_shard(tmp_path / "shards", [(stray, b"x")])
    with pytest.raises(ShardRefused) as exc:
        verify_shard(shard, tmp_path / "central")
    assert exc.value.reason == "bad_manifest"


def test_check_member_name_accepts_the_layout(tmp_path: Path):
    parts = check_member_name("6/8/c/2/7892470/cover/1.jpg", tmp_path)
    assert parts == ["6", "8", "c", "2", "7892470", "cover", "1.jpg"]
    for bad in ("", "a//b", "a/./b", "a/CON", "a/b:c", "a/b."):
        with pytest.raises(ValueError):
            check_member_name(bad, tmp_path)


def test_pack_resumes_and_honours_since(stores: dict[str, Path], tmp_path: Path):
    store = tmp_path / "node"
    shutil.copytree(stores["a"], store)
    out = tmp_path / "out"
    first = pack(store, out)
    assert len(first.shards) == 1 and sorted(first.hotels_packed) == NODE_A
    again = pack(store, out)
    assert again.shards == [] and again.hotels_already_packed == len(NODE_A)
    write_hotel(store, "a", "2001", "2026-12-01T00:00:00.000000Z")
    third = pack(store, out)
    assert third.hotels_packed == ["2001"]
    # Runs within the same second must not reuse a shard name.
    assert third.shards[0].path != first.shards[0].path
    assert sorted(verify_shard(first.shards[0].path, tmp_path / "c").hotels) == NODE_A
    since = pack(store, tmp_path / "since", since="2026-12-01")
    assert since.hotels_packed == ["2001"] and since.hotels_filtered == len(NODE_A)
    complete = pack(store, tmp_path / "complete", statuses=["complete"])
    assert PARTIAL not in complete.hotels_packed and len(complete.hotels_packed) == len(NODE_A)


def test_pack_skips_a_hotel_whose_files_do_not_match(stores: dict[str, Path], tmp_path: Path):
    store = tmp_path / "node"
    shutil.copytree(stores["a"], store)
    victim = store / image_relpath("1002", "cover", "100200", "jpg")
    victim.write_bytes(b"X" + victim.read_bytes()[1:])  # same size, other bytes
    result = pack(store, tmp_path / "out")
    assert [s.hotel_id for s in result.skipped] == ["1002"]
    assert sorted(result.hotels_packed) == sorted(set(NODE_A) - {"1002"})
    assert verify_shard(result.shards[0].path, tmp_path / "central").hotels


def test_compressed_shards_merge(stores: dict[str, Path], tmp_path: Path):
    result = pack(stores["a"], tmp_path / "out", compression="gz")
    assert result.shards[0].path.name.endswith(".tar.gz")
    report = merge([tmp_path / "out"], tmp_path / "central")
    assert sorted(report.hotels_added) == NODE_A
    assert images_only(tree(tmp_path / "central")) == images_only(tree(stores["a"]))


def test_pack_merge_and_catalog_commands(stores: dict[str, Path], tmp_path: Path, capsys):
    out, central = tmp_path / "out", tmp_path / "central"
    done = run_cli(capsys, "pack", stores["b"], "--out", out, "--max-size", "24K", "--quiet")
    assert done.code == 0, done.err
    assert "packed 8 hotels" in done.out
    done = run_cli(capsys, "merge", out, "--store", central, "--quiet")
    assert done.code == 0, done.err
    assert "added 8 hotels" in done.out
    done = run_cli(capsys, "merge", out, "--store", central, "--quiet")
    assert done.code == 0 and "nothing changed" in done.out, done.out + done.err
    done = run_cli(capsys, "catalog", "--store", central, "where", NODE_B[0], "nope")
    assert done.code == 1  # one hotel unknown
    assert f"{hotel_dir(NODE_B[0])}" in done.out and "nope" in done.err
    done = run_cli(capsys, "catalog", "--store", central, "hotels", "--format", "jsonl")
    assert done.code == 0 and sorted(json.loads(line)["hotel_id"] for line in done.out.splitlines()) == NODE_B
    done = run_cli(capsys, "catalog", "--store", central, "summary")
    assert done.code == 0 and "hotels: 8" in done.out
    bad = copy_shard(shard_paths([out])[0], tmp_path / "bad")
    bad.write_bytes(bad.read_bytes()[:-1024])
    done = run_cli(capsys, "merge", bad, "--store", central, "--quiet")
    assert done.code == 1 and "sha256_mismatch" in done.out + done.err


def test_commands_take_the_store_from_images_store_and_print_json(stores: dict[str, Path], tmp_path: Path, capsys,
                                                                  monkeypatch):
    out, central = tmp_path / "out", tmp_path / "central"
    monkeypatch.setenv("IMAGES_STORE", str(stores["a"]))
    done = run_cli(capsys, "pack", "--out", out, "--json", "--quiet")
    assert done.code == 0, done.err
    assert json.loads(done.out)["hotels_packed"] == len(NODE_A)
    monkeypatch.setenv("IMAGES_STORE", str(central))
    done = run_cli(capsys, "merge", out, "--json", "--quiet")
    assert done.code == 0 and sorted(json.loads(done.out)["hotels_added"]) == NODE_A
    done = run_cli(capsys, "catalog", "summary", "--json")
    assert done.code == 0 and json.loads(done.out)["hotels"] == len(NODE_A)
    done = run_cli(capsys, "catalog", "hotels", "--json")
    assert sorted(json.loads(line)["hotel_id"] for line in done.out.splitlines()) == NODE_A
    done = run_cli(capsys, "catalog", "--catalog", default_catalog_path(central), "summary", "--json")
    assert done.code == 0 and json.loads(done.out)["hotels"] == len(NODE_A)


@pytest.mark.parametrize("argv", [
    ["pack", "--out", "x"],                                   # no store at all
    ["pack", "a", "--store", "b", "--out", "x"],              # the store twice
    ["merge", "shards"],                                      # no store
    ["catalog", "summary"],                                   # no store, no catalogue
    ["catalog", "--store", "a", "--catalog", "b", "summary"],
    ["catalog", "--catalog", "b", "rebuild"],
])
def test_commands_without_a_store_are_usage_errors(argv, capsys, monkeypatch):
    monkeypatch.delenv("IMAGES_STORE", raising=False)
    done = run_cli(capsys, *argv)
    assert done.code == 2 and "error:" in done.err, done.err


def test_pack_merge_catalog_scripts_run_as_processes(stores: dict[str, Path], tmp_path: Path):
    out, central = tmp_path / "out", tmp_path / "central"
    done = run_script("pack", stores["b"], "--out", out, "--quiet")
    assert done.returncode == 0 and "packed 8 hotels" in done.stdout, done.stderr
    done = run_script("merge", out, "--store", central, "--quiet")
    assert done.returncode == 0 and "added 8 hotels" in done.stdout, done.stderr
    done = run_script("catalog", "--store", central, "summary")
    assert done.returncode == 0 and "hotels: 8" in done.stdout, done.stderr


def test_pack_refuses_a_busy_output_folder_and_takes_over_a_stale_lock(stores: dict[str, Path], tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".pack.lock").write_text(str(os.getpid()))  # a live process
    with pytest.raises(RuntimeError, match="another pack run"):
        pack(stores["a"], out)
    if os.name == "posix":
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        (out / ".pack.lock").write_text(gone.stdout.strip())
        assert sorted(pack(stores["a"], out).hotels_packed) == NODE_A
        assert not (out / ".pack.lock").exists()


def test_conflict_with_different_files_keeps_the_first_copy(stores: dict[str, Path], tmp_path: Path):
    other = tmp_path / "node-c"
    write_hotel(other, "c", "1001", "2026-12-01T00:00:00.000000Z")
    image = other / image_relpath("1001", "cover", "100100", "jpg")
    image.write_bytes(jpeg(4242))
    manifest = json.loads((other / hotel_dir("1001") / MANIFEST_NAME).read_text())
    manifest["images"]["cover"][0].update(bytes=image.stat().st_size, sha1=hashlib.sha1(image.read_bytes()).hexdigest())
    (other / hotel_dir("1001") / MANIFEST_NAME).write_text(dumps(manifest))
    pack(stores["a"], tmp_path / "shards-a")
    pack(other, tmp_path / "shards-c")
    central = tmp_path / "central"
    report = merge([tmp_path / "shards-a", tmp_path / "shards-c"], central)
    assert [(c.hotel_id, c.kept_node, c.other_node, c.same_files) for c in report.conflicts] == [
        ("1001", "a", "c", False)
    ]
    kept = central / image_relpath("1001", "cover", "100100", "jpg")
    assert kept.read_bytes() == (stores["a"] / image_relpath("1001", "cover", "100100", "jpg")).read_bytes()
    sources = json.loads((central / hotel_dir("1001") / MANIFEST_NAME).read_text())["sources"]
    assert [(s["node"], s["same_files"]) for s in sources] == [("a", True), ("c", False)]


def test_interrupted_merge_is_completed_by_a_rerun(packed: dict[str, Path], central_copy: Path, stores):
    """A crash between a hotel's files and its manifest leaves it without one; the next merge finishes it."""
    folder = central_copy / hotel_dir("1002")
    (folder / MANIFEST_NAME).unlink()
    removed = next(folder.rglob("*.jpg"))
    removed.unlink()
    (central_copy / ".hotelimages" / "merged-shards.jsonl").unlink()  # a killed merge never ledgered its shard
    report = merge([packed["a"]], central_copy)
    assert report.hotels_added == ["1002"] and report.files_written == 1 and report.files_unchanged >= 1
    assert images_only(tree(central_copy)) == images_only(tree(stores["single"]))
