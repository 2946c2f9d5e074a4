"""The venue interface, and what every venue does the same way on top of it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from reconciliation.values import Fill, InstrumentKey, Order, OrderLookup, Side, Snapshot, order_name


class Venue(Protocol):
    """Where an account lives. Every call returns complete data or raises a ``ReconError``: a fetch that
    fails on any page fails whole, and is never read as "flat"."""

    name: str

    def fetch_snapshot(self, now: datetime) -> Snapshot:
        """Positions, cash, open orders and recent fills as of ``now``."""
        ...

    def lookup_order(self, order: Order) -> OrderLookup:
        """What the venue says of ``order`` (by client order id, else venue id), with its fills."""
        ...

    def fills_between(self, start: datetime, end: datetime) -> tuple[Fill, ...]:
        """Every fill of the account from ``start`` to ``end``, oldest first."""
        ...

    def place_order(self, key: InstrumentKey, side: Side, qty: Decimal, reduce_only: bool, client_order_id: str) -> str:
        """Submit a market order; returns the venue's order id."""
        ...

    def cancel_order(self, order: Order) -> None:
        """Cancel an open order at the venue (by its venue id)."""
        ...

    def describe(self) -> str:
        """Where this venue points (environment and URL), without credentials."""
        ...


def resolve_missing_orders(venue: Venue, snapshot: Snapshot, pending: Iterable[Order]) -> Snapshot:
    """``snapshot`` with a lookup of every live book order the venue no longer shows as open.

    Their fills join the snapshot's fills (each fill id once), so the planner sees them like any venue fill.
    """
    open_names = {order_name(o) for o in snapshot.open_orders} | {
        o.venue_order_id for o in snapshot.open_orders if o.venue_order_id
    }
    missing = [
        o
        for o in pending
        if o.status.is_live and order_name(o) not in open_names and o.venue_order_id not in open_names
    ]
    if not missing:
        return snapshot
    lookups = {order_name(o): venue.lookup_order(o) for o in missing}
    known = {f.fill_id for f in snapshot.fills}
    extra = [f for lookup in lookups.values() for f in lookup.fills if f.fill_id not in known]
    unique = list({f.fill_id: f for f in extra}.values())
    return replace(snapshot, fills=snapshot.fills + tuple(unique), order_lookups={**snapshot.order_lookups, **lookups})
