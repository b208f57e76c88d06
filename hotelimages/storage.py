"""Writing files so that a crash never leaves a partial file under a final name."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import time
from pathlib import Path

TEMP_SUFFIX = ".part"
# Write errors that mean the whole store is unusable (not one file): stop, do not fail hotels.
STORE_FULL_ERRNOS = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EROFS) if code is not None
)
# Folders remembered as existing (a set of strings, cleared when full: memory stays bounded).
MADE_DIRS_LIMIT = 20_000
_counter = itertools.count()


def write_atomic(path: str | os.PathLike[str], data: bytes, fsync: bool = False,
                 made_dirs: set[str] | None = None) -> None:
    """Write ``data`` to a temporary name in the same folder, then rename it over ``path``.

    ``made_dirs`` caches folders known to exist, saving a mkdir call per file on the
    hot path; a folder removed meanwhile is simply made again.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path)
    if made_dirs is None or folder not in made_dirs:
        os.makedirs(folder, exist_ok=True)
        if made_dirs is not None:
            if len(made_dirs) >= MADE_DIRS_LIMIT:
                made_dirs.clear()
            made_dirs.add(folder)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}-{next(_counter)}{TEMP_SUFFIX}")
    try:
        try:
            f = open(tmp, "wb")  # noqa: SIM115 - closed below, before the rename
        except FileNotFoundError:
            os.makedirs(folder, exist_ok=True)
            f = open(tmp, "wb")  # noqa: SIM115
        with f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
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
