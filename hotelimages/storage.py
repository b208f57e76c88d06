"""Writing files so that a crash never leaves a partial file under a final name.

Images are *staged*: written under a temporary name (``write_staged``) and renamed into place
(``publish_staged``) only once the node has checked it still holds the hotel's claim, so a
process whose claim expired never replaces files another process recorded. ``clean_hotel_folder``
removes what killed or superseded processes left in a hotel's folder.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import time
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".part"
# Write errors that mean the store is full or read-only (every write error stops the node: see
# ``nodestate.NodeState.stop_for_store``); kept for the messages that name them.
STORE_FULL_ERRNOS = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EROFS) if code is not None
)
_counter = itertools.count()
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def replace_retrying(src: str, dst: str, attempts: int = 1, first_delay: float = 0.05,
                     replace: Any = os.replace, sleep: Any = time.sleep) -> None:
    """``os.replace`` that retries a ``PermissionError`` ``attempts - 1`` times, doubling a short pause.

    On Windows an antivirus, the indexer or Explorer may hold a freshly written file for a moment.
    """
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            replace(src, dst)
            return
        except PermissionError:
            if attempt >= attempts:
                raise
            sleep(delay)
            delay *= 2


def _write_new(tmp: str, folder: str, data: bytes, fsync: bool) -> None:
    try:
        fd = os.open(tmp, _OPEN_FLAGS, 0o666)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, _OPEN_FLAGS, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(path: str, token: str) -> str:
    """The temporary name of ``path`` for writer ``token`` (hidden, in the same folder, ends in .part)."""
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{token}-{next(_counter)}{TEMP_SUFFIX}")


def write_staged(path: str, data: bytes, token: str, fsync: bool = False) -> str:
    """Write ``data`` for ``path`` under a temporary name of writer ``token``; returns that name.

    ``publish_staged`` renames it into place later; until then the final name is untouched.
    """
    tmp = temp_name(path, token)
    try:
        _write_new(tmp, os.path.dirname(path), data, fsync)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def publish_staged(pairs: list[tuple[str, str]], attempts: int = 1) -> None:
    """Rename each staged (temporary, final) pair into place; raises the first OSError.

    A ``FileNotFoundError`` means another process cleaned the hotel's folder: it holds the claim now.
    """
    for tmp, final in pairs:
        replace_retrying(tmp, final, attempts)


def discard_staged(pairs: list[tuple[str, str]]) -> None:
    """Delete staged files that will not be published (the claim was lost, or the node stops)."""
    for tmp, _final in pairs:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def clean_hotel_folder(folder: Path, keep: set[str]) -> int:
    """Remove from a hotel's folder every temporary file and every image file not in ``keep``.

    ``keep`` holds paths relative to ``folder`` (``<category>/<file>``); ``manifest.json`` stays.
    Called only by the process that holds the hotel's claim, just before it publishes its files:
    anything else there was left by a killed process or one whose claim expired.
    """
    removed = 0
    try:
        categories = [entry for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return 0
    for category in categories:
        with os.scandir(category.path) as files:
            for entry in files:
                if entry.is_dir(follow_symlinks=False) or f"{category.name}/{entry.name}" in keep:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    with os.scandir(folder) as top:
        for entry in top:
            if entry.name.endswith(TEMP_SUFFIX) and not entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    return removed


def write_atomic(path: str | os.PathLike[str], data: bytes, fsync: bool = False, attempts: int = 1) -> None:
    """Write ``data`` to a temporary name in the same folder, then rename it over ``path``.

    Missing folders are made when the open fails, so a file in an existing folder costs no
    mkdir or stat call (``os.makedirs`` stats every level up: measured 4% of a node's CPU).
    Plain ``os`` calls: Python's ``open()`` adds an fstat, an isatty ioctl and an lseek per file.
    """
    path = os.fspath(path)
    tmp = temp_name(path, str(os.getpid()))
    try:
        _write_new(tmp, os.path.dirname(path), data, fsync)
        replace_retrying(tmp, path, attempts)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_temp_files(folder: Path, older_than: float = 0.0) -> int:
    """Delete temporary files a killed process left under ``folder``; returns how many.

    ``older_than`` (seconds) spares files young enough to belong to a write in progress.
    """
    removed = 0
    if not folder.is_dir():
        return 0
    cutoff = time.time() - older_than
    for tmp in folder.rglob(f".*{TEMP_SUFFIX}"):
        try:
            if older_than and tmp.stat().st_mtime > cutoff:
                continue
            tmp.unlink()
        except FileNotFoundError:
            continue
        removed += 1
    return removed
