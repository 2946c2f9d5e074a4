"""The books through the ledger API: FIFO on a real database, idempotent fills, orders, cash, groups."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select

from models import Fill, Lot, PositionGroup, Trade
from models.accounts import get_or_create_account
from models.cash import set_expected_cash
from models.database import Database
from models.fills import record_fill, write_fills
from models.lots import load_open_lots
from models.orders import record_order
from models.reading import completed_trades, load_books
from models.reading import positions as book_positions
from reconciliation.values import Cash, FillKind, InstrumentKey, Order, OrderStatus, Side, Source
from reconciliation.values import Fill as FillValue

BTC = InstrumentKey("linear", "BTCUSDT")
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def account_id(database: Database) -> int:
    """An account with empty books."""
    with database.sessions.begin() as session:
        return get_or_create_account(session, "lxalgo", "paper", T0, "sim").id


def record(database: Database, account_id: int, fill_id: str, side: str, qty: str, price: str, **extra: object):
    fill = FillValue(fill_id, extra.pop("key", BTC), Side(side), Decimal(qty), Decimal(price), T0, **extra)  # type: ignore[arg-type]
    with database.sessions.begin() as session:
        return record_fill(session, account_id, fill, T0)


def test_scale_in_then_partial_close_books_fifo_pnl(database: Database, account_id: int) -> None:
    record(database, account_id, "f1", "buy", "100", "50000")
    scaled = record(database, account_id, "f2", "buy", "50", "51000")
    assert round(scaled.after.avg_entry, 2) == Decimal("50333.33")

    closed = record(database, account_id, "f3", "sell", "120", "53000")

    assert sum(t.gross_pnl for t in closed.trades) == Decimal(340000)
    with database.sessions() as session:
        [position] = book_positions(session, account_id)
        trades = completed_trades(session, account_id)
    assert position.qty == Decimal(30)
    assert [(lot.remaining, lot.entry_price) for lot in position.lots] == [(Decimal(30), Decimal(51000))]
    assert [(t.quantity, t.gross_pnl, t.status) for t in trades] == [
        (Decimal(100), Decimal(300000), "CLOSED"),
        (Decimal(20), Decimal(40000), "CLOSED"),
    ]


def test_recording_the_same_fill_id_again_changes_nothing_and_says_so(database: Database, account_id: int) -> None:
    first = record(database, account_id, "exec-1", "buy", "2", "100")
    again = record(database, account_id, "exec-1", "buy", "2", "100")

    assert first.recorded and not again.recorded
    assert again.after.qty == Decimal(2)
    with database.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Fill)) == 1
        assert session.scalar(select(func.count()).select_from(Lot)) == 1


def test_a_buy_closes_shorts_fifo_and_crossing_zero_opens_the_rest_long(database: Database, account_id: int) -> None:
    record(database, account_id, "s1", "sell", "10", "200")
    record(database, account_id, "s2", "sell", "5", "210")

    crossed = record(database, account_id, "b1", "buy", "20", "190")

    assert [(t.quantity, t.gross_pnl) for t in crossed.trades] == [(10, Decimal(100)), (5, Decimal(100))]
    assert crossed.before.qty == Decimal(-15)
    assert crossed.after.qty == Decimal(5)
    assert crossed.after.avg_entry == Decimal(190)


def test_fees_are_shared_exactly_between_trades(database: Database, account_id: int) -> None:
    record(database, account_id, "e1", "buy", "3", "100", fee=Decimal("1.00"))
    record(database, account_id, "x1", "sell", "1", "110", fee=Decimal("0.10"))
    record(database, account_id, "x2", "sell", "2", "120", fee=Decimal("0.20"))

    with database.sessions() as session:
        trades = completed_trades(session, account_id)
    assert sum(t.fees for t in trades) == Decimal("1.30")
    assert sum(t.net_pnl for t in trades) == Decimal(10 + 40) - Decimal("1.30")


def test_lots_closed_by_the_bot_are_closed_and_the_position_view_is_flat(database: Database, account_id: int) -> None:
    record(database, account_id, "o1", "buy", "1", "100")
    record(database, account_id, "c1", "sell", "1", "105", reason="take_profit")

    with database.sessions() as session:
        lot = session.scalars(select(Lot)).one()
        assert book_positions(session, account_id) == []
    assert (lot.status, lot.exit_reason, lot.remaining) == ("CLOSED", "take_profit", 0)


def test_a_spread_books_its_net_entry_credit_and_closes_when_every_leg_is_closed(
    database: Database, account_id: int
) -> None:
    short_put = InstrumentKey("us_option", "SPY261218P00580000")
    long_put = InstrumentKey("us_option", "SPY261218P00570000")
    spread = "SPY-pcs"
    record(database, account_id, "l1", "sell", "2", "6.40", key=short_put, group=spread)
    record(database, account_id, "l2", "buy", "2", "4.10", key=long_put, group=spread)

    with database.sessions() as session:
        group = session.scalars(select(PositionGroup)).one()
    assert (group.status, group.net_entry_credit) == ("OPEN", Decimal("4.60"))

    record(database, account_id, "c1", "buy", "2", "1.00", key=short_put, group=spread)
    with database.sessions() as session:
        assert session.scalars(select(PositionGroup.status)).one() == "OPEN"
    record(database, account_id, "c2", "sell", "2", "0.50", key=long_put, group=spread)
    with database.sessions() as session:
        assert session.scalars(select(PositionGroup.status)).one() == "CLOSED"


def test_an_expiry_fill_expires_the_lot(database: Database, account_id: int) -> None:
    option = InstrumentKey("us_option", "AAPL261218C00250000")
    record(database, account_id, "o1", "buy", "1", "2.5", key=option)
    record(database, account_id, "exp", "sell", "1", "0", key=option, kind=FillKind.EXPIRY)

    with database.sessions() as session:
        trade = session.scalars(select(Trade)).one()
    assert (trade.status, trade.exit_reason, trade.net_pnl) == ("EXPIRED", "expired", Decimal("-2.5"))


def test_orders_are_recorded_once_per_client_order_id_and_updated(database: Database, account_id: int) -> None:
    order = Order("bot-1", None, BTC, Side.BUY, Decimal("0.5"), Decimal(50000), OrderStatus.OPEN)
    with database.sessions.begin() as session:
        assert record_order(session, account_id, order, T0)
    filled = Order("bot-1", "venue-9", BTC, Side.BUY, Decimal("0.5"), Decimal(50000), OrderStatus.FILLED)
    with database.sessions.begin() as session:
        assert not record_order(session, account_id, filled, T0)

    with database.sessions() as session:
        books, _ = load_books(session, account_id)
    assert books.pending_orders == ()  # filled orders are no longer pending


def test_expected_cash_is_replaced_and_the_previous_value_returned(database: Database, account_id: int) -> None:
    with database.sessions.begin() as session:
        assert set_expected_cash(session, account_id, Cash("USDT", Decimal(1000)), T0) is None
    with database.sessions.begin() as session:
        previous = set_expected_cash(session, account_id, Cash("USDT", Decimal("999.5")), T0)

    assert previous == Cash("USDT", Decimal(1000))
    with database.sessions() as session:
        books, _ = load_books(session, account_id)
    assert books.expected_cash == Cash("USDT", Decimal("999.5"))


def test_loading_books_takes_the_same_number_of_statements_for_ten_or_two_hundred_instruments(
    database: Database, account_id: int
) -> None:
    def statements_to_load() -> int:
        count = 0

        def count_statement(*_: object) -> None:
            nonlocal count
            count += 1

        event.listen(database.engine, "before_cursor_execute", count_statement)
        with database.sessions() as session:
            load_books(session, account_id, ["a", "b"])
        event.remove(database.engine, "before_cursor_execute", count_statement)
        return count

    fills = [
        (
            FillValue(f"f{i}", InstrumentKey("linear", f"SYM{i}"), Side.BUY, Decimal(1), Decimal(10), T0),
            Source.BOT,
        )
        for i in range(200)
    ]
    with database.sessions.begin() as session:
        write_fills(session, account_id, fills[:10], load_open_lots(session, account_id), T0)
    few = statements_to_load()
    with database.sessions.begin() as session:
        write_fills(session, account_id, fills[10:], load_open_lots(session, account_id), T0)
    many = statements_to_load()

    assert few == many
