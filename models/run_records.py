"""Recording runs as they start and end: a run takes its account (fencing epoch), fails, or is found lost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from models.accounts import get_or_create_account
from models.books import Account, Bot
from models.runs import Run
from reconciliation.errors import FixConfiguration
from reconciliation.plan import RUN_REASONS, RunStatus

RUNS = cast(Table, Run.__table__)
ACCOUNTS = cast(Table, Account.__table__)
BOTS = cast(Table, Bot.__table__)
INTERRUPTED = "interrupted: a newer run took the account"


@dataclass(frozen=True)
class RunStart:
    """A run that now owns its account: its id and the fencing epoch it must still hold when it writes."""

    run_id: int
    epoch: int
    account_id: int = 0


def start_run(
    session: Session, bot: str, account: str, venue: str, reason: str, dry_run: bool, now: datetime
) -> RunStart:
    """Record a run of ``bot/account`` as running, creating the account on its first run. The caller commits.

    In one statement the account is found by name and, for a real run, taken (its epoch bumped).
    """
    if reason not in RUN_REASONS:
        raise FixConfiguration(f"unknown run reason {reason!r}: use one of {', '.join(RUN_REASONS)}")
    found = _take_account(session, bot, account, dry_run)
    if found is None:
        get_or_create_account(session, bot, account, now, venue)
        found = _take_account(session, bot, account, dry_run)
        assert found is not None
    account_id, epoch, known_venue = found
    if venue and known_venue != venue:
        session.execute(update(ACCOUNTS).where(ACCOUNTS.c.id == account_id).values(venue=venue))
    if not dry_run:
        _fail_older_runs(session, account_id, now)
    values = {"account_id": account_id, "reason": reason, "status": RunStatus.RUNNING.value, "dry_run": dry_run,
              "epoch": epoch, "started_at": now, "matched": 0}  # fmt: skip
    run_id = session.execute(_INSERT_RUN, values).scalar_one()
    return RunStart(run_id=run_id, epoch=epoch, account_id=account_id)


def _take_account(session: Session, bot: str, account: str, dry_run: bool) -> tuple[int, int, str] | None:
    """The account's id, fencing epoch (bumped unless dry) and venue, found by names; None when it does not exist."""
    row = session.execute(_FIND_ACCOUNT if dry_run else _TAKE_ACCOUNT, {"bot": bot, "account": account}).one_or_none()
    return None if row is None else (row[0], row[1], row[2])


# Built once: every run sends these, and building a statement costs more than running it.
_FIND_ACCOUNT = (
    select(ACCOUNTS.c.id, ACCOUNTS.c.epoch, ACCOUNTS.c.venue)
    .join(BOTS, BOTS.c.id == ACCOUNTS.c.bot_id)
    .where(BOTS.c.name == bindparam("bot"), ACCOUNTS.c.name == bindparam("account"))
)
_TAKE_ACCOUNT = (
    update(ACCOUNTS)
    .where(ACCOUNTS.c.bot_id == BOTS.c.id, BOTS.c.name == bindparam("bot"), ACCOUNTS.c.name == bindparam("account"))
    .values(epoch=ACCOUNTS.c.epoch + 1)
    .returning(ACCOUNTS.c.id, ACCOUNTS.c.epoch, ACCOUNTS.c.venue)
)
_FAIL_OLDER_RUNS = (
    update(RUNS)
    .where(
        RUNS.c.account_id == bindparam("of_account"),
        RUNS.c.status == RunStatus.RUNNING.value,
        RUNS.c.dry_run.is_(False),
    )
    .values(status=RunStatus.FAILED.value, error=INTERRUPTED, finished_at=bindparam("interrupted_at"))
)
_INSERT_RUN = RUNS.insert().returning(RUNS.c.id)


def _fail_older_runs(session: Session, account_id: int, now: datetime) -> None:
    """Older real runs still marked running can no longer write (their epoch is gone): say what became of them."""
    session.execute(_FAIL_OLDER_RUNS, {"of_account": account_id, "interrupted_at": now})


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
        _fail_older_runs(session, account_id, now)
    run = Run(account_id=account_id, reason=reason, status="running", dry_run=dry_run, epoch=epoch, started_at=now)
    session.add(run)
    session.flush()
    return RunStart(run_id=run.id, epoch=epoch, account_id=account_id)


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


def fail_run(session: Session, run_id: int, error: str, now: datetime) -> bool:
    """Record that a run failed, unless it already ended; True when this call ended it. Nothing else changes.

    A run that ended keeps how it ended: one a newer run fenced off is already failed, and one interrupted after
    its decision committed (a time limit, a connection lost after the commit reached Postgres) did what it records.
    """
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.RUNNING.value)
        .values(status=RunStatus.FAILED.value, error=error, finished_at=now)
        .returning(Run.id)
    )
    return result.first() is not None
