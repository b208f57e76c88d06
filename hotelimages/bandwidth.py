"""A node-wide bandwidth cap (``HOTELS_MAX_BYTES_PER_SEC``) shared by every image transfer.

libcurl's ``MAX_RECV_SPEED_LARGE`` caps one transfer; a node runs dozens. ``ByteBudget`` is a
token bucket of bytes for the whole node, used by ``fetcher.ImageFetcher`` in two places:

- a transfer starts only while the bucket is not in debt, and takes the expected size of a
  photo (a running average) out of it at once: a server sends a small photo as soon as it is
  asked, so starts are what a CDN and the office line see;
- while the body arrives, bytes beyond that estimate are taken as they come; once the bucket
  is in debt the transfer is paused (libcurl's write-callback pause) and resumed when the
  bucket is out of debt again. At its end, an overestimate is given back.

So the bytes a node asks for over any window stay within a photo or two of ``rate`` ×
window. ``rate`` may change at run time (the schedule's caps); 0 means no cap.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: The bucket holds at most this many seconds of the rate (the largest burst after idling).
BURST_SECONDS = 0.25
#: First guess of a photo's size, before any was seen.
FIRST_ESTIMATE = 64 * 1024


class ByteBudget:
    """A token bucket of bytes for one node; ``rate`` bytes/s, 0 = unlimited."""

    def __init__(self, rate: int = 0, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.rate = 0
        self.level = 0.0
        self.updated = clock()
        self.estimate = float(FIRST_ESTIMATE)
        self.set_rate(rate)

    def set_rate(self, rate: int) -> None:
        """Change the cap (0 = none); the bucket starts empty so a new cap holds from now."""
        if rate != self.rate:
            self._refill()
            self.rate = max(0, int(rate))
            self.level = min(self.level, 0.0)

    @property
    def burst(self) -> float:
        return max(self.rate * BURST_SECONDS, 16 * 1024)

    def _refill(self) -> None:
        now = self.clock()
        if self.rate:
            self.level = min(self.burst, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def delay(self) -> float:
        """Seconds until a transfer may start (0: now)."""
        if not self.rate:
            return 0.0
        self._refill()
        return 0.0 if self.level > 0 else (-self.level + 1) / self.rate

    def start(self) -> int:
        """A transfer starts: take the expected size out; returns what was taken (give it to ``finish``)."""
        if not self.rate:
            return 0
        self._refill()
        taken = int(self.estimate)
        self.level -= taken
        return taken

    def take(self, n: int) -> None:
        """Bytes that arrived beyond a transfer's estimate."""
        if self.rate:
            self._refill()
            self.level -= n

    def over(self) -> float:
        """Seconds until the bucket is out of debt (0: not in debt); a transfer past its estimate pauses meanwhile."""
        if not self.rate:
            return 0.0
        self._refill()
        return -self.level / self.rate if self.level < 0 else 0.0

    def finish(self, taken: int, received: int) -> None:
        """A transfer ended after ``received`` bytes; an overestimate is given back, the estimate updated."""
        if received > 0:
            self.estimate = 0.8 * self.estimate + 0.2 * received
        if self.rate and taken > received:
            self._refill()
            self.level = min(self.burst, self.level + (taken - received))
