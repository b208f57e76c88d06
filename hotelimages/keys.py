"""Names of every Redis key the project uses, built in one place.

| key | type | holds |
| --- | --- | --- |
| ``hotels:start_ids`` | list | pending work: hotel IDs or JSON records (LPUSH; nodes take from the right) |
| ``hotels:leases`` | sorted set | claimed entries, scored by lease deadline (Redis server time, seconds) |
| ``hotels:lease_owners`` | hash | claimed entry -> owner (``NODE_ID/token``) |
| ``hotels:manifests`` | hash | hotel ID -> done record (``manifest.done_record``; old values: full manifest JSON) |
| ``hotels:failed`` | hash | hotel ID -> JSON reason of a hotel that could not be done |
| ``hotels:stats`` | hash | fleet-wide counters (hotels, images, bytes by outcome) |
| ``hotels:node:<owner>`` | hash with TTL | a running process's heartbeat and counters |
| ``hotels:history:<owner>`` | list with TTL | a process's progress samples (JSON), newest first, capped |
| ``hotels:alive:<owner>`` | string with TTL | a process is alive: set by its lease heartbeat (even with progress off) |
| ``hotels:reasons`` | hash | failures counted by reason, fleet-wide: ``image/<reason>`` and ``hotel/<reason>`` |
| ``hotels:reasons:<NODE_ID>`` | hash | the same counts for one node |
| ``hotels:budget:<host>`` | hash with TTL | a budgeted host's fleet rate, next start, pause deadline, refusals |
| ``hotels:budget:<host>:users`` | sorted set with TTL | processes using a host's in-flight budget |
| ``hotels:budget:events`` | pub/sub channel | back-off events (host, pause, rate) for every node's gate |
| ``hotels:paused`` | hash | ``fleet`` and ``node:<NODE_ID>`` -> JSON of a central pause (``control``) |
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """The Redis key names for one deployment (prefix ``hotels`` unless configured)."""

    prefix: str = "hotels"
    start_ids: str = "hotels:start_ids"

    @property
    def leases(self) -> str:
        return f"{self.prefix}:leases"

    @property
    def lease_owners(self) -> str:
        return f"{self.prefix}:lease_owners"

    @property
    def manifests(self) -> str:
        return f"{self.prefix}:manifests"

    @property
    def failed(self) -> str:
        return f"{self.prefix}:failed"

    @property
    def stats(self) -> str:
        return f"{self.prefix}:stats"

    def node(self, owner: str) -> str:
        return f"{self.prefix}:node:{owner}"

    @property
    def node_pattern(self) -> str:
        return f"{self.prefix}:node:*"

    def alive(self, owner: str) -> str:
        return f"{self.prefix}:alive:{owner}"

    def history(self, owner: str) -> str:
        return f"{self.prefix}:history:{owner}"

    @property
    def history_pattern(self) -> str:
        return f"{self.prefix}:history:*"

    @property
    def reasons(self) -> str:
        return f"{self.prefix}:reasons"

    def node_reasons(self, node_id: str) -> str:
        return f"{self.prefix}:reasons:{node_id}"

    def budget(self, host: str) -> str:
        return f"{self.prefix}:budget:{host}"

    def budget_users(self, host: str) -> str:
        return f"{self.prefix}:budget:{host}:users"

    @property
    def budget_events(self) -> str:
        return f"{self.prefix}:budget:events"

    @property
    def budget_pattern(self) -> str:
        return f"{self.prefix}:budget:*"

    @property
    def paused(self) -> str:
        return f"{self.prefix}:paused"
