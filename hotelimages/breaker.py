"""The node's circuit breaker: stop claiming when failures say "this node is broken", not "this hotel".

A misconfigured or cut-off node (no listing URL, a listing host it cannot reach, a proxy or TLS
failure) would otherwise fail every hotel it claims, thousands a minute. The breaker is pure
logic, fed by ``nodestate.NodeState`` with each hotel's outcome:

- a **node-local failure** (``reasons.NODE_LOCAL_REASONS``) gives the hotel back to the queue
  unfailed; after ``threshold`` of them in a row (no other outcome between) the breaker trips;
- a hotel that this process gave back ``max_give_backs`` times while other hotels succeeded here
  meanwhile is about that hotel after all (a poison entry): it is recorded with its reason;
- **the same failure over and over while the fleet succeeds**: when the last ``same_failures``
  hotels all failed with one reason that can be about the node (a timeout, 403, 429, 5xx: the
  listing host answers, but not to us) while the fleet's success counter grew meanwhile, the
  breaker trips and the trip names those hotels so they are put back on the queue.

A trip is a ``Trip``: the reason code and the line an operator reads in ``status``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from hotelimages.reasons import node_local_text

#: Failure reasons that may say "the listing host does not answer us" rather than "bad hotel".
STREAK_REASONS = frozenset(
    {"listing_timeout", "listing_http_401", "listing_http_403", "listing_http_429", "listing_data_loss"}
)


def streak_eligible(reason: str) -> bool:
    """True for failure reasons that count toward the same-failure rule (never a 404 or a bad ID)."""
    return reason in STREAK_REASONS or reason.startswith("listing_http_5")


@dataclass(frozen=True)
class Trip:
    """Why the breaker opened: a reason code, the operator's line, and hotels to put back."""

    reason: str
    text: str
    count: int
    #: (hotel ID, queue entry) of hotels recorded failed in a same-failure streak: retried.
    retry: tuple[tuple[str, bytes], ...] = ()
    #: No use waiting (a configuration mistake): the node exits whatever HOTELS_BREAKER_MODE says.
    permanent: bool = False


@dataclass(frozen=True)
class Decision:
    """What to do with one node-local failure: give the hotel back (else record it), and maybe trip."""

    give_back: bool
    trip: Trip | None = None


#: Hotels of one same-failure streak remembered at most (to put back when the breaker trips).
MAX_STREAK = 10_000

#: Node-local reasons that waiting cannot cure: the node's configuration must change.
PERMANENT_REASONS = frozenset({"no_listing_url"})


@dataclass
class Breaker:
    """Counts node-local failures and same-reason streaks; see the module docstring."""

    threshold: int = 10
    same_failures: int = 50
    max_give_backs: int = 3
    consecutive: int = 0
    successes: int = 0
    _give_backs: dict[str, tuple[int, int]] = field(default_factory=dict)
    _streak_reason: str = ""
    _streak: deque = field(default_factory=lambda: deque(maxlen=MAX_STREAK))
    _streak_fleet_base: int | None = None

    def node_local(self, reason: str, hotel_id: str) -> Decision:
        """A hotel failed for a reason about this node (see ``reasons.NODE_LOCAL_REASONS``)."""
        count, successes_then = self._give_backs.get(hotel_id, (0, self.successes))
        if count >= self.max_give_backs and self.successes > successes_then:
            self._give_backs.pop(hotel_id, None)
            return Decision(give_back=False)  # others succeed, this one never does: about the hotel
        if len(self._give_backs) > 100_000:  # bounded: a long-running node sees millions of hotels
            self._give_backs.clear()
        self._give_backs[hotel_id] = (count + 1, successes_then)
        self.consecutive += 1
        self._clear_streak()
        if self.threshold and self.consecutive >= self.threshold:
            text = f"{node_local_text(reason) or reason} ({self.consecutive} in a row)"
            return Decision(True, Trip(reason, text, self.consecutive, permanent=reason in PERMANENT_REASONS))
        return Decision(True)

    def succeeded(self, hotel_id: str) -> None:
        """A hotel was recorded with a manifest (any status)."""
        self.consecutive = 0
        self.successes += 1
        self._give_backs.pop(hotel_id, None)
        self._clear_streak()

    def failed(self, reason: str, hotel_id: str, entry: bytes, fleet_successes: int | None) -> Trip | None:
        """A hotel was recorded failed; ``fleet_successes`` is the fleet's success counter now (None: unknown)."""
        self.consecutive = 0
        self._give_backs.pop(hotel_id, None)
        if not self.same_failures or not streak_eligible(reason):
            self._clear_streak()
            return None
        if reason != self._streak_reason:
            self._clear_streak()
            self._streak_reason = reason
            self._streak_fleet_base = fleet_successes
        self._streak.append((hotel_id, entry))
        base = self._streak_fleet_base
        if len(self._streak) < self.same_failures or base is None or fleet_successes is None:
            return None
        if fleet_successes <= base:
            return None  # nobody succeeds either: the listing host is down for all, not for us
        n = len(self._streak)
        text = f"the last {n} hotels all failed with {reason} while other nodes succeed"
        trip = Trip(reason, text, n, retry=tuple(self._streak))
        self._clear_streak()
        return trip

    def half_open(self) -> None:
        """After a wait: the next node-local failure trips again at once (the count in a row goes on);
        a success closes the breaker."""
        self._clear_streak()

    def _clear_streak(self) -> None:
        self._streak_reason = ""
        self._streak.clear()
        self._streak_fleet_base = None


def next_wait(previous: float, first: float, maximum: float) -> float:
    """The breaker's next wait: ``first``, then doubled each time it trips again, up to ``maximum``."""
    return first if previous <= 0 else min(previous * 2, maximum)
