"""One reconciliation run of one account, in one line, the same for the workers, the CLI and the API.

    record the run (take the account: fencing epoch)          one transaction: the run row, the pending orders
    -> open the venue, fetch the snapshot, look up every pending order it no longer shows (complete or raise)
    -> lock the account, check the epoch, read the books      one transaction, from here to the commit
       (a venue account shared by bots: first its lock, and what the other bots' books hold)
    -> compare and plan (pure) -> screen orders (pure)
    -> write books, findings, breaks, alerts, actions, the run's outcome

The caller holds the account's Redis lock around it (``workers.serve``) and publishes and chains the follow-ups
from the result. A fetch that fails changes nothing: the run is recorded failed with the reason; a transient
failure (venue or database unavailable, rate limited) is then raised so the caller retries later, a
configuration problem is raised so the caller stops, anything else the venue did wrong ends the run failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from models.apply import WrittenRun, run_transaction
from models.database import Database
from models.orders import live_orders
from models.run_records import RunStart, fail_run, start_run
from reconciliation.errors import FixConfiguration, ReconError, RetryLater, StaleRun
from reconciliation.orders import Guard, ScreenedOrder, reference_prices, screen_orders
from reconciliation.plan import RunStatus, compare, plan
from reconciliation.sharing import own_share
from reconciliation.summary import summarize
from reconciliation.values import Order, Snapshot
from venues.base import Venue, resolve_missing_orders
from workers.connect import open_venue
from workers.counters import VenueCounter, counted
from workers.fleet import AccountConfig
from workers.results import RunResult

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def guard_of(config: AccountConfig, *, halted: bool) -> Guard:
    """The guard on what reconciliation may send to ``config``'s venue, for an account halted or not."""
    table = config.venue_table
    return Guard(
        live=config.is_live,
        allow_live_orders=bool(table and table.allow_live_orders),
        max_order_notional=table.max_order_notional if table else None,
        halted=halted,
    )


def run_reconciliation(
    database: Database,
    config: AccountConfig,
    *,
    reason: str = "manual",
    dry_run: bool = False,
    clock: Clock = utc_now,
    venue: Venue | None = None,
    count: VenueCounter | None = None,
) -> RunResult:
    """Reconcile one account now (the caller holds its lock); the run is recorded whatever happens. Each venue call
    is counted into ``count`` when given (``workers.counters``)."""
    with database.transaction() as session:
        start = start_run(session, config.bot, config.account, config.venue, reason, dry_run, clock())
        pending = live_orders(session, start.account_id)
    context = {"bot": config.bot, "account": config.account, "run_id": start.run_id}
    log.info("run started: %s/%s run %s (%s%s)", config.bot, config.account, start.run_id, reason,
             ", dry" if dry_run else "", extra=context)  # fmt: skip
    try:
        snapshot = _read_venue(config, venue, clock(), pending, count)
    except ReconError as error:
        return _failed(database, config, start, f"fetch failed: {error}", clock, context, error, dry_run)
    except BaseException as error:
        fail_quietly(database, start.run_id, f"unexpected error: {type(error).__name__}: {error}", clock)
        raise
    try:
        written, recheck_at = _decide_and_write(database, config, start, snapshot, dry_run, clock())
    except StaleRun as error:
        return _failed(database, config, start, str(error), clock, context, error, dry_run)
    except BaseException as error:
        fail_quietly(database, start.run_id, f"unexpected error: {type(error).__name__}: {error}", clock)
        raise
    log.info("run finished: %s/%s run %s %s", config.bot, config.account, start.run_id, written.status.value,
             extra={**context, "status": written.status.value})  # fmt: skip
    return RunResult(
        run_id=start.run_id,
        bot=config.bot,
        account=config.account,
        status=written.status,
        dry_run=dry_run,
        positions=written.positions,
        exits_estimated=written.exits_estimated,
        breaks=written.breaks,
        alerts=written.alerts,
        orders_to_send=written.orders_to_send,
        halted=written.halted,
        recheck_at=recheck_at,
    )


def _read_venue(
    config: AccountConfig, venue: Venue | None, now: datetime, pending: Sequence[Order], count: VenueCounter | None
) -> Snapshot:
    """The snapshot, with a look-up of every pending order the venue no longer shows as open."""
    venue = counted(venue or open_venue(config), config.venue, count)
    return resolve_missing_orders(venue, venue.fetch_snapshot(now), pending)


def _decide_and_write(
    database: Database, config: AccountConfig, start: RunStart, snapshot: Snapshot, dry_run: bool, now: datetime
) -> tuple[WrittenRun, datetime | None]:
    """Plan on the books as they are under the account's lock, screen the orders, write it all, in one transaction;
    what was written, and when a deferred finding becomes decidable."""
    with run_transaction(database, start.account_id) as transaction:
        venue_fill_ids = [f.fill_id for f in snapshot.fills]
        shared = None
        if config.venue_account:
            shared = transaction.shared_account(
                config.venue_account, (config.bot, config.account), config.shared_with, venue_fill_ids
            )
            snapshot = own_share(snapshot, shared)
        books = transaction.books(
            run_id=start.run_id,
            epoch=start.epoch,
            dry_run=dry_run,
            venue_fill_ids=venue_fill_ids,
            with_last_fills=False,
        )
        differences = compare(books, snapshot, config.rules)
        if differences.differs:  # only a difference needs the fill history (fills in flight, correction ids)
            books = transaction.with_fill_history(books)
        intended = plan(books, snapshot, config.rules, now, differences, shared)
        screened: tuple[ScreenedOrder, ...] = ()
        if intended.venue_orders():
            halted = books.halted or intended.halt_reason is not None
            prices = reference_prices(snapshot, books, config.rules.multipliers)
            screened = screen_orders(intended, guard_of(config, halted=halted), prices)
        written = transaction.write(
            run_id=start.run_id,
            plan=intended,
            screened=screened,
            now=now,
            dry_run=dry_run,
            snapshot_as_of=snapshot.as_of,
            summary=summarize(books, snapshot, intended, config.rules.multipliers),
        )
    return written, intended.recheck_at


def _failed(
    database: Database,
    config: AccountConfig,
    start: RunStart,
    message: str,
    clock: Clock,
    context: dict[str, object],
    error: ReconError,
    dry_run: bool,
) -> RunResult:
    """Record the run failed; raise what the caller must act on (retry later, fix configuration)."""
    with database.transaction() as session:
        fail_run(session, start.run_id, message, clock())
    log.warning("run failed: %s/%s run %s: %s", config.bot, config.account, start.run_id, message, extra=context)
    if isinstance(error, RetryLater | FixConfiguration):
        error.run_id = start.run_id
        raise error
    return RunResult(start.run_id, config.bot, config.account, RunStatus.FAILED, dry_run=dry_run, error=message)


def fail_quietly(database: Database, run_id: int, message: str, clock: Clock) -> None:
    """Best effort: mark the run failed after an unexpected error, without hiding that error."""
    try:
        with database.transaction() as session:
            fail_run(session, run_id, message, clock())
    except Exception:  # the database may be the thing that failed; the original error is re-raised
        log.exception("could not record run %s as failed", run_id)
