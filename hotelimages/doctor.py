"""Start-up checks of a node (preflight), and the same checks as the ``doctor`` command.

Before a node claims anything, ``preflight(settings)`` checks, in order:

1. settings: no unknown setting or environment variable that looks like ours
   (``config.check_names``), and every value valid (``HotelsConfig.from_settings``);
2. Redis: reachable, the password or ACL user accepted, scripts and the project's keys allowed;
3. the Redis keys have the right types (``hotels:start_ids`` a list, ``hotels:leases`` a sorted set, ...);
4. ``HOTEL_LISTING_URL`` is set and contains ``{hotel_id}`` (unless ``HOTELS_REQUIRE_LISTING_URL``
   is off, for queues of inline JSON records only);
5. the store (``IMAGES_STORE``) exists or can be made, and a probe file can be written, renamed
   and deleted there; free space under ``HOTELS_STORE_MIN_FREE_MB`` only warns;
6. the longest path the node can write fits Windows' limits (on Windows; elsewhere it is shown).

Any failure raises ``PreflightError`` with one line that says what is wrong; the node's crawl
command (``hotelimages.scrapy_commands.crawl``) logs it and exits with status 2 before the crawl starts.
``main`` is the ``doctor`` command: one line per check with ✔ or ✗, exit status 0 or 1.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis

from hotelimages.config import HotelsConfig, check_names
from hotelimages.imagecheck import EXTENSIONS
from hotelimages.redisconn import sync_client
from hotelimages.storage import TEMP_SUFFIX, write_atomic

logger = logging.getLogger(__name__)

#: Longest path a Windows program may use without long paths enabled (MAX_PATH 260 less the NUL).
WINDOWS_MAX_PATH = 259
#: Longest folder path CreateDirectory accepts (MAX_PATH less room for an 8.3 file name).
WINDOWS_MAX_DIR = 247
#: Longest file name most file systems accept (NTFS, ext4).
MAX_NAME = 255
#: Digits of a process ID (Windows: a 32-bit number) and of a per-process write counter in temp names.
_PID_DIGITS = 10
_COUNTER_DIGITS = 10
#: Redis key -> the types it may have (``none``: not made yet).
_KEY_TYPES = {
    "start_ids": ("list",),
    "leases": ("zset",),
    "lease_owners": ("hash",),
    "manifests": ("hash",),
    "failed": ("hash",),
    "stats": ("hash",),
}
MIB = 1024 * 1024
#: The ID length assumed for a pattern that does not bound it (the default patterns allow 64).
ASSUMED_ID_LENGTH = 64


class PreflightError(Exception):
    """A check failed: the node must not start. The message is one line."""


@dataclass(frozen=True)
class Check:
    """The outcome of one check: its name, ok or not, one line of detail; ``warning`` flags an ok worth a look."""

    name: str
    ok: bool
    detail: str
    warning: bool = False

    def line(self, marks: tuple[str, str, str] = ("✔", "✗", "⚠")) -> str:
        mark = marks[1] if not self.ok else marks[2] if self.warning else marks[0]
        return f"{mark} {self.name}: {self.detail}"


# ---------------------------------------------------------------- pure: path lengths


def pattern_max_length(pattern: str) -> int | None:
    """The longest string a regular expression can match whole, or None if it has no bound."""
    from re import _parser  # noqa: PLC0415 - the only way to ask a pattern for its width

    high = _parser.parse(pattern).getwidth()[1]
    return None if high >= _parser.MAXREPEAT else int(high)


def temp_name_length(name_length: int) -> int:
    """Length of the temporary name ``storage.write_atomic`` gives a file of ``name_length`` characters."""
    return 1 + name_length + 1 + _PID_DIGITS + 1 + _COUNTER_DIGITS + len(TEMP_SUFFIX)


@dataclass(frozen=True)
class PathLengths:
    """The longest folder path, file path and single name a node can write under one store."""

    folder: int
    file: int
    name: int


def longest_paths(store: str, *, hotel_id_length: int, image_id_length: int, shard_depth: int,
                  category_length: int, extension_length: int) -> PathLengths:
    """*Pure*: the longest paths under ``store`` (an absolute path as the OS sees it).

    Layout: ``<store>/<h0>/.../<h{depth-1}>/<hotel_id>/<category>/<image_id>.<ext>`` and
    ``<hotel folder>/manifest.json``, each first written under a temporary name
    (``.<name>.<pid>-<counter>.part``), which is the longest.
    """
    root = len(store.rstrip("/\\"))
    hotel_folder = root + 2 * shard_depth + 1 + hotel_id_length
    category_folder = hotel_folder + 1 + category_length
    image_name = temp_name_length(image_id_length + 1 + extension_length)
    manifest_name = temp_name_length(len("manifest.json"))
    return PathLengths(
        folder=category_folder,
        file=max(category_folder + 1 + image_name, hotel_folder + 1 + manifest_name),
        name=max(image_name, manifest_name, hotel_id_length),
    )


def config_path_lengths(cfg: HotelsConfig, store: str) -> tuple[PathLengths, list[str]]:
    """``longest_paths`` for a node's settings; the list names ID patterns without a length bound.

    An unbounded pattern is counted as ``ASSUMED_ID_LENGTH`` characters.
    """
    unbounded = []
    lengths = {}
    for name, pattern in (("HOTELS_ID_PATTERN", cfg.id_pattern), ("HOTELS_IMAGE_ID_PATTERN", cfg.image_id_pattern)):
        high = pattern_max_length(pattern)
        if high is None:
            unbounded.append(name)
        lengths[name] = ASSUMED_ID_LENGTH if high is None else high
    paths = longest_paths(
        store,
        hotel_id_length=lengths["HOTELS_ID_PATTERN"],
        image_id_length=max(lengths["HOTELS_IMAGE_ID_PATTERN"], 16),  # 16: an image ID derived from the URL
        shard_depth=cfg.shard_depth,
        category_length=max(len(c) for c in (*cfg.categories, cfg.other_category)),
        extension_length=max(len(e) for e in (*EXTENSIONS.values(), *(f.lower()[:8] for f in cfg.allowed_formats))),
    )
    return paths, unbounded


def windows_long_paths_enabled() -> bool:
    """Whether Windows lets this Python use paths over 259 characters (LongPathsEnabled in the registry)."""
    try:
        import winreg  # noqa: PLC0415 - Windows only
    except ImportError:
        return False
    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SYSTEM\CurrentControlSet\Control\FileSystem") as key:
            return bool(winreg.QueryValueEx(key, "LongPathsEnabled")[0])
    except OSError:
        return False


# ---------------------------------------------------------------- the checks


def shown_listing_url(url: str) -> str:
    """The listing template without a query (it may hold an API key)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}" + ("?…" if parts.query else "")


