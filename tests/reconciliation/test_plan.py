"""Planning: what reconciliation decides to do about each difference, and what the books look like after it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from recon_builders import (
    BTC,
    ETH,
    LATER,
    LOCAL_ALL,
    SYNC_ALL,
    applied,
    at,
    book_fills,
    books_from,
    buy,
    by_instrument,
    d,
    held,
    order,
    rules_all,
    sell,
    snapshot,
    trades_after,
    usd,
)

from reconciliation.effects import (
    AdoptOrder,
    BookFill,
    CancelOrder,
    CloseGroup,
    PlaceOrder,
    SetExpectedCash,
    SetOrderStatus,
)
from reconciliation.findings import Kind
from reconciliation.plan import Decision, Plan, Resolution, RunStatus, plan
from reconciliation.policy import Policy, Rules, Strategy
from reconciliation.values import (
    Books,
    Fill,
    FillKind,
    InstrumentKey,
    LotSide,
    OrderLookup,
    OrderStatus,
    PositionStatus,
    Side,
    Snapshot,
    Source,
    VenuePosition,
)

SCALE_IN = (buy("b1", "60", "50000", minutes=1), buy("b2", "40", "51000", minutes=2))
CALL_LEG = InstrumentKey("option", "BTC-29NOV26-60000-C")
PUT_LEG = InstrumentKey("option", "BTC-29NOV26-40000-P")


def only_decision(result: Plan) -> Decision:
    """The plan's single decision."""
    (decision,) = result.decisions
    return decision


def fills_of(result: Plan) -> list[Fill]:
    """The fills the plan records, in order."""
    return [effect.fill for effect in book_fills(result)]


def books_holding(signed_qty: str) -> Books:
    """Books that bought (or sold, when negative) ``signed_qty`` BTC at 100; flat for 0."""
    qty = d(signed_qty)
    if qty == 0:
        return books_from()
    return books_from(buy("b1", str(qty), "100") if qty > 0 else sell("s1", str(-qty), "100"))


def venue_holding(signed_qty: str) -> Snapshot:
    """A venue holding ``signed_qty`` BTC at 100; no position for 0."""
    return snapshot(held(signed_qty, "100")) if d(signed_qty) != 0 else snapshot()


def strangle_books() -> Books:
    """A two-leg option position recorded as one group."""
    return books_from(
        buy("c1", "1", "900", key=CALL_LEG, group="strangle-1"),
        sell("p1", "1", "700", key=PUT_LEG, group="strangle-1"),
    )


def correction_ids(books: Books, venue: Snapshot, now: datetime = LATER) -> list[str]:
    """The ids of the synthetic fills a sync_to_broker plan would record."""
    return [f.fill_id for f in fills_of(plan(books, venue, SYNC_ALL, now))]


# --- nothing to do -------------------------------------------------------------------------------------------


def test_books_agreeing_with_the_venue_are_in_sync_with_nothing_to_do() -> None:
    books = books_from(*SCALE_IN, expected_cash=usd("10000"), pending_orders=[order("c1", "v1")])
    venue = snapshot(held("100", "50400"), cash=usd("10000"), open_orders=[order("c1", "v1")])

    result = plan(books, venue, SYNC_ALL, LATER)

    assert result.status is RunStatus.IN_SYNC
    assert (result.decisions, result.effects(), result.halt_reason) == ((), (), None)
    assert result.matched == (BTC,)
    assert result.cash is not None
    assert not result.cash.is_discrepancy


# --- sync_to_broker: the books follow the venue ---------------------------------------------------------------


def test_a_position_missing_at_the_venue_is_closed_fifo_at_the_mark_with_an_estimated_exit() -> None:
    books = books_from(buy("b1", "1", "50000", minutes=1), buy("b2", "1", "52000", minutes=2))
    venue = snapshot(marks={BTC: "48000"})

    result = plan(books, venue, SYNC_ALL, LATER)

    decision = only_decision(result)
    assert (decision.finding.kind, decision.strategy, decision.outcome) == (
        Kind.MISSING_AT_VENUE,
        Strategy.SYNC_TO_BROKER,
        Resolution.RESOLVED,
    )
    (effect,) = decision.effects
    assert isinstance(effect, BookFill)
    assert not effect.from_venue
    close = effect.fill
    assert (close.key, close.side, close.qty, close.price, close.estimated) == (BTC, Side.SELL, d(2), d(48000), True)
    assert close.time == venue.as_of
    trades = trades_after(books, result)
    assert [(t.entry_fill_id, t.quantity, t.gross_pnl) for t in trades] == [
        ("b1", d(1), d(-2000)),
        ("b2", d(1), d(-4000)),
    ]
    assert {(t.status, t.exit_estimated) for t in trades} == {(PositionStatus.CLOSED_EXTERNALLY, True)}
    assert applied(books, result).lots == {}
    assert result.status is RunStatus.RESOLVED


