"""What a plan does to the books and at the venue: effects, as data. Applying them is the books' job."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from reconciliation.values import Cash, Fill, InstrumentKey, Order, OrderStatus, Side


@dataclass(frozen=True)
class BookFill:
    """Record ``fill`` in the books as reconciliation (a venue fill, or a synthetic one when ``fill.estimated``
    or no venue fill explained the difference)."""

    fill: Fill
    from_venue: bool


@dataclass(frozen=True)
class CloseGroup:
    """Mark a multi-leg position group CLOSED_EXTERNALLY because one of its legs is gone at the venue."""

    group: str
    reason: str


@dataclass(frozen=True)
class SetExpectedCash:
    """Make the books expect the venue's cash."""

    cash: Cash


@dataclass(frozen=True)
class SetOrderStatus:
    """Change a pending order's status in the books."""

    order: Order
    status: OrderStatus


@dataclass(frozen=True)
class AdoptOrder:
    """Record an order open at the venue that the books did not know."""

    order: Order


@dataclass(frozen=True)
class PlaceOrder:
    """``sync_to_local``: an order that would bring the venue back to the books."""

    key: InstrumentKey
    side: Side
    qty: Decimal
    reduce_only: bool
    client_order_id: str


@dataclass(frozen=True)
class CancelOrder:
    """``sync_to_local``: cancel an order open at the venue that the books do not know."""

    order: Order


Effect = BookFill | CloseGroup | SetExpectedCash | SetOrderStatus | AdoptOrder | PlaceOrder | CancelOrder
