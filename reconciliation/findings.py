"""Comparison of books with a venue snapshot: positions, cash and orders, each difference with a severity.

diff % = |ledger − venue| / max(|ledger|, |venue|) × 100. Below ``minor_below`` it is minor, above
``critical_above`` critical, in between moderate. A position missing on either side and a side mismatch are
always critical.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from reconciliation.fifo import PERCENT_PLACES, quantize
from reconciliation.values import ZERO, Cash, InstrumentKey, Order, exact

HUNDRED = Decimal(100)


class Kind(StrEnum):
    """What kind of difference a discrepancy is."""

    MISSING_AT_VENUE = "missing_at_venue"
    MISSING_IN_LEDGER = "missing_in_ledger"
    QUANTITY_MISMATCH = "quantity_mismatch"
    SIDE_MISMATCH = "side_mismatch"
    CASH_MISMATCH = "cash_mismatch"
    ORDER_MISSING_AT_VENUE = "order_missing_at_venue"
    ORDER_UNKNOWN_TO_LEDGER = "order_unknown_to_ledger"
    ORDER_STATUS_MISMATCH = "order_status_mismatch"
    DUPLICATE_VENUE_ORDER_ID = "duplicate_venue_order_id"


POSITION_KINDS = frozenset({Kind.MISSING_AT_VENUE, Kind.MISSING_IN_LEDGER, Kind.QUANTITY_MISMATCH, Kind.SIDE_MISMATCH})


class Severity(StrEnum):
    """How bad a discrepancy is, in increasing order."""

    MINOR = "minor"
    MODERATE = "moderate"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for minor, 1 for moderate, 2 for critical."""
        return list(Severity).index(self)


@dataclass(frozen=True)
class Thresholds:
    """Percentages that separate minor from moderate and moderate from critical."""

    minor_below: Decimal = Decimal(1)
    critical_above: Decimal = Decimal(5)

    def classify(self, diff_pct: Decimal) -> Severity:
        """Severity of a quantity difference of ``diff_pct`` percent."""
        if diff_pct < self.minor_below:
            return Severity.MINOR
        if diff_pct > self.critical_above:
            return Severity.CRITICAL
        return Severity.MODERATE


@exact
def diff_pct(ledger: Decimal, venue: Decimal) -> Decimal:
    """|ledger − venue| / max(|ledger|, |venue|) × 100, rounded to 6 places; 0 when both are 0."""
    scale = max(abs(ledger), abs(venue))
    if scale == ZERO:
        return ZERO
    return quantize(abs(ledger - venue) * HUNDRED / scale, PERCENT_PLACES)


@dataclass(frozen=True)
class PositionDiscrepancy:
    """A difference between the books' and the venue's signed quantity on one instrument."""

    key: InstrumentKey
    kind: Kind
    severity: Severity
    ledger_qty: Decimal
    venue_qty: Decimal
    diff_pct: Decimal

    @property
    def subject(self) -> str:
        """Identity of what differs, stable across runs (the instrument key)."""
        return f"position:{self.key}"


@dataclass(frozen=True)
class PositionComparison:
    """Instruments that agree, and the discrepancies on the others, both in instrument order."""

    matched: tuple[InstrumentKey, ...]
    discrepancies: tuple[PositionDiscrepancy, ...]


@exact
def compare_positions(
    ledger: Mapping[InstrumentKey, Decimal], venue: Mapping[InstrumentKey, Decimal], thresholds: Thresholds
) -> PositionComparison:
    """Compare signed quantities per instrument; flat instruments on both sides are ignored."""
    matched: list[InstrumentKey] = []
    found: list[PositionDiscrepancy] = []
    for key in sorted(set(ledger) | set(venue), key=_instrument_order):
        mine, theirs = ledger.get(key, ZERO), venue.get(key, ZERO)
        if mine == theirs:
            if mine != ZERO:
                matched.append(key)
            continue
        pct = diff_pct(mine, theirs)
        kind = _position_kind(mine, theirs)
        severity = Severity.CRITICAL if kind is not Kind.QUANTITY_MISMATCH else thresholds.classify(pct)
        found.append(PositionDiscrepancy(key, kind, severity, mine, theirs, pct))
    return PositionComparison(matched=tuple(matched), discrepancies=tuple(found))


def _instrument_order(key: InstrumentKey) -> tuple[str, str, int]:
    """The dataclass order, computed about three times faster than through its generated ``__lt__``."""
    return (key.category, key.symbol, key.leg)


def _position_kind(ledger: Decimal, venue: Decimal) -> Kind:
    if venue == ZERO:
        return Kind.MISSING_AT_VENUE
    if ledger == ZERO:
        return Kind.MISSING_IN_LEDGER
    if (ledger > ZERO) != (venue > ZERO):
        return Kind.SIDE_MISMATCH
    return Kind.QUANTITY_MISMATCH


@dataclass(frozen=True)
class CashFinding:
    """Expected cash against the venue's. ``severity`` is None when within tolerance or nothing is expected."""

    currency: str
    expected: Decimal | None
    venue: Decimal
    diff_pct: Decimal | None
    tolerance_pct: Decimal
    severity: Severity | None
    expected_currency: str | None = None

    kind = Kind.CASH_MISMATCH
    subject = "cash"

    @property
    def is_discrepancy(self) -> bool:
        """True when the difference is beyond tolerance (or the currencies differ)."""
        return self.severity is not None