def test_a_vanished_short_is_bought_back_in_the_books() -> None:
    books = books_from(sell("s1", "3", "3000", key=ETH))

    result = plan(books, snapshot(marks={ETH: "2900"}), SYNC_ALL, LATER)

    (close,) = fills_of(result)
    assert (close.key, close.side, close.qty, close.price) == (ETH, Side.BUY, d(3), d(2900))
    (trade,) = trades_after(books, result)
    assert (trade.side, trade.gross_pnl) == (LotSide.SHORT, d(300))


def test_a_venue_holding_less_closes_only_the_difference_from_the_oldest_lot() -> None:
    books = books_from(*SCALE_IN)

    result = plan(books, snapshot(held("70", "50300", mark="53000")), SYNC_ALL, LATER)

    (close,) = fills_of(result)
    assert (close.side, close.qty, close.price, close.estimated) == (Side.SELL, d(30), d(53000), True)
    (trade,) = trades_after(books, result)
    assert (trade.entry_fill_id, trade.quantity, trade.gross_pnl, trade.status) == (
        "b1",
        d(30),
        d(90000),
        PositionStatus.CLOSED_EXTERNALLY,
    )
    assert [(lot.entry_fill_id, lot.remaining) for lot in applied(books, result).lots[BTC]] == [
        ("b1", d(30)),
        ("b2", d(40)),
    ]


def test_a_venue_holding_more_adopts_the_difference_at_the_venue_average_price() -> None:
    books = books_from(buy("b1", "100", "50000"))

    result = plan(books, snapshot(held("150", "50400", mark="50500")), SYNC_ALL, LATER)

    (adopt,) = fills_of(result)
    assert (adopt.side, adopt.qty, adopt.price, adopt.estimated) == (Side.BUY, d(50), d(50400), False)
    assert trades_after(books, result) == ()
    lots = applied(books, result).lots[BTC]
    assert [(lot.entry_fill_id, lot.remaining, lot.entry_price, lot.source) for lot in lots] == [
        ("b1", d(100), d(50000), Source.BOT),
        (adopt.fill_id, d(50), d(50400), Source.RECONCILIATION),
    ]


def test_a_position_unknown_to_the_books_is_adopted_at_the_venue_average_on_its_side() -> None:
    result = plan(books_from(), snapshot(held("-5", "3000", key=ETH, mark="3100")), SYNC_ALL, LATER)

    assert only_decision(result).finding.kind is Kind.MISSING_IN_LEDGER
    (adopt,) = fills_of(result)
    assert (adopt.key, adopt.side, adopt.qty, adopt.price) == (ETH, Side.SELL, d(5), d(3000))
    (lot,) = applied(books_from(), result).lots[ETH]
    assert (lot.side, lot.remaining, lot.entry_price, lot.source) == (
        LotSide.SHORT,
        d(5),
        d(3000),
        Source.RECONCILIATION,
    )


def test_a_side_mismatch_closes_the_whole_book_position_and_adopts_the_venues_side() -> None:
    books = books_from(buy("b1", "100", "50000"))

    result = plan(books, snapshot(held("-100", "49000", mark="49500")), SYNC_ALL, LATER)

    assert only_decision(result).finding.kind is Kind.SIDE_MISMATCH
    close, adopt = fills_of(result)
    assert (close.side, close.qty, close.price, close.estimated) == (Side.SELL, d(100), d(49500), True)
    assert (adopt.side, adopt.qty, adopt.price, adopt.estimated) == (Side.SELL, d(100), d(49000), False)
    assert close.fill_id != adopt.fill_id
    (trade,) = trades_after(books, result)
    assert (trade.quantity, trade.gross_pnl, trade.status) == (d(100), d(-50000), PositionStatus.CLOSED_EXTERNALLY)
    (lot,) = applied(books, result).lots[BTC]
    assert (lot.side, lot.remaining, lot.entry_price) == (LotSide.SHORT, d(100), d(49000))


