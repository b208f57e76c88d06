"""Sharded store paths and ID validation: pure functions checked against literal values.

The expected digests were computed once with ``hashlib.sha1`` in a shell and pasted here,
so a change to the hashing or the path layout fails these tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hotelimages.sharding import (
    InvalidId,
    derive_image_id,
    hotel_dir,
    image_relpath,
    resolve_in_store,
    shard_parts,
    validate_id,
)

# sha1("7892470") = 68c28a0dbdd453fbe741a3fecfdbc470e6bc9db6
SHA1_7892470 = "68c28a0dbdd453fbe741a3fecfdbc470e6bc9db6"


# ---------------------------------------------------------------- shard paths


@pytest.mark.parametrize(
    ("hotel_id", "expected"),
    [
        ("7892470", "6/8/c/2/7892470"),
        # sha1("hotel_1") = 99c0c5c9c231eab8dfdff1d34e3b6fca6e3846bf
        ("hotel_1", "9/9/c/0/hotel_1"),
        # sha1("A-9") = 7f5d69d07481c2e7f27a77343754c056baea5a14
        ("A-9", "7/f/5/d/A-9"),
        # sha1("abc") = a9993e364706816aba3e25717850c26c9cd0d89d (FIPS 180-1 test vector)
        ("abc", "a/9/9/9/abc"),
    ],
)
def test_hotel_dir_known_vectors(hotel_id, expected):
    assert hotel_dir(hotel_id) == expected


def test_hotel_dir_depth_zero_is_the_bare_id():
    assert hotel_dir("7892470", depth=0) == "7892470"


def test_hotel_dir_depth_one():
    assert hotel_dir("7892470", depth=1) == "6/7892470"


def test_shard_parts_depth_forty_is_the_whole_digest():
    assert shard_parts("7892470", 40) == list(SHA1_7892470)
    assert hotel_dir("7892470", depth=40) == "/".join(SHA1_7892470) + "/7892470"


@pytest.mark.parametrize("depth", [41, -1])
def test_shard_depth_out_of_range_raises(depth):
    with pytest.raises(ValueError, match=rf"between 0 and 40, got {depth}"):
        shard_parts("7892470", depth)
    with pytest.raises(ValueError):
        hotel_dir("7892470", depth=depth)


def test_image_relpath_literal():
    assert image_relpath("7892470", "cover", "26680713", "jpg") == "6/8/c/2/7892470/cover/26680713.jpg"


def test_image_relpath_honours_depth():
    assert image_relpath("7892470", "interior", "a1", "webp", depth=2) == "6/8/7892470/interior/a1.webp"


@pytest.mark.parametrize("ext", ["", "JPG", "j.pg", "toolongext", "../x"])
def test_image_relpath_refuses_bad_extensions(ext):
    with pytest.raises(ValueError, match="invalid file extension"):
        image_relpath("7892470", "cover", "1", ext)


def test_image_relpath_refuses_a_hostile_category():
    with pytest.raises(InvalidId) as info:
        image_relpath("7892470", "..", "1", "jpg")
    assert info.value.reason == "invalid_category_id"


def test_image_relpath_refuses_a_hostile_image_id():
    with pytest.raises(InvalidId) as info:
        image_relpath("7892470", "cover", "../../etc/passwd", "jpg")
    assert info.value.reason == "invalid_image_id"


# ---------------------------------------------------------------- ID validation

HOSTILE = [
    "..",
    ".",
    "/",
    "a/b",
    "a\\b",
    "",
    "x" * 65,
    "hôtel",
    "CON",
    "con.txt",
    "LPT1",
    "x.",
    "a\0b",
    "a\nb",
    "x\n",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_hotel_ids_are_refused(value):
    with pytest.raises(InvalidId) as info:
        validate_id(value)
    assert info.value.reason == "invalid_hotel_id"
    assert info.value.kind == "hotel"


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_image_ids_are_refused(value):
    with pytest.raises(InvalidId) as info:
        validate_id(value, kind="image")
    assert info.value.reason == "invalid_image_id"


@pytest.mark.parametrize("value", HOSTILE)
def test_hotel_dir_refuses_hostile_ids(value):
    with pytest.raises(InvalidId):
        hotel_dir(value)


DANGEROUS = [
    "..",
    ".",
    "/",
    "a/b",
    "/etc/passwd",
    "a\\b",
    "C:x",
    "",
    "CON",
    "con.txt",
    "Nul.tar.gz",
    "LPT1",
    "com9",
    "x.",
    "x ",
    "a\0b",
    "a\tb",
    "a*b",
    "a?b",
    'a"b',
    "a<b",
    "a|b",
]


@pytest.mark.parametrize("value", DANGEROUS)
def test_a_permissive_pattern_still_refuses_dangerous_names(value):
    with pytest.raises(InvalidId):
        validate_id(value, pattern=".*")


def test_a_permissive_pattern_with_dotall_still_refuses_a_newline():
    with pytest.raises(InvalidId, match="control character"):
        validate_id("a\nb", pattern="(?s).*")


def test_a_permissive_pattern_allows_what_it_allows():
    # Non-ASCII and dots inside a name are not dangerous as path parts, only off-pattern by default.
    assert validate_id("hôtel", pattern=".*") == "hôtel"
    assert validate_id("a.b", pattern=".*") == "a.b"
    assert validate_id("CONFIG", pattern=".*") == "CONFIG"


def test_sixty_four_characters_is_accepted():
    value = "a" * 64
    assert validate_id(value) == value
    assert hotel_dir(value, depth=0) == value


@pytest.mark.parametrize("value", ["7892470", "A-9", "under_score", "0"])
def test_ordinary_ids_are_returned_unchanged(value):
    assert validate_id(value) is value


@pytest.mark.parametrize("value", [7892470, None, b"7892470", ["1"], 1.5])
def test_non_strings_are_refused(value):
    with pytest.raises(InvalidId, match="expected a string") as info:
        validate_id(value)
    assert info.value.reason == "invalid_hotel_id"


def test_invalid_id_message_is_bounded():
    with pytest.raises(InvalidId) as info:
        validate_id("x" * 1000)
    assert len(str(info.value)) < 160
    assert "..." in str(info.value)


def test_a_custom_pattern_is_applied():
    assert validate_id("123", pattern=r"[0-9]+") == "123"
    with pytest.raises(InvalidId, match="does not match"):
        validate_id("abc", pattern=r"[0-9]+")


# ---------------------------------------------------------------- store resolution


def test_resolve_in_store_accepts_a_normal_path(tmp_path):
    got = resolve_in_store(tmp_path, "6/8/c/2/7892470/cover/1.jpg")
    assert got == tmp_path.resolve() / "6" / "8" / "c" / "2" / "7892470" / "cover" / "1.jpg"


def test_resolve_in_store_accepts_a_string_store(tmp_path):
    assert resolve_in_store(str(tmp_path), "a") == tmp_path.resolve() / "a"


@pytest.mark.parametrize("relpath", ["../x", "/etc/passwd", "a/../../x", "a/../.."])
def test_resolve_in_store_refuses_paths_that_leave_it(tmp_path, relpath):
    with pytest.raises(ValueError, match="leaves the store"):
        resolve_in_store(tmp_path / "store", relpath)


def test_resolve_in_store_refuses_a_sibling_with_a_common_prefix(tmp_path):
    # "/tmp/x/store-evil" starts with "/tmp/x/store" as a string but is not inside it.
    with pytest.raises(ValueError):
        resolve_in_store(tmp_path / "store", "../store-evil/x")


def test_resolve_in_store_refuses_a_symlink_out_of_the_store(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "link").symlink_to(tmp_path)
    with pytest.raises(ValueError):
        resolve_in_store(store, "link/x")


def test_resolve_in_store_path_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    got = resolve_in_store("store", "a/b")
    assert got.is_absolute()
    assert got == Path(tmp_path).resolve() / "store" / "a" / "b"


# ---------------------------------------------------------------- image IDs


def test_derive_image_id_literal():
    # sha1("http://img.example.com/a/1.jpg")[:16]
    assert derive_image_id("http://img.example.com/a/1.jpg") == "a664cac57d650354"
    # sha1("https://cdn.example.com/p/x.png")[:16]
    assert derive_image_id("https://cdn.example.com/p/x.png") == "1bd2effe50d1ee91"


def test_derive_image_id_is_a_valid_image_id():
    assert validate_id(derive_image_id("http://img.example.com/a/1.jpg"), kind="image") == "a664cac57d650354"
