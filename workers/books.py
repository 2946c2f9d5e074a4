"""The books client bots import: record fills, pending orders and expected cash; read positions and the halt.

    from workers.books import BooksClient
    books = BooksClient("postgresql://recon@db/recon", fleet=load_fleet(Path("fleet.toml")))
    books.record_fill("lxalgo", "live", symbol="BTCUSDT", category="linear", side="buy",
                      qty="0.5", price="50000", fill_id="exec-123", fee="0.75")

Quantities and prices are strings or ``Decimal`` (never floats: a float has already lost the exact value).
The same fill again is a no-op that says so (``FillResult.recorded`` is False).

Books are written only for accounts in the fleet file (given as ``fleet=``, else the one ``RECON_FLEET`` or
``./fleet.toml`` names). Every argument is checked before the database sees it: bot and account names follow
the one naming rule (``reconciliation.names``); symbols, categories, ids, currencies and groups fit their
columns and amounts fit NUMERIC(38, 18) (``reconciliation.limits``); the category is one the account's venue
knows, and required when it knows more than one (``workers.categories``); a fill's time lies after 1970 and
no more than ``MAX_CLOCK_SKEW`` in the future; currencies are upper-cased. Anything else raises
``FixConfiguration`` with a one-line message that names the field and shows the value shortened. A known fill
id with different contents raises ``ConflictingFill`` naming what differs.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from models import history
from models.accounts import find_account, get_or_create_account
from models.cash import set_expected_cash
from models.database import Database, open_database
from models.fills import FillResult, differences_from_recorded, record_fill
from models.orders import record_order
from models.reading import positions as book_positions
from reconciliation.errors import ConflictingFill, FixConfiguration
from reconciliation.limits import (
    MAX_CATEGORY,
    MAX_CURRENCY,
    MAX_GROUP,
    MAX_ID,
    MAX_SYMBOL,
    amount_problem,
    text_problem,
)
from reconciliation.names import check_name, shown
from reconciliation.values import (
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
from workers.categories import checked_category
from workers.fleet import AccountConfig, Fleet, fleet_of
from workers.settings import load_settings

Number = str | Decimal | int
E = TypeVar("E", bound=StrEnum)

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_CLOCK_SKEW = timedelta(seconds=60)  # a bot's clock may run this far ahead of ours; no fill is from the future
CURRENCY = re.compile(r"[A-Z0-9]{2,12}")
MAX_LEG = 2**31 - 1  # the leg column is a 32-bit INTEGER on Postgres


def to_decimal(value: Number, name: str, *, positive: bool = False, signed: bool = False) -> Decimal:
    """``value`` as an exact Decimal that fits an amount column; floats, malformed numbers and amounts out of
    range or with more than 18 places are refused with a message naming ``name``."""
    if isinstance(value, float | bool):
        raise FixConfiguration(f"{name}: pass a string or Decimal, not {type(value).__name__} ({shown(value)})")
    try:
        number = parse_decimal(value)
    except ValueError as error:
        raise FixConfiguration(f"{name}: {str(error).replace(repr(value), shown(value))}") from None
    if number.is_zero():
        number = ZERO  # 0E-50 is zero; Postgres cannot store it written so
    problem = amount_problem(number)
    if problem is not None:
        raise FixConfiguration(f"{name}: {shown(value)} is {problem}")
    if positive and number <= ZERO:
        raise FixConfiguration(f"{name}: must be positive, got {_echo(value)}")
    if not positive and not signed and number < ZERO:
        raise FixConfiguration(f"{name}: must not be negative, got {_echo(value)}")
    return number


def to_text(value: object, name: str, limit: int) -> str:
    """``value`` when it is a non-empty string of at most ``limit`` characters without control characters."""
    if not isinstance(value, str):
        raise FixConfiguration(f"{name}: expected a string, got {type(value).__name__}")
    problem = text_problem(value, limit)
    if problem is not None:
        verb = "" if problem.startswith("contains") else "is "
        raise FixConfiguration(f"{name}: {shown(value)} {verb}{problem}")
    return value


def to_leg(value: object) -> int:
    """A position leg: a whole number from 0 to ``MAX_LEG``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LEG:
        raise FixConfiguration(f"leg: must be a whole number from 0 to {MAX_LEG}, got {shown(value)}")
    return value


def _optional_text(value: object, name: str, limit: int) -> str | None:
    return None if value is None else to_text(value, name, limit)


def _echo(value: object) -> str:
    text = str(value)
    return text if len(text) <= 40 else shown(value)


