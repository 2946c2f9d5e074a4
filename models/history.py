"""Runs over time: beginning one (fencing epoch), failing one, and reading runs, reports and fleet status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.books import Account, Bot
from models.runs import Action, Alert, Break, Finding, Run
from reconciliation.errors import FixConfiguration


@dataclass(frozen=True)
class RunRecord:
    """A run with its account's names, findings and actions."""

    run: Run
    bot: str
    account: str
    venue: str
    findings: list[Finding]
    actions: list[Action]


def run_record(session: Session, run_id: int) -> RunRecord:
    """Everything stored about one run; an unknown id is an input error."""
    row = session.execute(
        select(Run, Bot.name, Account.name, Account.venue)
        .join(Account, Account.id == Run.account_id)
        .join(Bot, Bot.id == Account.bot_id)
        .where(Run.id == run_id)
    ).one_or_none()
    if row is None:
        raise FixConfiguration(f"no run with id {run_id}")
    run, bot, account, venue = row
    findings = list(session.scalars(select(Finding).where(Finding.run_id == run_id).order_by(Finding.id)))
    actions = list(session.scalars(select(Action).where(Action.run_id == run_id).order_by(Action.id)))
    return RunRecord(run, bot, account, venue, findings, actions)


@dataclass(frozen=True)
class RunLine:
    """One line of a run listing."""

    run_id: int
    bot: str
    account: str
    reason: str
    status: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    discrepancies: int


def list_runs(
    session: Session,
    bot: str | None = None,
    account: str | None = None,
    limit: int = 50,
    *,
    status: str | None = None,
    before: int | None = None,
) -> list[RunLine]:
    """The newest runs first, optionally of one bot, one account, one status, or older than run ``before``."""
    counts = select(Finding.run_id, func.count().label("n")).group_by(Finding.run_id).subquery()
    query = (
        select(Run, Bot.name, Account.name, func.coalesce(counts.c.n, 0))
        .join(Account, Account.id == Run.account_id)
        .join(Bot, Bot.id == Account.bot_id)
        .outerjoin(counts, counts.c.run_id == Run.id)
        .order_by(Run.id.desc())
        .limit(limit)
    )
    if bot is not None:
        query = query.where(Bot.name == bot)
    if account is not None:
        query = query.where(Account.name == account)
    if status is not None:
        query = query.where(Run.status == status)
    if before is not None:
        query = query.where(Run.id < before)
    return [
        RunLine(r.id, b, a, r.reason, r.status, r.dry_run, r.started_at, r.finished_at, n)
        for r, b, a, n in session.execute(query)
    ]


@dataclass(frozen=True)
class AccountStatus:
    """The state of one account at a glance."""

    bot: str
    account: str
    venue: str
    halted: bool
    halted_reason: str | None
    last_run_id: int | None
    last_status: str | None
    last_finished_at: datetime | None
    open_breaks: int


def fleet_status(session: Session) -> list[AccountStatus]:
    """Every account with its last non-dry run, open breaks and halt flag, by bot and account name."""
    last = (
        select(Run.account_id, func.max(Run.id).label("run_id"))
        .where(Run.dry_run.is_(False))
        .group_by(Run.account_id)
        .subquery()
    )
    breaks = (
        select(Break.account_id, func.count().label("n"))
        .where(Break.resolved_at.is_(None))
        .group_by(Break.account_id)
        .subquery()
    )
    rows = session.execute(
        select(Bot.name, Account, Run, func.coalesce(breaks.c.n, 0))
        .join(Account, Account.bot_id == Bot.id)
        .outerjoin(last, last.c.account_id == Account.id)
        .outerjoin(Run, Run.id == last.c.run_id)
        .outerjoin(breaks, breaks.c.account_id == Account.id)
        .order_by(Bot.name, Account.name)
    )
    return [
        AccountStatus(
            bot=bot,
            account=account.name,
            venue=account.venue,
            halted=account.halted,
            halted_reason=account.halted_reason,
            last_run_id=run.id if run else None,
            last_status=run.status if run else None,
            last_finished_at=run.finished_at if run else None,
            open_breaks=n,
        )
        for bot, account, run, n in rows
    ]


def open_breaks(session: Session, account_id: int) -> list[Break]:
    """Breaks of the account that are still open, oldest first."""
    return list(
        session.scalars(
            select(Break).where(Break.account_id == account_id, Break.resolved_at.is_(None)).order_by(Break.id)
        )
    )


def set_halted(session: Session, account_id: int, halted: bool, reason: str | None, now: datetime) -> bool:
    """Halt or resume an account by hand (with an alert); returns whether the flag was already so."""
    account = session.get_one(Account, account_id, with_for_update=True)
    unchanged = account.halted == halted
    account.halted = halted
    account.halted_reason = reason if halted else None
    account.halted_at = now if halted else None
    if not unchanged:
        session.add(
            Alert(
                account_id=account_id,
                run_id=None,
                kind="halted" if halted else "resumed",
                severity="critical" if halted else "info",
                message=f"account {'halted' if halted else 'resumed'} by an operator"
                + (f": {reason}" if reason else ""),
                created_at=now,
            )
        )
    return unchanged


def alerts(session: Session, account_id: int) -> list[Alert]:
    """Alerts of the account, oldest first."""
    return list(session.scalars(select(Alert).where(Alert.account_id == account_id).order_by(Alert.id)))


@dataclass(frozen=True)
class BreakLine:
    """A break with its account's names."""

    item: Break
    bot: str
    account: str


def list_breaks(
    session: Session, bot: str | None = None, account: str | None = None, open_only: bool = True, limit: int = 500
) -> list[BreakLine]:
    """Breaks, newest first seen first, optionally of one bot or one account, open ones only unless asked."""
    query = (
        select(Break, Bot.name, Account.name)
        .join(Account, Account.id == Break.account_id)
        .join(Bot, Bot.id == Account.bot_id)
        .order_by(Break.id.desc())
        .limit(limit)
    )
    if bot is not None:
        query = query.where(Bot.name == bot)
    if account is not None:
        query = query.where(Account.name == account)
    if open_only:
        query = query.where(Break.resolved_at.is_(None))
    return [BreakLine(item, b, a) for item, b, a in session.execute(query)]
