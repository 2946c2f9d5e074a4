"""The books client bots import: record fills, pending orders and expected cash; read positions and the halt.

    from workers.books import BooksClient
    books = BooksClient("postgresql://recon@db/recon")
    books.record_fill("lxalgo", "live", symbol="BTCUSDT", category="linear", side="buy",
                      qty="0.5", price="50000", fill_id="exec-123", fee="0.75")

Quantities and prices are strings or ``Decimal`` (never floats: a float has already lost the exact value).
A fill id already in the books is a no-op that says so (``FillResult.recorded`` is False).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from models import history, ledger
from models.database import Database, open_database
from reconciliation.errors import FixConfiguration
from reconciliation.values import (
    DEFAULT_CATEGORY,
    ZERO,
    Cash,
    Fill,
    FillKind,
    InstrumentKey,
    Order,
    OrderStatus,
    Position,
    Side,
    parse_decimal,
)

Number = str | Decimal | int
T = TypeVar("T")


def to_decimal(value: Number, name: str, *, positive: bool = False, signed: bool = False) -> Decimal:
    """``value`` as an exact Decimal; floats and malformed numbers are refused with a message naming ``name``."""
    if isinstance(value, float | bool):
        raise FixConfiguration(f"{name}: pass a string or Decimal, not {type(value).__name__} ({value!r})")
    try:
        number = parse_decimal(value)
    except ValueError as error:
        raise FixConfiguration(f"{name}: {error}") from None
    if positive and number <= ZERO:
        raise FixConfiguration(f"{name}: must be positive, got {value}")
    if not positive and not signed and number < ZERO:
        raise FixConfiguration(f"{name}: must not be negative, got {value}")
    return number


def to_time(value: datetime | str | None, clock: Callable[[], datetime]) -> datetime:
    """An aware UTC time from a datetime or ISO 8601 text; None means now."""
    if value is None:
        return clock()
    if isinstance(value, str):
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise FixConfiguration(f"time: {value!r} is not an ISO 8601 time") from None
    if not isinstance(value, datetime):
        raise FixConfiguration(f"time: expected an ISO 8601 text or a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        raise FixConfiguration("time: must carry a time zone (use Z or +00:00 for UTC)")
    return value.astimezone(UTC)


def _choice(parse: Callable[[str], T], value: str, name: str, allowed: str) -> T:
    try:
        return parse(value)
    except ValueError:
        raise FixConfiguration(f"{name}: {value!r} is not one of {allowed}") from None


class BooksClient:
    """Writes and reads one database's books; every call is its own transaction."""

    def __init__(self, database: Database | str, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.database = open_database(database) if isinstance(database, str) else database
        self.clock = clock

    def record_fill(
        self,
        bot: str,
        account: str,
        *,
        symbol: str,
        side: str,
        qty: Number,
        price: Number,
        fill_id: str,
        fee: Number = "0",
        time: datetime | str | None = None,
        category: str = DEFAULT_CATEGORY,
        leg: int = 0,
        group: str | None = None,
        order_id: str | None = None,
        kind: str = "trade",
        reason: str | None = None,
    ) -> ledger.FillResult:
        """Record a fill and apply it FIFO; a fill id already recorded changes nothing."""
        if not fill_id:
            raise FixConfiguration("fill_id: required (the venue's execution id)")
        fill = Fill(
            fill_id=fill_id,
            key=InstrumentKey(category, symbol, leg),
            side=_choice(Side, side, "side", "buy, sell"),
            qty=to_decimal(qty, "qty", positive=True),
            price=to_decimal(price, "price"),
            fee=to_decimal(fee, "fee", signed=True),
            time=to_time(time, self.clock),
            order_id=order_id,
            kind=_choice(FillKind, kind, "kind", ", ".join(FillKind)),
            group=group,
            reason=reason,
        )
        with self.database.sessions.begin() as session:
            account_id = ledger.get_or_create_account(session, bot, account, self.clock()).id
            return ledger.record_fill(session, account_id, fill, self.clock())

    def record_order(
        self,
        bot: str,
        account: str,
        *,
        client_order_id: str,
        symbol: str,
        side: str,
        qty: Number,
        price: Number | None = None,
        status: str = "open",
        venue_order_id: str | None = None,
        category: str = DEFAULT_CATEGORY,
        leg: int = 0,
    ) -> bool:
        """Record a pending order, or update status and venue id of a known client order id; True if new."""
        order = Order(
            client_order_id=client_order_id,
            venue_order_id=venue_order_id,
            key=InstrumentKey(category, symbol, leg),
            side=_choice(Side, side, "side", "buy, sell"),
            qty=to_decimal(qty, "qty", positive=True),
            price=to_decimal(price, "price") if price is not None else None,
            status=_choice(OrderStatus, status, "status", ", ".join(OrderStatus)),
        )
        with self.database.sessions.begin() as session:
            account_id = ledger.get_or_create_account(session, bot, account, self.clock()).id
            return ledger.record_order(session, account_id, order, self.clock())

    def set_expected_cash(self, bot: str, account: str, balance: Number, currency: str = "USD") -> Cash | None:
        """Set the cash the bot expects at the venue; returns the previous expectation."""
        cash = Cash(currency, to_decimal(balance, "balance", signed=True))
        with self.database.sessions.begin() as session:
            account_id = ledger.get_or_create_account(session, bot, account, self.clock()).id
            return ledger.set_expected_cash(session, account_id, cash, self.clock())

    def positions(self, bot: str, account: str) -> list[Position]:
        """Open positions with their lots."""
        with self.database.sessions() as session:
            return ledger.positions(session, ledger.find_account(session, bot, account).id)

    def is_halted(self, bot: str, account: str) -> bool:
        """True when reconciliation or an operator halted the account: the bot must not open new risk."""
        with self.database.sessions() as session:
            return ledger.find_account(session, bot, account).halted

    def breaks(self, bot: str, account: str) -> list[str]:
        """Subjects of the account's open breaks."""
        with self.database.sessions() as session:
            return [b.subject for b in history.open_breaks(session, ledger.find_account(session, bot, account).id)]
