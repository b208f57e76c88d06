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
_counter = itertools.count()
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def write_atomic(path: str | os.PathLike[str], data: bytes, fsync: bool = False) -> None:
    """Write ``data`` to a temporary name in the same folder, then rename it over ``path``.

    Missing folders are made when the open fails, so a file in an existing folder costs no
    mkdir or stat call (``os.makedirs`` stats every level up: measured 4% of a node's CPU).
    Plain ``os`` calls: Python's ``open()`` adds an fstat, an isatty ioctl and an lseek per file.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}-{next(_counter)}{TEMP_SUFFIX}")
    try:
        fd = os.open(tmp, _OPEN_FLAGS, 0o666)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, _OPEN_FLAGS, 0o666)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
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
