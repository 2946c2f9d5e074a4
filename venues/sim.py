"""The simulated venue: a JSON state file read whole on every fetch.

    {"positions":   [{"symbol", "category"?, "leg"?, "side": "long|short", "qty", "avg_price", "mark_price"?,
                      "currency"?, "multiplier"?}],
     "cash":        {"currency", "balance"} | null,
     "open_orders": [{"order_id", "client_order_id"?, "symbol", "category"?, "leg"?, "side": "buy|sell",
                      "qty", "price"?, "status"?}],
     "fills":       [{"fill_id", "order_id"?, "symbol", "category"?, "leg"?, "side", "qty", "price", "fee"?,
                      "time", "kind"?: "trade|liquidation|adl|expiry"}],
     "marks":       [{"symbol", "category"?, "leg"?, "price"}]}

A position's ``currency`` (what it is valued in) defaults to the cash's currency, or none without cash.
Numbers may be JSON strings or numbers; either way they are read as exact decimals. Anything malformed
fails the whole fetch with a message naming the file and the field. Operators rehearse incidents with this
file, so it meets the rules a real venue's answers meet: amounts and names fit the books' columns, prices are
positive (a mark of 0 is no mark), times lie between 2000 and 2100, and no instrument or order id is listed twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from reconciliation.errors import FixConfiguration, InvalidResponse, RequestRejected
from reconciliation.limits import MAX_CATEGORY, MAX_CURRENCY, MAX_ID, MAX_SYMBOL, text_problem
from reconciliation.values import (
    DEFAULT_CATEGORY,
    ZERO,
    Cash,
    Fill,
    FillKind,
    InstrumentKey,
    LotSide,
    Order,
    OrderLookup,
    OrderStatus,
    Side,
    Snapshot,
    VenuePosition,
)
from venues import parsing

T = TypeVar("T")
MAX_LEG = 2**31 - 1  # the books' leg column is a 32-bit integer
MAX_WORD = 64  # a side, status, kind or time
TOP_LEVEL = frozenset({"positions", "cash", "open_orders", "fills", "marks"})
_KEY_FIELDS = {"symbol", "category", "leg"}
FIELDS = {
    "positions": _KEY_FIELDS | {"side", "qty", "avg_price", "mark_price", "currency", "multiplier"},
    "cash": {"currency", "balance"},
    "open_orders": _KEY_FIELDS | {"order_id", "client_order_id", "side", "qty", "price", "status"},
    "fills": _KEY_FIELDS | {"fill_id", "order_id", "side", "qty", "price", "fee", "time", "kind"},
    "marks": _KEY_FIELDS | {"price"},
}


class SimVenue:
    """A venue whose state is a JSON file."""

    name = "sim"

    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file

    def describe(self) -> str:
        """The state file it reads."""
        return f"sim venue reading {self.state_file}"

    def lookup_order(self, order: Order) -> OrderLookup:
        """A sim order that is not open is filled when the state file has fills of it, else unknown."""
        snapshot = self.fetch_snapshot(datetime.now(UTC))
        ids = {order.venue_order_id, order.client_order_id} - {None}
        fills = tuple(f for f in snapshot.fills if f.order_id in ids)
        if not fills:
            return OrderLookup(None)
        return OrderLookup(replace(order, status=OrderStatus.FILLED), fills)

    def fills_between(self, start: datetime, end: datetime) -> tuple[Fill, ...]:
        """The state file's fills from ``start`` to ``end``, oldest first."""
        fills = self.fetch_snapshot(end).fills
        return tuple(sorted((f for f in fills if start <= f.time <= end), key=lambda f: (f.time, f.fill_id)))

    def place_order(self, key: InstrumentKey, side: Side, qty: Decimal, reduce_only: bool, client_order_id: str) -> str:
        """The sim venue takes no orders: ``sync_to_local`` needs a real venue."""
        raise RequestRejected("the sim venue takes no orders; sync_to_local needs bybit or alpaca")

    def cancel_order(self, order: Order) -> None:
        """The sim venue takes no orders, so it cancels none either."""
        raise RequestRejected("the sim venue takes no orders; sync_to_local needs bybit or alpaca")

    def fetch_snapshot(self, now: datetime) -> Snapshot:
        """Read the state file whole; a missing or malformed file raises and nothing is returned."""
        try:
            text = self.state_file.read_text(encoding="utf-8")
        except OSError as error:
            raise FixConfiguration(f"sim state file {self.state_file}: {error.strerror}") from error
        except UnicodeDecodeError as error:
            raise InvalidResponse(f"sim state file {self.state_file}: not UTF-8 text ({error.reason})") from error
        try:
            document = json.loads(text, parse_float=Decimal)
        except (ValueError, ArithmeticError, RecursionError) as error:  # also: a 5000-digit integer, 1e999999999999
            raise InvalidResponse(f"sim state file {self.state_file}: not JSON: {error}") from error
        try:
            return parse_state(document, now)
        except _Malformed as error:
            raise InvalidResponse(f"sim state file {self.state_file}: {error}") from None