def to_time(value: datetime | str | None, clock: Callable[[], datetime]) -> datetime:
    """An aware UTC time from a datetime or ISO 8601 text; None means now."""
    if value is None:
        return clock()
    if isinstance(value, str):
        text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise FixConfiguration(f"time: {shown(value)} is not an ISO 8601 time") from None
    if not isinstance(value, datetime):
        raise FixConfiguration(f"time: expected an ISO 8601 text or a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        raise FixConfiguration("time: must carry a time zone (use Z or +00:00 for UTC)")
    try:
        moment = value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset has no UTC equivalent
        moment = None
    if moment is None or not EARLIEST <= moment < LATEST:
        raise FixConfiguration(f"time: {value.isoformat()} is outside {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d}")
    return moment


def not_in_future(moment: datetime, now: datetime) -> datetime:
    """``moment`` unless it is more than ``MAX_CLOCK_SKEW`` after ``now``: a fill cannot come from the future (one
    dated so would keep its instrument's findings deferred until then)."""
    ahead = (moment - now).total_seconds()
    if ahead > MAX_CLOCK_SKEW.total_seconds():
        raise FixConfiguration(
            f"time: {moment.isoformat()} is {ahead:.0f} s in the future (at most "
            f"{MAX_CLOCK_SKEW.total_seconds():.0f} s of clock skew is allowed); check the clock and time zone"
        )
    return moment


def to_currency(value: object) -> str:
    """A currency code, upper-cased: 2 to 12 letters or digits (``usdt`` is ``USDT``)."""
    text = to_text(value, "currency", MAX_CURRENCY).strip().upper()
    if not CURRENCY.fullmatch(text):
        raise FixConfiguration(f"currency: {shown(value)} is not a currency code (2 to 12 letters or digits)")
    return text


def _choice(choices: type[E], value: object, name: str) -> E:
    """The member of ``choices`` whose value is ``value``; the message lists them (built only on error: this runs
    for every fill of an import)."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return choices(value)
    raise FixConfiguration(f"{name}: {shown(value)} is not one of {', '.join(choices)}")


def _names(bot: str, account: str) -> tuple[str, str]:
    return check_name(bot, "bot"), check_name(account, "account")


def _key(category: str, symbol: object, leg: object) -> InstrumentKey:
    return InstrumentKey(
        to_text(category, "category", MAX_CATEGORY), to_text(symbol, "symbol", MAX_SYMBOL), to_leg(leg)
    )


def checked_fill(
    category_of: Callable[[str | None], str],
    now: datetime,
    *,
    symbol: object,
    side: object,
    qty: object,
    price: object,
    fill_id: object,
    fee: object = None,
    time: object = None,
    category: object = None,
    leg: object = 0,
    group: object = None,
    order_id: object = None,
    kind: str = "trade",
    reason: str | None = None,
) -> Fill:
    """A fill from a bot's (or a history file's) values, each checked as the books require; ``category_of`` turns
    the category given into the one the account's venue knows (``workers.categories.checked_category``). The fee
    defaults to 0 and the time to ``now``; a time more than ``MAX_CLOCK_SKEW`` after ``now`` is refused. Raises
    ``FixConfiguration`` naming the first field that is wrong."""
    if not fill_id:
        raise FixConfiguration("fill_id: required (the venue's execution id)")
    return Fill(
        fill_id=to_text(fill_id, "fill_id", MAX_ID),
        key=_key(category_of(_optional_text(category, "category", MAX_CATEGORY)), symbol, leg),
        side=_choice(Side, side, "side"),
        qty=to_decimal(_number(qty, "qty"), "qty", positive=True),
        price=to_decimal(_number(price, "price"), "price"),
        fee=to_decimal("0" if fee is None else _number(fee, "fee"), "fee", signed=True),
        time=not_in_future(to_time(_moment(time), lambda: now), now),
        order_id=_optional_text(order_id, "order_id", MAX_ID),
        kind=_choice(FillKind, kind, "kind"),
        group=_optional_text(group, "group", MAX_GROUP),
        reason=reason,
    )


def _number(value: object, name: str) -> Number:
    if isinstance(value, str | Decimal | int):
        return value
    if isinstance(value, float):
        raise FixConfiguration(f"{name}: pass a string or Decimal, not float ({shown(value)})")
    raise FixConfiguration(f"{name}: expected a decimal number, got {type(value).__name__}")


def _moment(value: object) -> datetime | str | None:
    if value is None or isinstance(value, datetime | str):
        return value
    raise FixConfiguration(f"time: expected an ISO 8601 text or a datetime, got {type(value).__name__}")


class BooksClient:
    """Writes and reads one database's books; every call is its own transaction."""

    def __init__(
        self,
        database: Database | str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        fleet: Fleet | None = None,
    ) -> None:
        self.database = open_database(database) if isinstance(database, str) else database
        self.clock = clock
        self._fleet = fleet

    def account_config(self, bot: str, account: str) -> AccountConfig:
        """The fleet file's configuration of ``bot/account``: books are written only for accounts in it."""
        bot, account = _names(bot, account)
        fleet = self._fleet or fleet_of(load_settings())
        if fleet is None:
            raise FixConfiguration(
                "no fleet file: books are written only for accounts in the fleet file (pass fleet= or set RECON_FLEET)"
            )
        return fleet.account(bot, account)

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
        fee: Number | None = None,
        time: datetime | str | None = None,
        category: str | None = None,
        leg: int = 0,
        group: str | None = None,
        order_id: str | None = None,
        kind: str = "trade",
        reason: str | None = None,
    ) -> FillResult:
        """Record a fill and apply it FIFO. The same fill id again changes nothing (``recorded`` is False); with
        other contents it is ``ConflictingFill`` (the fee and time count only when given: they default to 0 and
        now). The category may be left out when the account's venue knows only one."""
        config = self.account_config(bot, account)
        now = self.clock()
        fill = checked_fill(
            lambda given: checked_category(config, given), now, symbol=symbol, side=side, qty=qty, price=price,
            fill_id=fill_id, fee=fee, time=time, category=category, leg=leg, group=group, order_id=order_id,
            kind=kind, reason=reason,
        )  # fmt: skip
        fill = replace(fill, multiplier=config.rules.multipliers.of(fill.key))
        with self.database.transaction() as session:
            account_id = get_or_create_account(session, config.bot, config.account, now, config.venue).id
            result = record_fill(session, account_id, fill, now)
            if not result.recorded:
                differences = differences_from_recorded(
                    session, account_id, fill, with_fee=fee is not None, with_time=time is not None
                )
                if differences:
                    raise ConflictingFill(
                        f"fill_id {shown(fill.fill_id)} is already recorded for {config.label} with other contents: "
                        + "; ".join(differences)
                    )
            return result

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
        category: str | None = None,
        leg: int = 0,
    ) -> bool:
        """Record a pending order, or update status and venue id of a known client order id; True if new."""
        config = self.account_config(bot, account)
        order = Order(
            client_order_id=to_text(client_order_id, "client_order_id", MAX_ID),
            venue_order_id=_optional_text(venue_order_id, "venue_order_id", MAX_ID),
            key=_key(checked_category(config, category), symbol, leg),
            side=_choice(Side, side, "side"),
            qty=to_decimal(qty, "qty", positive=True),
            price=to_decimal(price, "price") if price is not None else None,
            status=_choice(OrderStatus, status, "status"),
        )
        with self.database.transaction() as session:
            account_id = get_or_create_account(session, config.bot, config.account, self.clock(), config.venue).id
            return record_order(session, account_id, order, self.clock())

    def set_expected_cash(self, bot: str, account: str, balance: Number, currency: str = "USD") -> Cash | None:
        """Set the cash the bot expects at the venue (currency upper-cased); returns the previous expectation."""
        config = self.account_config(bot, account)
        cash = Cash(to_currency(currency), to_decimal(balance, "balance", signed=True))
        with self.database.transaction() as session:
            account_id = get_or_create_account(session, config.bot, config.account, self.clock(), config.venue).id
            return set_expected_cash(session, account_id, cash, self.clock())

    def positions(self, bot: str, account: str) -> list[Position]:
        """Open positions with their lots."""
        bot, account = _names(bot, account)
        with self.database.reading() as session:
            return book_positions(session, find_account(session, bot, account).id)

    def is_halted(self, bot: str, account: str) -> bool:
        """True when reconciliation or an operator halted the account: the bot must not open new risk."""
        bot, account = _names(bot, account)
        with self.database.reading() as session:
            return find_account(session, bot, account).halted

    def set_halted(self, bot: str, account: str, halted: bool, reason: str | None) -> bool:
        """Halt (with a reason) or resume an account by hand, with an alert; True when it already was so."""
        bot, account = _names(bot, account)
        with self.database.transaction() as session:
            return history.set_halted(session, find_account(session, bot, account).id, halted, reason, self.clock())

    def breaks(self, bot: str, account: str) -> list[str]:
        """Subjects of the account's open breaks."""
        bot, account = _names(bot, account)
        with self.database.reading() as session:
            return [b.subject for b in history.open_breaks(session, find_account(session, bot, account).id)]
