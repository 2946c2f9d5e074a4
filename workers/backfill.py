"""Backfill of exits for one account: real venue fills in place of the exits reconciliation estimated.

    begin a run (reason "backfill") -> load the trades whose exit is still estimated
    -> fetch the venue's fills since the oldest of their entries (complete or raise)
    -> match the exit fills FIFO (pure) -> write the real exits and the run in ONE transaction

A fetch that fails is recorded as a failed run and changes nothing. Running it twice changes nothing the
second time: only trades still estimated are candidates, and venue fills the books hold are left out.
Exits not found at the venue stay estimated and are reported (``BackfillResult.not_found``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from models import backfill as books_backfill
from models.accounts import find_account
from models.database import Database
from models.reading import known_fill_ids
from models.run_records import begin_run, fail_run
from models.sharing import fill_ids_held_by
from reconciliation.backfill import EstimatedTrade, match_exits
from reconciliation.errors import ReconError
from reconciliation.plan import RunStatus
from reconciliation.values import Fill
from venues.base import Venue
from workers.connect import open_venue
from workers.counters import VenueCounter, counted
from workers.fleet import AccountConfig
from workers.pipeline import Clock, fail_quietly, utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NotFound:
    """An exit that stays estimated: the trade as the books hold it, and why."""

    trade: EstimatedTrade
    why: str


@dataclass(frozen=True)
class BackfillResult:
    """How a backfill ended: its run, status, how many estimated exits it saw and replaced, what stays estimated.

    In a dry run ``backfilled`` counts the exits that would be replaced.
    """

    run_id: int
    status: str
    dry_run: bool
    candidates: int = 0
    backfilled: int = 0
    not_found: tuple[NotFound, ...] = ()
    error: str | None = None


def backfill(
    database: Database,
    config: AccountConfig,
    *,
    dry_run: bool = False,
    clock: Clock = utc_now,
    venue: Venue | None = None,
    count: VenueCounter | None = None,
) -> BackfillResult:
    """Replace the account's estimated exits with the venue's real fills; the run is recorded whatever happens."""
    started = clock()
    with database.transaction() as session:
        account_id = find_account(session, config.bot, config.account).id
        start = begin_run(session, account_id, "backfill", dry_run, started)
    context = {"bot": config.bot, "account": config.account, "run_id": start.run_id}
    log.info("backfill started: %s/%s run %s", config.bot, config.account, start.run_id, extra=context)
    try:
        return _replace_estimates(database, config, venue, account_id, start.run_id, dry_run, clock, context, count)
    except BaseException as error:
        fail_quietly(database, start.run_id, f"unexpected error: {type(error).__name__}: {error}", clock)
        raise


def _replace_estimates(
    database: Database,
    config: AccountConfig,
    venue: Venue | None,
    account_id: int,
    run_id: int,
    dry_run: bool,
    clock: Clock,
    context: dict[str, object],
    count: VenueCounter | None,
) -> BackfillResult:
    with database.reading() as session:
        candidates = books_backfill.estimated_trades(session, account_id)
    fills: tuple[Fill, ...] = ()
    if candidates:
        try:
            source = counted(venue or open_venue(config), config.venue, count)
            fills = source.fills_between(min(t.entry_time for t in candidates), clock())
        except ReconError as error:
            message = f"fetch failed: {error}"
            with database.transaction() as session:
                fail_run(session, run_id, message, clock())
            log.warning("backfill failed: %s", message, extra=context)
            return BackfillResult(run_id, RunStatus.FAILED.value, dry_run, len(candidates), error=message)
    with database.reading() as session:
        known = known_fill_ids(session, account_id, (f.fill_id for f in fills))
        if config.shared_with:  # a fill another bot of the shared venue account holds is not this bot's exit
            known |= fill_ids_held_by(session, config.shared_with, (f.fill_id for f in fills))
    match = match_exits(candidates, fills, known)
    with database.transaction() as session:
        applied = books_backfill.apply_backfill(session, account_id, run_id, match, clock(), dry_run)
    log.info("backfill finished: %s/%s run %s %s", config.bot, config.account, run_id, applied.status,
             extra={**context, "status": applied.status})  # fmt: skip
    return BackfillResult(
        run_id=run_id,
        status=applied.status,
        dry_run=dry_run,
        candidates=len(candidates),
        backfilled=len(applied.backfilled),
        not_found=tuple(NotFound(trade, why) for trade, why in applied.not_found),
    )