def test_a_multi_leg_group_with_one_leg_gone_at_the_venue_is_closed_as_a_group() -> None:
    books = strangle_books()

    result = plan(books, snapshot(held("-1", "700", key=PUT_LEG)), SYNC_ALL, LATER)

    decision = only_decision(result)
    assert [type(e) for e in decision.effects] == [BookFill, CloseGroup]
    group_close = decision.effects[1]
    assert isinstance(group_close, CloseGroup)
    assert group_close.group == "strangle-1"
    assert str(CALL_LEG) in group_close.reason


def test_a_group_with_every_leg_gone_is_closed_once() -> None:
    books = strangle_books()

    result = plan(books, snapshot(), SYNC_ALL, LATER)

    assert sum(isinstance(e, CloseGroup) for dec in result.decisions for e in dec.effects) == 2
    assert [e.group for e in result.effects() if isinstance(e, CloseGroup)] == ["strangle-1"]
    assert len(result.book_fills()) == 2


def test_a_position_without_a_group_closes_no_group() -> None:
    result = plan(books_from(buy("b1", "1", "100")), snapshot(), SYNC_ALL, LATER)

    assert not any(isinstance(e, CloseGroup) for e in result.effects())


@pytest.mark.parametrize(
    ("venue", "price"),
    [
        (snapshot(held("40", "50000", mark="47000"), marks={BTC: "46000"}), "47000"),
        (snapshot(held("40", "50000"), marks={BTC: "46000"}), "46000"),
        (snapshot(marks={BTC: "46000"}), "46000"),
        (snapshot(held("40", "50000")), "50400"),
        (snapshot(), "50400"),
    ],
    ids=[
        "position-mark",
        "last-price-when-no-mark",
        "last-price-when-vanished",
        "entry-when-no-price",
        "entry-vanished",
    ],
)
def test_the_estimated_exit_price_falls_back_from_mark_to_last_price_to_average_entry(
    venue: Snapshot, price: str
) -> None:
    (close,) = fills_of(plan(books_from(*SCALE_IN), venue, SYNC_ALL, LATER))

    assert close.price == d(price)
    assert close.estimated


# --- venue fills instead of synthetic ones ---------------------------------------------------------------------


def test_unknown_venue_fills_that_explain_a_vanished_position_are_recorded_under_their_own_ids() -> None:
    books = books_from(buy("b1", "100", "50000", minutes=1))
    liquidation = [
        sell("v1", "60", "47000", minutes=30, kind=FillKind.LIQUIDATION),
        sell("v2", "40", "46900", minutes=31, kind=FillKind.LIQUIDATION),
    ]
    venue = snapshot(fills=[buy("b1", "100", "50000", minutes=1), *reversed(liquidation)])

    result = plan(books, venue, SYNC_ALL, LATER)

    decision = only_decision(result)
    assert decision.effects == tuple(BookFill(f, from_venue=True) for f in liquidation)
    assert decision.outcome is Resolution.RESOLVED
    trades = trades_after(books, result)
    assert [(t.exit_fill_id, t.exit_price, t.exit_estimated) for t in trades] == [
        ("v1", d(47000), False),
        ("v2", d(46900), False),
    ]
    assert {(t.status, t.exit_reason) for t in trades} == {
        (PositionStatus.CLOSED_EXTERNALLY, "liquidated by the venue")
    }


def test_venue_fills_the_books_already_hold_are_not_recorded_again() -> None:
    books = books_from(buy("b1", "100", "50000", minutes=1), sell("k2", "60", "51000", minutes=30))
    venue = snapshot(fills=[sell("v1", "40", "50500", minutes=20), sell("k2", "60", "51000", minutes=30)])

    result = plan(books, venue, SYNC_ALL, LATER)

    assert [(e.fill.fill_id, e.from_venue) for e in book_fills(result)] == [("v1", True)]


