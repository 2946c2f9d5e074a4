"""Backfill of exits: which venue fills replace an estimated exit, and what the trade becomes.

Estimated trades are made the way reconciliation makes them: the bot's lots closed FIFO by a synthetic fill
at the mark (fee 0, ``estimated``). The expected P&L is what FIFO lot matching computes when the real fills
close the same lots, so a backfilled trade is the trade the books would hold had the bot seen the exit.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from itertools import count

import pytest
from recon_builders import BTC, ETH, at, buy, d, sell

from reconciliation.backfill import EXIT_REASONS, EstimatedTrade, ExitMatch, match_exits, split_fee
from reconciliation.fifo import apply_fill, replay
from reconciliation.values import Fill, FillKind, InstrumentKey, LotSide, Source, Trade

ESTIMATE_AT = 600  # minutes after T0: when reconciliation found the position gone


def estimated(*opening: Fill, close: Fill) -> list[EstimatedTrade]:
    """The estimated trades reconciliation books when ``close`` (a synthetic fill) closes the lots ``opening`` left."""
    lots = replay({}, ((f, Source.BOT) for f in opening)).lots.get(close.key, ())
    trades = apply_fill(lots, close, Source.RECONCILIATION).trades
    ids = count(1)
    return [as_estimated(next(ids), t) for t in trades]


def as_estimated(trade_id: int, trade: Trade) -> EstimatedTrade:
    assert trade.exit_estimated
    return EstimatedTrade(
        trade_id=trade_id,
        key=trade.key,
        side=trade.side,
        quantity=trade.quantity,
        entry_price=trade.entry_price,
        entry_fee=trade.fees,  # a synthetic exit carries no fee
        entry_time=trade.entry_time,
        exit_price=trade.exit_price,
        exit_time=trade.exit_time,
    )


def mark_close(side: str, qty: str, price: str = "90", key: InstrumentKey = BTC) -> Fill:
    maker = sell if side == "sell" else buy
    return maker("recon-x", qty, price, key=key, minutes=ESTIMATE_AT, estimated=True, reason="missing_at_venue")


def fifo_trades(opening: Sequence[Fill], real: Sequence[Fill]) -> tuple[Trade, ...]:
    """The trades FIFO makes when the ``real`` fills close the lots ``opening`` left (recorded by reconciliation)."""
    lots = replay({}, ((f, Source.BOT) for f in opening)).lots
    return replay(lots, ((f, Source.RECONCILIATION) for f in real)).trades


# --- one lot, one or more real fills -------------------------------------------------------------------------


def test_a_long_closed_at_the_mark_gets_the_weighted_real_price_time_fees_and_pnl() -> None:
    opening = [buy("b1", "10", "100", fee="1", minutes=1)]
    trades = estimated(*opening, close=mark_close("sell", "10"))
    real = [sell("v1", "6", "95", fee="0.6", minutes=100), sell("v2", "4", "96", fee="0.4", minutes=120)]

    match = match_exits(trades, real)

    (done,) = match.backfilled
    assert match.not_found == ()
    assert done.exit_price == d("95.4")
    assert done.exit_time == at(120)
    assert done.gross_pnl == d("-46")  # (95 - 100) * 6 + (96 - 100) * 4
    assert (done.exit_fee, done.fees) == (d("1.0"), d("2.0"))
    assert done.net_pnl == d("-48")
    assert done.pnl_pct == d("-4.8")
    assert done.fill_ids == ("v1", "v2")
    assert done.exit_reason == "closed by hand at the venue"
    expected = fifo_trades(opening, real)
    assert done.gross_pnl == sum(t.gross_pnl for t in expected)
    assert done.net_pnl == sum(t.net_pnl for t in expected)


def test_a_short_is_closed_by_buys_and_sells_do_not_count() -> None:
    opening = [sell("s1", "5", "200", fee="2", minutes=1)]
    trades = estimated(*opening, close=mark_close("buy", "5", "210"))
    real = [sell("v0", "5", "150", minutes=50), buy("v1", "5", "180", fee="0.5", minutes=60)]

    (done,) = match_exits(trades, real).backfilled

    assert trades[0].side is LotSide.SHORT
    assert done.fill_ids == ("v1",)
    assert (done.exit_price, done.gross_pnl, done.fees, done.net_pnl) == (d(180), d(100), d("2.5"), d("97.5"))
    assert done.pnl_pct == d("9.75")


def test_a_single_real_fill_gives_exactly_the_trade_fifo_would_have_booked() -> None:
    opening = [buy("b1", "3", "101.37", fee="0.333", minutes=1), buy("b2", "0.7", "99.01", fee="0.07", minutes=2)]
    trades = estimated(*opening, close=mark_close("sell", "3.7"))
    real = [sell("v1", "3.7", "97.123", fee="0.1234567", minutes=300)]

    match = match_exits(trades, real)

    expected = fifo_trades(opening, real)
    assert [(b.exit_price, b.gross_pnl, b.fees, b.net_pnl, b.pnl_pct) for b in match.backfilled] == [
        (t.exit_price, t.gross_pnl, t.fees, t.net_pnl, t.pnl_pct) for t in expected
    ]


# --- across trades -------------------------------------------------------------------------------------------


def test_one_venue_fill_covers_two_trades_and_its_fee_is_shared_to_the_last_decimal() -> None:
    opening = [buy("b1", "1", "100", minutes=1), buy("b2", "2", "110", minutes=2)]
    trades = estimated(*opening, close=mark_close("sell", "3"))
    real = [sell("v1", "3", "120", fee="1", minutes=200)]

    match = match_exits(trades, real)

    first, second = match.backfilled
    assert (first.trade.quantity, second.trade.quantity) == (d(1), d(2))
    assert first.exit_fee + second.exit_fee == d(1)
    assert first.exit_fee == d("0.333333333333333333")
    assert (first.gross_pnl, second.gross_pnl) == (d(20), d(20))
    assert match.fills == tuple(real)
    assert [(t.fees, t.net_pnl) for t in fifo_trades(opening, real)] == [
        (first.fees, first.net_pnl),
        (second.fees, second.net_pnl),
    ]


def test_one_trade_needs_several_fills_and_a_fill_is_split_between_trades() -> None:
    opening = [buy("b1", "4", "100", minutes=1), buy("b2", "4", "100", minutes=2)]
    trades = estimated(*opening, close=mark_close("sell", "8"))
    real = [sell("v1", "3", "90", fee="0.3", minutes=100), sell("v2", "5", "91", fee="0.7", minutes=110)]

    first, second = match_exits(trades, real).backfilled

    assert [(p.fill.fill_id, p.qty) for p in first.parts] == [("v1", d(3)), ("v2", d(1))]
    assert [(p.fill.fill_id, p.qty) for p in second.parts] == [("v2", d(4))]
    assert first.exit_fee + second.exit_fee == d(1)
    assert first.exit_fee == d("0.3") + d("0.14")
    assert first.exit_price == d("90.25")
    assert second.exit_time == at(110)


def test_fees_of_every_fully_used_fill_add_up_to_the_fill_fee() -> None:
    opening = [buy(f"b{i}", q, "100", minutes=i) for i, q in enumerate(["0.3", "0.7", "1.1", "0.9"], start=1)]
    trades = estimated(*opening, close=mark_close("sell", "3"))
    real = [
        sell("v1", "1.3", "99", fee="0.0100000000000000007", minutes=100),
        sell("v2", "0.9", "98", fee="0.33", minutes=101),
        sell("v3", "0.8", "97", fee="0.07", minutes=102),
    ]

    match = match_exits(trades, real)

    assert len(match.backfilled) == 4
    charged: dict[str, Decimal] = {}
    for b in match.backfilled:
        for part in b.parts:
            charged[part.fill.fill_id] = charged.get(part.fill.fill_id, Decimal(0)) + part.fee
    assert charged == {f.fill_id: f.fee for f in real}


def test_split_fee_shares_add_up_to_the_fee() -> None:
    shares = split_fee(d("1"), d("3"), [d(1), d(1), d(1)])
    assert shares == (d("0.333333333333333333"), d("0.333333333333333334"), d("0.333333333333333333"))
    assert sum(shares) == d(1)


# --- what is not found, and what is left out ----------------------------------------------------------------


def test_a_trade_only_partly_covered_stays_estimated_and_a_later_trade_does_not_take_its_fills() -> None:
    opening = [buy("b1", "5", "100", minutes=1), buy("b2", "5", "100", minutes=2)]
    trades = estimated(*opening, close=mark_close("sell", "10"))
    real = [sell("v1", "3", "95", minutes=100)]

    match = match_exits(trades, real)

    assert match.backfilled == ()
    assert match.not_found == tuple(trades)
    assert match.fills == ()


def test_the_first_trade_covered_and_the_second_only_partly() -> None:
    opening = [buy("b1", "5", "100", minutes=1), buy("b2", "5", "100", minutes=2)]
    trades = estimated(*opening, close=mark_close("sell", "10"))
    real = [sell("v1", "5", "95", minutes=100), sell("v2", "2", "94", minutes=101)]

    match = match_exits(trades, real)

    assert [b.trade.trade_id for b in match.backfilled] == [1]
    assert match.not_found == (trades[1],)
    assert [f.fill_id for f in match.fills] == ["v1"]


def test_no_fills_at_all_leaves_every_trade_not_found() -> None:
    trades = estimated(buy("b1", "1", "100", minutes=1), close=mark_close("sell", "1"))
    assert match_exits(trades, []) == ExitMatch(backfilled=(), not_found=tuple(trades))


def test_fills_the_books_already_hold_are_left_out() -> None:
    trades = estimated(buy("b1", "1", "100", minutes=1), close=mark_close("sell", "1"))
    real = [sell("v1", "1", "95", minutes=100), sell("v2", "1", "96", minutes=110)]

    match = match_exits(trades, real, known_fill_ids={"v1"})

    assert match.backfilled[0].fill_ids == ("v2",)


def test_fills_before_the_entry_or_after_the_estimate_or_on_another_instrument_do_not_count() -> None:
    trades = estimated(buy("b1", "1", "100", minutes=10), close=mark_close("sell", "1"))
    real = [
        sell("early", "1", "80", minutes=5),
        sell("other", "1", "81", key=ETH, minutes=100),
        sell("late", "1", "82", minutes=ESTIMATE_AT + 1),
    ]

    assert match_exits(trades, real).not_found == tuple(trades)
    assert match_exits(trades, [*real, sell("v1", "1", "83", minutes=ESTIMATE_AT)]).backfilled[0].fill_ids == ("v1",)


def test_a_repeated_venue_fill_id_counts_once() -> None:
    trades = estimated(buy("b1", "2", "100", minutes=1), close=mark_close("sell", "2"))
    real = [sell("v1", "1", "95", minutes=100), sell("v1", "1", "95", minutes=100)]

    assert match_exits(trades, real).not_found == tuple(trades)


def test_instruments_are_matched_separately_and_results_keep_the_given_order() -> None:
    btc = estimated(buy("b1", "1", "100", minutes=1), close=mark_close("sell", "1"))
    eth = [
        EstimatedTrade(2, ETH, t.side, t.quantity, t.entry_price, t.entry_fee, t.entry_time, t.exit_price, t.exit_time)
        for t in estimated(buy("e1", "2", "50", key=ETH, minutes=1), close=mark_close("sell", "2", "45", ETH))
    ]
    real = [sell("ve", "2", "48", key=ETH, minutes=50), sell("vb", "1", "99", minutes=60)]

    match = match_exits([*btc, *eth], real)

    assert [(b.trade.key, b.fill_ids) for b in match.backfilled] == [(BTC, ("vb",)), (ETH, ("ve",))]
    assert [f.fill_id for f in match.fills] == ["ve", "vb"]


# --- labels ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kinds", "label"),
    [
        ((FillKind.TRADE,), "closed by hand at the venue"),
        ((FillKind.LIQUIDATION,), "liquidated by the venue"),
        ((FillKind.ADL,), "auto-deleveraged by the venue"),
        ((FillKind.TRADE, FillKind.ADL), "auto-deleveraged by the venue"),
        ((FillKind.ADL, FillKind.LIQUIDATION), "liquidated by the venue"),
        ((FillKind.LIQUIDATION, FillKind.TRADE), "liquidated by the venue"),
    ],
)
def test_the_exit_reason_names_the_most_severe_cause(kinds: tuple[FillKind, ...], label: str) -> None:
    qty = str(len(kinds))
    trades = estimated(buy("b1", qty, "100", minutes=1), close=mark_close("sell", qty))
    real = [sell(f"v{i}", "1", "90", kind=kind, minutes=100 + i) for i, kind in enumerate(kinds)]

    (done,) = match_exits(trades, real).backfilled

    assert done.exit_reason == label
    assert done.kind is max(kinds, key=[FillKind.TRADE, FillKind.EXPIRY, FillKind.ADL, FillKind.LIQUIDATION].index)
    assert EXIT_REASONS[done.kind] == label


def test_matching_is_deterministic_and_leaves_its_inputs_alone() -> None:
    opening = [buy("b1", "4", "100", minutes=1), buy("b2", "4", "100", minutes=2)]
    trades = estimated(*opening, close=mark_close("sell", "8"))
    real = [sell("v2", "5", "91", fee="0.7", minutes=110), sell("v1", "3", "90", fee="0.3", minutes=100)]
    before = (list(trades), list(real))

    assert match_exits(trades, real) == match_exits(trades, list(reversed(real)))
    assert (list(trades), list(real)) == before
