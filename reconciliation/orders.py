"""``sync_to_local``'s guards: which of a plan's orders and cancels may go to the venue, decided before any is sent.

    refused   for a halted account (halted before the run, or by the run itself), for every order and cancel
    refused   on a live account without ``allow_live_orders`` (live is decided from the endpoint, by the caller)
    refused   when the account has no ``max_order_notional``, when no positive price sizes the order (the
              venue's mark, else its last price, else its average, else the books' average entry), or once the
              run's orders would take their total notional over the cap

A cancel adds no exposure, so only the first two apply to it. Screening is pure: the result says what to send,
and the books record it with the run, before anything leaves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from reconciliation.contracts import Multipliers
from reconciliation.effects import CancelOrder, PlaceOrder
from reconciliation.fifo import position_of
from reconciliation.plan import Plan
from reconciliation.values import ZERO, Books, InstrumentKey, Snapshot, exact, plain


@dataclass(frozen=True)
class Guard:
    """The per-account limits on what reconciliation may send to the venue."""

    live: bool
    allow_live_orders: bool
    max_order_notional: Decimal | None
    halted: bool = False

    def account_refusal(self) -> str | None:
        """Why nothing at all may go to this account's venue, or None."""
        if self.halted:
            return "the account is halted"
        if self.live and not self.allow_live_orders:
            return "live account without allow_live_orders = true"
        return None


@dataclass(frozen=True)
class ScreenedOrder:
    """One order or cancel of a plan, and whether it may be sent: ``refusal`` None means send it."""

    effect: PlaceOrder | CancelOrder
    refusal: str | None
    notional: Decimal | None = None

    @property
    def name(self) -> str:
        """How the order is known: the client order id sent, or the venue id of the order to cancel."""
        if isinstance(self.effect, PlaceOrder):
            return self.effect.client_order_id
        return str(self.effect.order.venue_order_id)


def reference_prices(
    snapshot: Snapshot, books: Books, multipliers: Multipliers | None = None
) -> dict[InstrumentKey, Decimal]:
    """A positive price per contract of each instrument to size orders' notional: the venue's mark, else its last
    price, else its average, else the books' average entry, times the contract multiplier (an option contract
    at 2.50 on 100 shares is 250). An instrument with none of them positive has no price: its order is refused,
    because a cap that a zero price turns off is not a cap."""
    multipliers = multipliers or Multipliers()
    reported = {p.key: p.multiplier for p in snapshot.positions}
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
            prices[key] = positive * multipliers.of(key, reported.get(key))
    return prices


@exact
def screen_orders(plan: Plan, guard: Guard, prices: Mapping[InstrumentKey, Decimal]) -> tuple[ScreenedOrder, ...]:
    """Every order and cancel of ``plan``, in plan order, each allowed or refused with the reason."""
    screened: list[ScreenedOrder] = []
    used = ZERO
    for effect in plan.effects():
        if isinstance(effect, CancelOrder):
            screened.append(ScreenedOrder(effect, guard.account_refusal()))
        elif isinstance(effect, PlaceOrder):
            refusal, notional = _order_refusal(guard, effect, prices, used)
            if refusal is None:
                used += notional
            screened.append(ScreenedOrder(effect, refusal, notional if refusal is None else None))
    return tuple(screened)


def _order_refusal(
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