@exact
def compare_cash(
    expected: Cash | None, venue: Cash | None, tolerance_pct: Decimal, thresholds: Thresholds
) -> CashFinding | None:
    """Compare expected cash with the venue's; None when the venue reports no cash.

    With no expectation in the books the finding is informational. A currency mismatch is critical. A
    difference beyond tolerance is at least minor, and graded like a quantity above that.
    """
    if venue is None:
        return None
    if expected is None:
        return CashFinding(venue.currency, None, venue.balance, None, tolerance_pct, None)
    if expected.currency != venue.currency:
        return CashFinding(
            venue.currency, expected.balance, venue.balance, None, tolerance_pct, Severity.CRITICAL, expected.currency
        )
    pct = diff_pct(expected.balance, venue.balance)
    severity = None if pct <= tolerance_pct else thresholds.classify(pct)
    return CashFinding(venue.currency, expected.balance, venue.balance, pct, tolerance_pct, severity, expected.currency)


@dataclass(frozen=True)
class OrderDiscrepancy:
    """A pending order the venue does not show, an open venue order the books do not know, or a status gap.

    For ``duplicate_venue_order_id``: ``ledger`` is the first of the live book orders naming one venue order id,
    ``duplicates`` all of them (two or more), ``venue`` the venue's open order with that id, if any.
    """

    kind: Kind
    severity: Severity
    ledger: Order | None
    venue: Order | None
    duplicates: tuple[Order, ...] = ()

    @property
    def order(self) -> Order:
        """The order as the books know it, else as the venue does."""
        order = self.ledger or self.venue
        assert order is not None
        return order

    @property
    def subject(self) -> str:
        """Identity of the order, stable across runs (for a duplicate: the venue order id the books repeat, kept
        apart from the subjects of single orders)."""
        order = self.order
        if self.kind is Kind.DUPLICATE_VENUE_ORDER_ID:
            return f"order:venue:{order.venue_order_id}"
        return f"order:{order.client_order_id or order.venue_order_id}"


ORDER_SEVERITY = {
    Kind.ORDER_MISSING_AT_VENUE: Severity.MODERATE,
    Kind.ORDER_UNKNOWN_TO_LEDGER: Severity.MODERATE,
    Kind.ORDER_STATUS_MISMATCH: Severity.MINOR,
    # The books are corrupt (one venue order booked twice): whichever order is settled, the other one's quantity
    # is exposure the bot believes in and nobody holds. Critical, so the default policy halts the account.
    Kind.DUPLICATE_VENUE_ORDER_ID: Severity.CRITICAL,
}


def compare_orders(pending: Iterable[Order], open_at_venue: Iterable[Order]) -> tuple[OrderDiscrepancy, ...]:
    """Match live book orders with open venue orders by client order id, else venue order id.

    Live book orders that share one venue order id are one ``duplicate_venue_order_id`` discrepancy and are
    matched with nothing else: settling either one from the venue's answer would book the venue's order twice.
    The venue's order they name counts as known (it is not an order unknown to the books).
    """
    venue_orders = list(open_at_venue)
    by_client = {o.client_order_id: o for o in venue_orders if o.client_order_id}
    by_venue_id = {o.venue_order_id: o for o in venue_orders if o.venue_order_id}
    seen: set[int] = set()
    found: list[OrderDiscrepancy] = []
    live = [o for o in pending if o.status.is_live]
    sharing: dict[str, list[Order]] = {}
    for mine in live:
        if mine.venue_order_id:
            sharing.setdefault(mine.venue_order_id, []).append(mine)
    duplicated = {venue_id: orders for venue_id, orders in sharing.items() if len(orders) > 1}
    for venue_id, orders in duplicated.items():
        theirs = by_venue_id.get(venue_id)
        claimed = [theirs, *(by_client.get(o.client_order_id) for o in orders if o.client_order_id)]
        seen.update(id(o) for o in claimed if o is not None)
        kind = Kind.DUPLICATE_VENUE_ORDER_ID
        found.append(OrderDiscrepancy(kind, ORDER_SEVERITY[kind], orders[0], theirs, tuple(orders)))
    for mine in (o for o in live if o.venue_order_id not in duplicated):
        theirs = (by_client.get(mine.client_order_id) if mine.client_order_id else None) or (
            by_venue_id.get(mine.venue_order_id) if mine.venue_order_id else None
        )
        if theirs is None:
            found.append(_order_discrepancy(Kind.ORDER_MISSING_AT_VENUE, mine, None))
            continue
        seen.add(id(theirs))
        if theirs.status is not mine.status:
            found.append(_order_discrepancy(Kind.ORDER_STATUS_MISMATCH, mine, theirs))
    found.extend(_order_discrepancy(Kind.ORDER_UNKNOWN_TO_LEDGER, None, o) for o in venue_orders if id(o) not in seen)
    return tuple(found)


def _order_discrepancy(kind: Kind, ledger: Order | None, venue: Order | None) -> OrderDiscrepancy:
    return OrderDiscrepancy(kind, ORDER_SEVERITY[kind], ledger, venue)