def check_settings(settings: Any, environ: Mapping[str, str]) -> tuple[HotelsConfig | None, list[Check]]:
    """Unknown names and bad values; the config, or None when it cannot be read."""
    errors, warnings = check_names(settings, environ)
    checks = [Check("settings", False, e) for e in errors]
    checks += [Check("settings", True, w, warning=True) for w in warnings]
    try:
        cfg = HotelsConfig.from_settings(settings)
    except ValueError as exc:
        return None, [*checks, Check("settings", False, str(exc))]
    if not errors:
        checks.append(Check("settings", True, "no unknown names; every value valid"))
    return cfg, checks


def _redis_problem(exc: Exception, label: str) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, redis.AuthenticationError) or any(w in text for w in ("NOAUTH", "WRONGPASS", "invalid user")):
        return f"Redis at {label} refused the credentials ({text}): check the password or user in REDIS_URL"
    if isinstance(exc, redis.exceptions.NoPermissionError) or "NOPERM" in text:
        return f"Redis at {label}: the ACL user may not do what a node needs ({text})"
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError)):
        return f"Redis unreachable at {label} ({text})"
    return f"Redis at {label}: {text}"


def check_redis(cfg: HotelsConfig, client: Any) -> list[Check]:
    """Reachable and authenticated, scripts allowed, and every key of the right type."""
    label = cfg.redis.label
    try:
        client.ping()
        client.eval("return 1", 0)
        keys = {attr: getattr(cfg.keys, attr) for attr in _KEY_TYPES}
        with client.pipeline(transaction=False) as pipe:
            for key in keys.values():
                pipe.type(key)
            types = pipe.execute()
    except (redis.RedisError, OSError) as exc:
        return [Check("Redis", False, _redis_problem(exc, label))]
    version = "?"
    with contextlib.suppress(redis.RedisError, OSError):  # INFO may be denied to a node's ACL user: no matter
        version = client.info("server").get("redis_version", "?")
    checks = [Check("Redis", True, f"{label}: reachable, authenticated (Redis {version})")]
    wrong = []
    for (attr, key), kind in zip(keys.items(), types, strict=True):
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind != "none" and kind not in _KEY_TYPES[attr]:
            wrong.append(f"{key} is a {kind}, not a {' or '.join(_KEY_TYPES[attr])}")
    if wrong:
        checks.append(Check("Redis keys", False, "; ".join(wrong) + " (another program uses these names? "
                                                              "set HOTELS_KEY_PREFIX / HOTELS_REDIS_KEY)"))
    else:
        checks.append(Check("Redis keys", True, ", ".join(keys.values()) + ": types right"))
    return checks


