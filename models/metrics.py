"""The fleet's figures for the metrics endpoint, read from the tables in four statements whatever the fleet's size:
the accounts, finished runs by account and status (with the last success), open breaks by account and severity,
and run durations bucketed by venue (the buckets are counted in SQL, so no run is loaded).

Only finished runs that were not dry count: a run is counted once, with the status it ended with, so each
(account, status) count only grows (a Prometheus counter).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Float, case, cast, func, select
from sqlalchemy.orm import Session

from models.books import Account, Bot
from models.runs import Break, Run
from reconciliation.plan import RunStatus

#: Upper bounds (seconds) of the run-duration histogram's buckets: a sim run takes well under a second, a venue
#: read tens of seconds at worst before the task's soft time limit.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
#: A run that finished with any other status succeeded (its decision was written), as for staleness alerts.
UNSUCCESSFUL = (RunStatus.FAILED.value, RunStatus.RUNNING.value)


@dataclass(frozen=True)
class OpenBreaks:
    """Open breaks of one account at one severity: how many, and when the oldest was first seen."""

    count: int
    oldest_first_seen: datetime


@dataclass
class AccountFigures:
    """One account's figures: runs by final status, last success, open breaks by severity, halt flag."""

    bot: str
    account: str
    venue: str
    halted: bool
    runs: dict[str, int] = field(default_factory=dict)
    last_success_at: datetime | None = None
    open_breaks: dict[str, OpenBreaks] = field(default_factory=dict)


@dataclass(frozen=True)
class Durations:
    """One venue's finished runs as a histogram: cumulative counts per ``DURATION_BUCKETS`` bound, then the
    total count and the sum of seconds."""

    venue: str
    cumulative: tuple[int, ...]
    count: int
    total_seconds: float


@dataclass(frozen=True)
class FleetFigures:
    """Every account the books know, and the run durations by venue."""

    accounts: list[AccountFigures]
    durations: list[Durations]


def fleet_figures(session: Session) -> FleetFigures:
    """The figures of every account the books know, in four statements."""
    accounts = {
        account_id: AccountFigures(bot, name, venue, halted)
        for account_id, bot, name, venue, halted in session.execute(
            select(Account.id, Bot.name, Account.name, Account.venue, Account.halted)
            .join(Bot, Bot.id == Account.bot_id)
            .order_by(Bot.name, Account.name)
        )
    }
    finished = Run.dry_run.is_(False) & Run.finished_at.is_not(None)
    runs = select(Run.account_id, Run.status, func.count(), func.max(Run.finished_at)).where(finished)
    for account_id, status, n, last in session.execute(runs.group_by(Run.account_id, Run.status)):
        figures = accounts[account_id]
        figures.runs[status] = n
        if status not in UNSUCCESSFUL:
            figures.last_success_at = max(filter(None, (figures.last_success_at, last)), default=None)
    breaks = select(Break.account_id, Break.severity, func.count(), func.min(Break.first_seen_at))
    breaks = breaks.where(Break.resolved_at.is_(None)).group_by(Break.account_id, Break.severity)
    for account_id, severity, n, oldest in session.execute(breaks):
        accounts[account_id].open_breaks[severity] = OpenBreaks(n, oldest)
    return FleetFigures(list(accounts.values()), _durations(session, finished))


def _durations(session: Session, finished: Any) -> list[Durations]:
    """Finished runs by venue, bucketed in SQL (one statement, one row per venue)."""
    seconds = _seconds_between(session, Run.started_at, Run.finished_at)
    buckets = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in DURATION_BUCKETS]
    query = (
        select(Account.venue, func.count(), func.sum(seconds), *buckets)
        .join(Account, Account.id == Run.account_id)
        .where(finished)
        .group_by(Account.venue)
        .order_by(Account.venue)
    )
    return [_histogram(row) for row in session.execute(query)]


def _histogram(row: Sequence[Any]) -> Durations:
    venue, count, total, *cumulative = row
    return Durations(venue, tuple(int(n or 0) for n in cumulative), int(count), float(total or 0.0))


def _seconds_between(session: Session, start: Any, end: Any) -> Any:
    """``end - start`` in seconds as SQL: SQLite keeps datetimes as text (``julianday`` reads it), Postgres as
    timestamps."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return cast(func.extract("epoch", end - start), Float)
