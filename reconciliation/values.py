"""Value types shared by the engine, the venues and the books: instruments, fills, lots, trades, orders, cash.

Every quantity and price is a ``Decimal``; every time is an aware UTC ``datetime``. Types are frozen: the
engine computes new values instead of mutating old ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from enum import StrEnum
from functools import wraps
from typing import ParamSpec, TypeVar

ZERO = Decimal(0)
DEFAULT_CATEGORY = "default"


#: Arithmetic on money runs in this context: wide enough that no sum or product of stored values
#: (38 digits, 18 after the point) is ever rounded.
WIDE = Context(prec=80, rounding=ROUND_HALF_EVEN)
P = ParamSpec("P")
R = TypeVar("R")


def exact(function: Callable[P, R]) -> Callable[P, R]:
    """Run ``function`` with ``WIDE`` as the decimal context."""

    @wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with localcontext(WIDE):
            return function(*args, **kwargs)

    return wrapper


_DECIMAL_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def parse_decimal(value: str | int | Decimal) -> Decimal:
    """An exact, finite Decimal from text like "-12.5" or "1e-8", an int or a Decimal.

    Stricter than ``Decimal()``: no spaces, underscores, NaN or infinities. Raises ValueError.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError(f"expected a decimal number, got {type(value).__name__}")
    if isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value):
        if value.strip().lower().lstrip("+-") in ("nan", "snan", "inf", "infinity"):
            raise ValueError(f"{value!r} is not a finite number")
        raise ValueError(f"{value!r} is not a decimal number")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return number


def plain(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros, never rounded: Decimal("100.50") -> "100.5"."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


class Side(StrEnum):
    """Direction of a fill or an order."""

    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        """The side that reduces what this side opens."""
        return Side.SELL if self is Side.BUY else Side.BUY

    @classmethod
    def increasing(cls, signed_qty: Decimal) -> Side:
        """The side that moves a position by ``signed_qty`` (positive: buy)."""
        return cls.BUY if signed_qty > 0 else cls.SELL


class LotSide(StrEnum):
    """Direction of an open lot."""

    LONG = "long"
    SHORT = "short"

    @property
    def sign(self) -> int:
        """+1 for long, -1 for short."""
        return 1 if self is LotSide.LONG else -1

    @classmethod
    def opened_by(cls, side: Side) -> LotSide:
        """The lot side a fill of ``side`` opens when nothing is left to reduce."""
        return cls.LONG if side is Side.BUY else cls.SHORT


class FillKind(StrEnum):
    """What produced a fill at the venue."""

    TRADE = "trade"
    LIQUIDATION = "liquidation"
    ADL = "adl"
    EXPIRY = "expiry"


class Source(StrEnum):
    """Who wrote an entry into the books."""

    BOT = "bot"
    RECONCILIATION = "reconciliation"
    BACKFILL = "backfill"
    IMPORT = "import"  # the bot's own trade history, imported with ``recon ledger import``

    @property
    def is_bots_own(self) -> bool:
        """True for what the bot itself did (recorded live or imported from its history), not the venue's doing."""
        return self in (Source.BOT, Source.IMPORT)


class PositionStatus(StrEnum):
    """Life-cycle of a lot or a position group."""

    OPEN = "OPEN"
    CLOSED = "CLOSED"
    CLOSED_EXTERNALLY = "CLOSED_EXTERNALLY"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True, order=True)
class InstrumentKey:
    """What identifies a position at a venue: category, symbol and leg (hedge-mode position index)."""

    category: str
    symbol: str
    leg: int = 0

    def __str__(self) -> str:
        return f"{self.category}:{self.symbol}:{self.leg}"


@dataclass(frozen=True)
class Fill:
    """One execution: a fill recorded by a bot, reported by the venue, or synthesised by reconciliation.

    ``estimated`` marks a price that is not a real execution price (a reconciliation close at the mark).
    ``reason`` is the exit reason given to lots this fill closes. ``multiplier`` is the instrument's contract
    multiplier (``reconciliation.contracts``), given to the lot the fill opens.
    """

    fill_id: str
    key: InstrumentKey
    side: Side
    qty: Decimal
    price: Decimal
    time: datetime
    fee: Decimal = ZERO
    order_id: str | None = None
    kind: FillKind = FillKind.TRADE
    group: str | None = None
    reason: str | None = None
    estimated: bool = False
    multiplier: Decimal = Decimal(1)

    @property
    def signed_qty(self) -> Decimal:
        """Quantity with the sign of its side (buy positive)."""
        return self.qty * self.side.sign


@dataclass(frozen=True)
class Lot:
    """One FIFO position entry; identified by the fill that opened it. ``multiplier``: the contract multiplier its
    P&L and value are reckoned with (price × quantity × multiplier)."""

    entry_fill_id: str
    key: InstrumentKey
    side: LotSide
    quantity: Decimal
    remaining: Decimal
    entry_price: Decimal
    entry_time: datetime
    commission: Decimal = ZERO
    source: Source = Source.BOT
    group: str | None = None
    multiplier: Decimal = Decimal(1)

    @property
    def signed_remaining(self) -> Decimal:
        """Open quantity with the lot's sign (short negative)."""
        return self.remaining * self.side.sign


