"""Recording each hotel's outcome: files into place, manifest file, Redis records, the claim's ack.

For a settled hotel it first checks in Redis that this process still holds the claim (and that
nobody recorded the hotel meanwhile); only then are the staged image files renamed into place,
anything a killed or superseded process left in the hotel's folder removed, and
``<hotel dir>/manifest.json`` written atomically. Then in
one Redis transaction stores its compact done record (``manifest.done_record``: status,
images per category, bytes, the file's sha1; the whole manifest too, compressed, with
``HOTELS_REDIS_FULL_MANIFESTS``) in ``hotels:manifests``, drops any
old entry in ``hotels:failed``, bumps the fleet counters and acknowledges the
claim. A hotel that failed as a whole goes to ``hotels:failed`` instead. Lost
connections and timeouts are retried with capped backoff; until the ack commits the hotel stays
claimed (and is requeued if this node dies), so nothing is lost.

A hotel that failed for a reason about this node (``reasons.NODE_LOCAL_REASONS``) is not
recorded: ``NodeState.node_local_failure`` gives it back to the queue and counts it for the
circuit breaker. A store that cannot be written stops the node; the hotel is given back.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hotelimages import manifest as mf
from hotelimages.config import HotelsConfig
from hotelimages.items import HotelItem
from hotelimages.nodestate import NodeState
from hotelimages.reasons import hotel_status, node_local_text
from hotelimages.sharding import hotel_dir, resolve_in_store
from hotelimages.storage import clean_hotel_folder, discard_staged, publish_staged, write_atomic

logger = logging.getLogger(__name__)

REDIS_RETRY_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
#: Process stats name of a hotel recorded in ``hotels:failed``, by ``reasons.hotel_status``: kept apart
#: from ``hotels/failed``, which counts manifests whose every image failed (a done hotel).
WHOLE_FAILURE_STAT = {"failed": "failed_whole", "rejected": "rejected"}


def _read_if_present(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


class ManifestPipeline:
    """Writes manifests and failure records, and acknowledges claims."""

    def __init__(self, node: NodeState, stats: Any, cfg: HotelsConfig, store: str):
        self.node = node
        self.cfg = cfg
        self.store = store
        self.store_root = Path(store).resolve()
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler: Any) -> ManifestPipeline:
        return cls(
            NodeState.of(crawler), crawler.stats, HotelsConfig.from_settings(crawler.settings),
            str(crawler.settings.get("IMAGES_STORE")),
        )

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, HotelItem):
            return item
        leases = self.node.leases
        if self.node.giving_back:
            # A stop cut this hotel short: its claim goes back to the queue instead.
            await asyncio.to_thread(discard_staged, item.staged)
            return item
        if item.failure and node_local_text(item.failure):
            if await self.node.node_local_failure(item.entry, item.hotel_id, item.failure):
                return item
        now = mf.utc_now()
        if item.failure:
            record = mf.failure_record(
                item.hotel_id, item.failure, item.failure_detail, self.cfg.node_id, now, item.entry
            )
            status = hotel_status(item.failure)
            recorded = await self._commit(item, leases, WHOLE_FAILURE_STAT[status], failed_json=json.dumps(record))
            logger.warning(
                "Hotel %(hotel)s failed (%(reason)s): %(detail)s",
                {"hotel": item.hotel_id[:80], "reason": item.failure, "detail": item.failure_detail[:300]},
            )
            if recorded:
                await self.node.hotel_recorded(item.entry, item.hotel_id, item.failure)
            return item
        rel = hotel_dir(item.hotel_id, self.cfg.shard_depth, self.cfg.id_pattern)
        manifest = mf.build_manifest(
            hotel_id=item.hotel_id,
            node=self.cfg.node_id,
            store=self.store,
            hotel_dir=rel,
            stored=item.stored,
            failed=item.failed,
            categories=(*self.cfg.categories, self.cfg.other_category),
            started_at=item.started_at,
            finished_at=now,
        )
        text = mf.dumps(manifest)
        data = text.encode("utf-8")
        path = resolve_in_store(self.store_root, f"{rel}/{mf.MANIFEST_NAME}")
        if not await self._still_ours(item, leases):
            return item
        keep = {f"{s.category}/{s.file}" for s in item.stored}
        try:
            before = await asyncio.to_thread(self._put_in_place, item, path, keep, data)
        except FileNotFoundError:
            # Our staged files are gone: a process that holds the claim now cleaned the folder.
            await asyncio.to_thread(discard_staged, item.staged)
            leases.drop(item.entry)
            self.stats.inc_value("hotelimages/hotels/lease_lost")
            logger.warning("Hotel %s: staged files removed by the process that holds it now; result dropped",
                           item.hotel_id[:80])
            return item
        except OSError as exc:
            # Not the hotel's fault: the node stops and gives the hotel back.
            await asyncio.to_thread(discard_staged, item.staged)
            self.node.stop_for_store(exc)
            return item
        recorded = await self._commit(
            item, leases, manifest["status"],
            manifest_json=mf.done_record(manifest, data, full=self.cfg.redis_full_manifests),
            images=len(item.stored), nbytes=sum(s.bytes for s in item.stored), failed_images=len(item.failed),
            force=item.force, image_reasons=Counter(f.reason for f in item.failed),
        )
        if recorded is False:
            await self._keep_recorded_manifest(item.hotel_id, path, data, before)
        elif recorded:
            await self.node.hotel_recorded(item.entry, item.hotel_id, None)
        logger.debug("Hotel %(hotel)s %(status)s", {"hotel": item.hotel_id, "status": manifest["status"]})
        return item

    async def _still_ours(self, item: HotelItem, leases: Any) -> bool:
        """Check, right before anything goes into place, that this process still holds the hotel.

        A process stalled past its lease (swap, a suspended VM, SIGSTOP) must not replace the files
        of the process that took the hotel over and recorded it. The lease must also have time left
        (a quarter of HOTELS_LEASE_SECONDS) to cover the renames that follow.
        """
        try:
            left = await leases.holds(item.entry, item.hotel_id[:200], item.force or self.cfg.force)
        except REDIS_RETRY_ERRORS as exc:
            left, error = -3.0, exc
        if left >= self.cfg.lease_seconds / 4:
            return True
        await asyncio.to_thread(discard_staged, item.staged)
        if left == -2:  # recorded by another claim meanwhile: ours is a duplicate
            try:
                await leases.ack(item.entry)
            except REDIS_RETRY_ERRORS:
                leases.drop(item.entry)
            self.stats.inc_value("hotelimages/hotels/duplicate_result")
            logger.info("Hotel %(hotel)s was recorded by another node meanwhile: this result is dropped",
                        {"hotel": item.hotel_id[:80]})
            return False
        leases.drop(item.entry)  # no longer renewed; requeued on expiry if nobody holds it
        self.stats.inc_value("hotelimages/hotels/lease_lost")
        if left == -3:
            logger.warning("Hotel %s: cannot check its claim (%r); left for a retry", item.hotel_id[:80], error)
        else:
            logger.warning(
                "Hotel %(hotel)s: the lease of this process expired (%(left)s); its files are not put in place",
                {"hotel": item.hotel_id[:80], "left": "taken over" if left < 0 else f"{left:.1f}s left"},
            )
        return False

    def _put_in_place(self, item: HotelItem, path: Path, keep: set[str], data: bytes) -> bytes | None:
        """Rename the staged images into place, clear leftovers from the hotel folder, write the manifest.

        Returns what ``manifest.json`` held before (None if nothing), for ``_keep_recorded_manifest``.
        """
        publish_staged(item.staged, self.cfg.rename_attempts)
        item.staged = []
        removed = clean_hotel_folder(path.parent, keep)
        if removed:
            logger.info("Removed %d files left in the folder of hotel %s by an earlier process", removed,
                        item.hotel_id[:80])
        before = _read_if_present(path)
        write_atomic(path, data, self.cfg.fsync, self.cfg.rename_attempts)
        return before

    async def _keep_recorded_manifest(self, hotel_id: str, path: Path, ours: bytes, before: bytes | None) -> None:
        """Our result was dropped: the file must say what Redis says, or not claim the hotel at all.

        ``before`` is what the file held before we wrote ``ours``. The recorded manifest is known
        whole from a full record, else by the sha1 in the compact one: if it is ours or the one
        we overwrote, that is what the file keeps.
        """
        try:
            recorded = await self.node.leases.recorded(hotel_id)
        except REDIS_RETRY_ERRORS:
            recorded = None
        if recorded is None or recorded.store != self.store or recorded.node != self.cfg.node_id:
            await asyncio.to_thread(path.unlink, True)
            return
        # Another process of this node, same store: its manifest is the one to keep.
        if recorded.manifest is not None:
            keep: bytes | None = mf.dumps(recorded.manifest).encode("utf-8")
        elif recorded.sha1 == hashlib.sha1(ours).hexdigest():  # noqa: S324 - content fingerprint
            keep = ours
        elif before is not None and recorded.sha1 == hashlib.sha1(before).hexdigest():  # noqa: S324
            keep = before
        else:
            keep = None
        if keep is None:
            await asyncio.to_thread(path.unlink, True)
        elif keep is not ours:
            await asyncio.to_thread(write_atomic, path, keep, self.cfg.fsync)

    async def _commit(self, item: HotelItem, leases: Any, status: str, **record: Any) -> bool | None:
        """Record the outcome in Redis, retrying with capped backoff while Redis is unreachable.

        True: recorded. False: another claim had recorded the hotel first. None: given up
        while stopping (the claim stays and is requeued when its lease expires).
        """
        delay = 0.5
        while True:
            try:
                recorded = await leases.record(item.entry, item.hotel_id[:200], status=status, **record)
                break
            except REDIS_RETRY_ERRORS as exc:
                if self.node.giving_back:
                    logger.warning("Redis unreachable while stopping: hotel %s stays claimed until its lease expires",
                                   item.hotel_id[:80])
                    leases.drop(item.entry)
                    return None
                logger.warning(
                    "Redis unreachable while recording hotel %(hotel)s (%(error)s); retrying in %(delay).1fs",
                    {"hotel": item.hotel_id[:80], "error": type(exc).__name__, "delay": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        leases.forget(item.entry)
        if recorded:
            self.stats.inc_value(f"hotelimages/hotels/{status}")
        else:
            self.stats.inc_value("hotelimages/hotels/duplicate_result")
            logger.info("Hotel %(hotel)s was recorded by another node meanwhile: this result is dropped",
                        {"hotel": item.hotel_id[:80]})
        return recorded