def test_venue_fills_explaining_a_larger_venue_position_are_adopted_at_their_real_price() -> None:
    books = books_from(buy("b1", "100", "50000"))
    venue = snapshot(held("150", "50266.67"), fills=[buy("v1", "50", "50800", minutes=40)])

    result = plan(books, venue, SYNC_ALL, LATER)

    assert [(f.fill_id, f.price) for f in fills_of(result)] == [("v1", d(50800))]
    assert applied(books, result).lots[BTC][-1].entry_price == d(50800)


def test_venue_fills_that_do_not_add_up_to_the_difference_give_way_to_a_synthetic_correction() -> None:
    books = books_from(buy("b1", "100", "50000"))
    venue = snapshot(fills=[sell("v1", "60", "47000", minutes=30)], marks={BTC: "46000"})

    (effect,) = book_fills(plan(books, venue, SYNC_ALL, LATER))

    assert not effect.from_venue
    assert (effect.fill.qty, effect.fill.price, effect.fill.estimated) == (d(100), d(46000), True)
    assert effect.fill.fill_id != "v1"


# --- the grace window -----------------------------------------------------------------------------------------

GRACE_30S = rules_all(Strategy.SYNC_TO_BROKER, grace_seconds=30)


def seconds_after(minutes: float, seconds: float) -> datetime:
    return at(minutes) + timedelta(seconds=seconds)


def test_a_discrepancy_right_after_a_book_fill_is_deferred_with_no_effect() -> None:
    books = books_from(buy("b1", "1", "50000", minutes=5))

    decision = only_decision(plan(books, snapshot(minutes=5), GRACE_30S, seconds_after(5, 10)))

    assert decision.outcome is Resolution.DEFERRED
    assert decision.effects == ()
    assert "grace" in decision.action


def test_a_discrepancy_right_after_a_venue_fill_on_the_instrument_is_deferred() -> None:
    books = books_from(buy("b1", "1", "50000", minutes=1))
    venue = snapshot(held("2", "50000"), minutes=5, fills=[buy("v1", "1", "50000", minutes=5)])

    decision = only_decision(plan(books, venue, GRACE_30S, seconds_after(5, 10)))

    assert decision.outcome is Resolution.DEFERRED
    assert decision.effects == ()


def test_a_fill_on_another_instrument_does_not_defer_this_one() -> None:
    books = books_from(buy("b1", "1", "50000", minutes=1), buy("e1", "1", "3000", key=ETH, minutes=5))
    venue = snapshot(held("1", "3000", key=ETH), minutes=5)

    decision = only_decision(plan(books, venue, GRACE_30S, seconds_after(5, 10)))

    assert decision.outcome is Resolution.RESOLVED


@pytest.mark.parametrize(
    ("age", "outcome"), [(29, Resolution.DEFERRED), (30, Resolution.RESOLVED), (31, Resolution.RESOLVED)]
)
def test_only_fills_newer_than_the_grace_window_defer(age: int, outcome: Resolution) -> None:
    books = books_from(buy("b1", "1", "50000", minutes=5))

    assert only_decision(plan(books, snapshot(minutes=6), GRACE_30S, seconds_after(5, age))).outcome is outcome


def test_a_critical_discrepancy_inside_the_grace_window_is_deferred_rather_than_halting() -> None:
    books = books_from(buy("b1", "1", "50000", minutes=5))

    result = plan(books, snapshot(minutes=5), Rules(), seconds_after(5, 10))

    assert only_decision(result).outcome is Resolution.DEFERRED
    assert result.status is not RunStatus.HALTED
    assert result.halt_reason is None


def test_a_cash_gap_is_deferred_while_any_fill_is_in_flight() -> None:
    books = books_from(buy("e1", "1", "3000", key=ETH, minutes=5), expected_cash=usd("10000"))
    venue = snapshot(held("1", "3000", key=ETH), cash=usd("9000"), minutes=5)

    decision = only_decision(plan(books, venue, GRACE_30S, seconds_after(5, 10)))

    assert (decision.finding.kind, decision.outcome, decision.effects) == (Kind.CASH_MISMATCH, Resolution.DEFERRED, ())


