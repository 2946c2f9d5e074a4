"""One reconciliation run of one account, end to end, in-process.

    begin (bump the fencing epoch, record the run) -> fetch the snapshot (complete or raise)
    -> load the books -> plan (pure) -> apply the plan and record everything in ONE transaction

A fetch that fails, or a run fenced off by a newer one, is recorded as a failed run and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from models import history, ledger
from models.apply import apply_run
from models.database import Database
from models.venue_orders import record_order_outcomes
from reconciliation.errors import ReconError, RetryLater, StaleRun
from reconciliation.plan import CancelOrder, PlaceOrder, plan
from venues.base import Venue, resolve_missing_orders
from workers.connect import open_venue
from workers.fleet import AccountConfig
from workers.venue_orders import Guard, reference_prices, send_planned_orders

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class RunResult:
    """How a run ended: its id, status, and the error when it failed.

    ``retryable`` says the failure was transient (the venue unavailable or rate-limited), and
    ``retry_after`` how long the venue asked to wait, when it said.
    """

    run_id: int
    status: str
    error: str | None = None
    retryable: bool = False
    retry_after: float | None = None


def reconcile(
    database: Database,
    config: AccountConfig,
    *,
    reason: str = "manual",
    dry_run: bool = False,
    clock: Clock = utc_now,
    venue: Venue | None = None,
) -> RunResult:
    """Reconcile one account now; the run is recorded whatever happens, and the books change only on success."""
    venue = venue or open_venue(config)
    started = clock()
    with database.sessions.begin() as session:
        account_id = ledger.get_or_create_account(session, config.bot, config.account, started, config.venue).id
        start = history.begin_run(session, account_id, reason, dry_run, started)
    context = {"bot": config.bot, "account": config.account, "run_id": start.run_id}
    log.info("run started", extra=context)
    try:
        return _carry_out(database, config, venue, account_id, start, dry_run, clock, context)
    except BaseException as error:
        fail_quietly(database, start.run_id, f"unexpected error: {type(error).__name__}: {error}", clock)
        raise


def _carry_out(
    database: Database,
    config: AccountConfig,
    venue: Venue,
    account_id: int,
    start: history.RunStart,
    dry_run: bool,
    clock: Clock,
    context: dict[str, object],
) -> RunResult:
    try:
        snapshot = venue.fetch_snapshot(clock())
        with database.sessions() as session:
            pending = ledger.live_orders(session, account_id)
        snapshot = resolve_missing_orders(venue, snapshot, pending)
    except ReconError as error:
        failed = _fail(database, start.run_id, f"fetch failed: {error}", clock, context)
        return replace(failed, retryable=isinstance(error, RetryLater), retry_after=getattr(error, "retry_after", None))
    with database.sessions() as session:
        books, _ = ledger.load_books(session, account_id, [f.fill_id for f in snapshot.fills])
    now = clock()
    intended = plan(books, snapshot, config.rules, now)
    try:
        with database.sessions.begin() as session:
            applied = apply_run(
                session,
                account_id=account_id,
                run_id=start.run_id,
                epoch=start.epoch,
                plan=intended,
                now=now,
                dry_run=dry_run,
                snapshot_as_of=snapshot.as_of,
            )
    except StaleRun as error:
        return _fail(database, start.run_id, str(error), clock, context)
    if any(isinstance(e, PlaceOrder | CancelOrder) for e in applied.plan.effects()):
        outcomes = send_planned_orders(
            venue,
            Guard.of(config, halted=applied.halted),
            applied.plan,
            reference_prices(snapshot, books),
            dry_run=dry_run,
        )
        with database.sessions.begin() as session:
            record_order_outcomes(session, account_id, start.run_id, outcomes, clock())
    log.info("run finished", extra={**context, "status": applied.status})
    return RunResult(start.run_id, applied.status)


def _fail(database: Database, run_id: int, message: str, clock: Clock, context: dict[str, object]) -> RunResult:
    with database.sessions.begin() as session:
        history.fail_run(session, run_id, message, clock())
    log.warning("run failed: %s", message, extra=context)
    return RunResult(run_id, "failed", message)


def fail_quietly(database: Database, run_id: int, message: str, clock: Clock) -> None:
    """Best effort: mark the run failed after an unexpected error, without hiding that error."""
    try:
        with database.sessions.begin() as session:
            history.fail_run(session, run_id, message, clock())
    except Exception:  # the database may be the thing that failed; the original error is re-raised
        log.exception("could not record run %s as failed", run_id)
