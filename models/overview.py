"""The fleet at a glance, in two statements whatever its size: each account's halt flag, last run, last
successful run and open breaks by severity (what the trading gate and the fleet page need)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

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
    last_run = aliased(Run)
    query = (
        select(Bot.name, Account, last_run, succeeded_q.c.at)
        .join(Account, Account.bot_id == Bot.id)
        .outerjoin(last_q, last_q.c.account_id == Account.id)
        .outerjoin(last_run, last_run.id == last_q.c.run_id)
        .outerjoin(succeeded_q, succeeded_q.c.account_id == Account.id)
        .order_by(Bot.name, Account.name)
    )
    if bot is not None:
        query = query.where(Bot.name == bot)
    if account is not None:
        query = query.where(Account.name == account)
    rows = session.execute(query).all()
    filtered = bot is not None or account is not None
    breaks = _open_breaks_by_severity(session, [row[1].id for row in rows] if filtered else None) if rows else {}
    return [
        AccountOverview(
            bot=bot_name,
            account=row.name,
            venue=row.venue,
            halted=row.halted,
            halted_reason=row.halted_reason,
            halted_at=row.halted_at,
            last_run=LastRun(run.id, run.status, run.reason, run.started_at, run.finished_at) if run else None,
            last_success_at=success_at,
            open_breaks=breaks.get(row.id, {}),
        )
        for bot_name, row, run, success_at in rows
    ]


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
