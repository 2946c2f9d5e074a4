"""Accounts: found or created by bot and account name, and locked for the length of a transaction.

Every writer of an account's books locks its row first (``SELECT … FOR UPDATE`` on Postgres; SQLite
transactions begin IMMEDIATE), so fills, reconciliation and bots never interleave on one account.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import books as tables
from models.database import insert_ignoring_duplicates
from reconciliation.errors import FixConfiguration


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
