"""A request for a run, served the same way by the workers, the CLI and the API:

    request -> the account's lock and coalescing (``workers.coalescing``) -> the run (``workers.pipeline``)
    -> publish the result to the bots' cache and the event stream (``workers.publish``)
    -> after the lock is released, the follow-ups the result calls for (``workers.follow_ups``), and a recheck
       when the run deferred a finding (``workers.rechecks``)

On the workers the follow-ups are tasks sent by name; in-process they are the same functions called in turn,
each holding the account's lock. Without Redis (the embedded default: SQLite, nothing running) there is no
lock to take and nothing to publish to: one run, then its follow-ups in-process, and ``Service.coordinated``
says so, for the report's header.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from redis import Redis

from models.database import Database
from reconciliation.errors import FixConfiguration, ReconError
from venues.base import Venue
from workers.alerts import deliver
from workers.backfill import backfill
from workers.coalescing import AccountBusy, AccountLock, Served, serve
from workers.counters import VenueCounter, venue_counter
from workers.fleet import AccountConfig
from workers.follow_ups import ALERTS_TASK, BACKFILL_TASK, SEND_ORDERS_TASK, follow_ups_of, record_failed_follow_up
from workers.pipeline import Clock, run_reconciliation, utc_now
from workers.publish import publish
from workers.results import RunResult
from workers.send_orders import send_planned_orders
from workers.settings import Settings

log = logging.getLogger(__name__)

#: Sends one follow-up task (by name) of a run of an account.
Dispatch = Callable[[str, RunResult, AccountConfig], None]
#: Asks for one more run of an account at a moment (``workers.rechecks``).
Recheck = Callable[[AccountConfig, datetime], None]


@dataclass
class Service:
    """What serving a run needs: the database, the settings, Redis (None: the embedded default), how follow-ups
    are carried out, how a deferred finding is looked at again (None: at the next scheduled run), and the clock."""

    database: Database
    settings: Settings
    redis: Redis | None = None
    dispatch: Dispatch | None = None
    clock: Clock = field(default=utc_now)
    recheck: Recheck | None = None

    @property
    def count(self) -> VenueCounter | None:
        """Where venue calls are counted (Redis, for the metrics); None on the embedded default."""
        return venue_counter(self.redis) if self.redis is not None else None

    @property
    def coordinated(self) -> bool:
        """True when runs take the Redis lock and publish; False on the embedded default."""
        return self.redis is not None

    def reconcile(
        self,
        config: AccountConfig,
        reason: str,
        *,
        dry_run: bool = False,
        ticket: int | None = None,
        venue: Venue | None = None,
    ) -> Served:
        """Serve one request for a run of ``config``'s account; the follow-ups are dispatched before returning."""

        def run_once(why: str) -> RunResult:
            result = run_reconciliation(self.database, config, reason=why, dry_run=dry_run, clock=self.clock,
                                        venue=venue, count=self.count)  # fmt: skip
            if self.redis is not None and not result.failed and not dry_run:
                publish(self.redis, result, self.settings, config.publisher, now=self.clock())
            return result

        if self.redis is None:
            served = Served((run_once(reason),))
        else:
            served = serve(AccountLock(self.redis, config, self.settings), run_once, reason=reason, dry_run=dry_run,
                           ticket=ticket)  # fmt: skip
        for result in served.results:
            for task in follow_ups_of(result):
                if self.dispatch is not None:
                    self.dispatch(task, result, config)
                else:
                    self._follow_up_here(task, result.run_id, config)
        if served.results:
            self._recheck_deferred(config, served.results[-1])
        return served

    def _recheck_deferred(self, config: AccountConfig, last: RunResult) -> None:
        """Ask for a run when the last run's deferred findings become decidable. Failing to ask only costs time
        (the next scheduled run looks again), so it is logged, not raised."""
        if self.recheck is None or last.recheck_at is None or last.dry_run or last.failed:
            return
        try:
            self.recheck(config, last.recheck_at)
        except ReconError as error:
            log.warning("could not ask for a recheck of %s: %s", config.label, error,
                        extra={"bot": config.bot, "account": config.account, "run_id": last.run_id})  # fmt: skip

    def _follow_up_here(self, task: str, run_id: int, config: AccountConfig) -> None:
        """A follow-up in this process: its failure (a webhook down, the venue busy) does not undo the committed
        run; it is recorded as a ``follow_up_failed`` alert, as on the workers, and logged."""
        try:
            self.follow_up_in_process(task, run_id, config)
        except ReconError as error:
            log.warning("%s for run %s failed: %s", task, run_id, error, extra={"run_id": run_id})
            record_failed_follow_up(self.database, run_id, task, str(error)[:500], self.clock())

    def follow_up_in_process(self, task: str, run_id: int, config: AccountConfig) -> None:
        """Carry out one follow-up of run ``run_id`` here and now; sending orders and backfilling hold the account's
        lock when there is one (delivering alerts touches no books)."""
        if task == SEND_ORDERS_TASK:
            with self.holding(config):
                send_planned_orders(self.database, config, run_id, now=self.clock(),
                                    max_age_seconds=self.settings.order_max_age_seconds, count=self.count)  # fmt: skip
        elif task == ALERTS_TASK:
            deliver(self.database, self.settings, self.clock(), run_id)
        elif task == BACKFILL_TASK:
            with self.holding(config):
                backfill(self.database, config, clock=self.clock, count=self.count)
        else:
            raise FixConfiguration(f"unknown follow-up {task!r}")

    @contextmanager
    def holding(self, config: AccountConfig) -> Iterator[None]:
        """Hold the account's lock for work that must not overlap a run (held elsewhere: ``AccountBusy``)."""
        if self.redis is None:
            yield
            return
        lock = AccountLock(self.redis, config, self.settings)
        if not lock.acquire():
            raise AccountBusy(f"{config.label} is busy with another run; trying again shortly")
        try:
            yield
        finally:
            lock.release()
