"""Checking downloaded bytes: is it an allowed image, how big, is it whole? (no re-encoding)

Pillow reads only the header (tens of microseconds); truncation is caught by
looking for each format's end marker, and a full decode is optional.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}


class ImageRejected(ValueError):
    """Bytes that must not be stored; ``reason`` is the code recorded in the manifest."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class ImageMeta:
    """What the header of a valid image says."""

    format: str
    ext: str
    width: int
    height: int


def extension_for(fmt: str) -> str:
    """The file extension for a Pillow format name: ``JPEG`` -> ``jpg``."""
    return EXTENSIONS.get(fmt, fmt.lower()[:8])


def sniff_format(body: bytes) -> str | None:
    """The format that ``body``'s magic bytes announce, if one of the usual four."""
    if body.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if body.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if body.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if body.startswith(b"RIFF") and body[8:12] == b"WEBP":
        return "WEBP"
    return None


_PADDING = b"\0\r\n\t "


def looks_truncated(fmt: str, body: bytes) -> bool:
    """True if the bytes lack the end marker their format requires (no decoding)."""
    end = len(body)
    while end and body[end - 1] in _PADDING:  # only walks over trailing padding
        end -= 1
    tail = body[max(0, end - 1024):end]
    if fmt == "JPEG":
        # Entropy-coded data never holds FF D9 (FF is stuffed), so an end marker near
        # the end means the scan finished; short vendor trailers after it are allowed.
        return b"\xff\xd9" not in tail
    if fmt == "PNG":
        return b"IEND" not in tail[-32:]
    if fmt == "GIF":
        return not _gif_complete(body[:end])
    if fmt == "WEBP":
        return len(body) < 12 or int.from_bytes(body[4:8], "little") + 8 > len(body)
    return False


def _gif_complete(body: bytes) -> bool:
    """Walk a GIF's block structure (no decoding) and check it reaches the trailer."""
    try:
        pos = 13
        if body[10] & 0x80:
            pos += 3 << ((body[10] & 0x07) + 1)
        while True:
            block = body[pos]
            if block == 0x3B:  # trailer
                return True
            if block == 0x21:  # extension: label, then sub-blocks
                pos += 2
            elif block == 0x2C:  # image descriptor, optional local colour table, LZW code size
                packed = body[pos + 9]
                pos += 10
                if packed & 0x80:
                    pos += 3 << ((packed & 0x07) + 1)
                pos += 1
            else:
                return False
            while body[pos]:  # data sub-blocks up to the zero-length terminator
                pos += body[pos] + 1
            pos += 1
    except IndexError:
        return False


def inspect_image(
    body: bytes,
    allowed_formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF"),
    max_pixels: int = 89_478_485,
    full_decode: bool = False,
) -> ImageMeta:
    """Check ``body`` and return its format and size; raises ImageRejected with a reason."""
    if not body:
        raise ImageRejected("empty_body")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(body), formats=allowed_formats) as im:
                # Pillow's JPEG opener calls multi-picture phone JPEGs "MPO": same bytes, same rules.
                fmt = "JPEG" if im.format == "MPO" else (im.format or "")
                width, height = im.size
                if width * height > max_pixels:
                    raise ImageRejected("decompression_bomb", f"{width}x{height} pixels")
                if full_decode:
                    im.load()
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("decompression_bomb", str(exc)[:200]) from None
    except UnidentifiedImageError:
        guessed = sniff_format(body)
        if guessed in allowed_formats and looks_truncated(guessed, body):
            raise ImageRejected("truncated", "cut inside its header") from None
        raise ImageRejected(_unidentified_reason(body)) from None
    except (OSError, SyntaxError, ValueError) as exc:
        guessed = sniff_format(body)
        truncated = "truncated" in str(exc) or (guessed is not None and looks_truncated(guessed, body))
        raise ImageRejected("truncated" if truncated else "corrupt_image", str(exc)[:200]) from None
    if width <= 0 or height <= 0:
        raise ImageRejected("corrupt_image", "zero size")
    if not full_decode and looks_truncated(fmt, body):
        raise ImageRejected("truncated", f"{fmt} without its end marker")
    return ImageMeta(fmt, extension_for(fmt), width, height)


def _unidentified_reason(body: bytes) -> str:
    """Tell an image of a refused format from something that is no image at all."""
    try:
        with Image.open(io.BytesIO(body)):
            return "format_not_allowed"
    except Exception:  # noqa: BLE001 - any failure here means: not an image
        return "not_an_image"