def test_a_recheck_is_asked_for_when_the_first_deferred_finding_can_be_decided() -> None:
    """Each finding waits for the grace window over the newest fill on its instrument, books' or venue's."""
    books = books_from(buy("b1", "1", "50000", minutes=5), buy("e1", "1", "3000", key=ETH, minutes=4.9))
    venue = snapshot(held("2", "3000", key=ETH), minutes=5, fills=[buy("v1", "1", "50000", minutes=5.1)])

    result = plan(books, venue, GRACE_30S, seconds_after(5, 10))

    assert [(d.finding.key, d.outcome) for d in result.decisions] == [  # type: ignore[union-attr]
        (BTC, Resolution.DEFERRED), (ETH, Resolution.DEFERRED)
    ]  # fmt: skip
    assert [d.decidable_at for d in result.decisions] == [seconds_after(5.1, 30), seconds_after(4.9, 30)]
    assert result.recheck_at == seconds_after(4.9, 30)


def test_a_fill_dated_in_the_future_defers_for_one_grace_window_from_now_not_until_then() -> None:
    books = books_from(buy("b1", "1", "50000", minutes=60 * 24 * 365))

    result = plan(books, snapshot(minutes=5), GRACE_30S, at(5))

    assert only_decision(result).outcome is Resolution.DEFERRED
    assert result.recheck_at == seconds_after(5, 30)


def test_a_run_that_defers_nothing_asks_for_no_recheck() -> None:
    assert (
        plan(books_from(buy("b1", "1", "50000", minutes=5)), snapshot(minutes=5), GRACE_30S, LATER).recheck_at is None
    )


# --- warn, halt and the run's status ------------------------------------------------------------------------------


def test_warn_only_records_the_discrepancy_and_leaves_the_books_alone() -> None:
    result = plan(books_from(buy("b1", "1", "50000")), snapshot(), rules_all(Strategy.WARN_ONLY), LATER)

    decision = only_decision(result)
    assert (decision.strategy, decision.outcome, decision.effects) == (Strategy.WARN_ONLY, Resolution.WARNED, ())
    assert result.status is RunStatus.WARNED
    assert result.halt_reason is None


def test_halt_and_alert_halts_the_account_with_a_reason_and_leaves_the_books_alone() -> None:
    result = plan(books_from(buy("b1", "1", "50000")), snapshot(), Rules(), LATER)

    decision = only_decision(result)
    assert (decision.strategy, decision.outcome, decision.effects) == (Strategy.HALT_AND_ALERT, Resolution.HALTED, ())
    assert result.status is RunStatus.HALTED
    assert result.halt_reason == "missing_at_venue linear:BTCUSDT:0"


def test_a_halt_anywhere_halts_the_run_while_other_decisions_keep_their_effects() -> None:
    rules = Rules(policy=Policy(minor=Strategy.SYNC_TO_BROKER), grace_seconds=0)
    books = books_from(buy("b1", "1000", "50000"), buy("e1", "1", "3000", key=ETH))

    result = plan(books, snapshot(held("999", "50000", mark="50100")), rules, LATER)

    decisions = by_instrument(result)
    assert (decisions[BTC].outcome, decisions[ETH].outcome) == (Resolution.RESOLVED, Resolution.HALTED)
    assert [f.key for f in fills_of(result)] == [BTC]
    assert result.status is RunStatus.HALTED
    assert result.halt_reason == "missing_at_venue linear:ETHUSDT:0"


@pytest.mark.parametrize(
    ("strategy", "status"),
    [
        (Strategy.SYNC_TO_BROKER, RunStatus.RESOLVED),
        (Strategy.WARN_ONLY, RunStatus.WARNED),
        (Strategy.SYNC_TO_LOCAL, RunStatus.WARNED),
        (Strategy.HALT_AND_ALERT, RunStatus.HALTED),
    ],
)
def test_the_run_status_follows_the_worst_outcome(strategy: Strategy, status: RunStatus) -> None:
    result = plan(books_from(buy("b1", "1", "50000")), snapshot(), rules_all(strategy), LATER)

    assert result.status is status


def test_one_resolved_and_one_warned_discrepancy_make_a_warned_run() -> None:
    rules = Rules(policy=Policy(minor=Strategy.SYNC_TO_BROKER, critical=Strategy.WARN_ONLY), grace_seconds=0)
    books = books_from(buy("b1", "1000", "50000"), buy("e1", "1", "3000", key=ETH))

    result = plan(books, snapshot(held("999", "50000")), rules, LATER)

    assert {dec.outcome for dec in result.decisions} == {Resolution.RESOLVED, Resolution.WARNED}
    assert result.status is RunStatus.WARNED


