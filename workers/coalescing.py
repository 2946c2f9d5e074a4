"""One run per account at a time, and triggers that coalesce with a stated guarantee.

The guarantee, for any trigger T of an account (a bot after a large fill, ``recon trigger``, the API):

    T is served by a run that began reading the venue after T arrived; a trigger that arrives before a run
    has begun reading the venue is served by that run, and triggers that arrive while a run reads the venue or
    after it cause exactly one more run between them, not one each.

How (Redis, per account; the lock saves work, Postgres keeps the books right whatever happens here):

    triggers   hash recon:<bot>:<account>:triggers {requested, served, reason}. A trigger increments
               ``requested`` and takes the new value as its ticket. A run reads ``requested`` just before it reads
               the venue (``seen``) and, once committed, sets ``served`` to it: a ticket ≤ ``served`` was served.
    pending    recon:<bot>:<account>:pending, SET NX EX: the first trigger in a window queues a task with its
               ticket, the others only increment; the run clears it before reading the venue.
    lock       recon:<bot>:<account>:lock (recon:venue:<name>:lock for a venue account shared by bots), token-owned,
               non-blocking, with a TTL longer than the hard time limit.
               A task finding it held leaves the work to the holder, which sees ``requested`` above what it served
               when its run ends and runs once more (a task without a ticket, from beat or ``--queue``, first
               increments ``requested`` for itself). A task whose ticket is already served does not run at all.
               A run of another bot holding a shared venue account's lock serves only its own account's
               triggers, so a task finding it so is retried shortly instead (``AccountBusy``).

After releasing the lock the holder looks once more, so a trigger arriving between its last look and the
release is not stranded: it takes the lock again, or whoever took it serves the trigger.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import LockError, RedisError

from reconciliation.errors import CoordinationUnavailable, RetryLater
from workers.counters import count_trigger
from workers.fleet import AccountConfig
from workers.results import RunResult
from workers.settings import Settings

log = logging.getLogger(__name__)
MAX_ROUNDS = 3
TRIGGERS_TTL_SECONDS = 7 * 24 * 3600  # kept as long as triggers keep coming; requested and served expire together


# Scripts, not pipelines: each is one round trip, and redis-py builds a whole pipeline object per pipeline.
START_READING = "local seen = redis.call('HGET', KEYS[1], 'requested') redis.call('DEL', KEYS[2]) return seen"
MARK_SERVED = (
    "redis.call('HSET', KEYS[1], 'served', ARGV[1]) return redis.call('HMGET', KEYS[1], 'requested', 'reason')"
)


def account_key(bot: str, account: str) -> str:
    """The Redis key prefix of one account."""
    return f"recon:{bot}:{account}"


def lock_key(config: AccountConfig) -> str:
    """The Redis lock one run at a time holds: the account's, or its shared venue account's (``venue_account``),
    so that two bots' runs never act on one venue account at once."""
    if config.venue_account:
        return f"recon:venue:{config.venue_account}:lock"
    return f"{account_key(config.bot, config.account)}:lock"


class AccountBusy(RetryLater):
    """Another worker holds the account; the same work may run once it is released."""


@contextmanager
def redis_errors() -> Iterator[None]:
    """Redis errors raised inside become ``CoordinationUnavailable`` (retry later), cause kept."""
    try:
        yield
    except RedisError as error:
        raise CoordinationUnavailable(f"redis unavailable: {type(error).__name__}: {error}") from error


@dataclass(frozen=True)
class Trigger:
    """A trigger's ticket, and whether it queued a task (else it joined one already queued or running)."""

    ticket: int
    queued: bool


def record_trigger(redis: Redis, config: AccountConfig, reason: str, settings: Settings) -> Trigger:
    """Count a trigger and claim the pending key; the caller queues a task when ``queued``."""
    ticket = take_ticket(redis, config, reason)
    with redis_errors():
        queued = bool(redis.set(f"{account_key(config.bot, config.account)}:pending", reason, nx=True,
                                ex=settings.coalesce_seconds))  # fmt: skip
    count_trigger(redis, queued)
    return Trigger(ticket, queued)


def take_ticket(redis: Redis, config: AccountConfig, reason: str) -> int:
    """Count a request for a run of the account: its ticket is served once ``served`` reaches it."""
    key = account_key(config.bot, config.account)
    with redis_errors():
        pipe = redis.pipeline(transaction=True)
        pipe.hincrby(f"{key}:triggers", "requested", 1)
        pipe.hset(f"{key}:triggers", "reason", reason)
        pipe.expire(f"{key}:triggers", TRIGGERS_TTL_SECONDS)
        return int(pipe.execute()[0])


def served_count(redis: Redis, config: AccountConfig) -> int:
    """The highest ticket of the account that a committed run has served."""
    with redis_errors():
        served = redis.hget(f"{account_key(config.bot, config.account)}:triggers", "served")
    return int(served or 0)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Served:
    """What one request did: the runs it made, or why it made none."""

    results: tuple[RunResult, ...] = ()
    left_to_holder: bool = False
    holder_ticket: int | None = None
    already_served: bool = False
    more_requested: bool = False


