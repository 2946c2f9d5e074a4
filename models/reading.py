"""Reading the books: as the engine sees them (one call, a constant number of queries), and as people read
them (positions with their lots, completed trades, position groups).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import books as tables
from models.lots import OpenLots, key_of, load_open_lots
from models.orders import live_orders
from reconciliation.values import Books, Cash, InstrumentKey, Position


def read_books(
    session: Session, account: tables.Account, cash: tables.ExpectedCash | None, venue_fill_ids: Iterable[str] = ()
) -> tuple[Books, OpenLots]:
    """The books of ``account`` (its row, and its expected cash row, already read) as the engine sees them, with
    the open lots as written back; three queries, a fourth when the venue reported fills."""
    lots = load_open_lots(session, account.id)
    books = Books(
        lots=dict(lots.by_key),
        last_fills=_last_fills(session, account.id),
        pending_orders=live_orders(session, account.id),
        expected_cash=Cash(cash.currency, cash.balance) if cash else None,
        known_fill_ids=_known_fill_ids(session, account.id, venue_fill_ids),
        halted=account.halted,
        halted_reason=account.halted_reason,
    )
    return books, lots


def load_books(session: Session, account_id: int, venue_fill_ids: Iterable[str] = ()) -> tuple[Books, OpenLots]:
    """The account's books as the engine sees them, without locking the account (for reading, not deciding)."""
    account = session.get_one(tables.Account, account_id)
    return read_books(session, account, session.get(tables.ExpectedCash, account_id), venue_fill_ids)


def _last_fills(session: Session, account_id: int) -> dict[InstrumentKey, tuple[str, datetime]]:
    """The newest fill recorded on each instrument: its id and time."""
    newest = (
        select(
            tables.Fill.category,
            tables.Fill.symbol,
            tables.Fill.leg,
            func.max(tables.Fill.id).label("last_id"),
            func.max(tables.Fill.time).label("last_time"),
        )
        .where(tables.Fill.account_id == account_id)
        .group_by(tables.Fill.category, tables.Fill.symbol, tables.Fill.leg)
        .subquery()
    )
    rows = session.execute(
        select(newest.c.category, newest.c.symbol, newest.c.leg, newest.c.last_time, tables.Fill.fill_id).join(
            tables.Fill, tables.Fill.id == newest.c.last_id
        )
    )
    return {key_of(row): (row.fill_id, row.last_time) for row in rows}


def _known_fill_ids(session: Session, account_id: int, venue_fill_ids: Iterable[str]) -> frozenset[str]:
    """Which of ``venue_fill_ids`` the books already hold."""
    wanted = sorted(set(venue_fill_ids))
    if not wanted:
        return frozenset()
    return frozenset(
        session.scalars(
            select(tables.Fill.fill_id).where(tables.Fill.account_id == account_id, tables.Fill.fill_id.in_(wanted))
        )
    )


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
