"""The benchmark corpus: photo-like JPEGs, the hotels they belong to, listings and URL lists.

Images are drawn (gradient, shapes, blur, sensor-like noise) so that JPEG sizes
and decode costs look like real photos, not flat colour or pure noise. They are
made once per work folder and reused; ``corpus.json`` records what was made.
"""

from __future__ import annotations

import io
import json
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

CATEGORIES = ("cover", "exterior", "interior", "reviews")
IMAGES_PER_HOTEL = 20
WIDTH, HEIGHT = 1024, 768
QUALITY = 90


@dataclass(frozen=True)
class Corpus:
    """A generated corpus under ``root``: ``img/<n>.jpg`` and ``listings/<hotel>.json``."""

    root: str
    images: int
    total_bytes: int
    per_hotel: int = IMAGES_PER_HOTEL

    @property
    def mean_bytes(self) -> float:
        return self.total_bytes / self.images if self.images else 0.0

    @property
    def hotels(self) -> int:
        return -(-self.images // self.per_hotel)


def image_name(n: int) -> str:
    """The file name of corpus image ``n``."""
    return f"{n:06d}.jpg"


def hotel_id(h: int) -> str:
    """The ID of benchmark hotel ``h``."""
    return f"bench{h:06d}"


def hotel_images(h: int, images: int, per_hotel: int = IMAGES_PER_HOTEL) -> list[int]:
    """The corpus image numbers that belong to hotel ``h``."""
    return list(range(h * per_hotel, min((h + 1) * per_hotel, images)))


def listing(h: int, images: int, base_url: str, path: str = "img", per_hotel: int = IMAGES_PER_HOTEL) -> dict:
    """The listing document of hotel ``h`` (the project's listing contract), one page."""
    return {
        "hotel_id": hotel_id(h),
        "images": [
            {
                "id": f"i{n:06d}",
                "url": f"{base_url}/{path}/{image_name(n)}",
                "category": CATEGORIES[n % len(CATEGORIES)],
            }
            for n in hotel_images(h, images, per_hotel)
        ],
        "next": None,
    }


def image_urls(images: int, base_url: str, path: str = "img") -> list[str]:
    """Every corpus image URL, in order."""
    return [f"{base_url}/{path}/{image_name(n)}" for n in range(images)]


def photo(seed: int, width: int = WIDTH, height: int = HEIGHT, quality: int = QUALITY) -> bytes:
    """A photo-like JPEG: a two-colour gradient, 20-40 shapes, blur, then mild noise."""
    from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps  # noqa: PLC0415 - only when generating

    rnd = random.Random(seed)

    def colour() -> tuple[int, int, int]:
        return (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))

    grad = Image.linear_gradient("L").rotate(rnd.uniform(0, 360), resample=Image.BILINEAR).resize((width, height))
    img = ImageOps.colorize(grad, colour(), colour())
    draw = ImageDraw.Draw(img)
    for _ in range(rnd.randint(20, 40)):
        x0, y0 = rnd.randrange(width), rnd.randrange(height)
        box = (x0, y0, x0 + rnd.randint(20, width // 2), y0 + rnd.randint(20, height // 2))
        kind = rnd.random()
        if kind < 0.4:
            draw.ellipse(box, fill=colour())
        elif kind < 0.8:
            draw.rectangle(box, fill=colour())
        else:
            points = [(rnd.randrange(width), rnd.randrange(height)) for _ in range(rnd.randint(3, 6))]
            draw.polygon(points, fill=colour())
    img = img.filter(ImageFilter.GaussianBlur(rnd.uniform(1.5, 3.5)))
    # The noise level sets the JPEG size: sigma 2..8 gives ~100..265 KB at quality 90.
    noise = Image.effect_noise((width, height), rnd.uniform(2.0, 8.0)).convert("RGB")
    img = ImageChops.add(img, noise, 1.0, -128)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def tiny_jpeg(size: int = 16) -> bytes:
    """A small valid JPEG for the long-run memory check."""
    from PIL import Image  # noqa: PLC0415

    buf = io.BytesIO()
    Image.new("RGB", (size, size), (120, 80, 40)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _write_photo(args: tuple[str, int]) -> int:
    path, seed = args
    data = photo(seed)
    Path(path).write_bytes(data)
    return len(data)


def ensure_corpus(root: Path, images: int, workers: int = 2, log=print) -> Corpus:
    """The corpus of ``images`` photos under ``root``, generating what is missing (cached)."""
    root = Path(root)
    img_dir = root / "img"
    img_dir.mkdir(parents=True, exist_ok=True)
    missing = [n for n in range(images) if not (img_dir / image_name(n)).exists()]
    if missing:
        log(f"bench: generating {len(missing)} photo-like JPEGs in {img_dir} (once; cached) ...")
        jobs = [(str(img_dir / image_name(n)), n) for n in missing]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(_write_photo, jobs, chunksize=16):
                pass
    total = sum((img_dir / image_name(n)).stat().st_size for n in range(images))
    (root / "tiny.jpg").write_bytes(tiny_jpeg())
    corpus = Corpus(str(root), images, total)
    (root / "corpus.json").write_text(json.dumps(asdict(corpus) | {"mean_bytes": corpus.mean_bytes}, indent=1))
    return corpus


def write_listings(root: Path, images: int, base_url: str, path: str = "img", folder: str = "listings") -> list[str]:
    """Write one listing file per hotel under ``root/folder``; returns the hotel IDs in order."""
    out = Path(root) / folder
    out.mkdir(parents=True, exist_ok=True)
    ids = []
    for h in range(-(-images // IMAGES_PER_HOTEL)):
        doc = listing(h, images, base_url, path)
        (out / f"{doc['hotel_id']}.json").write_text(json.dumps(doc, separators=(",", ":")))
        ids.append(doc["hotel_id"])
    return ids