class AccountLock:
    """The account's lock and trigger counters, for the one run at a time that holds it."""

    def __init__(self, redis: Redis, config: AccountConfig, settings: Settings) -> None:
        self.redis = redis
        self.key = account_key(config.bot, config.account)
        self.label = config.label
        self.shared = config.venue_account is not None
        self._lock = redis.lock(lock_key(config), timeout=settings.lock_ttl, blocking=False, thread_local=False)
        self._start_reading = redis.register_script(START_READING)
        self._mark_served = redis.register_script(MARK_SERVED)

    def acquire(self) -> bool:
        """Take the lock if it is free. Its token names the account, so that the runs of a shared venue account
        can tell whose run holds it (``held_by_another_account``)."""
        with redis_errors():
            return bool(self._lock.acquire(token=f"{self.label} {uuid.uuid4().hex}"))

    def held_by_another_account(self) -> bool:
        """True when the lock (a shared venue account's) is held by a run of another bot's account: that run
        serves only its own account's triggers, so this account's must be retried, not left to it."""
        with redis_errors():
            token = self.redis.get(self._lock.name)
        return isinstance(token, bytes) and not token.decode().startswith(f"{self.label} ")

    def release(self) -> None:
        """Give the lock back; one that expired meanwhile is only logged (the fencing epoch protected the books)."""
        try:
            with redis_errors():
                self._lock.release()
        except (LockError, CoordinationUnavailable):
            log.warning("the account lock of %s expired or could not be released", self.label)

    def ask_holder_for_more(self) -> int:
        """Make whoever holds the lock run once more when its run ends; the ticket that run serves."""
        with redis_errors():
            pipe = self.redis.pipeline(transaction=True)
            pipe.hincrby(f"{self.key}:triggers", "requested", 1)
            pipe.expire(f"{self.key}:triggers", TRIGGERS_TTL_SECONDS)
            return int(pipe.execute()[0])

    def counts(self) -> tuple[int, int, str | None]:
        """``requested``, ``served`` and the latest trigger's reason."""
        with redis_errors():
            values: list[bytes | None] = self.redis.hmget(f"{self.key}:triggers", ["requested", "served", "reason"])  # type: ignore[assignment]
        requested, served, reason = values
        return int(requested or 0), int(served or 0), reason.decode() if isinstance(reason, bytes) else None

    def start_reading(self) -> int:
        """Just before a run reads the venue: clear the pending key, return the ``requested`` it will serve."""
        with redis_errors():
            requested = self._start_reading(keys=[f"{self.key}:triggers", f"{self.key}:pending"])
        return int(requested or 0)

    def mark_served(self, seen: int) -> tuple[int, str | None]:
        """A run that read the venue after ``seen`` triggers has committed: they are served. Returns ``requested``
        and the latest trigger's reason, as they are now (one round trip for both)."""
        with redis_errors():
            requested, reason = self._mark_served(keys=[f"{self.key}:triggers"], args=[seen])
        return int(requested or 0), reason.decode() if isinstance(reason, bytes) else None


def serve(
    lock: AccountLock,
    run_once: Callable[[str], RunResult],
    *,
    reason: str,
    dry_run: bool,
    ticket: int | None,
) -> Served:
    """Run the account under its lock until every trigger seen is served (at most ``MAX_ROUNDS`` runs).

    ``run_once(reason)`` makes one run and hands its result on (publish, follow-ups). A held lock leaves the
    work to its holder (a dry run, which the holder would not make for it, raises ``AccountBusy`` instead).
    """
    results: list[RunResult] = []
    while True:
        if not lock.acquire():
            if dry_run:
                raise AccountBusy(f"{lock.label} is being reconciled; trying again shortly")
            if lock.shared and lock.held_by_another_account():
                raise AccountBusy(f"{lock.label}: another bot's run holds the shared venue account; trying again")
            if ticket is None:  # a triggered request is counted already; any other one asks for a round of its own
                ticket = lock.ask_holder_for_more()
            return Served(tuple(results), left_to_holder=not results, holder_ticket=ticket)
        try:
            if ticket is not None and not results and lock.counts()[1] >= ticket:
                return Served(already_served=True)
            while True:
                seen = lock.start_reading()
                results.append(run_once(reason))
                if dry_run:
                    return Served(tuple(results))
                requested, latest_reason = lock.mark_served(seen)
                if requested <= seen or len(results) >= MAX_ROUNDS:
                    break
                reason = latest_reason or "manual"
        finally:
            lock.release()
        requested, served, latest_reason = lock.counts()
        if requested <= served:
            return Served(tuple(results))
        if len(results) >= MAX_ROUNDS:
            return Served(tuple(results), more_requested=True)
        reason = latest_reason or "manual"
