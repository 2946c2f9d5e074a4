"""The simulated venue: a JSON state file read whole on every fetch.

    {"positions":   [{"symbol", "category"?, "leg"?, "side": "long|short", "qty", "avg_price", "mark_price"?}],
     "cash":        {"currency", "balance"} | null,
     "open_orders": [{"order_id", "client_order_id"?, "symbol", "category"?, "leg"?, "side": "buy|sell",
                      "qty", "price"?, "status"?}],
     "fills":       [{"fill_id", "order_id"?, "symbol", "category"?, "leg"?, "side", "qty", "price", "fee"?,
                      "time", "kind"?: "trade|liquidation|adl|expiry"}],
     "marks":       [{"symbol", "category"?, "leg"?, "price"}]}

Numbers may be JSON strings or numbers; either way they are read as exact decimals. Anything malformed
fails the whole fetch with a message naming the file and the field.
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
    parse_decimal,
)

T = TypeVar("T")
TOP_LEVEL = frozenset({"positions", "cash", "open_orders", "fills", "marks"})
_KEY_FIELDS = {"symbol", "category", "leg"}
FIELDS = {
    "positions": _KEY_FIELDS | {"side", "qty", "avg_price", "mark_price"},
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
        except json.JSONDecodeError as error:
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
    _refuse_duplicates([p.key for p in positions], "positions")
    marks = [(_key(m, path), _decimal(m, "price", path)) for m, path in _items(state, "marks")]
    _refuse_duplicates([key for key, _ in marks], "marks")
    return Snapshot(
        as_of=now,
        positions=tuple(positions),
        cash=_cash(state["cash"], "cash") if state.get("cash") is not None else None,
        open_orders=tuple(_each(state, "open_orders", _order)),
        fills=tuple(_each(state, "fills", _fill)),
        marks=dict(marks),
    )


def _refuse_duplicates(keys: list[InstrumentKey], name: str) -> None:
    seen: set[InstrumentKey] = set()
    for index, key in enumerate(keys):
        if key in seen:
            raise _Malformed(f"{name}[{index}]: a second entry for {key}")
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


def _text(item: dict[str, Any], field: str, path: str) -> str:
    value = _required(item, field, path)
    if not isinstance(value, str) or not value:
        raise _Malformed(f"{path}.{field}: expected a non-empty string")
    return value


def _optional_text(item: dict[str, Any], field: str, path: str) -> str | None:
    return _text(item, field, path) if item.get(field) is not None else None


def _decimal(item: dict[str, Any], field: str, path: str) -> Decimal:
    value = _required(item, field, path)
    try:
        return parse_decimal(value)
    except ValueError as error:
        raise _Malformed(f"{path}.{field}: {error}") from None


def _positive(item: dict[str, Any], field: str, path: str) -> Decimal:
    number = _decimal(item, field, path)
    if number <= ZERO:
        raise _Malformed(f"{path}.{field}: must be positive, got {item[field]!r}")
    return number


def _choice(item: dict[str, Any], field: str, path: str, parse: Callable[[str], T], default: T | None = None) -> T:
    if item.get(field) is None and default is not None:
        return default
    value = _text(item, field, path)
    try:
        return parse(value)
    except ValueError:
        raise _Malformed(f"{path}.{field}: {value!r} is not one of the allowed values") from None


def _key(item: dict[str, Any], path: str) -> InstrumentKey:
    leg = item.get("leg", 0)
    if isinstance(leg, bool) or not isinstance(leg, int):
        raise _Malformed(f"{path}.leg: expected an integer")
    category = _optional_text(item, "category", path) or DEFAULT_CATEGORY
    return InstrumentKey(category, _text(item, "symbol", path), leg)


def _time(item: dict[str, Any], field: str, path: str) -> datetime:
    value = _text(item, field, path)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _Malformed(f"{path}.{field}: {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise _Malformed(f"{path}.{field}: {value!r} has no time zone (use Z for UTC)")
    return moment.astimezone(UTC)


def _position(item: dict[str, Any], path: str) -> VenuePosition:
    side = _choice(item, "side", path, LotSide)
    mark = _decimal(item, "mark_price", path) if item.get("mark_price") is not None else None
    return VenuePosition(
        key=_key(item, path),
        qty=_positive(item, "qty", path) * side.sign,
        avg_price=_decimal(item, "avg_price", path),
        mark_price=mark,
    )


def _cash(value: Any, path: str) -> Cash:
    item = _entry(value, path, "cash")
    return Cash(_text(item, "currency", path), _decimal(item, "balance", path))


def _order(item: dict[str, Any], path: str) -> Order:
    return Order(
        client_order_id=_optional_text(item, "client_order_id", path),
        venue_order_id=_text(item, "order_id", path),
        key=_key(item, path),
        side=_choice(item, "side", path, Side),
        qty=_positive(item, "qty", path),
        price=_decimal(item, "price", path) if item.get("price") is not None else None,
        status=_choice(item, "status", path, OrderStatus, OrderStatus.OPEN),
    )


def _fill(item: dict[str, Any], path: str) -> Fill:
    return Fill(
        fill_id=_text(item, "fill_id", path),
        order_id=_optional_text(item, "order_id", path),
        key=_key(item, path),
        side=_choice(item, "side", path, Side),
        qty=_positive(item, "qty", path),
        price=_decimal(item, "price", path),
        fee=_decimal(item, "fee", path) if item.get("fee") is not None else ZERO,
        time=_time(item, "time", path),
        kind=_choice(item, "kind", path, FillKind, FillKind.TRADE),
    )
