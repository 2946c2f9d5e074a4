"""Bybit v5 JSON rows as our value types: positions, orders, executions (fills), and the tables that name them.

Each reader takes one row and the place it came from (``where``, e.g. ``bybit position list (linear)[3]``) and
returns a value the books can hold, or raises ``InvalidResponse`` naming the field (``venues.parsing``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reconciliation.errors import InvalidResponse
from reconciliation.limits import MAX_CURRENCY, MAX_ID, MAX_SYMBOL
from reconciliation.values import ZERO, Fill, FillKind, InstrumentKey, Order, OrderStatus, Side, VenuePosition
from venues import parsing

KINDS = {
    "Trade": FillKind.TRADE,
    "BustTrade": FillKind.LIQUIDATION,
    "AdlTrade": FillKind.ADL,
    "Delivery": FillKind.EXPIRY,
}
SIDES = {"Buy": Side.BUY, "Sell": Side.SELL}
FLAT_SIDES = ("", "None")
OPEN_STATUSES = {
    "New": OrderStatus.OPEN,
    "Untriggered": OrderStatus.OPEN,
    "PartiallyFilled": OrderStatus.PARTIALLY_FILLED,
}
FINAL_STATUSES = {
    "Filled": OrderStatus.FILLED,
    "Cancelled": OrderStatus.CANCELLED,
    "PartiallyFilledCanceled": OrderStatus.CANCELLED,
    "Deactivated": OrderStatus.CANCELLED,
    "Rejected": OrderStatus.REJECTED,
    **OPEN_STATUSES,
}


def position(row: Any, category: str, where: str) -> VenuePosition:
    """A position row; a flat leg (size 0, or side "" / "None") has quantity zero and keeps its mark."""
    side = parsing.text(row, "side", where)  # required: a row without it must not read as flat
    if side not in SIDES and side not in FLAT_SIDES:
        raise InvalidResponse(f"{where}.side: {parsing.shown(side)} is not Buy, Sell or flat")
    size = parsing.non_negative(row, "size", where)
    key = InstrumentKey(category, _symbol(row, where), _leg(row, where))
    mark = parsing.optional_price(row, "markPrice", where)
    if side in FLAT_SIDES or size == ZERO:
        return VenuePosition(key, ZERO, ZERO, mark)
    return VenuePosition(key, parsing.signed(size, SIDES[side].sign), parsing.positive(row, "avgPrice", where), mark)


def order(row: Any, category: str, where: str, statuses: dict[str, OrderStatus]) -> Order:
    """An order row whose status is one of ``statuses`` (``OPEN_STATUSES`` for open orders, ``FINAL_STATUSES``
    for the history)."""
    status = parsing.text(row, "orderStatus", where)
    if status not in statuses:
        raise InvalidResponse(f"{where}.orderStatus: {parsing.shown(status)} is not an order status we know")
    return Order(
        client_order_id=parsing.optional_text(row, "orderLinkId", where, MAX_ID),
        venue_order_id=parsing.text(row, "orderId", where, MAX_ID),
        key=InstrumentKey(category, _symbol(row, where), _leg(row, where)),
        side=_side(row, where),
        qty=parsing.positive(row, "qty", where),
        price=parsing.optional_price(row, "price", where),  # "0" for a market order
        status=statuses[status],
    )


def order_leg(row: Any, where: str) -> tuple[str, int]:
    """An order row's ``orderId`` and the leg it trades (``positionIdx``), whatever its status."""
    return parsing.text(row, "orderId", where, MAX_ID), _leg(row, where)


def created(row: Any, where: str) -> datetime | None:
    """An order row's ``createdTime``; None when absent or empty."""
    if not isinstance(row, dict) or row.get("createdTime") in (None, ""):
        return None
    return parsing.millis(row, "createdTime", where)


def fill(row: Any, category: str, where: str) -> Fill | None:
    """An execution as a fill, on leg 0: executions carry no ``positionIdx`` (the adapter sets the leg of its
    order); None for funding and other non-trade rows."""
    kind = KINDS.get(parsing.text(row, "execType", where))
    if kind is None:
        return None
    return Fill(
        fill_id=parsing.text(row, "execId", where, MAX_ID),
        key=InstrumentKey(category, _symbol(row, where), 0),
        side=_side(row, where),
        qty=parsing.positive(row, "execQty", where),
        price=parsing.positive(row, "execPrice", where),
        fee=parsing.optional_decimal(row, "execFee", where) or ZERO,  # negative: a maker rebate
        time=parsing.millis(row, "execTime", where),
        order_id=parsing.optional_text(row, "orderId", where, MAX_ID),
        kind=kind,
    )


def settle_coin(row: Any, where: str) -> str:
    """The ``settleCoin`` of an instrument row (``/v5/market/instruments-info``)."""
    return parsing.text(row, "settleCoin", where, MAX_CURRENCY)


def _symbol(row: Any, where: str) -> str:
    return parsing.text(row, "symbol", where, MAX_SYMBOL)


def _side(row: Any, where: str) -> Side:
    side = parsing.text(row, "side", where)
    if side not in SIDES:
        raise InvalidResponse(f"{where}.side: {parsing.shown(side)} is not Buy or Sell")
    return SIDES[side]


def _leg(row: Any, where: str) -> int:
    value = parsing.field(row, "positionIdx", where)  # required: a default of 0 would merge hedge-mode legs
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value) not in ("0", "1", "2"):
        raise InvalidResponse(f"{where}.positionIdx: {parsing.shown(value)} is not 0, 1 or 2")
    return int(value)
