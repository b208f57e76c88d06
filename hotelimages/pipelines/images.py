"""Image storage: Scrapy's ImagesPipeline storing the original bytes at sharded paths.

Stock ImagesPipeline decodes and re-encodes every image as JPEG; this one checks
the bytes (format, size, bombs, truncation; see ``imagecheck``) and stages them
as served under temporary names beside ``<store>/<shards>/<hotel_id>/<category>/<image_id>.<ext>``;
the manifest pipeline renames them into place once it has checked the claim is still this
process's (``storage.write_staged``/``publish_staged``). A write error of any kind means the
store is unusable: the node stops (``NodeState.stop_for_store``), no hotel is failed.
Each image ends as a stored file or a failure with a reason; nothing escapes as
an exception, and download results are dropped from the media cache once the
hotel is settled so a long run keeps flat memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from scrapy import Request
from scrapy.pipelines.images import ImagesPipeline
from scrapy.utils.asyncio import is_asyncio_available
from twisted.python.failure import Failure

from hotelimages.config import HotelsConfig
from hotelimages.fetcher import FetchPolicy, ImageFetcher
from hotelimages.fingerprint import IMAGE_META_KEY
from hotelimages.imagecheck import EXTENSIONS, ImageRejected, inspect_image
from hotelimages.items import FailedImage, HotelItem, StoredImage
from hotelimages.listing import refused_redirect, url_refusal
from hotelimages.nodestate import NodeState
from hotelimages.reasons import download_reason, response_reason, result_reason
from hotelimages.sharding import hotel_dir, image_relpath
from hotelimages.storage import remove_temp_files, write_staged

logger = logging.getLogger(__name__)

FAILURE_META_KEY = "hotelimages_failure"
REDO_META_KEY = "hotelimages_redo"  # the hotel's folder existed: stored files may be reused
# A temporary file this old cannot belong to a write in progress (writes take milliseconds).
STALE_TEMP_SECONDS = 300

class ShardedImagesPipeline(ImagesPipeline):
    """Stores each image of a HotelItem as its original bytes under the hotel's sharded folder."""

    LOG_FAILED_RESULTS = False

    def __init__(self, store_uri: str, download_func: None = None, *, crawler: Any):
        super().__init__(store_uri, crawler=crawler)
        self.cfg = HotelsConfig.from_settings(crawler.settings)
        self.store_root = Path(store_uri).resolve()
        self.store_dir = str(self.store_root)
        self._executor = (
            ThreadPoolExecutor(self.cfg.write_threads, thread_name_prefix="hotelimages-write")
            if self.cfg.write_threads else None
        )
        self.stats = crawler.stats
        self.node = NodeState.of(crawler)
        # Temporary names carry the claim owner's token, so each writer's files are told apart.
        self._token = self.node.leases.owner.rsplit("/", 1)[-1]
        self.fetcher = self._make_fetcher(crawler.settings)

    # Overridable Interface
    def get_media_requests(self, item: Any, info: Any) -> list[Request]:
        if not isinstance(item, HotelItem) or item.failure or self._stopping():
            return []
        folder = self.store_root / hotel_dir(item.hotel_id, self.cfg.shard_depth, self.cfg.id_pattern)
        redo = folder.is_dir()
        if redo:  # drop temporary files that a killed process left behind
            removed = remove_temp_files(folder, older_than=STALE_TEMP_SECONDS)
            if removed:
                logger.info("Removed %d stale temporary files of hotel %s", removed, item.hotel_id)
        item.media_requests = [
            Request(
                img.url,
                meta={IMAGE_META_KEY: (item.hotel_id, img.category, img.id), REDO_META_KEY: redo},
                dont_filter=True,
            )
            for img in item.images
        ]
        return item.media_requests

    def media_to_download(self, request: Request, info: Any, *, item: Any = None) -> dict | None:
        """Reuse a complete file already stored for this image (resume), if not older than IMAGES_EXPIRES."""
        if self._stopping():  # a stop cut this hotel short: do not fetch what will be given back
            return {"url": request.url, "path": "", "checksum": None, "status": "failed", "reason": "stopping"}
        if not request.meta.get(REDO_META_KEY):
            return None  # a hotel seen for the first time: nothing stored to reuse
        hotel_id, category, image_id = request.meta[IMAGE_META_KEY]
        folder = self.store_root / hotel_dir(hotel_id, self.cfg.shard_depth, self.cfg.id_pattern) / category
        if not folder.is_dir():
            return None
        for ext in EXTENSIONS.values():
            path = folder / f"{image_id}.{ext}"
            try:
                st = path.stat()
            except OSError:
                continue
            if self.expires and (time.time() - st.st_mtime) > self.expires * 86400:
                return None
            body = path.read_bytes()
            try:
                meta = inspect_image(body, self.cfg.allowed_formats, self.cfg.max_image_pixels, self.cfg.full_decode)
            except ImageRejected:
                return None  # a bad leftover: download again and overwrite it
            self.stats.inc_value("hotelimages/images/uptodate")
            return self._result(request, request.url, body, meta.width, meta.height, path.name, "uptodate")
        return None

    async def media_downloaded(self, response: Any, request: Request, info: Any, *, item: Any = None) -> dict:
        try:
            rel, meta = self._check(response, request)
        except ImageRejected as exc:
            return self._failed(request, exc.reason, str(exc))
        body = response.body
        path = os.path.join(self.store_dir, rel)
        if self._stopping():
            return self._failed(request, "stopping", "node stopping: hotel given back", quiet=True)
        try:
            if self._executor is None:
                tmp, digest = self._write_and_hash(path, body)
            else:
                # File I/O and hashing release the GIL: the reactor parses other responses meanwhile.
                tmp, digest = await asyncio.get_running_loop().run_in_executor(
                    self._executor, self._write_and_hash, path, body
                )
        except OSError as exc:
            # Any errno: a store that refuses one write refuses the next; the hotel is given back.
            self.node.stop_for_store(exc)
            return self._failed(request, "write_error", str(exc), quiet=True)
        result = self._result(request, request.url, body, meta.width, meta.height, rel.rsplit("/", 1)[1],
                              "downloaded", digest)
        result["staged"] = (tmp, path)
        return result

    def media_failed(self, failure: Any, request: Request, info: Any) -> None:
        # Returning instead of raising keeps Scrapy from logging a traceback per failed
        # image; item_completed reads the reason back from the request.
        reason = download_reason(failure.value)
        self._failed(request, reason, str(failure.value))

    def item_completed(self, results: list, item: Any, info: Any) -> Any:
        if not isinstance(item, HotelItem):
            return item
        if len(item.media_requests) != len(item.images) or len(results) != len(item.media_requests):
            # Stopping (no requests were made) or an unexpected shape: nothing here is recorded; the
            # manifest pipeline gives the hotel back when the node stops.
            self._forget_results(item, info)
            item.staged.extend(v["staged"] for ok, v in results if ok and isinstance(v, dict) and "staged" in v)
            item.media_requests = []
            return item
        stored_count = stored_bytes = 0
        for (ok, value), request, img in zip(results, item.media_requests, item.images, strict=True):
            if ok and isinstance(value, dict) and value.get("status") != "failed":
                item.stored.append(value["stored"])
                if "staged" in value:
                    item.staged.append(value["staged"])
                if value["status"] == "downloaded":
                    stored_count += 1
                    stored_bytes += value["stored"].bytes
            else:
                reason = request.meta.get(FAILURE_META_KEY) or (
                    value.get("reason") if isinstance(value, dict) else None
                )
                if reason is None:
                    reason = result_reason(value)
                item.failed.append(FailedImage(img.id, img.url, img.category, reason))
            # Bound memory: Scrapy would keep every result for the spider's lifetime. The
            # fingerprint is the request's (its URL is normalised), not one rebuilt from img.url.
            info.downloaded.pop(self._fingerprinter.fingerprint(request), None)
        item.media_requests = []
        if stored_count:  # counted per hotel, not per image: Scrapy's stats calls are not free
            self.stats.inc_value("hotelimages/images/stored", stored_count)
            self.stats.inc_value("hotelimages/images/bytes", stored_bytes)
        return item

    async def _check_media_to_download(self, request: Request, info: Any, item: Any) -> Any:
        """Download one image: with the direct fetcher, or through Scrapy's downloader (``super``)."""
        if self.fetcher is None:
            return await super()._check_media_to_download(request, info, item=item)
        try:
            response = await self.fetcher.fetch(request)
        except Exception:  # noqa: BLE001 - every error becomes the image's recorded reason
            self.media_failed(Failure(), request, info)
            return None
        return await self.media_downloaded(response, request, info, item=item)

    async def close_spider(self) -> None:
        if self.fetcher is not None:
            await self.fetcher.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        # Recorded so a test (and an operator) can see the media cache stays bounded.
        info = getattr(self, "spiderinfo", None)
        if info is not None:
            self.stats.set_value("hotelimages/media_cache_entries", len(info.downloaded) + len(info.downloading))

    # Internals
    def _forget_results(self, item: HotelItem, info: Any) -> None:
        for request in item.media_requests:
            info.downloaded.pop(self._fingerprinter.fingerprint(request), None)

    def _make_fetcher(self, settings: Any) -> ImageFetcher | None:
        """The direct image fetcher, or None where images must go through Scrapy's downloader."""
        if self.cfg.image_fetcher != "direct":
            return None
        why_not = None
        if settings.getfloat("DOWNLOAD_DELAY") > 0 or settings.getbool("AUTOTHROTTLE_ENABLED"):
            why_not = "DOWNLOAD_DELAY or AUTOTHROTTLE_ENABLED is set"
        elif not is_asyncio_available():
            why_not = "the asyncio reactor is not installed"
        if why_not:
            logger.info("Images are downloaded through Scrapy's downloader: %s", why_not)
            return None
        return ImageFetcher(FetchPolicy.from_settings(settings), self.stats, self._stopping)

    def _check(self, response: Any, request: Request) -> tuple[str, Any]:
        """The store-relative path and header facts of a downloaded image; raises ImageRejected."""
        if response.status != 200:
            location = refused_redirect(response)
            raise ImageRejected(response_reason(response), f"redirect to {location[:200]}" if location else "")
        refusal = url_refusal(response.url, self.cfg.image_hosts)
        if refusal:
            raise ImageRejected(refusal, f"after redirects: {response.url[:200]}")
        meta = inspect_image(response.body, self.cfg.allowed_formats, self.cfg.max_image_pixels, self.cfg.full_decode)
        if meta.width < self.min_width or meta.height < self.min_height:
            raise ImageRejected("too_small", f"{meta.width}x{meta.height}")
        hotel_id, category, image_id = request.meta[IMAGE_META_KEY]
        # ``rel`` is made of checked IDs only (no separators, no dot names), so joining it to
        # the store cannot leave it; resolving symlinks per file would cost a syscall per level.
        rel = image_relpath(
            hotel_id, category, image_id, meta.ext, self.cfg.shard_depth, self.cfg.image_id_pattern, self.cfg.id_pattern
        )
        return rel, meta

    def _write_and_hash(self, path: str, body: bytes) -> tuple[str, str]:
        """Stage ``body`` for ``path``; returns (temporary name, sha1)."""
        return write_staged(path, body, self._token, self.cfg.fsync), hashlib.sha1(body).hexdigest()

    def _stopping(self) -> bool:
        return self.node.giving_back

    def _result(self, request: Request, url: str, body: bytes, width: int, height: int, name: str, status: str,
                digest: str | None = None) -> dict:
        hotel_id, category, image_id = request.meta[IMAGE_META_KEY]
        digest = digest or hashlib.sha1(body).hexdigest()
        stored = StoredImage(image_id, url, category, name, len(body), width, height, digest)
        return {"url": url, "path": name, "checksum": digest, "status": status, "stored": stored}

    def _failed(self, request: Request, reason: str, detail: str, quiet: bool = False) -> dict:
        request.meta[FAILURE_META_KEY] = reason
        if quiet:  # the node is stopping for a reason already logged once: not an image failure
            return {"url": request.url, "path": "", "checksum": None, "status": "failed", "reason": reason}
        self.stats.inc_value("hotelimages/images/failed")
        self.stats.inc_value(f"hotelimages/images/failed/{reason}")
        logger.warning(
            "Image not stored (%(reason)s): %(url)s of hotel %(hotel)s: %(detail)s",
            {
                "reason": reason, "url": request.url[:300],
                "hotel": request.meta[IMAGE_META_KEY][0], "detail": detail[:300],
            },
        )
        return {"url": request.url, "path": "", "checksum": None, "status": "failed", "reason": reason}

    def file_path(self, request: Request, response: Any = None, info: Any = None, *, item: Any = None) -> str:
        # The extension is only known once the bytes are checked; this is the JPEG guess
        # that stock code paths (if any call it) would see.
        hotel_id, category, image_id = request.meta[IMAGE_META_KEY]
        return image_relpath(
            hotel_id, category, image_id, "jpg", self.cfg.shard_depth, self.cfg.image_id_pattern, self.cfg.id_pattern
        )
