"""A deterministic synthetic hotel catalogue for the demo server, tests and benchmarks.

Every hotel's listing and every image's bytes follow from the hotel ID alone,
so a test can compute exactly what a crawl must store. Faults are injected on
hotels whose numeric ID is a multiple of the fault's period.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

FIRST_ID = 1000001
PAGE_SIZE = 4

#: Hotel-level faults (on the listing) and image-level faults (on one image of the hotel).
LISTING_FAULTS = (
    "listing_404", "listing_500_once", "listing_malformed", "listing_slow", "listing_empty",
    "listing_redirect_loop", "listing_gzip_bomb", "listing_huge",
)
IMAGE_FAULTS = (
    "image_404", "image_500_once", "image_truncated", "image_html", "image_slow", "image_redirect",
    "image_redirect_loop", "image_redirect_file", "image_gzip_bomb", "image_huge", "image_bomb",
)
FORMAT_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}


@dataclass(frozen=True)
class DemoImage:
    """One image of a demo hotel, as the listing announces it."""

    id: str | None  # None: the listing omits the id (the crawler derives one from the URL)
    category: str | None  # None or an unknown name: stored under "other"
    format: str
    width: int
    height: int
    url_ext: str  # the extension in the URL, which may lie about the format
    seed: int

    @property
    def path_id(self) -> str:
        """The ID part of the image's URL path."""
        return self.id or f"x{self.seed % 10**8}"


def hotel_ids(count: int, first: int = FIRST_ID) -> list[str]:
    """The IDs of a catalogue of ``count`` hotels."""
    return [str(first + i) for i in range(count)]


def parse_faults(spec: str) -> dict[str, int]:
    """``"image_404:5,listing_500_once:7"`` -> ``{"image_404": 5, "listing_500_once": 7}``."""
    faults: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, every = part.partition(":")
        if name not in LISTING_FAULTS + IMAGE_FAULTS:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(LISTING_FAULTS + IMAGE_FAULTS)}")
        faults[name] = int(every or 1)
    return faults


def faults_for(hotel_id: str, faults: dict[str, int]) -> list[str]:
    """The faults injected for a hotel (only numeric IDs get faults)."""
    if not hotel_id.isdigit():
        return []
    n = int(hotel_id)
    return [name for name, every in faults.items() if every > 0 and n % every == 0]


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha1("/".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@functools.lru_cache(maxsize=4096)
def hotel_images(hotel_id: str) -> tuple[DemoImage, ...]:
    """The images of a hotel, in listing order."""
    rng = _rng("hotel", hotel_id)
    plan = [
        ("cover", 1), ("exterior", rng.randint(1, 2)), ("interior", rng.randint(1, 3)), ("reviews", rng.randint(0, 2)),
    ]
    images: list[DemoImage] = []
    base = int(hotel_id) * 100 if hotel_id.isdigit() else rng.randint(10**6, 10**7) * 100
    for category, count in plan:
        for _ in range(count):
            n = len(images)
            fmt = rng.choices(["JPEG", "PNG", "WEBP", "GIF"], weights=[80, 8, 10, 2])[0]
            width, height = rng.choice([(320, 240), (400, 300), (480, 360)])
            image_id: str | None = str(base + n)
            shown_category: str | None = category
            roll = rng.random()
            if roll < 0.05:
                image_id = None
            elif roll < 0.08:
                shown_category = "lobby"  # unknown: goes to "other"
            url_ext = "jpg" if rng.random() < 0.1 else FORMAT_EXT[fmt]
            images.append(DemoImage(image_id, shown_category, fmt, width, height, url_ext, base + n))
    return tuple(images)


def faulty_image_index(hotel_id: str) -> int:
    """Which image of a hotel carries an image fault."""
    return 1 if len(hotel_images(hotel_id)) > 1 else 0


def listing_entries(base_url: str, hotel_id: str, faults: dict[str, int] | None = None) -> list[dict[str, str]]:
    """A hotel's whole listing as the server announces it: one ``{"url", "id"?, "category"?}`` per image.

    The faulty image (if the hotel has an image fault) carries ``?f=<fault>`` in its URL.
    """
    image_faults = [f for f in faults_for(hotel_id, faults or {}) if f in IMAGE_FAULTS]
    bad = faulty_image_index(hotel_id)
    entries = []
    for index, img in enumerate(hotel_images(hotel_id)):
        url = f"{base_url}/img/{hotel_id}/{index}/{img.path_id}.{img.url_ext}"
        if index == bad and image_faults:
            url += "?f=" + image_faults[0]
        entry: dict[str, str] = {"url": url}
        if img.id is not None:
            entry["id"] = img.id
        if img.category is not None:
            entry["category"] = img.category
        entries.append(entry)
    return entries


@functools.lru_cache(maxsize=8192)
def image_bytes(hotel_id: str, index: int) -> bytes:
    """The bytes of one demo image: a photo-like picture (gradients and shapes), deterministic."""
    img = hotel_images(hotel_id)[index]
    rng = _rng("pixels", hotel_id, index)
    w, h = img.width, img.height
    top = tuple(rng.randint(40, 220) for _ in range(3))
    bottom = tuple(rng.randint(0, 120) for _ in range(3))
    gradient = _gradient(w, h)
    picture = Image.composite(Image.new("RGB", (w, h), bottom), Image.new("RGB", (w, h), top), gradient)
    draw = ImageDraw.Draw(picture)
    for _ in range(12):
        x0, y0 = rng.randint(0, w - 1), rng.randint(0, h - 1)
        x1, y1 = min(w, x0 + rng.randint(10, w // 2)), min(h, y0 + rng.randint(10, h // 2))
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    buf = io.BytesIO()
    if img.format == "JPEG":
        picture.save(buf, "JPEG", quality=85)
    elif img.format == "GIF":
        picture.convert("P", palette=Image.Palette.ADAPTIVE, colors=64).save(buf, "GIF")
    elif img.format == "WEBP":
        picture.save(buf, "WEBP", quality=80, method=0)
    else:
        picture.save(buf, img.format)
    return buf.getvalue()


@functools.lru_cache(maxsize=16)
def _gradient(width: int, height: int) -> Image.Image:
    return Image.linear_gradient("L").resize((width, height))


@functools.lru_cache(maxsize=1)
def gzip_bomb() -> bytes:
    """64 MiB of zeros, gzip-compressed to about 64 KiB."""
    return gzip.compress(b"\0" * (64 << 20), compresslevel=9)


@functools.lru_cache(maxsize=1)
def pixel_bomb() -> bytes:
    """A small PNG whose header announces 20000 x 20000 pixels (a decompression bomb)."""
    buf = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buf, "PNG")
    return buf.getvalue()
