"""Alpaca v2 JSON rows as our value types: positions, orders, FILL activities, and the tables that name them.

Each reader takes one row and the place it came from (``where``, e.g. ``alpaca orders[3]``) and returns a value
the books can hold, or raises ``InvalidResponse`` naming the field (``venues.parsing``). Crypto positions say
``BTCUSD`` while orders say ``BTC/USD``: both become ``BTCUSD``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from reconciliation.errors import InvalidResponse
from reconciliation.limits import MAX_CATEGORY, MAX_ID, MAX_SYMBOL
from reconciliation.values import ZERO, Fill, InstrumentKey, Order, OrderStatus, Side, VenuePosition
from venues import parsing

OCC_SYMBOL = re.compile(r"^[A-Z]{1,6}\d{6}[CP]\d{8}$")
CRYPTO_QUOTES = ("USD", "USDT", "USDC", "BTC")
STATUSES = {
    "new": OrderStatus.OPEN,
    "accepted": OrderStatus.OPEN,
    "pending_new": OrderStatus.OPEN,
    "accepted_for_bidding": OrderStatus.OPEN,
    "held": OrderStatus.OPEN,
    "pending_replace": OrderStatus.OPEN,
    "pending_cancel": OrderStatus.OPEN,
    "replaced": OrderStatus.CANCELLED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "done_for_day": OrderStatus.EXPIRED,
    "canceled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    "suspended": OrderStatus.OPEN,
    "stopped": OrderStatus.OPEN,
    "calculated": OrderStatus.OPEN,
}
SIDES = {"buy": Side.BUY, "sell": Side.SELL, "sell_short": Side.SELL}


#: Alpaca's asset classes: the instrument categories of an Alpaca account.
CATEGORIES = ("us_equity", "us_option", "crypto")


def category_of(symbol: str, asset_class: str | None = None) -> str:
    """Alpaca's asset class for a symbol: given, else us_option for OCC symbols, crypto for pairs, else equity."""
    if asset_class:
        return asset_class
    if OCC_SYMBOL.match(symbol):
        return "us_option"
    if "/" in symbol:
        return "crypto"
    return "us_equity"


def normal_symbol(symbol: str) -> str:
    """``BTC/USD`` -> ``BTCUSD``, so crypto positions and orders name the same instrument."""
    return symbol.replace("/", "")


def position(row: Any, where: str) -> VenuePosition:
    """A position row: ``side`` long or short, agreeing with the sign of ``qty``."""
    qty = parsing.decimal(row, "qty", where)
    side = parsing.text(row, "side", where)
    if side not in ("long", "short"):
        raise InvalidResponse(f"{where}.side: {parsing.shown(side)} is not long or short")
    if (side == "short") != (qty < ZERO) and qty != ZERO:
        raise InvalidResponse(f"{where}.side: {side!r} does not match qty {qty}")
    average = parsing.positive(row, "avg_entry_price", where) if qty != ZERO else ZERO
    return VenuePosition(_key(row, where), qty, average, parsing.optional_price(row, "current_price", where))


def order(row: Any, where: str) -> Order:
    """An order row, open or not."""
    status = parsing.text(row, "status", where)
    if status not in STATUSES:
        raise InvalidResponse(f"{where}.status: {parsing.shown(status)} is not an order status we know")
    return Order(
        client_order_id=parsing.optional_text(row, "client_order_id", where, MAX_ID),
        venue_order_id=parsing.text(row, "id", where, MAX_ID),
        key=_key(row, where),
        side=_side(row, where),
        qty=_order_qty(row, where),
        price=parsing.optional_price(row, "limit_price", where),
        status=STATUSES[status],
    )


def fill(row: Any, where: str, asset_classes: dict[str, str]) -> Fill:
    """A FILL activity; its asset class comes from ``asset_classes`` (learnt from positions and orders)."""
    side = _side(row, where)
    raw_symbol = parsing.text(row, "symbol", where, MAX_SYMBOL)
    symbol = _normal(raw_symbol, where)
    return Fill(
        fill_id=parsing.text(row, "id", where, MAX_ID),
        key=InstrumentKey(category_of(raw_symbol, asset_classes.get(symbol)), symbol, 0),
        side=side,
        qty=parsing.positive(row, "qty", where),
        price=parsing.positive(row, "price", where),
        time=parsing.iso_time(row, "transaction_time", where),
        order_id=parsing.optional_text(row, "order_id", where, MAX_ID),
    )


def _key(row: Any, where: str) -> InstrumentKey:
    symbol = parsing.text(row, "symbol", where, MAX_SYMBOL)
    asset_class = parsing.optional_text(row, "asset_class", where, MAX_CATEGORY)
    return InstrumentKey(category_of(symbol, asset_class), _normal(symbol, where), 0)


def _normal(symbol: str, where: str) -> str:
    normal = normal_symbol(symbol)
    if not normal:
        raise InvalidResponse(f"{where}.symbol: {parsing.shown(symbol)} names no instrument")
    return normal


def _side(row: Any, where: str) -> Side:
    side = parsing.text(row, "side", where)
    if side not in SIDES:
        raise InvalidResponse(f"{where}.side: {parsing.shown(side)} is not buy, sell or sell_short")
    return SIDES[side]


def _order_qty(row: Any, where: str) -> Decimal:
    """An order's quantity; an order sized by notional (dollars) has none until it fills: what filled so far."""
    if isinstance(row, dict) and row.get("qty") is None and row.get("notional") is not None:
        return ZERO if row.get("filled_qty") in (None, "") else parsing.non_negative(row, "filled_qty", where)
    return parsing.positive(row, "qty", where)
