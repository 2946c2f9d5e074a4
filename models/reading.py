"""Reading the books: as the engine sees them (one call, a constant number of queries), and as people read
them (positions with their lots, completed trades, position groups).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import ARRAY, ColumnElement, String, Table, any_, bindparam, func, select
from sqlalchemy.orm import Session

from models import books as tables
from models.accounts import AccountState
from models.lots import OpenLots, key_of, load_open_lots
from models.orders import live_orders
from reconciliation.values import Books, Cash, InstrumentKey, Position

FILLS = cast(Table, tables.Fill.__table__)


def read_books(
    session: Session,
    account: AccountState,
    cash: Cash | None,
    venue_fill_ids: Iterable[str] = (),
    *,
    with_last_fills: bool = True,
) -> tuple[Books, OpenLots]:
    """The books of ``account`` (its state and expected cash already read) as the engine sees them, with the open
    lots as written back: two queries, one more for the newest fill per instrument unless left out, one more
    when the venue reported fills."""
    lots = load_open_lots(session, account.id)
    books = Books(
        lots=dict(lots.by_key),
        last_fills=last_fills(session, account.id) if with_last_fills else {},
        pending_orders=live_orders(session, account.id),
        expected_cash=cash,
        known_fill_ids=known_fill_ids(session, account.id, venue_fill_ids),
        halted=account.halted,
        halted_reason=account.halted_reason,
    )
    return books, lots


def load_books(session: Session, account_id: int, venue_fill_ids: Iterable[str] = ()) -> tuple[Books, OpenLots]:
    """The account's books as the engine sees them, without locking the account (for reading, not deciding)."""
    row = session.get_one(tables.Account, account_id)
    cash = session.get(tables.ExpectedCash, account_id)
    state = AccountState(row.id, row.epoch, row.halted, row.halted_reason)
    return read_books(session, state, Cash(cash.currency, cash.balance) if cash else None, venue_fill_ids)


def last_fills(session: Session, account_id: int) -> dict[InstrumentKey, tuple[str, datetime]]:
    """The newest fill recorded on each instrument: its id and time."""
    newest = (
        select(
            FILLS.c.category,
            FILLS.c.symbol,
            FILLS.c.leg,
            func.max(FILLS.c.id).label("last_id"),
            func.max(FILLS.c.time).label("last_time"),
        )
        .where(FILLS.c.account_id == account_id)
        .group_by(FILLS.c.category, FILLS.c.symbol, FILLS.c.leg)
        .subquery()
    )
    rows = session.execute(
        select(newest.c.category, newest.c.symbol, newest.c.leg, newest.c.last_time, FILLS.c.fill_id).join(
            FILLS, FILLS.c.id == newest.c.last_id
        )
    )
    return {key_of(row): (row.fill_id, row.last_time) for row in rows}


def known_fill_ids(session: Session, account_id: int, fill_ids: Iterable[str]) -> frozenset[str]:
    """Which of ``fill_ids`` the account's books already hold."""
    wanted = sorted(set(fill_ids))
    return frozenset(
        fill_id
        for chunk in fill_id_chunks(session, wanted)
        for fill_id in session.scalars(select(FILLS.c.fill_id).where(FILLS.c.account_id == account_id, chunk))
    )


LOOKUP_CHUNK = 1000  # fill ids per query: well inside SQLite's and psycopg's limits on bound parameters
#: On Postgres the ids go as one array parameter (``fill_id = ANY(:ids)``): a statement with a thousand
#: placeholders costs psycopg more to prepare in Python than Postgres takes to answer it.
ARRAY_CHUNK = 20_000


def fill_id_chunks(session: Session, ids: Sequence[str]) -> Iterator[ColumnElement[bool]]:
    """Conditions on ``fills.fill_id`` that together cover ``ids``, as few as the database takes well."""
    if session.get_bind().dialect.name == "postgresql":
        for start in range(0, len(ids), ARRAY_CHUNK):
            yield FILLS.c.fill_id == any_(bindparam(None, list(ids[start : start + ARRAY_CHUNK]), type_=ARRAY(String)))
        return
    for start in range(0, len(ids), LOOKUP_CHUNK):
        yield FILLS.c.fill_id.in_(ids[start : start + LOOKUP_CHUNK])


def positions(session: Session, account_id: int) -> list[Position]:
    """Current positions with their open lots, by instrument."""
    lots = load_open_lots(session, account_id)
    return [lots.position(key) for key in sorted(lots.by_key)]


def completed_trades(session: Session, account_id: int) -> list[tables.Trade]:
    """Completed trades, oldest exit first."""
    return list(
        session.scalars(
            select(tables.Trade)
            .where(tables.Trade.account_id == account_id)
            .order_by(tables.Trade.exit_time, tables.Trade.id)
        )
    )


def groups(session: Session, account_id: int) -> list[tables.PositionGroup]:
    """Position groups of the account, by name."""
    return list(
        session.scalars(
            select(tables.PositionGroup)
            .where(tables.PositionGroup.account_id == account_id)
            .order_by(tables.PositionGroup.name)
        )
    )
