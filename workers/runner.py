"""One account, one run at a time: a Redis lock per account, a dirty flag, coalesced triggers, publishing.

    trigger   SET recon:<bot>:<account>:pending NX EX <window>: many triggers -> one queued task; a trigger
              finding one queued marks the account dirty instead
    task      takes the lock (token-owned, non-blocking, TTL), then clears the pending key, so a trigger
              from then on queues at most one follow-up. Held elsewhere -> mark dirty, keep the pending key
              (triggers keep coalescing) and return: the holder runs once more before releasing.
    publish   after each committed run: the account's positions to recon:<bot>:<account>:positions (the bots'
              position cache) and an event to the recon:events stream.

The lock saves work; it does not make runs correct. A holder whose lock expired mid-run is stopped by the
fencing epoch in Postgres when it tries to write.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from celery import Celery
from redis import Redis
from redis.exceptions import LockError
from sqlalchemy.exc import OperationalError

from models import ledger
from models.database import Database
from reconciliation.errors import RetryLater
from reconciliation.values import plain
from venues.base import Venue
from workers.fleet import AccountConfig
from workers.orchestrator import RunResult, reconcile
from workers.schedule import RECONCILE_TASK, queue_for
from workers.settings import Settings

log = logging.getLogger(__name__)
MAX_ROUNDS = 3
EVENTS = "recon:events"


def account_key(bot: str, account: str) -> str:
    """The Redis key prefix of one account."""
    return f"recon:{bot}:{account}"


class AccountBusy(RetryLater):
    """Another worker holds the account; the same work may run once it is released."""


@contextmanager
def holding_account(redis: Redis, bot: str, account: str, settings: Settings) -> Iterator[None]:
    """Hold the account's lock for work that must not overlap a run (a backfill); held elsewhere: AccountBusy."""
    lock = redis.lock(f"{account_key(bot, account)}:lock", timeout=settings.lock_ttl, blocking=False,
                      thread_local=False)  # fmt: skip
    if not lock.acquire():
        raise AccountBusy(f"{bot}/{account} is busy with another run; trying again shortly")
    try:
        yield
    finally:
        try:
            lock.release()
        except LockError:
            log.warning("the account lock expired during the work", extra={"bot": bot, "account": account})


def request_run(redis: Redis, app: Celery, config: AccountConfig, reason: str, settings: Settings) -> bool:
    """Queue a run of the account unless one is already queued; True when this call queued it.

    A request finding one queued marks the account dirty instead, so whoever holds it runs once more.
    """
    key = account_key(config.bot, config.account)
    if not redis.set(f"{key}:pending", reason, nx=True, ex=settings.coalesce_seconds):
        redis.set(f"{key}:dirty", reason, ex=settings.lock_ttl)
        return False
    app.send_task(RECONCILE_TASK, args=[config.bot, config.account, reason], queue=queue_for(config))
    return True


@dataclass(frozen=True)
class Outcome:
    """What one task did: the runs it made, or that it left the work to the run holding the lock."""

    runs: tuple[RunResult, ...]
    deferred_to_holder: bool = False


def run_exclusively(
    redis: Redis,
    database: Database,
    config: AccountConfig,
    settings: Settings,
    reason: str,
    dry_run: bool = False,
    venue: Venue | None = None,
) -> Outcome:
    """Reconcile ``config``'s account unless another worker holds it, in which case mark it dirty."""
    key = account_key(config.bot, config.account)
    lock = redis.lock(f"{key}:lock", timeout=settings.lock_ttl, blocking=False, thread_local=False)
    if not lock.acquire():
        # Busy: leave the work to the holder, and keep triggers coalescing into its next round meanwhile.
        redis.set(f"{key}:dirty", reason, ex=settings.lock_ttl)
        redis.set(f"{key}:pending", reason, ex=settings.coalesce_seconds)
        if not lock.acquire():  # the holder may have released between the two attempts: then run here
            log.info("account busy: left to the run holding it", extra={"bot": config.bot, "account": config.account})
            return Outcome((), deferred_to_holder=True)
    redis.delete(f"{key}:pending")  # from now on a trigger queues (at most) one follow-up
    runs: list[RunResult] = []
    try:
        for _ in range(MAX_ROUNDS):
            redis.delete(f"{key}:dirty")
            try:
                result = reconcile(database, config, reason=reason, dry_run=dry_run, venue=venue)
            except OperationalError as error:  # Postgres unreachable: nothing was committed; try again later
                raise RetryLater(f"database unavailable: {str(error.orig).strip().splitlines()[0]}") from error
            runs.append(result)
            if result.status != "failed" and not dry_run:
                publish(redis, database, config, result, settings)
            if result.retryable or not redis.exists(f"{key}:dirty"):
                break
            reason = "manual"
    finally:
        try:
            lock.release()
        except LockError:
            log.warning("the account lock expired during the run", extra={"bot": config.bot, "account": config.account})
    return Outcome(tuple(runs))


def publish(redis: Redis, database: Database, config: AccountConfig, result: RunResult, settings: Settings) -> None:
    """Write the account's reconciled positions to the bots' cache and append an event to the stream."""
    with database.sessions() as session:
        positions = ledger.positions(session, ledger.find_account(session, config.bot, config.account).id)
    cache = {
        str(p.key): json.dumps({"qty": plain(p.qty), "avg_entry": plain(p.avg_entry) if p.avg_entry else None})
        for p in positions
    }
    key = account_key(config.bot, config.account)
    pipe = redis.pipeline(transaction=True)
    pipe.delete(f"{key}:positions")
    if cache:
        pipe.hset(f"{key}:positions", mapping=cache)
    pipe.set(f"{key}:last_run", json.dumps({"run_id": result.run_id, "status": result.status}))
    pipe.xadd(
        EVENTS,
        {"bot": config.bot, "account": config.account, "run_id": str(result.run_id), "status": result.status},
        maxlen=settings.events_maxlen,
        approximate=True,
    )
    pipe.execute()
