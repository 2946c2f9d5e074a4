"""The fleet at a glance, in two statements whatever its size: each account's halt flag, last run, last
successful run and open breaks by severity (what the trading gate and the fleet page need)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ScalarSelect, Table, func, select
from sqlalchemy.orm import Session

from models.books import Account, Bot
from models.runs import Break, Run

BOTS, ACCOUNTS = cast(Table, Bot.__table__), cast(Table, Account.__table__)
RUNS, BREAKS = cast(Table, Run.__table__), cast(Table, Break.__table__)
ACCOUNT_COLUMNS = (
    BOTS.c.name.label("bot"),
    ACCOUNTS.c.id,
    ACCOUNTS.c.name,
    ACCOUNTS.c.venue,
    ACCOUNTS.c.halted,
    ACCOUNTS.c.halted_reason,
)

SUCCESSFUL_STATUSES = ("in_sync", "resolved", "warned", "halted")  # the run finished and its decision was written


@dataclass(frozen=True, slots=True)
class LastRun:
    """An account's newest run that was not a dry run."""

    run_id: int
    status: str
    reason: str
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class AccountOverview:
    """One account as the fleet page and the trading gate see it."""

    bot: str
    account: str
    venue: str
    halted: bool
    halted_reason: str | None
    last_run: LastRun | None
    last_success_at: datetime | None
    open_breaks: dict[str, int] = field(default_factory=dict)  # severity -> count


def fleet_overview(session: Session, bot: str | None = None, account: str | None = None) -> list[AccountOverview]:
    """Every account the books know (or one bot's, or one account), by bot and account name, in two statements.

    Core columns, not ORM objects: a fleet of thousands is read in one pass without building an object per row. Each
    account's newest runs are found by probing the index on (account, started), not by grouping the run history,
    so the cost does not grow with it."""
    accounts = select(*ACCOUNT_COLUMNS, *NEWEST_RUNS).select_from(BOTS.join(ACCOUNTS, ACCOUNTS.c.bot_id == BOTS.c.id))
    if bot is not None:
        accounts = accounts.where(BOTS.c.name == bot)
    if account is not None:
        accounts = accounts.where(ACCOUNTS.c.name == account)
    fleet = accounts.subquery("fleet")  # each newest run found once, then joined on its primary key
    query = (
        select(fleet, RUNS.c.status, RUNS.c.reason, RUNS.c.finished_at)
        .select_from(fleet.outerjoin(RUNS, RUNS.c.id == fleet.c.run_id))
        .order_by(fleet.c.bot, fleet.c.name)
    )
    rows = session.connection().execute(query).all()
    if not rows:
        return []
    filtered = bot is not None or account is not None
    breaks = _open_breaks_by_severity(session, [row[1] for row in rows] if filtered else None)
    return [_overview(row, breaks) for row in rows]


def _overview(row: Sequence[Any], breaks: dict[int, dict[str, int]]) -> AccountOverview:
    bot, account_id, name, venue, halted, halted_reason, run_id, success_at, status, reason, finished_at = row
    last = LastRun(run_id, status, reason, finished_at) if run_id is not None else None
    return AccountOverview(bot, name, venue, halted, halted_reason, last, success_at, breaks.get(account_id, {}))


def _newest_run(statuses: tuple[str, ...] | None, column: str) -> ScalarSelect[Any]:
    """``column`` of the account's newest run that is not a dry run (and has one of ``statuses``)."""
    newest = RUNS.alias("newest")
    query = select(newest.c[column]).where(newest.c.account_id == ACCOUNTS.c.id, newest.c.dry_run.is_(False))
    if statuses is not None:
        query = query.where(newest.c.status.in_(statuses))
    return query.order_by(newest.c.started_at.desc()).limit(1).scalar_subquery()


def _open_breaks_by_severity(session: Session, account_ids: list[int] | None) -> dict[int, dict[str, int]]:
    """Open breaks per account and severity (of ``account_ids``, or all), in one statement."""
    counts: dict[int, dict[str, int]] = {}
    query = (
        select(BREAKS.c.account_id, BREAKS.c.severity, func.count())
        .where(BREAKS.c.resolved_at.is_(None))
        .group_by(BREAKS.c.account_id, BREAKS.c.severity)
    )
    if account_ids is not None:
        query = query.where(BREAKS.c.account_id.in_(account_ids))
    for account_id, severity, n in session.connection().execute(query):
        counts.setdefault(account_id, {})[severity] = n
    return counts


#: the id of each account's newest run and when its newest successful run finished (correlated to ``ACCOUNTS``)
NEWEST_RUNS = (
    _newest_run(None, "id").label("run_id"),
    _newest_run(SUCCESSFUL_STATUSES, "finished_at").label("success_at"),
)
