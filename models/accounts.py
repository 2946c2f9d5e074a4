"""Accounts: found or created by bot and account name, and locked for the length of a transaction.

Every writer of an account's books locks its row first (``SELECT … FOR UPDATE`` on Postgres; SQLite
transactions begin IMMEDIATE), so fills, reconciliation and bots never interleave on one account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from models import books as tables
from models.database import insert_ignoring_duplicates
from reconciliation.errors import FixConfiguration
from reconciliation.values import Cash

ACCOUNTS = cast(Table, tables.Account.__table__)
EXPECTED_CASH = cast(Table, tables.ExpectedCash.__table__)


@dataclass(frozen=True)
class AccountState:
    """An account as a run sees it under the row lock: its id, fencing epoch and halt flag."""

    id: int
    epoch: int
    halted: bool
    halted_reason: str | None


def get_or_create_account(session: Session, bot: str, account: str, now: datetime, venue: str = "") -> tables.Account:
    """The account row for (bot, account), created with its bot if missing; ``venue`` is recorded when given."""
    session.execute(insert_ignoring_duplicates(session, tables.Bot).values(name=bot, created_at=now))
    bot_id = session.scalar(select(tables.Bot.id).where(tables.Bot.name == bot))
    session.execute(
        insert_ignoring_duplicates(session, tables.Account).values(
            bot_id=bot_id, name=account, venue=venue, epoch=0, halted=False, created_at=now
        )
    )
    row = session.scalars(
        select(tables.Account).where(tables.Account.bot_id == bot_id, tables.Account.name == account)
    ).one()
    if venue and row.venue != venue:
        row.venue = venue
    return row


def account_id_of(session: Session, bot: str, account: str, now: datetime, venue: str = "") -> int:
    """The id of (bot, account)'s row: one statement when it exists (the usual case), else created as
    ``get_or_create_account`` does."""
    found = session.scalar(
        select(tables.Account.id)
        .join(tables.Bot, tables.Bot.id == tables.Account.bot_id)
        .where(tables.Bot.name == bot, tables.Account.name == account)
    )
    return found if found is not None else get_or_create_account(session, bot, account, now, venue).id


def existing_account_id(session: Session, bot: str, account: str) -> int | None:
    """The id of (bot, account)'s row, or None when it has no books yet (nothing is created)."""
    return session.scalar(
        select(tables.Account.id)
        .join(tables.Bot, tables.Bot.id == tables.Account.bot_id)
        .where(tables.Bot.name == bot, tables.Account.name == account)
    )


def find_account(session: Session, bot: str, account: str) -> tables.Account:
    """The account row for (bot, account); an unknown pair is a configuration error naming it."""
    row = session.scalars(
        select(tables.Account)
        .join(tables.Bot, tables.Bot.id == tables.Account.bot_id)
        .where(tables.Bot.name == bot, tables.Account.name == account)
    ).one_or_none()
    if row is None:
        raise FixConfiguration(f"no books for {bot}/{account}: record something or run a reconciliation first")
    return row


def lock_account(session: Session, account_id: int) -> tables.Account:
    """Lock the account row for the rest of the transaction and return its current state."""
    return session.scalars(
        select(tables.Account)
        .where(tables.Account.id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def lock_for_run(session: Session, account_id: int) -> tuple[AccountState, Cash | None]:
    """Lock the account row for the rest of the transaction; its state and the cash the books expect, in one
    statement (Core: a run does this every time, and the ORM's object loading costs more than the query)."""
    row = session.execute(_LOCK_FOR_RUN, {"account_id": account_id}).one()
    cash = Cash(row.currency, row.balance) if row.currency is not None else None
    return AccountState(row.id, row.epoch, row.halted, row.halted_reason), cash


_LOCK_FOR_RUN = (
    select(
        ACCOUNTS.c.id,
        ACCOUNTS.c.epoch,
        ACCOUNTS.c.halted,
        ACCOUNTS.c.halted_reason,
        EXPECTED_CASH.c.currency,
        EXPECTED_CASH.c.balance,
    )
    .select_from(ACCOUNTS.outerjoin(EXPECTED_CASH, EXPECTED_CASH.c.account_id == ACCOUNTS.c.id))
    .where(ACCOUNTS.c.id == bindparam("account_id"))
    .with_for_update(of=ACCOUNTS)
)


def halt(session: Session, account_id: int, reason: str, now: datetime) -> None:
    """Set the account's halt flag with its reason."""
    session.execute(
        update(ACCOUNTS).where(ACCOUNTS.c.id == account_id).values(halted=True, halted_reason=reason, halted_at=now)
    )