class _Malformed(Exception):
    """A problem in the state file, its message starting with the JSON path of the field."""


def parse_state(document: Any, now: datetime) -> Snapshot:
    """Turn a parsed state document into a snapshot as of ``now``."""
    state = _object(document, "the document")
    unknown = sorted(set(state) - TOP_LEVEL)
    if unknown:
        raise _Malformed(f"unknown key {unknown[0]!r} (expected {', '.join(sorted(TOP_LEVEL))})")
    positions = _each(state, "positions", _position)
    _refuse_duplicates([p.key for p in positions], "positions", "")
    cash = _cash(state["cash"], "cash") if state.get("cash") is not None else None
    if cash is not None:  # a position valued in nothing else is valued in the account's currency
        positions = [p if p.currency else replace(p, currency=cash.currency) for p in positions]
    marks = [(_key(m, path), _optional_price(m, "price", path, required=True)) for m, path in _items(state, "marks")]
    _refuse_duplicates([key for key, _ in marks], "marks", "")
    orders = _each(state, "open_orders", _order)
    _refuse_duplicates([o.venue_order_id for o in orders], "open_orders", "order id ")
    return Snapshot(
        as_of=now,
        positions=tuple(positions),
        cash=cash,
        open_orders=tuple(orders),
        fills=tuple(_each(state, "fills", _fill)),
        marks={key: price for key, price in marks if price is not None},
    )


def _refuse_duplicates(keys: list[Any], name: str, what: str) -> None:
    seen: set[Any] = set()
    for index, key in enumerate(keys):
        if key in seen:
            raise _Malformed(f"{name}[{index}]: a second entry for {what}{key}")
        seen.add(key)


def _items(state: dict[str, Any], name: str) -> list[tuple[dict[str, Any], str]]:
    value = state.get(name, [])
    if not isinstance(value, list):
        raise _Malformed(f"{name}: expected a list")
    return [(_entry(item, f"{name}[{i}]", name), f"{name}[{i}]") for i, item in enumerate(value)]


def _entry(value: Any, path: str, kind: str) -> dict[str, Any]:
    item = _object(value, path)
    unknown = sorted(set(item) - FIELDS[kind])
    if unknown:
        raise _Malformed(f"{path}: unknown key {unknown[0]!r} (expected {', '.join(sorted(FIELDS[kind]))})")
    return item


def _each(state: dict[str, Any], name: str, parse: Callable[[dict[str, Any], str], T]) -> list[T]:
    return [parse(item, path) for item, path in _items(state, name)]


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Malformed(f"{path}: expected an object")
    return value


def _required(item: dict[str, Any], field: str, path: str) -> Any:
    if item.get(field) is None:
        raise _Malformed(f"{path}.{field}: missing")
    return item[field]


def _text(item: dict[str, Any], field: str, path: str, limit: int) -> str:
    value = _required(item, field, path)
    if not isinstance(value, str) or not value:
        raise _Malformed(f"{path}.{field}: expected a non-empty string")
    problem = text_problem(value, limit)
    if problem is not None:
        raise _Malformed(f"{path}.{field}: {parsing.shown(value)} is {problem}")
    return value


def _optional_text(item: dict[str, Any], field: str, path: str, limit: int) -> str | None:
    return _text(item, field, path, limit) if item.get(field) is not None else None


