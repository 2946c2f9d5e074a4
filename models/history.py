"""Runs over time: beginning one (fencing epoch), failing one, and reading runs, reports and fleet status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from models.books import Account, Bot
from models.runs import Action, Alert, Break, Finding, Run
from reconciliation.errors import FixConfiguration
from reconciliation.plan import RUN_REASONS


@dataclass(frozen=True)
class RunStart:
    """A run that now owns its account: its id and the fencing epoch it must still hold when it writes."""

    run_id: int
    epoch: int


def begin_run(session: Session, account_id: int, reason: str, dry_run: bool, now: datetime) -> RunStart:
    """Record a run as running; a real run also takes the account (bumps its epoch). The caller commits.

    A dry run writes no books, so it leaves the epoch alone and never fences off a real run.
    """
    if reason not in RUN_REASONS:
        raise FixConfiguration(f"unknown run reason {reason!r}: use one of {', '.join(RUN_REASONS)}")
    if dry_run:
        epoch = session.execute(select(Account.epoch).where(Account.id == account_id)).scalar_one()
    else:
        epoch = session.execute(
            update(Account).where(Account.id == account_id).values(epoch=Account.epoch + 1).returning(Account.epoch)
        ).scalar_one()
        # Older real runs still marked running can no longer write (their epoch is gone): say what became of them.
        session.execute(
            update(Run)
            .where(Run.account_id == account_id, Run.status == "running", Run.dry_run.is_(False))
            .values(status="failed", error="interrupted: a newer run took the account", finished_at=now)
        )
    run = Run(account_id=account_id, reason=reason, status="running", dry_run=dry_run, epoch=epoch, started_at=now)
    session.add(run)
    session.flush()
    return RunStart(run_id=run.id, epoch=epoch)


def fail_run(session: Session, run_id: int, error: str, now: datetime) -> None:
    """Record that a run failed; nothing else changes."""
    run = session.get_one(Run, run_id)
    run.status, run.error, run.finished_at = "failed", error, now


@dataclass(frozen=True)
class RunningRun:
    """A run still marked running: which account, why it ran, whether it was dry."""

    run_id: int
    account_id: int
    bot: str
    account: str
    reason: str
    dry_run: bool


def runs_running_since(session: Session, started_before: datetime) -> list[RunningRun]:
    """Runs still marked running that began before ``started_before``, oldest first."""
    rows = session.execute(
        select(Run.id, Run.account_id, Bot.name, Account.name, Run.reason, Run.dry_run)
        .join(Account, Account.id == Run.account_id)
        .join(Bot, Bot.id == Account.bot_id)
        .where(Run.status == "running", Run.started_at < started_before)
        .order_by(Run.id)
    )
    return [RunningRun(*row) for row in rows]


def fail_if_running(session: Session, run_id: int, error: str, now: datetime) -> bool:
    """Mark the run failed unless it already ended; True when this call ended it."""
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == "running")
        .values(status="failed", error=error, finished_at=now)
        .returning(Run.id)
    )
    return result.first() is not None


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


def list_runs(session: Session, bot: str | None = None, account: str | None = None, limit: int = 50) -> list[RunLine]:
    """The newest runs first, optionally of one bot or one account."""
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