# --- deterministic correction ids ---------------------------------------------------------------------------------


def test_the_same_books_and_snapshot_give_the_same_correction_ids() -> None:
    first = correction_ids(books_from(buy("b1", "100", "50000")), snapshot(held("-90", "49000", mark="49500")))
    again = correction_ids(books_from(buy("b1", "100", "50000")), snapshot(held("-90", "49000", mark="49500")))

    assert len(first) == 2
    assert first == again


def test_a_refetched_snapshot_of_the_same_state_gives_the_same_correction_id_so_recording_twice_is_a_no_op() -> None:
    books = books_from(buy("b1", "100", "50000"))

    first = correction_ids(books, snapshot(held("90", "50000", mark="50500"), minutes=60))
    later = correction_ids(books, snapshot(held("90", "50000", mark="50700"), minutes=120), LATER + timedelta(hours=1))

    assert first == later


def test_correction_ids_do_not_depend_on_how_many_trailing_zeros_a_quantity_was_stored_with() -> None:
    as_typed = books_from(buy("b1", "100", "50000"))
    from_database = books_from(buy("b1", "100.000000000000000000", "50000.000000000000000000"))

    assert correction_ids(as_typed, snapshot(held("90", "50000"))) == correction_ids(
        from_database, snapshot(held("90.00", "50000"))
    )


def test_after_the_books_moved_a_same_size_correction_gets_a_new_id() -> None:
    before = books_from(buy("b1", "100", "50000"))
    moved = books_from(
        buy("b1", "100", "50000"), buy("b2", "10", "50100", minutes=2), sell("s1", "10", "50200", minutes=3)
    )
    venue = snapshot(held("90", "50000"))

    (first,) = fills_of(plan(before, venue, SYNC_ALL, LATER))
    (second,) = fills_of(plan(moved, venue, SYNC_ALL, LATER))

    assert (first.side, first.qty) == (second.side, second.qty) == (Side.SELL, d(10))
    assert first.fill_id != second.fill_id


def test_corrections_on_different_instruments_or_of_different_sizes_get_different_ids() -> None:
    books = books_from(buy("b1", "1", "50000"), buy("e1", "1", "3000", key=ETH))

    ids = correction_ids(books, snapshot())
    other_size = correction_ids(books, snapshot(held("0.5", "50000"), held("1", "3000", key=ETH)))

    assert len(set(ids)) == 2
    assert other_size[0] not in ids


# --- sync_to_local: orders make the venue follow the books ------------------------------------------------------


@pytest.mark.parametrize(
    ("books_qty", "venue_qty", "side", "qty", "reduce_only"),
    [
        ("100", "90", Side.BUY, "10", False),
        ("100", "110", Side.SELL, "10", True),
        ("0", "100", Side.SELL, "100", True),
        ("100", "0", Side.BUY, "100", False),
        ("100", "-100", Side.BUY, "200", False),
        ("-100", "-80", Side.SELL, "20", False),
        ("-100", "-120", Side.BUY, "20", True),
        ("0", "-50", Side.BUY, "50", True),
    ],
)
def test_sync_to_local_places_the_order_that_brings_the_venue_back_to_the_books(
    books_qty: str, venue_qty: str, side: Side, qty: str, reduce_only: bool
) -> None:
    result = plan(books_holding(books_qty), venue_holding(venue_qty), LOCAL_ALL, LATER)

    decision = only_decision(result)
    (place,) = decision.effects
    assert isinstance(place, PlaceOrder)
    assert (place.key, place.side, place.qty, place.reduce_only) == (BTC, side, d(qty), reduce_only)
    assert decision.outcome is Resolution.PLANNED
    assert result.book_fills() == ()


def test_sync_to_local_order_ids_are_deterministic() -> None:
    def client_id() -> str:
        (place,) = plan(books_from(buy("b1", "100", "100")), snapshot(held("90", "100")), LOCAL_ALL, LATER).effects()
        assert isinstance(place, PlaceOrder)
        return place.client_order_id

    assert client_id() == client_id()


