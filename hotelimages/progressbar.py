"""The progress display of pack and merge: a tqdm bar of bytes done, with rate and ETA, on stderr.

Units are the decimal ones ``status`` uses (kB, MB, GB, as disks are sold), and tqdm
writes ETAs beyond 24 hours as hours (``30:00:05``) rather than wrapping them.
"""

from __future__ import annotations

import sys
from typing import IO

from tqdm import tqdm

from hotelimages.status import format_bytes

__all__ = ["ProgressBar", "format_bytes"]


class ProgressBar:
    """``bar(done, total)`` moves a bytes bar to ``done`` of ``total``; ``close()`` ends its line.

    On a terminal the bar is redrawn in place a few times a second; otherwise a line is
    written at most every 10 seconds so logs stay readable.
    """

    def __init__(self, label: str, stream: IO[str] | None = None):
        self.label = label
        stream = stream or sys.stderr
        tty = getattr(stream, "isatty", lambda: False)()
        self._bar = tqdm(
            desc=label, total=0, unit="B", unit_scale=True, unit_divisor=1000, file=stream,
            mininterval=0.2 if tty else 10.0, dynamic_ncols=tty, ascii=not tty, leave=True,
        )

    def __call__(self, done: int, total: int) -> None:
        bar = self._bar
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    def close(self) -> None:
        """Draw the final state and end the line."""
        self._bar.close()
