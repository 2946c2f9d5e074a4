"""Small builders for the engine tests: fills, books, venue positions, snapshots and rules, in trader terms.

Quantities and prices are written as strings and turned into ``Decimal``; times are minutes after ``T0`` (UTC).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from reconciliation.effects import BookFill
from reconciliation.fifo import replay
from reconciliation.findings import PositionDiscrepancy, Thresholds
from reconciliation.plan import Decision, Plan
from reconciliation.policy import Policy, Rules, Strategy
from reconciliation.values import (
    Books,
    Cash,
    Fill,
    FillKind,
    InstrumentKey,
    Order,
    OrderStatus,
    Side,
    Snapshot,
    Source,
    Trade,
    VenuePosition,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

BTC = InstrumentKey("linear", "BTCUSDT")
ETH = InstrumentKey("linear", "ETHUSDT")
AAPL = InstrumentKey("us_equity", "AAPL")
MSFT = InstrumentKey("us_equity", "MSFT")
GOOGL = InstrumentKey("us_equity", "GOOGL")


def d(value: str | int) -> Decimal:
    """An exact decimal from text (never from a float)."""
    return Decimal(value)


def at(minutes: float) -> datetime:
    """``minutes`` after T0, UTC."""
    return T0 + timedelta(minutes=minutes)


def fill(
    fill_id: str,
    side: Side,
    qty: str,
    price: str,
    *,
    key: InstrumentKey = BTC,
    minutes: float = 0,
    fee: str = "0",
    kind: FillKind = FillKind.TRADE,
    group: str | None = None,
    reason: str | None = None,
    estimated: bool = False,
    order_id: str | None = None,
) -> Fill:
    """One execution."""
    return Fill(
        fill_id=fill_id,
        key=key,
        side=side,
        qty=d(qty),
        price=d(price),
        time=at(minutes),
        fee=d(fee),
        order_id=order_id,
        kind=kind,
        group=group,
        reason=reason,
        estimated=estimated,
    )


def buy(fill_id: str, qty: str, price: str, **options: Any) -> Fill:
    """A buy fill."""
    return fill(fill_id, Side.BUY, qty, price, **options)


def sell(fill_id: str, qty: str, price: str, **options: Any) -> Fill:
    """A sell fill."""
    return fill(fill_id, Side.SELL, qty, price, **options)


def books_from(
    *fills: Fill,
    pending_orders: Iterable[Order] = (),
    expected_cash: Cash | None = None,
    known_fill_ids: Iterable[str] | None = None,
) -> Books:
    """The books a bot would hold after recording ``fills`` itself, in order.

    ``last_fills`` is the newest recorded fill per instrument; the bot's own fill ids are known by default.
    """
    result = replay({}, ((f, Source.BOT) for f in fills))
    last: dict[InstrumentKey, tuple[str, datetime]] = {}
    for f in fills:
        if f.key not in last or f.time >= last[f.key][1]:
            last[f.key] = (f.fill_id, f.time)
    known = frozenset(f.fill_id for f in fills) if known_fill_ids is None else frozenset(known_fill_ids)
    return Books(
        lots=result.lots,
        last_fills=last,
        pending_orders=tuple(pending_orders),
        expected_cash=expected_cash,
        known_fill_ids=known,
    )


def held(qty: str, avg: str, *, key: InstrumentKey = BTC, mark: str | None = None) -> VenuePosition:
    """A position the venue reports (signed quantity: short negative)."""
    return VenuePosition(key=key, qty=d(qty), avg_price=d(avg), mark_price=d(mark) if mark is not None else None)


def snapshot(
    *positions: VenuePosition,
    minutes: float = 60,
    cash: Cash | None = None,
    open_orders: Iterable[Order] = (),
    fills: Iterable[Fill] = (),
    marks: Mapping[InstrumentKey, str] | None = None,
) -> Snapshot:
    """What the venue reported, as of ``minutes`` after T0 (an hour by default: after every test fill)."""
    return Snapshot(
        as_of=at(minutes),
        positions=tuple(positions),
        cash=cash,
        open_orders=tuple(open_orders),
        fills=tuple(fills),
        marks={key: d(price) for key, price in (marks or {}).items()},
    )


def order(
    client_order_id: str | None,
    venue_order_id: str | None,
    *,
    key: InstrumentKey = BTC,
    side: Side = Side.BUY,
    qty: str = "1",
    price: str | None = "50000",
    status: OrderStatus = OrderStatus.OPEN,
) -> Order:
    """An order, pending in the books or open at the venue."""
    return Order(
        client_order_id=client_order_id,
        venue_order_id=venue_order_id,
        key=key,
        side=side,
        qty=d(qty),
        price=d(price) if price is not None else None,
        status=status,
    )


def usd(balance: str, currency: str = "USD") -> Cash:
    """A cash balance."""
    return Cash(currency, d(balance))


def rules_all(strategy: Strategy, *, grace_seconds: int = 0) -> Rules:
    """Rules that resolve every severity with ``strategy``, with default thresholds and tolerance."""
    return Rules(policy=Policy(minor=strategy, moderate=strategy, critical=strategy), grace_seconds=grace_seconds)


SYNC_ALL = rules_all(Strategy.SYNC_TO_BROKER)
LOCAL_ALL = rules_all(Strategy.SYNC_TO_LOCAL)
DEFAULT_THRESHOLDS = Thresholds()
LATER = at(24 * 60)
"""A 'now' a day after T0: every test fill is long out of any grace window."""


def book_fills(plan: Plan) -> list[BookFill]:
    """The BookFill effects of a plan, in order."""
    return [e for e in plan.effects() if isinstance(e, BookFill)]


def applied(books: Books, plan: Plan) -> Books:
    """The books after ``plan``'s fills are recorded as reconciliation, as the ledger writes them.

    Like the ledger's unique fill id per account, a fill id the books already hold (or that the plan
    repeats) is recorded once only.
    """
    seen = set(books.known_fill_ids)
    fills = []
    for f, source in plan.book_fills():
        if f.fill_id not in seen:
            seen.add(f.fill_id)
            fills.append((f, source))
    result = replay(books.lots, fills)
    last = dict(books.last_fills)
    for f, _ in fills:
        if f.key not in last or f.time >= last[f.key][1]:
            last[f.key] = (f.fill_id, f.time)
    return Books(
        lots=result.lots,
        last_fills=last,
        pending_orders=books.pending_orders,
        expected_cash=books.expected_cash,
        known_fill_ids=books.known_fill_ids | {f.fill_id for f, _ in fills},
    )


def trades_after(books: Books, plan: Plan) -> tuple[Trade, ...]:
    """The trades recording ``plan``'s fills completes."""
    return replay(books.lots, plan.book_fills()).trades


def by_instrument(plan: Plan) -> dict[InstrumentKey, Decision]:
    """The plan's position decisions keyed by instrument."""
    return {dec.finding.key: dec for dec in plan.decisions if isinstance(dec.finding, PositionDiscrepancy)}
