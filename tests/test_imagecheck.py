"""Checking downloaded bytes, with images made in memory by Pillow."""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from PIL import Image

from hotelimages.imagecheck import ImageMeta, ImageRejected, extension_for, inspect_image, looks_truncated, sniff_format


def noise_image(size: tuple[int, int], seed: int = 1) -> Image.Image:
    """An RGB image of random pixels: it compresses badly, so its files are big enough to cut."""
    rnd = random.Random(seed)
    im = Image.new("RGB", size)
    im.putdata([(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)) for _ in range(size[0] * size[1])])
    return im


def encode(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    im = noise_image(size)
    if fmt == "GIF":
        im = im.convert("P")
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def reason_of(body: bytes, **kwargs) -> str:
    with pytest.raises(ImageRejected) as info:
        inspect_image(body, **kwargs)
    return info.value.reason


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# ---------------------------------------------------------------- good images


@pytest.mark.parametrize(
    ("fmt", "ext"),
    [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif")],
)
def test_allowed_formats_give_their_extension_and_size(fmt, ext):
    assert inspect_image(encode(fmt, (64, 48))) == ImageMeta(fmt, ext, 64, 48)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_full_decode_accepts_a_good_image(fmt):
    assert inspect_image(encode(fmt, (33, 17)), full_decode=True).width == 33


def test_extension_for():
    assert extension_for("JPEG") == "jpg"
    assert extension_for("WEBP") == "webp"
    assert extension_for("TIFF") == "tiff"
    assert extension_for("SOMEVERYLONGFORMAT") == "somevery"


def test_jpeg_with_trailing_zero_padding_is_accepted():
    body = encode("JPEG") + b"\0" * 1000
    assert inspect_image(body) == ImageMeta("JPEG", "jpg", 64, 48)
    assert inspect_image(body, full_decode=True) == ImageMeta("JPEG", "jpg", 64, 48)


def test_jpeg_with_a_page_of_zero_padding_is_accepted_by_a_full_decode():
    assert inspect_image(encode("JPEG") + b"\0" * 4096, full_decode=True) == ImageMeta("JPEG", "jpg", 64, 48)


def test_jpeg_with_a_page_of_zero_padding_is_accepted():
    assert inspect_image(encode("JPEG") + b"\0" * 4096) == ImageMeta("JPEG", "jpg", 64, 48)


def test_jpeg_with_a_short_trailer_after_the_end_marker_is_accepted():
    assert inspect_image(encode("JPEG") + b"trailer!!!") == ImageMeta("JPEG", "jpg", 64, 48)


# ---------------------------------------------------------------- refused bytes


def test_bmp_is_a_format_not_allowed():
    assert reason_of(encode("BMP")) == "format_not_allowed"


def test_allowed_formats_are_configurable():
    assert reason_of(encode("PNG"), allowed_formats=("JPEG",)) == "format_not_allowed"
    assert inspect_image(encode("PNG"), allowed_formats=("PNG",)).ext == "png"


@pytest.mark.parametrize(
    "body",
    [
        b"<!DOCTYPE html><html><body>Access denied</body></html>",
        b'{"error": "not found"}',
        b"\0" * 100,
        b"GIF89a\x00\x00\x00\x00\x00\x00\x00;",
    ],
)
def test_bytes_that_are_no_image(body):
    assert reason_of(body) == "not_an_image"


def test_empty_body():
    assert reason_of(b"") == "empty_body"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
@pytest.mark.parametrize("full_decode", [False, True])
def test_an_image_cut_in_half_is_truncated(fmt, full_decode):
    body = encode(fmt)
    assert reason_of(body[: len(body) // 2], full_decode=full_decode) == "truncated"


@pytest.mark.parametrize(
    ("fmt", "missing"),
    [("JPEG", 2), ("GIF", 1), ("PNG", 12)],  # the end marker: FFD9, ";", the IEND chunk
)
def test_an_image_missing_only_its_end_marker_is_truncated(fmt, missing):
    body = encode(fmt)
    assert reason_of(body[:-missing]) == "truncated"


def test_a_png_missing_only_the_crc_of_its_end_chunk_is_accepted():
    # The cheap check looks for "IEND" in the last bytes; all pixel data is there.
    assert inspect_image(encode("PNG")[:-4]) == ImageMeta("PNG", "png", 64, 48)


def test_a_webp_missing_one_byte_is_truncated():
    body = encode("WEBP")
    assert reason_of(body[:-1]) == "truncated"


def test_a_gif_cut_just_after_a_semicolon_byte_with_full_decode_is_truncated():
    body = encode("GIF")
    cut = body.index(b";", len(body) // 4) + 1
    assert cut < len(body) - 1
    assert reason_of(body[:cut], full_decode=True) == "truncated"


def test_a_gif_cut_just_after_a_semicolon_byte_is_truncated():
    body = encode("GIF")
    cut = body.index(b";", len(body) // 4) + 1
    assert cut < len(body) - 1
    assert reason_of(body[:cut]) == "truncated"


@pytest.mark.parametrize(
    ("fmt", "cut"),
    [("JPEG", 20), ("PNG", 33)],  # inside the JFIF header; just after the IHDR chunk
)
def test_an_image_cut_inside_its_header_is_truncated(fmt, cut):
    assert reason_of(encode(fmt)[:cut]) == "truncated"


def test_a_png_cut_inside_its_ihdr_chunk_is_truncated():
    assert reason_of(encode("PNG")[:20]) == "truncated"


def test_max_pixels_refuses_a_decompression_bomb():
    assert reason_of(encode("PNG", (20, 20)), max_pixels=100) == "decompression_bomb"
    assert inspect_image(encode("PNG", (10, 10)), max_pixels=100) == ImageMeta("PNG", "png", 10, 10)


def test_a_huge_header_is_a_decompression_bomb_without_decoding():
    ihdr = struct.pack(">IIBBBBB", 40000, 40000, 8, 2, 0, 0, 0)
    body = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IEND", b"")
    assert reason_of(body) == "decompression_bomb"


def test_corrupted_middle_of_a_jpeg():
    # Documents what happens, with the pinned Pillow: the end marker is intact, so the cheap check
    # passes; libjpeg decodes a run of zero bytes as (wrong) pixels without an error, so even a
    # full decode accepts it, while a run of 0xFF bytes breaks the stream and a full decode refuses it.
    body = encode("JPEG")
    mid = len(body) // 2
    zeros = body[:mid] + b"\0" * 200 + body[mid + 200 :]
    ffs = body[:mid] + b"\xff" * 200 + body[mid + 200 :]
    assert inspect_image(zeros) == ImageMeta("JPEG", "jpg", 64, 48)
    assert inspect_image(zeros, full_decode=True) == ImageMeta("JPEG", "jpg", 64, 48)
    assert inspect_image(ffs) == ImageMeta("JPEG", "jpg", 64, 48)
    assert reason_of(ffs, full_decode=True) == "corrupt_image"


def test_corrupted_middle_of_a_png_is_caught_only_by_a_full_decode():
    body = encode("PNG")
    mid = len(body) // 2
    broken = body[:mid] + b"\0" * 200 + body[mid + 200 :]
    assert inspect_image(broken) == ImageMeta("PNG", "png", 64, 48)
    assert reason_of(broken, full_decode=True) == "corrupt_image"


def test_image_rejected_message():
    assert str(ImageRejected("truncated", "JPEG without its end marker")) == "truncated: JPEG without its end marker"
    assert str(ImageRejected("empty_body")) == "empty_body"
    with pytest.raises(ValueError) as info:  # a caller catching ValueError still gets the recorded code
        inspect_image(b"<html>not found</html>")
    assert (info.value.reason, str(info.value)) == ("not_an_image", "not_an_image")


# ---------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("JPEG", "JPEG"), ("PNG", "PNG"), ("GIF", "GIF"), ("WEBP", "WEBP"), ("BMP", None)],
)
def test_sniff_format(fmt, expected):
    assert sniff_format(encode(fmt)) == expected


def test_sniff_format_of_non_images():
    assert sniff_format(b"") is None
    assert sniff_format(b"<html>") is None
    assert sniff_format(b"RIFF\x00\x00\x00\x00WAVE") is None


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_looks_truncated_whole_and_halved(fmt):
    body = encode(fmt)
    assert looks_truncated(fmt, body) is False
    assert looks_truncated(fmt, body[: len(body) // 2]) is True


def test_looks_truncated_of_other_formats_is_false():
    assert looks_truncated("BMP", b"BM") is False


# ---------------------------------------------------------------- multi-picture JPEG (MPO)


def mpo_bytes() -> bytes:
    # Noise, so each picture is many kilobytes, as a phone's would be.
    first = Image.merge("RGB", [Image.effect_noise((400, 300), 60)] * 3)
    second = Image.merge("RGB", [Image.effect_noise((400, 300), 90)] * 3)
    buf = io.BytesIO()
    first.save(buf, "MPO", save_all=True, append_images=[second])
    return buf.getvalue()


def test_a_multi_picture_jpeg_is_a_jpeg():
    assert inspect_image(mpo_bytes()) == ImageMeta("JPEG", "jpg", 400, 300)


def test_a_multi_picture_jpeg_cut_short_is_truncated():
    body = mpo_bytes()
    with pytest.raises(ImageRejected) as info:
        inspect_image(body[: len(body) - 2000])
    assert info.value.reason == "truncated"
