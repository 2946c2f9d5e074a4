"""A snapshot written as the sim venue's state file, so what a venue reported can be replayed with ``venue = "sim"``.

The document holds exactly what ``venues.sim`` reads back: positions, cash, open orders, recent fills and marks,
amounts as plain decimal strings, times ISO 8601 UTC with a Z. A snapshot holds no credentials, so neither does
the file. What the format cannot say is left out or approximated, as ``docs/venues.md`` lists: a position with no
currency is valued in the cash's currency when replayed, and order look-ups (what became of orders the books hold
as pending) are not part of a snapshot: the replay finds such an order filled when the file has its fills, else
unknown to the venue.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from reconciliation.values import ZERO, Fill, InstrumentKey, Order, Snapshot, VenuePosition, plain


def state_document(snapshot: Snapshot) -> dict[str, Any]:
    """``snapshot`` in the sim venue's state-file format; reading it back gives the same positions, cash, open
    orders, fills and marks (``as_of`` is the time of the replay's fetch, as for any sim fetch)."""
    return {
        "positions": [_position(p) for p in snapshot.positions if p.qty != ZERO],
        "cash": {"currency": snapshot.cash.currency, "balance": plain(snapshot.cash.balance)}
        if snapshot.cash is not None
        else None,
        "open_orders": [_order(o) for o in snapshot.open_orders],
        "fills": [_fill(f) for f in snapshot.fills],
        "marks": [
            {**_key(key), "price": plain(price)} for key, price in sorted(snapshot.marks.items()) if price > ZERO
        ],
    }


def _key(key: InstrumentKey) -> dict[str, Any]:
    return {"symbol": key.symbol, "category": key.category, "leg": key.leg}


def _price(value: Decimal | None) -> dict[str, str]:
    return {} if value is None or value <= ZERO else {"price": plain(value)}


def _position(position: VenuePosition) -> dict[str, Any]:
    document: dict[str, Any] = {
        **_key(position.key),
        "side": "long" if position.qty > ZERO else "short",
        "qty": plain(abs(position.qty)),
        "avg_price": plain(position.avg_price),
    }
    if position.mark_price is not None and position.mark_price > ZERO:
        document["mark_price"] = plain(position.mark_price)
    if position.currency is not None:
        document["currency"] = position.currency
    if position.multiplier is not None:
        document["multiplier"] = plain(position.multiplier)
    return document


def _order(order: Order) -> dict[str, Any]:
    # The sim venue names every open order by the venue's id; a venue that gave none is named by the client's.
    document: dict[str, Any] = {"order_id": order.venue_order_id or order.client_order_id}
    if order.client_order_id is not None:
        document["client_order_id"] = order.client_order_id
    document.update(_key(order.key))
    document.update(side=order.side.value, qty=plain(order.qty), **_price(order.price), status=order.status.value)
    return document


def _fill(fill: Fill) -> dict[str, Any]:
    document: dict[str, Any] = {"fill_id": fill.fill_id}
    if fill.order_id is not None:
        document["order_id"] = fill.order_id
    document.update(_key(fill.key))
    document.update(
        side=fill.side.value,
        qty=plain(fill.qty),
        price=plain(fill.price),
        fee=plain(fill.fee),
        time=_iso(fill.time),
        kind=fill.kind.value,
    )
    return document


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
