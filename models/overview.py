"""The fleet at a glance, in two statements whatever its size: each account's halt flag, last run, last
successful run and open breaks by severity (what the trading gate and the fleet page need)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.books import Account, Bot
from models.runs import Break, Run

SUCCESSFUL_STATUSES = ("in_sync", "resolved", "warned", "halted")  # the run finished and its decision was written


@dataclass(frozen=True)
class LastRun:
    """An account's newest run that was not a dry run."""

    run_id: int
    status: str
    reason: str
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class AccountOverview:
    """One account as the fleet page and the trading gate see it."""

    bot: str
    account: str
    venue: str
    halted: bool
    halted_reason: str | None
    halted_at: datetime | None
    last_run: LastRun | None
    last_success_at: datetime | None
    open_breaks: dict[str, int] = field(default_factory=dict)  # severity -> count


def fleet_overview(session: Session, bot: str | None = None, account: str | None = None) -> list[AccountOverview]:
    """Every account the books know (or one bot's, or one account), by bot and account name."""
    last = (
        select(Run.account_id, func.max(Run.id).label("run_id")).where(Run.dry_run.is_(False)).group_by(Run.account_id)
    )
    succeeded = (
        select(Run.account_id, func.max(Run.finished_at).label("at"))
        .where(Run.dry_run.is_(False), Run.status.in_(SUCCESSFUL_STATUSES))
        .group_by(Run.account_id)
    )
    last_q, succeeded_q = last.subquery(), succeeded.subquery()
    query = (
        select(
            Bot.name.label("bot"),
            Account.id,
            Account.name,
            Account.venue,
            Account.halted,
            Account.halted_reason,
            Account.halted_at,
            Run.id.label("run_id"),
            Run.status,
            Run.reason,
            Run.started_at,
            Run.finished_at,
            succeeded_q.c.at.label("success_at"),
        )
        .join(Account, Account.bot_id == Bot.id)
        .outerjoin(last_q, last_q.c.account_id == Account.id)
        .outerjoin(Run, Run.id == last_q.c.run_id)
        .outerjoin(succeeded_q, succeeded_q.c.account_id == Account.id)
        .order_by(Bot.name, Account.name)
    )
    if bot is not None:
        query = query.where(Bot.name == bot)
    if account is not None:
        query = query.where(Account.name == account)
    rows = session.execute(query).all()  # columns, not ORM objects: a fleet of thousands is read in one pass
    filtered = bot is not None or account is not None
    breaks = _open_breaks_by_severity(session, [row.id for row in rows] if filtered else None) if rows else {}
    return [_overview(row, breaks) for row in rows]


def _overview(row: Sequence[Any], breaks: dict[int, dict[str, int]]) -> AccountOverview:
    (bot, account_id, name, venue, halted, halted_reason, halted_at, run_id, status, reason, started_at, finished_at,
     success_at) = row  # fmt: skip
    last = LastRun(run_id, status, reason, started_at, finished_at) if run_id is not None else None
    return AccountOverview(bot, name, venue, halted, halted_reason, halted_at, last, success_at,
                           breaks.get(account_id, {}))  # fmt: skip


def _open_breaks_by_severity(session: Session, account_ids: list[int] | None) -> dict[int, dict[str, int]]:
    """Open breaks per account and severity (of ``account_ids``, or all), in one statement."""
    counts: dict[int, dict[str, int]] = {}
    query = (
        select(Break.account_id, Break.severity, func.count())
        .where(Break.resolved_at.is_(None))
        .group_by(Break.account_id, Break.severity)
    )
    if account_ids is not None:
        query = query.where(Break.account_id.in_(account_ids))
    for account_id, severity, n in session.execute(query):
        counts.setdefault(account_id, {})[severity] = n
    return counts