def test_sync_to_local_cancels_a_venue_order_the_books_do_not_know() -> None:
    stray = order(None, "v9", side=Side.SELL)

    decision = only_decision(plan(books_from(), snapshot(open_orders=[stray]), LOCAL_ALL, LATER))

    assert decision.effects == (CancelOrder(stray),)
    assert decision.outcome is Resolution.PLANNED


def test_sync_to_local_does_not_resend_a_pending_order_missing_at_the_venue() -> None:
    venue = replace(snapshot(), order_lookups={"c1": OrderLookup(None)})

    decision = only_decision(plan(books_from(pending_orders=[order("c1", "v1")]), venue, LOCAL_ALL, LATER))

    assert (decision.outcome, decision.effects) == (Resolution.WARNED, ())


def test_an_order_the_venue_still_holds_live_is_deferred_without_a_moment_to_look_again() -> None:
    live = order("c1", "v1", status=OrderStatus.OPEN)
    venue = replace(snapshot(), order_lookups={"c1": OrderLookup(live)})

    result = plan(books_from(pending_orders=[order("c1", "v1")]), venue, SYNC_ALL, LATER)

    assert only_decision(result).outcome is Resolution.DEFERRED
    assert result.recheck_at is None, "nothing says when the venue will finish with it: the next interval looks"


# --- orders and cash under sync_to_broker -----------------------------------------------------------------------


def test_sync_to_broker_adopts_a_venue_order_the_books_do_not_know() -> None:
    stray = order(None, "v9")

    decision = only_decision(plan(books_from(), snapshot(open_orders=[stray]), SYNC_ALL, LATER))

    assert (decision.outcome, decision.effects) == (Resolution.RESOLVED, (AdoptOrder(stray),))


def test_sync_to_broker_takes_the_venues_order_status() -> None:
    mine = order("c1", "v1")
    venue = snapshot(open_orders=[order("c1", "v1", status=OrderStatus.PARTIALLY_FILLED)])

    decision = only_decision(plan(books_from(pending_orders=[mine]), venue, SYNC_ALL, LATER))

    assert decision.effects == (SetOrderStatus(mine, OrderStatus.PARTIALLY_FILLED),)


@pytest.mark.parametrize("policy", [SYNC_ALL, LOCAL_ALL, Rules()], ids=["sync_to_broker", "sync_to_local", "default"])
def test_a_pending_order_recorded_after_the_venue_was_read_is_left_for_the_next_run(policy: Rules) -> None:
    """Every order pending when the venue was read is looked up; one the look-ups do not cover came later."""
    books = books_from(pending_orders=[order("c1", "v1")])

    decision = only_decision(plan(books, snapshot(), policy, LATER))

    assert (decision.outcome, decision.effects) == (Resolution.DEFERRED, ())
    assert decision.action == "deferred: recorded after the venue was read"
    assert decision.decidable_at == LATER, "the next run looks it up: it can come at once"


def test_sync_to_broker_makes_the_books_expect_the_venues_cash() -> None:
    result = plan(books_from(expected_cash=usd("10000")), snapshot(cash=usd("9500")), SYNC_ALL, LATER)

    assert only_decision(result).effects == (SetExpectedCash(usd("9500")),)
    assert result.status is RunStatus.RESOLVED


def test_cash_within_tolerance_is_reported_but_needs_no_decision() -> None:
    result = plan(books_from(expected_cash=usd("10000")), snapshot(cash=usd("9950")), Rules(), LATER)

    assert result.decisions == ()
    assert result.cash is not None
    assert result.cash.diff_pct == d("0.5")
    assert result.status is RunStatus.IN_SYNC


def test_sync_to_local_cannot_move_cash_and_only_warns() -> None:
    decision = only_decision(plan(books_from(expected_cash=usd("10000")), snapshot(cash=usd("9500")), LOCAL_ALL, LATER))

    assert (decision.outcome, decision.effects) == (Resolution.WARNED, ())


def test_a_flat_venue_row_still_gives_its_mark_as_the_exit_estimate() -> None:
    flat_row = VenuePosition(BTC, d("0"), d("0"), d("48000"))
    venue = Snapshot(as_of=LATER, positions=(flat_row,), cash=None)

    (close,) = fills_of(plan(books_from(buy("b1", "1", "50000")), venue, SYNC_ALL, LATER))

    assert (close.price, close.estimated) == (d("48000"), True)
