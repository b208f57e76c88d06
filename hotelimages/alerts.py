"""Alert conditions of the fleet, judged from one ``FleetStatus`` (pure: no Redis, no clock).

``status`` (text, JSON, ``--check``), the live page and the Prometheus metrics all
show the same list, so an operator without Prometheus is warned of what its alert
rules (docs/monitoring/alerts.yml) would fire on:

* ``gone_node_leases``: a process without a heartbeat still holds leases (its hotels
  wait for the leases to expire, or for ``requeue``);
* ``failure_rate``: failures / (stored images + failures) over the window is at or
  above the threshold, with enough attempts to mean something;
* ``no_progress``: work is left but no process's counters grew for the stall span;
* ``redis_memory``: Redis's used memory is at or above a share of its ``maxmemory``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hotelimages.status import FleetStatus

#: Every alert name, in display order.
ALERT_NAMES = ("gone_node_leases", "failure_rate", "no_progress", "redis_memory")


@dataclass(frozen=True)
class Thresholds:
    """When a condition becomes an alert."""

    #: Fleet failure rate over the status window at which ``failure_rate`` fires.
    failure_rate: float = 0.2
    #: Fewest attempts (stored images + failures) in the window for the rate to count.
    min_attempts: int = 20
    #: Seconds without any counter growing, while work is left, before ``no_progress`` fires.
    stall_seconds: float = 600.0
    #: Share of Redis's maxmemory at which ``redis_memory`` fires (never without a maxmemory).
    memory_ratio: float = 0.8


@dataclass
class Alert:
    """One alert: its name (one of ``ALERT_NAMES``), a sentence for people, and the process it is about."""

    name: str
    message: str
    owner: str = ""


def check(status: FleetStatus, thresholds: Thresholds) -> list[Alert]:
    """The alerts that ``status`` shows, in ``ALERT_NAMES`` order."""
    out: list[Alert] = []
    for node in status.gone:
        if node.leases:
            out.append(Alert("gone_node_leases", f"{node.owner} ({node.state}, no heartbeat) holds "
                             f"{node.leases} leases", node.owner))
    rate = status.failure_rate
    if rate is not None and status.attempts >= thresholds.min_attempts and rate >= thresholds.failure_rate:
        out.append(Alert("failure_rate", f"{rate:.0%} of {status.attempts} attempts failed over the last "
                         f"{status.window:.0f}s (threshold {thresholds.failure_rate:.0%})"))
    remaining = status.pending + status.leased
    if remaining and status.last_progress_at is not None:
        stalled = status.at - status.last_progress_at
        if stalled >= thresholds.stall_seconds:
            out.append(Alert("no_progress", f"no progress for {stalled:.0f}s with {remaining} hotels left "
                             f"(threshold {thresholds.stall_seconds:.0f}s)"))
    used, limit = status.redis_memory.get("used_memory", 0), status.redis_memory.get("maxmemory", 0)
    if limit and used >= thresholds.memory_ratio * limit:
        out.append(Alert("redis_memory", f"Redis uses {used / limit:.0%} of its maxmemory ({used} of {limit} bytes; "
                         f"threshold {thresholds.memory_ratio:.0%})"))
    return out
