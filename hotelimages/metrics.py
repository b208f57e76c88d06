"""Prometheus metrics of the fleet: the figures of ``status --json`` in the exposition format.

``FleetCollector`` is a custom collector for the official ``prometheus_client``: on every
scrape it reads one ``FleetStatus`` (through the function it was given, usually
``status.gather``) and ``families`` turns it into metric families. Names and labels are a
contract, documented in docs/OPERATIONS.md; add, never rename.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from hotelimages import alerts
from hotelimages.status import HOTEL_COUNTERS, FleetStatus

#: The fleet counters of ``hotels:stats`` exposed as counters: field -> (metric name, help).
STATS_COUNTERS = {
    "images/stored": ("hotelimages_images_stored", "Images stored, fleet-wide."),
    "images/bytes": ("hotelimages_image_bytes", "Bytes of images stored, fleet-wide."),
    "images/failed": ("hotelimages_images_failed", "Images that failed, fleet-wide."),
    "claims/requeued_expired": ("hotelimages_claims_requeued_expired", "Claims put back after their lease expired."),
    "claims/duplicate_in_flight": ("hotelimages_claims_duplicate_in_flight", "Duplicate entries dropped at claim."),
}


def _split_reason(field: str) -> tuple[str, str]:
    kind, _, reason = field.partition("/")
    return (kind, reason) if reason else ("unknown", field)


def families(fleet: FleetStatus) -> list[Metric]:
    """Every metric family of one status (pure)."""
    out: list[Metric] = []
    hotels = CounterMetricFamily("hotelimages_hotels", "Hotels recorded, by outcome.", labels=["status"])
    statuses = dict.fromkeys(HOTEL_COUNTERS)
    statuses.update(dict.fromkeys(k.split("/", 1)[1] for k in fleet.counters if k.startswith("hotels/")))
    for name in statuses:
        hotels.add_metric([name], fleet.counter(f"hotels/{name}"))
    out.append(hotels)
    for field, (name, doc) in STATS_COUNTERS.items():
        out.append(CounterMetricFamily(name, doc, value=fleet.counter(field)))

    failures = CounterMetricFamily("hotelimages_failures", "Failures counted when recorded, by kind "
                                   "(image or hotel) and reason.", labels=["kind", "reason"])
    for field, n in sorted(fleet.reasons.items()):
        failures.add_metric(list(_split_reason(field)), n)
    out.append(failures)
    node_failures = CounterMetricFamily("hotelimages_node_failures", "Failures by node, kind and reason.",
                                        labels=["node", "kind", "reason"])
    seen: set[str] = set()
    for node in fleet.nodes:
        if node.node_id in seen:
            continue
        seen.add(node.node_id)
        for field, n in sorted(node.reasons.items()):
            node_failures.add_metric([node.node_id, *_split_reason(field)], n)
    out.append(node_failures)

    def gauge(name: str, doc: str, value: float | None) -> None:
        if value is not None:
            out.append(GaugeMetricFamily(name, doc, value=value))

    gauge("hotelimages_pending_hotels", "Entries waiting in the pending list.", fleet.pending)
    gauge("hotelimages_in_flight_hotels", "Entries claimed under a lease.", fleet.leased)
    gauge("hotelimages_done_hotels", "Hotels with a manifest.", fleet.done)
    gauge("hotelimages_failed_hotels", "Hotels in hotels:failed.", fleet.failed_hotels)
    gauge("hotelimages_done_ratio", "Hotels with an outcome out of all known hotels (0-1).",
          None if fleet.percent_done is None else fleet.percent_done / 100)
    gauge("hotelimages_eta_seconds", "Seconds until the queue is done at the current rate.", fleet.eta_seconds)
    gauge("hotelimages_images_per_second", "Images stored per second by live nodes (over the window).",
          fleet.images_per_s)
    gauge("hotelimages_megabytes_per_second", "MB stored per second by live nodes.", fleet.mb_per_s)
    gauge("hotelimages_hotels_per_second", "Hotels done per second by live nodes.", fleet.hotels_per_s)
    gauge("hotelimages_failure_ratio", "Failures / (stored images + failures) over the window.", fleet.failure_rate)
    gauge("hotelimages_window_attempts", "Stored images + failures over the window.", fleet.attempts)
    gauge("hotelimages_last_progress_timestamp_seconds", "When a process's counters last grew (Unix time).",
          fleet.last_progress_at)
    gauge("hotelimages_redis_memory_used_bytes", "Redis INFO used_memory.", fleet.redis_memory.get("used_memory"))
    gauge("hotelimages_redis_maxmemory_bytes", "Redis INFO maxmemory (0: no limit).",
          fleet.redis_memory.get("maxmemory"))
    firing = GaugeMetricFamily("hotelimages_alerts", "Alerts of `status --check` now, by name.", labels=["alert"])
    for name in alerts.ALERT_NAMES:
        firing.add_metric([name], sum(1 for a in fleet.alerts if a.name == name))
    out.append(firing)

    labels = ["node", "owner"]
    info = GaugeMetricFamily("hotelimages_node_info", "One per process: its state (live, stopped, lost) and "
                             "activity (claiming, draining, ... as its heartbeat says).",
                             labels=[*labels, "state", "activity"])
    per_node = {
        "live": GaugeMetricFamily("hotelimages_node_live", "1 if the process has a heartbeat.", labels=labels),
        "leases": GaugeMetricFamily("hotelimages_node_leases", "Leases the process holds.", labels=labels),
        "in_flight": GaugeMetricFamily("hotelimages_node_in_flight", "Hotels the process works on.", labels=labels),
        "images_per_s": GaugeMetricFamily("hotelimages_node_images_per_second", "Images/s.", labels=labels),
        "mb_per_s": GaugeMetricFamily("hotelimages_node_megabytes_per_second", "MB/s.", labels=labels),
        "hotels_per_s": GaugeMetricFamily("hotelimages_node_hotels_per_second", "Hotels/s.", labels=labels),
        "failure_rate": GaugeMetricFamily("hotelimages_node_failure_ratio", "Failures / attempts over the window.",
                                          labels=labels),
        "disk_free": GaugeMetricFamily("hotelimages_node_disk_free_bytes", "Free bytes on the store's disk.",
                                       labels=labels),
        "last_seen": GaugeMetricFamily("hotelimages_node_last_seen_timestamp_seconds", "Last heartbeat (Unix time).",
                                       labels=labels),
    }
    for node in fleet.nodes:
        key = [node.node_id, node.owner]
        info.add_metric([*key, node.state, node.activity], 1)
        per_node["live"].add_metric(key, 1 if node.state == "live" else 0)
        for attr, family in per_node.items():
            if attr == "live":
                continue
            value = getattr(node, attr)
            if value is not None and (node.state == "live" or attr in ("leases", "last_seen")):
                family.add_metric(key, value)
    out.append(info)
    out.extend(per_node.values())
    return out


class FleetCollector:
    """A ``prometheus_client`` collector that reads the fleet on every scrape."""

    def __init__(self, read: Callable[[], FleetStatus]):
        self.read = read

    def collect(self) -> Iterator[Metric]:
        yield from families(self.read())