def _decimal(item: dict[str, Any], field: str, path: str) -> Decimal:
    value = _required(item, field, path)
    try:
        return parsing.amount(value)
    except ValueError as error:
        raise _Malformed(f"{path}.{field}: {error}") from None


def _positive(item: dict[str, Any], field: str, path: str) -> Decimal:
    number = _decimal(item, field, path)
    if number <= ZERO:
        raise _Malformed(f"{path}.{field}: must be positive, got {parsing.shown(item[field])}")
    return number


def _optional_price(item: dict[str, Any], field: str, path: str, required: bool = False) -> Decimal | None:
    """A price that may be absent (unless ``required``) or 0, both meaning none; a negative one is refused."""
    if item.get(field) is None and not required:
        return None
    number = _decimal(item, field, path)
    if number < ZERO:
        raise _Malformed(f"{path}.{field}: a price cannot be negative, got {parsing.shown(item[field])}")
    return number if number > ZERO else None


def _choice(item: dict[str, Any], field: str, path: str, parse: Callable[[str], T], default: T | None = None) -> T:
    if item.get(field) is None and default is not None:
        return default
    value = _text(item, field, path, MAX_WORD)
    try:
        return parse(value)
    except ValueError:
        raise _Malformed(f"{path}.{field}: {value!r} is not one of the allowed values") from None


def _key(item: dict[str, Any], path: str) -> InstrumentKey:
    leg = item.get("leg", 0)
    if isinstance(leg, bool) or not isinstance(leg, int):
        raise _Malformed(f"{path}.leg: expected an integer")
    if not 0 <= leg <= MAX_LEG:
        raise _Malformed(f"{path}.leg: {parsing.shown(leg)} is not between 0 and {MAX_LEG}")
    category = _optional_text(item, "category", path, MAX_CATEGORY) or DEFAULT_CATEGORY
    return InstrumentKey(category, _text(item, "symbol", path, MAX_SYMBOL), leg)


def _time(item: dict[str, Any], field: str, path: str) -> datetime:
    value = _text(item, field, path, MAX_WORD)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _Malformed(f"{path}.{field}: {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise _Malformed(f"{path}.{field}: {value!r} has no time zone (use Z for UTC)")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 has no UTC equivalent
        raise _Malformed(f"{path}.{field}: {value!r} is a time outside any range") from None
    problem = parsing.moment_problem(moment)
    if problem is not None:
        raise _Malformed(f"{path}.{field}: {value!r} is a time {problem}")
    return moment


def _position(item: dict[str, Any], path: str) -> VenuePosition:
    side = _choice(item, "side", path, LotSide)
    return VenuePosition(
        key=_key(item, path),
        qty=parsing.signed(_positive(item, "qty", path), side.sign),
        avg_price=_positive(item, "avg_price", path),
        mark_price=_optional_price(item, "mark_price", path),
        currency=_optional_text(item, "currency", path, MAX_CURRENCY),
        multiplier=_positive(item, "multiplier", path) if "multiplier" in item else None,
    )


def _cash(value: Any, path: str) -> Cash:
    item = _entry(value, path, "cash")
    return Cash(_text(item, "currency", path, MAX_CURRENCY), _decimal(item, "balance", path))


def _order(item: dict[str, Any], path: str) -> Order:
    return Order(
        client_order_id=_optional_text(item, "client_order_id", path, MAX_ID),
        venue_order_id=_text(item, "order_id", path, MAX_ID),
        key=_key(item, path),
        side=_choice(item, "side", path, Side),
        qty=_positive(item, "qty", path),
        price=_optional_price(item, "price", path),
        status=_choice(item, "status", path, OrderStatus, OrderStatus.OPEN),
    )


def _fill(item: dict[str, Any], path: str) -> Fill:
    return Fill(
        fill_id=_text(item, "fill_id", path, MAX_ID),
        order_id=_optional_text(item, "order_id", path, MAX_ID),
        key=_key(item, path),
        side=_choice(item, "side", path, Side),
        qty=_positive(item, "qty", path),
        price=_positive(item, "price", path),
        fee=_decimal(item, "fee", path) if item.get("fee") is not None else ZERO,
        time=_time(item, "time", path),
        kind=_choice(item, "kind", path, FillKind, FillKind.TRADE),
    )
