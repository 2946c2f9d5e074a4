"""Counters Postgres does not record, kept in Redis for the metrics endpoint (``api.metrics``, docs/metrics.md).

    recon:metrics:venue_requests   hash "<venue>|<outcome>" -> calls made to a venue, by how they ended
    recon:metrics:triggers         hash "queued" | "joined"  -> triggers that queued a task or joined one

Whoever does the thing increments the hash, in whichever process or host it runs: Redis is shared, so the
figures are right across prefork children and hosts and survive a worker's restart. Counting is best effort:
a Redis failure while counting is logged at debug level and never fails a run or a trigger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TypeVar

from redis import Redis
from redis.exceptions import RedisError

from reconciliation.errors import (
    CoordinationUnavailable,
    FixConfiguration,
    InvalidResponse,
    RateLimited,
    RequestRejected,
    RetryLater,
)
from reconciliation.values import Fill, InstrumentKey, Order, OrderLookup, Side, Snapshot
from venues.base import Venue

log = logging.getLogger(__name__)
T = TypeVar("T")

VENUE_REQUESTS_KEY = "recon:metrics:venue_requests"
TRIGGERS_KEY = "recon:metrics:triggers"
#: How a venue call ended, from the error tree (``reconciliation.errors``); a fixed set keeps the series few.
OK, RATE_LIMITED, RETRY_LATER, FIX_CONFIGURATION, REJECTED, INVALID_RESPONSE, ERROR = (
    "ok",
    "rate_limited",
    "retry_later",
    "fix_configuration",
    "rejected",
    "invalid_response",
    "error",
)
OUTCOMES = (OK, RATE_LIMITED, RETRY_LATER, FIX_CONFIGURATION, REJECTED, INVALID_RESPONSE, ERROR)
TRIGGER_OUTCOMES = ("queued", "joined")

#: Counts one venue call: ``(venue, outcome)``.
VenueCounter = Callable[[str, str], None]


def outcome_of(error: BaseException | None) -> str:
    """The outcome label of a venue call that raised ``error`` (None: it succeeded)."""
    if error is None:
        return OK
    for kind, outcome in (
        (RateLimited, RATE_LIMITED),  # before RetryLater, its base
        (RetryLater, RETRY_LATER),
        (FixConfiguration, FIX_CONFIGURATION),
        (RequestRejected, REJECTED),
        (InvalidResponse, INVALID_RESPONSE),
    ):
        if isinstance(error, kind):
            return outcome
    return ERROR


def _increment(redis: Redis, key: str, field: str) -> None:
    """HINCRBY, best effort: counting must never fail the work it counts."""
    try:
        redis.hincrby(key, field, 1)
    except Exception as error:  # any failure (Redis down, a timeout, a closed pool) only loses one count
        log.debug("could not count %s %s: %s", key, field, error)


def venue_counter(redis: Redis) -> VenueCounter:
    """A counter of venue calls into ``redis``."""
    return lambda venue, outcome: _increment(redis, VENUE_REQUESTS_KEY, f"{venue}|{outcome}")


def count_trigger(redis: Redis, queued: bool) -> None:
    """Count a trigger that queued a task, or joined one already queued or running."""
    _increment(redis, TRIGGERS_KEY, "queued" if queued else "joined")


def counted(venue: Venue, name: str, count: VenueCounter | None) -> Venue:
    """``venue`` with every call counted under ``name`` (itself when there is nothing to count into)."""
    return venue if count is None else CountedVenue(venue, name, count)


class CountedVenue:
    """A venue whose every request (fetch, look-up, fills, place, cancel) is counted with its outcome; the answer
    or the error passes through unchanged. One call counts once, however many HTTP pages it takes: the outcome
    is known only here, where the venue has translated its errors into ours."""

    def __init__(self, inner: Venue, name: str, count: VenueCounter) -> None:
        self.inner = inner
        self.name = name
        self._count = count

    def _counted(self, call: Callable[[], T]) -> T:
        try:
            answer = call()
        except BaseException as error:
            self._count(self.name, outcome_of(error))
            raise
        self._count(self.name, OK)
        return answer

    def fetch_snapshot(self, now: datetime) -> Snapshot:
        """The inner venue's snapshot, counted."""
        return self._counted(lambda: self.inner.fetch_snapshot(now))

    def lookup_order(self, order: Order) -> OrderLookup:
        """The inner venue's look-up, counted."""
        return self._counted(lambda: self.inner.lookup_order(order))

    def fills_between(self, start: datetime, end: datetime) -> tuple[Fill, ...]:
        """The inner venue's fills, counted."""
        return self._counted(lambda: self.inner.fills_between(start, end))

    def place_order(self, key: InstrumentKey, side: Side, qty: Decimal, reduce_only: bool, client_order_id: str) -> str:
        """The inner venue's order placement, counted."""
        return self._counted(lambda: self.inner.place_order(key, side, qty, reduce_only, client_order_id))

    def cancel_order(self, order: Order) -> None:
        """The inner venue's cancel, counted."""
        self._counted(lambda: self.inner.cancel_order(order))

    def describe(self) -> str:
        """The inner venue's description (no request: not counted)."""
        return self.inner.describe()


def venue_requests(redis: Redis) -> dict[tuple[str, str], int]:
    """Venue calls counted so far, by (venue, outcome); Redis unreachable is ``CoordinationUnavailable``."""
    try:
        raw: dict[bytes, bytes] = redis.hgetall(VENUE_REQUESTS_KEY)  # type: ignore[assignment]
    except RedisError as error:
        raise CoordinationUnavailable(f"redis unavailable: {type(error).__name__}: {error}") from error
    counts: dict[tuple[str, str], int] = {}
    for field, value in raw.items():
        venue, _, outcome = field.decode().rpartition("|")
        if venue:
            counts[(venue, outcome)] = int(value)
    return counts


def triggers(redis: Redis) -> dict[str, int]:
    """Triggers counted so far, by outcome (both present, zero when none); Redis unreachable is
    ``CoordinationUnavailable``."""
    try:
        raw: list[bytes | None] = redis.hmget(TRIGGERS_KEY, list(TRIGGER_OUTCOMES))  # type: ignore[assignment]
    except RedisError as error:
        raise CoordinationUnavailable(f"redis unavailable: {type(error).__name__}: {error}") from error
    return {outcome: int(value or 0) for outcome, value in zip(TRIGGER_OUTCOMES, raw, strict=True)}