@dataclass(frozen=True)
class Trade:
    """A completed round trip: part or all of one lot closed by one fill."""

    key: InstrumentKey
    side: LotSide
    quantity: Decimal
    entry_fill_id: str
    exit_fill_id: str
    entry_price: Decimal
    exit_price: Decimal
    entry_time: datetime
    exit_time: datetime
    gross_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
    pnl_pct: Decimal
    status: PositionStatus
    exit_reason: str | None
    exit_estimated: bool
    group: str | None = None
    multiplier: Decimal = Decimal(1)


@dataclass(frozen=True)
class Position:
    """The current position on one instrument: signed quantity and weighted average entry of its open lots."""

    key: InstrumentKey
    qty: Decimal
    avg_entry: Decimal | None
    lots: tuple[Lot, ...] = ()


@dataclass(frozen=True)
class Cash:
    """A cash balance in one currency."""

    currency: str
    balance: Decimal


class OrderStatus(StrEnum):
    """Status of an order as the books or the venue know it."""

    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    MISSING = "missing"

    @property
    def is_live(self) -> bool:
        """True while the order can still fill."""
        return self in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)


@dataclass(frozen=True)
class Order:
    """An order: pending in the books, or open at the venue."""

    client_order_id: str | None
    venue_order_id: str | None
    key: InstrumentKey
    side: Side
    qty: Decimal
    price: Decimal | None
    status: OrderStatus = OrderStatus.OPEN


@dataclass(frozen=True)
class VenuePosition:
    """A position as the venue reports it; ``qty`` is signed (short negative).

    ``currency`` is what the position is valued and settled in (``USDT`` for a Bybit USDT contract, ``USD`` at
    Alpaca); None when the venue's adapter cannot say, or the contract is not valued as quantity × price.
    ``multiplier`` is the contract multiplier the venue reports (100 for a US equity option): one unit of
    ``qty`` moves by ``multiplier`` × price. None when the venue does not say (1 unless configured otherwise).
    """

    key: InstrumentKey
    qty: Decimal
    avg_price: Decimal
    mark_price: Decimal | None = None
    currency: str | None = None
    multiplier: Decimal | None = None


@dataclass(frozen=True)
class OrderLookup:
    """What the venue says of one order the books hold as pending but the venue does not show as open.

    ``order`` is None when the venue does not know the order; ``fills`` are its executions at the venue.
    """

    order: Order | None
    fills: tuple[Fill, ...] = ()


def order_name(order: Order) -> str:
    """How an order is named across the books and the venue: its client order id, else its venue id."""
    return str(order.client_order_id or order.venue_order_id)


@dataclass(frozen=True)
class Snapshot:
    """What the venue reported in one complete fetch. There is no partial snapshot: a fetch succeeds or raises.

    ``marks`` holds last prices for instruments the account may no longer hold (an exit price estimate for a
    position that vanished); ``fills`` is the venue's recent fill history, if the venue gives one;
    ``order_lookups`` says, per order name, what became of orders the books hold as pending but the venue
    no longer shows as open.
    """

    as_of: datetime
    positions: tuple[VenuePosition, ...]
    cash: Cash | None
    open_orders: tuple[Order, ...] = ()
    fills: tuple[Fill, ...] = ()
    marks: dict[InstrumentKey, Decimal] = field(default_factory=dict)
    order_lookups: dict[str, OrderLookup] = field(default_factory=dict)

    def positions_by_key(self) -> dict[InstrumentKey, VenuePosition]:
        """Non-flat positions keyed by instrument."""
        return {p.key: p for p in self.positions if p.qty != ZERO}


@dataclass(frozen=True)
class Books:
    """The books of one account as the engine sees them.

    ``lots`` are the open lots per instrument, oldest first. ``last_fills`` is the newest fill recorded on
    each instrument (its id and time), which makes corrections deterministic and detects fills in flight.
    ``known_fill_ids`` says which of the snapshot's venue fill ids the books already hold. ``halted`` says an
    operator or an earlier run halted the account (``halted_reason`` why).
    """

    lots: dict[InstrumentKey, tuple[Lot, ...]]
    last_fills: dict[InstrumentKey, tuple[str, datetime]] = field(default_factory=dict)
    pending_orders: tuple[Order, ...] = ()
    expected_cash: Cash | None = None
    known_fill_ids: frozenset[str] = frozenset()
    halted: bool = False
    halted_reason: str | None = None

    @exact
    def signed_quantities(self) -> dict[InstrumentKey, Decimal]:
        """Signed open quantity per instrument, flat instruments left out."""
        quantities = {key: sum((lot.signed_remaining for lot in lots), ZERO) for key, lots in self.lots.items()}
        return {key: qty for key, qty in quantities.items() if qty != ZERO}