def check_listing(cfg: HotelsConfig) -> Check:
    """HOTEL_LISTING_URL set (``{hotel_id}`` is checked with the other values)."""
    if cfg.listing_url:
        return Check("listing URL", True, shown_listing_url(cfg.listing_url))
    if not cfg.require_listing_url:
        return Check("listing URL", True, "not set: inline JSON records only (HOTELS_REQUIRE_LISTING_URL=False)",
                     warning=True)
    return Check("listing URL", False, "HOTEL_LISTING_URL is not set (a template such as "
                                       "https://api.example.com/hotels/{hotel_id}/photos)")


def store_path(cfg: HotelsConfig) -> Path:
    """The store as an absolute path (a relative IMAGES_STORE is under the working directory)."""
    return Path(os.path.abspath(cfg.store or "images"))


def check_store(cfg: HotelsConfig, *, on_windows: bool | None = None,
                long_paths: Callable[[], bool] = windows_long_paths_enabled) -> list[Check]:
    """The store exists or can be made, is writable, has room, and its longest path fits."""
    store = store_path(cfg)
    where = str(store)
    if not os.path.isabs(cfg.store or "images"):
        where += f" (IMAGES_STORE {cfg.store or 'images'!r} is relative to the working directory)"
    # Folders made for the probe are removed again: a check leaves nothing behind (the node makes them).
    made = [p for p in (store, *store.parents) if not p.exists()]
    try:
        store.mkdir(parents=True, exist_ok=True)
        probe = store / f".hotelimages-probe-{os.getpid()}"
        write_atomic(probe, b"hotelimages store probe\n")
        probe.unlink()
        free_mb = shutil.disk_usage(store).free // MIB
    except OSError as exc:
        return [Check("store", False, f"the store {store} cannot be written ({exc.strerror or exc}; "
                                      f"errno {exc.errno}): check IMAGES_STORE and its permissions")]
    finally:
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
    made_note = ", can be made" if made else ""
    checks = [Check("store", True, f"{where}: writable{made_note} (probe file written, renamed, deleted)")]
    low = free_mb < cfg.store_min_free_mb
    checks.append(Check("free space", True, f"{free_mb:,} MiB free on the store's disk"
                        + (f", under HOTELS_STORE_MIN_FREE_MB={cfg.store_min_free_mb}" if low else ""), warning=low))
    checks.append(check_path_length(cfg, str(store), on_windows=on_windows, long_paths=long_paths))
    return checks


