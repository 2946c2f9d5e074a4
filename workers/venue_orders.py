"""``sync_to_local``: sending the orders that bring the venue back to the books, behind guards.

    refused   for a halted account (by an operator or by this very run), and by a dry run (evaluated only)
    refused   on a live account unless the fleet file says allow_live_orders; "live" is decided from the
              endpoint the adapter calls (an unknown host counts as live), never from the label alone
    refused   when the account has no max_order_notional, when no positive price (the venue's mark, last
              price or average, else the books' average entry) sizes the order, or once the run's orders
              would exceed the cap
    sent      as a market order (reduce-only where it only shrinks a position), with the client order id the
              plan derived from the books' state: a retried run sends the same id, and the venue refusing
              it as a duplicate means the first attempt got through, so it counts as sent
    failed    any other venue error; the run keeps its status and the next run decides again

    cancel    an open venue order unknown to the books, on the same live-account guard (no notional: it adds
              no exposure)

A dry run evaluates the guards and says what would be sent, sending nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from models.venue_orders import OrderOutcome
from reconciliation.errors import ReconError, RequestRejected
from reconciliation.fifo import position_of
from reconciliation.plan import CancelOrder, PlaceOrder, Plan
from reconciliation.values import ZERO, Books, InstrumentKey, Order, OrderStatus, Snapshot, plain
from venues.base import Venue
from workers.fleet import AccountConfig

DUPLICATE_MARKERS = ("110072", "duplicate", "must be unique")


@dataclass(frozen=True)
class Guard:
    """The per-account limits on orders sent by reconciliation."""

    live: bool
    allow_live_orders: bool
    max_order_notional: Decimal | None
    halted: bool = False

    @classmethod
    def of(cls, config: AccountConfig, *, halted: bool) -> Guard:
        """The guard of ``config``'s account, which is halted or not right now."""
        table = config.venue_table
        return cls(
            live=config.is_live,
            allow_live_orders=bool(table and table.allow_live_orders),
            max_order_notional=table.max_order_notional if table else None,
            halted=halted,
        )

    def account_refusal(self) -> str | None:
        """Why no order at all may go to this account's venue, or None."""
        if self.halted:
            return "the account is halted"
        if self.live and not self.allow_live_orders:
            return "live account without allow_live_orders = true"
        return None


def reference_prices(snapshot: Snapshot, books: Books) -> dict[InstrumentKey, Decimal]:
    """A positive price per instrument to size orders' notional: the venue's mark, else its last price, else its
    average, else the books' average entry. An instrument with none of them positive has no price: its order is
    refused, because a cap that a zero price turns off is not a cap."""
    candidates: dict[InstrumentKey, list[Decimal | None]] = {}
    for position in snapshot.positions:
        candidates.setdefault(position.key, []).append(position.mark_price)
    for key, last in snapshot.marks.items():
        candidates.setdefault(key, []).append(last)
    for position in snapshot.positions:
        candidates[position.key].append(position.avg_price)
    for key, lots in books.lots.items():
        candidates.setdefault(key, []).append(position_of(key, lots).avg_entry)
    prices: dict[InstrumentKey, Decimal] = {}
    for key, options in candidates.items():
        positive = next((price for price in options if price is not None and price > ZERO), None)
        if positive is not None:
            prices[key] = positive
    return prices


def send_planned_orders(
    venue: Venue,
    guard: Guard,
    plan: Plan,
    prices: Mapping[InstrumentKey, Decimal],
    *,
    dry_run: bool,
) -> list[OrderOutcome]:
    """Send (or, dry, evaluate) every order the plan holds, in plan order; returns each one's outcome."""
    outcomes: list[OrderOutcome] = []
    used = ZERO
    for effect in plan.effects():
        if isinstance(effect, CancelOrder):
            outcomes.append(_cancel(venue, guard, effect.order, dry_run))
            continue
        if not isinstance(effect, PlaceOrder):
            continue
        refusal, notional = _refusal(guard, effect, prices, used)
        order = Order(effect.client_order_id, None, effect.key, effect.side, effect.qty, None, OrderStatus.OPEN)
        if refusal:
            outcomes.append(OrderOutcome(order, False, f"{'would be ' if dry_run else ''}refused: {refusal}"))
            continue
        used += notional
        if dry_run:
            outcomes.append(OrderOutcome(order, False, f"would send (notional {plain(notional)})"))
            continue
        outcomes.append(_send(venue, effect, order))
    return outcomes


def _refusal(
    guard: Guard, order: PlaceOrder, prices: Mapping[InstrumentKey, Decimal], used: Decimal
) -> tuple[str | None, Decimal]:
    refusal = guard.account_refusal()
    if refusal:
        return refusal, ZERO
    if guard.max_order_notional is None:
        return "no max_order_notional is set for this account", ZERO
    price = prices.get(order.key)
    if price is None or price <= ZERO:
        return "no positive mark, last or average price to size the order's notional", ZERO
    notional = abs(order.qty * price)
    if used + notional > guard.max_order_notional:
        return (
            f"notional {plain(notional)} would take the run over max_order_notional "
            f"{plain(guard.max_order_notional)} ({plain(used)} used)"
        ), ZERO
    return None, notional


def _cancel(venue: Venue, guard: Guard, order: Order, dry_run: bool) -> OrderOutcome:
    """Cancel a venue order the books do not know; the halt and live-account guards apply (no notional: a cancel
    adds no exposure)."""
    refusal = guard.account_refusal()
    if refusal:
        return OrderOutcome(order, False, f"{'would be ' if dry_run else ''}refused: {refusal}", cancel=True)
    if dry_run:
        return OrderOutcome(order, False, "would cancel", cancel=True)
    try:
        venue.cancel_order(order)
    except ReconError as error:
        return OrderOutcome(order, False, f"failed: {error}", cancel=True)
    return OrderOutcome(order, True, "cancelled", cancel=True)


def _send(venue: Venue, effect: PlaceOrder, order: Order) -> OrderOutcome:
    try:
        venue_id = venue.place_order(effect.key, effect.side, effect.qty, effect.reduce_only, effect.client_order_id)
    except RequestRejected as error:
        if any(marker in str(error).lower() for marker in DUPLICATE_MARKERS):
            return OrderOutcome(order, True, "already sent by an earlier attempt (the venue knows its client id)")
        return OrderOutcome(order, False, f"failed: {error}")
    except ReconError as error:
        return OrderOutcome(order, False, f"failed: {error}")
    return OrderOutcome(
        Order(order.client_order_id, venue_id, order.key, order.side, order.qty, None, OrderStatus.OPEN),
        True,
        f"sent as {venue_id}",
    )
