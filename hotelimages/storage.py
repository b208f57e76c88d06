"""Writing files so that a crash never leaves a partial file under a final name."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

TEMP_SUFFIX = ".part"
_counter = itertools.count()


def write_atomic(path: Path, data: bytes, fsync: bool = False) -> None:
    """Write ``data`` to a temporary name in the same folder, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{next(_counter)}{TEMP_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
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