def check_path_length(cfg: HotelsConfig, store: str, *, on_windows: bool | None = None,
                      long_paths: Callable[[], bool] = windows_long_paths_enabled) -> Check:
    """The longest path and name the node writes, against MAX_PATH on Windows and 255-character names."""
    on_windows = os.name == "nt" if on_windows is None else on_windows
    paths, unbounded = config_path_lengths(cfg, store)
    figures = f"longest path {paths.file} characters, folder {paths.folder}, name {paths.name}"
    if paths.name > MAX_NAME:
        return Check("path length", False, f"{figures}: a file name over {MAX_NAME} characters; "
                                           "bound the ID patterns (HOTELS_ID_PATTERN, HOTELS_IMAGE_ID_PATTERN)")
    if not on_windows:
        return Check("path length", True, f"{figures} (Windows' limit of {WINDOWS_MAX_PATH} does not apply here)")
    if long_paths():
        return Check("path length", True, f"{figures} (Windows long paths are enabled)")
    if paths.file > WINDOWS_MAX_PATH or paths.folder > WINDOWS_MAX_DIR:
        return Check("path length", False,
                     f"{figures}: over Windows' limit of {WINDOWS_MAX_PATH} ({WINDOWS_MAX_DIR} for a folder); "
                     "use a shorter IMAGES_STORE (such as D:/image) or enable long paths (LongPathsEnabled)")
    if unbounded:
        room = ASSUMED_ID_LENGTH + WINDOWS_MAX_PATH - paths.file
        return Check("path length", True, f"{figures} for IDs of {ASSUMED_ID_LENGTH} characters: "
                                          f"{' and '.join(unbounded)} do not bound the ID length, and an ID over "
                                          f"{room} characters would not fit Windows' limit", warning=True)
    return Check("path length", True, f"{figures} (Windows' limit: {WINDOWS_MAX_PATH})")


def run_checks(settings: Any, environ: Mapping[str, str] | None = None) -> tuple[HotelsConfig | None, list[Check]]:
    """Every check, in order; Redis and store checks are skipped when the settings cannot be read."""
    environ = os.environ if environ is None else environ
    cfg, checks = check_settings(settings, environ)
    if cfg is None:
        return None, checks
    client = sync_client(cfg.redis)
    try:
        checks += check_redis(cfg, client)
    finally:
        client.close()
    checks.append(check_listing(cfg))
    checks += check_store(cfg)
    return cfg, checks


def failure_line(failed: list[Check]) -> str:
    """The one line a node that does not start says: the first failure, and how many more there are."""
    more = len(failed) - 1
    extra = f" (and {more} more problem{'s' if more > 1 else ''}: run the doctor command)" if more else ""
    return f"not starting: {failed[0].name}: {failed[0].detail}{extra}"


def preflight(settings: Any, environ: Mapping[str, str] | None = None) -> HotelsConfig:
    """Run every check before a node claims; warnings are logged; the first failure raises PreflightError."""
    cfg, checks = run_checks(settings, environ)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise PreflightError(failure_line(failed))
    for check in checks:
        if check.warning:
            logger.warning("%s: %s", check.name, check.detail)
    assert cfg is not None
    logger.info("Storing under %s", store_path(cfg))
    return cfg


# ---------------------------------------------------------------- the doctor report


def _marks(stream: Any) -> tuple[str, str, str]:
    try:
        "✔✗⚠".encode(getattr(stream, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return ("OK  ", "FAIL", "WARN")
    return ("✔", "✗", "⚠")


def report(settings: Any, stream: Any) -> int:
    """Run every check with ``settings``, print one line each (✔/✗/⚠) to ``stream``; 0 if all passed, else 1."""
    _, checks = run_checks(settings)
    marks = _marks(stream)
    for check in checks:
        print(check.line(marks), file=stream)
    failed = sum(not c.ok for c in checks)
    verdict = "; the node would not start" if failed else ""
    print(f"{len(checks) - failed} of {len(checks)} checks passed{verdict}", file=stream)
    return 1 if failed else 0
