"""Two live book orders naming one venue order id: reported as their own kind, never settled by any strategy."""

from __future__ import annotations

import pytest
from recon_builders import BTC, LATER, at, books_from, buy, held, order, rules_all, snapshot

from reconciliation.findings import Kind, OrderDiscrepancy, Severity, compare_orders
from reconciliation.plan import Resolution, RunStatus, plan
from reconciliation.policy import Policy, Rules, Strategy
from reconciliation.values import Order, OrderLookup, OrderStatus

A = order("bot-a", "v1")
B = order("bot-b", "v1")
C = order("bot-c", "v1")
OTHER = order("bot-x", "v2")
VENUE_V1 = order("bot-a", "v1")
VENUE_V2 = order("bot-x", "v2", status=OrderStatus.PARTIALLY_FILLED)


@pytest.mark.parametrize(
    ("pending", "open_at_venue", "expected"),
    [
        # both orders name v1, which is still open: one duplicate finding, and v1 is not "unknown to the books"
        ([A, B], [VENUE_V1], [(Kind.DUPLICATE_VENUE_ORDER_ID, ("bot-a", "bot-b"), "v1")]),
        # v1 is no longer open: still one duplicate finding, neither order reported missing (and looked up)
        ([A, B], [], [(Kind.DUPLICATE_VENUE_ORDER_ID, ("bot-a", "bot-b"), None)]),
        # three entries for one venue order
        ([A, B, C], [], [(Kind.DUPLICATE_VENUE_ORDER_ID, ("bot-a", "bot-b", "bot-c"), None)]),
        # orders without a client id (adopted from the venue twice) are duplicates too
        ([order(None, "v1"), order(None, "v1")], [], [(Kind.DUPLICATE_VENUE_ORDER_ID, (None, None), None)]),
        # the other orders are compared as always
        (
            [A, B, OTHER],
            [VENUE_V2],
            [(Kind.DUPLICATE_VENUE_ORDER_ID, ("bot-a", "bot-b"), None), (Kind.ORDER_STATUS_MISMATCH, ("bot-x",), "v2")],
        ),
        # a finished order sharing the id with a live one is history, not a duplicate
        ([order("bot-old", "v1", status=OrderStatus.FILLED), A], [VENUE_V1], []),
        # different venue ids are different orders
        ([A, order("bot-b", "v9")], [VENUE_V1, order("bot-b", "v9")], []),
    ],
)
def test_live_book_orders_sharing_a_venue_order_id_are_one_duplicate_finding(
    pending: list[Order], open_at_venue: list[Order], expected: list[tuple[Kind, tuple[str | None, ...], str | None]]
) -> None:
    found = compare_orders(pending, open_at_venue)

    assert [(f.kind, _names(f), f.venue.venue_order_id if f.venue else None) for f in found] == expected


def test_a_duplicate_is_critical_and_named_by_the_venue_order_id_apart_from_single_orders() -> None:
    (found,) = compare_orders([A, B], [VENUE_V1])

    assert (found.severity, found.subject, found.ledger) == (Severity.CRITICAL, "order:venue:v1", A)


POLICIES = {
    "default policy": (Rules(), Strategy.HALT_AND_ALERT, Resolution.HALTED),
    "warn_only": (rules_all(Strategy.WARN_ONLY), Strategy.WARN_ONLY, Resolution.WARNED),
    "halt_and_alert": (rules_all(Strategy.HALT_AND_ALERT), Strategy.HALT_AND_ALERT, Resolution.HALTED),
    "sync_to_broker": (rules_all(Strategy.SYNC_TO_BROKER), Strategy.SYNC_TO_BROKER, Resolution.WARNED),
    "sync_to_local": (rules_all(Strategy.SYNC_TO_LOCAL), Strategy.SYNC_TO_LOCAL, Resolution.WARNED),
    "by_kind override": (
        Rules(policy=Policy(by_kind={Kind.DUPLICATE_VENUE_ORDER_ID: Strategy.WARN_ONLY}), grace_seconds=0),
        Strategy.WARN_ONLY,
        Resolution.WARNED,
    ),
}


@pytest.mark.parametrize("name", POLICIES)
@pytest.mark.parametrize("venue_open", [True, False], ids=["venue order open", "venue order filled"])
def test_no_strategy_changes_the_books_or_sends_an_order_for_a_duplicate(name: str, venue_open: bool) -> None:
    rules, strategy, outcome = POLICIES[name]
    filled = order("bot-a", "v1", status=OrderStatus.FILLED)
    venue_fill = buy("x-1", "1", "50000", minutes=30, order_id="v1")
    books = books_from(pending_orders=[A, B])
    seen = snapshot(open_orders=[VENUE_V1] if venue_open else [], fills=[] if venue_open else [venue_fill])
    if not venue_open:  # what the venue says of the orders it no longer shows, as the adapters look them up
        seen.order_lookups.update({"bot-a": OrderLookup(filled, (venue_fill,)), "bot-b": OrderLookup(None)})

    result = plan(books, seen, rules, LATER)

    (decision,) = result.decisions
    assert (decision.finding.kind, decision.strategy, decision.outcome) == (
        Kind.DUPLICATE_VENUE_ORDER_ID,
        strategy,
        outcome,
    )
    assert decision.effects == () and result.effects() == () and result.venue_orders() == ()
    assert "2 live orders for venue order v1 (bot-a, bot-b)" in decision.action
    assert "fix the books by hand" in decision.action


def test_the_default_policy_halts_with_the_venue_order_id_as_the_reason() -> None:
    result = plan(books_from(pending_orders=[A, B]), snapshot(open_orders=[VENUE_V1]), Rules(), LATER)

    assert (result.status, result.halt_reason) == (RunStatus.HALTED, "duplicate_venue_order_id venue:v1")


def test_a_duplicate_is_reported_at_once_even_with_fills_in_flight() -> None:
    books = books_from(buy("b-1", "1", "50000", key=BTC, minutes=59.9), pending_orders=[A, B])

    result = plan(books, snapshot(held("1", "50000"), open_orders=[VENUE_V1]), Rules(), at(60))

    assert [(d.finding.kind, d.outcome) for d in result.decisions] == [
        (Kind.DUPLICATE_VENUE_ORDER_ID, Resolution.HALTED)
    ]


def _names(found: OrderDiscrepancy) -> tuple[str | None, ...]:
    orders = found.duplicates or ((found.ledger or found.venue),)
    return tuple(o.client_order_id for o in orders if o is not None)
