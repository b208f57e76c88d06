"""Atomic writes and the clean-up of temporary files a killed process left behind."""

from __future__ import annotations

import pytest

from hotelimages.storage import TEMP_SUFFIX, remove_temp_files, write_atomic


def all_files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_write_atomic_writes_and_creates_folders(tmp_path):
    target = tmp_path / "6" / "8" / "c" / "2" / "7892470" / "cover" / "1.jpg"
    write_atomic(target, b"\xff\xd8 image bytes \xff\xd9")
    assert target.read_bytes() == b"\xff\xd8 image bytes \xff\xd9"
    assert all_files(tmp_path) == ["6/8/c/2/7892470/cover/1.jpg"]


def test_write_atomic_replaces_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "manifest.json"
    write_atomic(target, b"first, longer content")
    write_atomic(target, b"second", fsync=True)
    assert target.read_bytes() == b"second"
    assert all_files(tmp_path) == ["manifest.json"]


def test_write_atomic_of_empty_data(tmp_path):
    target = tmp_path / "empty"
    write_atomic(target, b"")
    assert target.read_bytes() == b""
    assert all_files(tmp_path) == ["empty"]


def test_a_failure_while_writing_leaves_no_part_and_no_final_file(tmp_path):
    target = tmp_path / "hotel" / "1.jpg"
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert not target.exists()
    assert all_files(tmp_path) == []


def test_a_failure_while_writing_keeps_the_previous_file(tmp_path):
    target = tmp_path / "1.jpg"
    write_atomic(target, b"old")
    with pytest.raises(TypeError):
        write_atomic(target, 12345)  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert all_files(tmp_path) == ["1.jpg"]


def test_a_target_folder_that_is_a_file_leaves_nothing_behind(tmp_path):
    (tmp_path / "hotel").write_bytes(b"in the way")
    with pytest.raises(OSError):
        write_atomic(tmp_path / "hotel" / "cover" / "1.jpg", b"data")
    assert all_files(tmp_path) == ["hotel"]
    assert (tmp_path / "hotel").read_bytes() == b"in the way"


def test_a_target_that_is_a_folder_leaves_no_part_file(tmp_path):
    (tmp_path / "1.jpg").mkdir()
    with pytest.raises(OSError):
        write_atomic(tmp_path / "1.jpg", b"data")
    assert all_files(tmp_path) == []
    assert (tmp_path / "1.jpg").is_dir()


def test_remove_temp_files_removes_only_hidden_part_files(tmp_path):
    leftovers = [
        f".1.jpg.1234-0{TEMP_SUFFIX}",
        f"a/b/.manifest.json.99-7{TEMP_SUFFIX}",
        f"a/.x{TEMP_SUFFIX}",
    ]
    keep = [
        "1.jpg",
        f"visible{TEMP_SUFFIX}",
        ".hidden",
        ".1.jpg.part.jpg",
        ".1.jpg.partial",
        "a/b/manifest.json",
        "a/b/2.part",
    ]
    for name in leftovers + keep:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert remove_temp_files(tmp_path) == 3
    assert all_files(tmp_path) == sorted(keep)
    assert remove_temp_files(tmp_path) == 0


def test_remove_temp_files_removes_what_a_killed_write_would_leave(tmp_path):
    target = tmp_path / "h" / "1.jpg"
    write_atomic(target, b"data")
    # The name write_atomic gives its temporary file, as a killed process would leave it.
    (tmp_path / "h" / f".1.jpg.4321-0{TEMP_SUFFIX}").write_bytes(b"da")
    assert remove_temp_files(tmp_path) == 1
    assert all_files(tmp_path) == ["h/1.jpg"]


def test_remove_temp_files_of_a_missing_folder(tmp_path):
    assert remove_temp_files(tmp_path / "nope") == 0


def test_remove_temp_files_of_a_file_is_zero(tmp_path):
    (tmp_path / f".x{TEMP_SUFFIX}").write_bytes(b"x")
    assert remove_temp_files(tmp_path / f".x{TEMP_SUFFIX}") == 0
    assert (tmp_path / f".x{TEMP_SUFFIX}").exists()


def test_write_atomic_makes_missing_folders_and_remakes_one_removed_meanwhile(tmp_path):
    first = tmp_path / "a" / "b" / "1.jpg"
    write_atomic(first, b"one")
    assert first.read_bytes() == b"one"
    first.unlink()
    (tmp_path / "a" / "b").rmdir()  # e.g. an operator moved the hotel away
    write_atomic(tmp_path / "a" / "b" / "2.jpg", b"two")
    assert (tmp_path / "a" / "b" / "2.jpg").read_bytes() == b"two"
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["2.jpg"]
