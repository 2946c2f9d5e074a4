"""FIFO lot matching: what a trader sees in lots, trades, P&L and fees after each fill."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from decimal import Decimal

import pytest
from recon_builders import BTC, ETH, at, buy, d, sell

from reconciliation.fifo import apply_fill, position_of, replay, with_remaining
from reconciliation.values import Fill, FillKind, Lot, LotSide, PositionStatus, Source, Trade

CENT = Decimal("0.01")


def lots_after(*fills: Fill, source: Source = Source.BOT) -> tuple[Lot, ...]:
    """The open lots of the (single) instrument of ``fills`` after the bot records them."""
    lots: tuple[Lot, ...] = ()
    for f in fills:
        lots = apply_fill(lots, f, source).lots
    return lots


def trades_of(*fills: Fill, source: Source = Source.BOT) -> tuple[Trade, ...]:
    """Every trade completed by ``fills``, in order."""
    return replay({}, ((f, source) for f in fills)).trades


def close_with(opening: Sequence[Fill], closing: Fill, source: Source) -> tuple[Trade, ...]:
    """The trades ``closing`` completes against the lots ``opening`` left (opened by the bot)."""
    return apply_fill(lots_after(*opening), closing, source).trades


# --- opening lots -------------------------------------------------------------------------------------------


def test_a_buy_on_a_flat_instrument_opens_one_long_lot_at_the_fill_price_carrying_its_commission() -> None:
    outcome = apply_fill((), buy("b1", "2", "50000", fee="1.5", minutes=3), Source.BOT)

    assert outcome.trades == ()
    assert outcome.lots == (outcome.opened,)
    lot = outcome.opened
    assert lot is not None
    assert (lot.entry_fill_id, lot.side, lot.quantity, lot.remaining) == ("b1", LotSide.LONG, d(2), d(2))
    assert (lot.entry_price, lot.entry_time, lot.commission, lot.source) == (d(50000), at(3), d("1.5"), Source.BOT)


def test_a_sell_on_a_flat_instrument_opens_a_short_lot() -> None:
    (lot,) = lots_after(sell("s1", "5", "3000", key=ETH))

    assert lot.side is LotSide.SHORT
    assert lot.signed_remaining == d(-5)
    assert position_of(ETH, [lot]).qty == d(-5)


def test_a_lot_opened_by_reconciliation_is_marked_with_that_source() -> None:
    (lot,) = lots_after(buy("r1", "1", "100"), source=Source.RECONCILIATION)

    assert lot.source is Source.RECONCILIATION


# --- the scale-in example from the FIFO issue ---------------------------------------------------------------

SCALE_IN = (buy("b1", "100", "50000", minutes=1), buy("b2", "50", "51000", minutes=2))


def test_scale_in_keeps_two_lots_and_reports_the_weighted_average_entry_50333_33() -> None:
    lots = lots_after(*SCALE_IN)
    position = position_of(BTC, lots)

    assert [(lot.entry_fill_id, lot.remaining, lot.entry_price) for lot in lots] == [
        ("b1", d(100), d(50000)),
        ("b2", d(50), d(51000)),
    ]
    assert position.qty == d(150)
    assert position.avg_entry is not None
    assert position.avg_entry.quantize(CENT) == d("50333.33")


def test_selling_120_after_the_scale_in_realises_340000_fifo_and_leaves_30_at_51000() -> None:
    outcome = apply_fill(lots_after(*SCALE_IN), sell("s1", "120", "53000", minutes=3), Source.BOT)

    assert [(t.entry_fill_id, t.quantity, t.entry_price, t.gross_pnl) for t in outcome.trades] == [
        ("b1", d(100), d(50000), d(300000)),
        ("b2", d(20), d(51000), d(40000)),
    ]
    assert sum(t.gross_pnl for t in outcome.trades) == d(340000)
    (rest,) = outcome.lots
    assert (rest.entry_fill_id, rest.remaining, rest.entry_price) == ("b2", d(30), d(51000))
    assert rest.quantity == d(50), "a partially closed lot keeps its original size for the record"
    assert outcome.opened is None
    position = position_of(BTC, outcome.lots)
    assert (position.qty, position.avg_entry) == (d(30), d(51000))


# --- closing ---------------------------------------------------------------------------------------------------


def test_a_partial_close_reduces_the_oldest_lot_and_keeps_the_rest_open() -> None:
    lots = lots_after(buy("b1", "10", "100"), sell("s1", "4", "120"))

    (lot,) = lots
    assert (lot.entry_fill_id, lot.quantity, lot.remaining) == ("b1", d(10), d(6))


def test_a_short_lot_earns_when_the_price_falls() -> None:
    outcome = apply_fill(lots_after(sell("s1", "10", "100")), buy("b1", "4", "90"), Source.BOT)

    (trade,) = outcome.trades
    assert (trade.side, trade.quantity, trade.gross_pnl) == (LotSide.SHORT, d(4), d(40))
    (rest,) = outcome.lots
    assert rest.signed_remaining == d(-6)


def test_a_buy_closes_short_lots_oldest_first() -> None:
    shorts = [sell("s1", "3", "100", minutes=1), sell("s2", "3", "90", minutes=2)]
    outcome = apply_fill(lots_after(*shorts), buy("b1", "4", "95", minutes=3), Source.BOT)

    assert [(t.entry_fill_id, t.quantity, t.gross_pnl) for t in outcome.trades] == [
        ("s1", d(3), d(15)),
        ("s2", d(1), d(-5)),
    ]
    (rest,) = outcome.lots
    assert (rest.entry_fill_id, rest.side, rest.remaining) == ("s2", LotSide.SHORT, d(2))


def test_a_fill_crossing_zero_closes_every_lot_and_opens_the_remainder_on_the_other_side() -> None:
    longs = [buy("b1", "60", "100", minutes=1), buy("b2", "40", "110", minutes=2)]
    outcome = apply_fill(lots_after(*longs), sell("s1", "130", "120", minutes=3), Source.BOT)

    assert [(t.entry_fill_id, t.quantity) for t in outcome.trades] == [("b1", d(60)), ("b2", d(40))]
    (short,) = outcome.lots
    assert outcome.opened == short
    assert (short.entry_fill_id, short.side, short.quantity, short.entry_price) == ("s1", LotSide.SHORT, d(30), d(120))
    assert short.entry_time == at(3)
    assert position_of(BTC, outcome.lots).qty == d(-30)


def test_a_fill_exactly_closing_the_position_leaves_no_lot_and_opens_nothing() -> None:
    outcome = apply_fill(lots_after(buy("b1", "2", "100")), sell("s1", "2", "90"), Source.BOT)

    assert outcome.lots == ()
    assert outcome.opened is None
    assert position_of(BTC, outcome.lots).qty == d(0)
    assert position_of(BTC, outcome.lots).avg_entry is None


# --- fees and P&L --------------------------------------------------------------------------------------------


def test_net_pnl_is_gross_minus_entry_and_exit_fees_and_pct_is_net_over_cost() -> None:
    (trade,) = trades_of(buy("b1", "10", "100", fee="1"), sell("s1", "10", "110", fee="1.1"))

    assert trade.gross_pnl == d(100)
    assert trade.fees == d("2.1")
    assert trade.net_pnl == d("97.9")
    assert trade.pnl_pct == d("9.79")


def test_entry_commission_shared_over_three_partial_closes_adds_up_exactly_to_the_commission() -> None:
    trades = trades_of(
        buy("b1", "3", "100", fee="1"),
        sell("s1", "1", "110", fee="0.1"),
        sell("s2", "1", "110", fee="0.1"),
        sell("s3", "1", "110", fee="0.1"),
    )

    assert len(trades) == 3
    assert sum(t.fees for t in trades) == d("1.3")
    for trade in trades:
        assert trade.net_pnl == trade.gross_pnl - trade.fees
        assert abs(trade.fees - (d(1) / 3 + d("0.1"))) <= d("1e-18")


def test_an_exit_fee_shared_over_three_lots_adds_up_exactly_to_the_fee() -> None:
    lots = lots_after(buy("b1", "1", "100"), buy("b2", "1", "101"), buy("b3", "1", "102"))

    outcome = apply_fill(lots, sell("s1", "3", "110", fee="1"), Source.BOT)

    assert len(outcome.trades) == 3
    assert sum(t.fees for t in outcome.trades) == d(1)


def test_a_fill_crossing_zero_splits_its_fee_between_the_exit_and_the_new_lot_without_losing_a_digit() -> None:
    lots = lots_after(buy("b1", "1", "100", fee="0.3"))

    outcome = apply_fill(lots, sell("s1", "3", "90", fee="1"), Source.BOT)

    (trade,) = outcome.trades
    assert outcome.opened is not None
    assert trade.fees + outcome.opened.commission == d("0.3") + d(1)
    assert outcome.opened.commission > d("0.6")  # two thirds of the fee travel with the two new units


def test_every_fee_charged_reappears_in_trades_once_the_position_is_flat() -> None:
    fills = [
        buy("b1", "1", "100", fee="0.3"),
        sell("s1", "3", "90", fee="1"),
        buy("b2", "0.5", "85", fee="0.07"),
        buy("b3", "1.5", "80", fee="0.2"),
    ]

    result = replay({}, ((f, Source.BOT) for f in fills))

    assert result.lots == {}
    assert sum(t.fees for t in result.trades) == sum(f.fee for f in fills)


def test_a_maker_rebate_negative_fee_raises_net_pnl_above_gross() -> None:
    (trade,) = trades_of(buy("b1", "1", "100", fee="-0.02"), sell("s1", "1", "100", fee="-0.02"))

    assert trade.gross_pnl == d(0)
    assert trade.net_pnl == d("0.04")


# --- how a trade is labelled -------------------------------------------------------------------------------


@pytest.mark.parametrize("source", [Source.BOT, Source.IMPORT])
def test_a_close_recorded_by_the_bot_or_imported_from_its_history_is_closed_with_no_exit_reason(
    source: Source,
) -> None:
    (trade,) = close_with([buy("b1", "1", "100")], sell("s1", "1", "110"), source)

    assert trade.status is PositionStatus.CLOSED
    assert trade.exit_reason is None


@pytest.mark.parametrize("source", [Source.RECONCILIATION, Source.BACKFILL])
def test_a_close_recorded_by_anyone_but_the_bot_is_closed_externally(source: Source) -> None:
    (trade,) = close_with([buy("b1", "1", "100")], sell("s1", "1", "110"), source)

    assert trade.status is PositionStatus.CLOSED_EXTERNALLY
    assert trade.exit_reason == "closed at the venue outside the bot"


@pytest.mark.parametrize("source", list(Source))
def test_an_expiry_fill_marks_the_trade_expired_whoever_records_it(source: Source) -> None:
    (trade,) = close_with([buy("b1", "1", "5")], sell("x1", "1", "0", kind=FillKind.EXPIRY), source)

    assert trade.status is PositionStatus.EXPIRED
    assert trade.exit_reason == "expired"


@pytest.mark.parametrize(
    ("kind", "reason"),
    [(FillKind.LIQUIDATION, "liquidated by the venue"), (FillKind.ADL, "auto-deleveraged by the venue")],
)
def test_liquidation_and_adl_fills_give_their_default_exit_reason(kind: FillKind, reason: str) -> None:
    (trade,) = close_with([buy("b1", "1", "100")], sell("v1", "1", "80", kind=kind), Source.RECONCILIATION)

    assert trade.exit_reason == reason
    assert trade.status is PositionStatus.CLOSED_EXTERNALLY


def test_an_explicit_reason_on_the_fill_wins_over_the_default() -> None:
    closing = sell("v1", "1", "80", kind=FillKind.LIQUIDATION, reason="margin call at 02:14")

    (trade,) = close_with([buy("b1", "1", "100")], closing, Source.RECONCILIATION)

    assert trade.exit_reason == "margin call at 02:14"


@pytest.mark.parametrize("estimated", [True, False])
def test_the_estimated_flag_of_the_closing_fill_is_carried_to_the_trade(estimated: bool) -> None:
    (trade,) = close_with([buy("b1", "1", "100")], sell("s1", "1", "95", estimated=estimated), Source.RECONCILIATION)

    assert trade.exit_estimated is estimated


def test_trade_records_entry_and_exit_ids_prices_and_times() -> None:
    (trade,) = close_with([buy("b1", "1", "100", minutes=1)], sell("s1", "1", "95", minutes=9), Source.BOT)

    assert (trade.entry_fill_id, trade.exit_fill_id) == ("b1", "s1")
    assert (trade.entry_price, trade.exit_price) == (d(100), d(95))
    assert (trade.entry_time, trade.exit_time) == (at(1), at(9))
    assert trade.key == BTC


def test_the_group_of_the_opening_fill_follows_the_lot_into_its_trade() -> None:
    lots = lots_after(buy("b1", "1", "100", group="spread-7"))

    (trade,) = apply_fill(lots, sell("s1", "1", "90"), Source.BOT).trades

    assert lots[0].group == "spread-7"
    assert trade.group == "spread-7"


# --- replay and position_of ----------------------------------------------------------------------------------


def test_replay_keeps_instruments_apart_drops_flat_ones_and_leaves_its_input_untouched() -> None:
    start = {BTC: lots_after(buy("b1", "1", "100"))}
    before = dict(start)

    result = replay(start, [(sell("s1", "1", "110"), Source.BOT), (sell("e1", "2", "3000", key=ETH), Source.BOT)])

    assert start == before
    assert set(result.lots) == {ETH}
    assert [t.exit_fill_id for t in result.trades] == ["s1"]
    assert [lot.entry_fill_id for lot in result.opened] == ["e1"]


def test_position_of_a_short_is_negative_with_its_weighted_average_entry() -> None:
    lots = lots_after(sell("s1", "1", "100"), sell("s2", "3", "200"))

    position = position_of(BTC, lots)

    assert position.qty == d(-4)
    assert position.avg_entry == d(175)
    assert position.lots == lots


def test_a_lot_with_less_remaining_keeps_every_other_field() -> None:
    lot = Lot("e1", BTC, LotSide.SHORT, d("5"), d("4"), d("101.5"), at(3), d("0.7"), Source.IMPORT, "g1", d(100))

    assert with_remaining(lot, d("1.5")) == replace(lot, remaining=d("1.5"))
    assert {f.name for f in fields(Lot)} == {
        "entry_fill_id",
        "key",
        "side",
        "quantity",
        "remaining",
        "entry_price",
        "entry_time",
        "commission",
        "source",
        "group",
        "multiplier",
    }  # a new field must be carried by with_remaining too
