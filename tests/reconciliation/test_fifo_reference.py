"""The FIFO engine against the exact reference of bench/fifo_reference.py, bounded to a few seconds.

The benchmark replays 100,000 random sequences; here: a fixed-seed slice of the same generator, a hypothesis
property with fills of its own, values worked out by hand for the reference, and engines broken on purpose to
show that the checker reports what it must (so these tests cannot pass by checking nothing).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.fifo_reference import (
    DEFAULT_SEED,
    EXACT,
    KEYS,
    LIMIT,
    FillSpec,
    PositionFunction,
    ReplayFunction,
    check_sequence,
    describe_failure,
    main,
    reference_position,
    reference_replay,
    run,
    sequence_for,
    show,
)
from reconciliation.fifo import ReplayOutcome, apply_fill, position_of, replay
from reconciliation.values import WIDE, ZERO, Fill, InstrumentKey, Lot, Position, Source, Trade

SEQUENCES = 2_000
UNIT = Decimal("1e-18")
D = Decimal
F = Fraction
Fills = Iterable[tuple[Fill, Source]]
Books = dict[InstrumentKey, tuple[Lot, ...]]


def spec(fill_id: str, buy: bool, qty: str, price: str, fee: str = "0", instrument: int = 0) -> FillSpec:
    return FillSpec(fill_id, instrument, buy, D(qty), D(price), D(fee))


def whats(
    specs: list[FillSpec], replay_fn: ReplayFunction = replay, position_fn: PositionFunction = position_of
) -> list[str]:
    """What the checker found wrong with the engine (or the engine functions given) over ``specs``."""
    return [d.what for d in check_sequence(specs, replay_fn, position_fn).disagreements]


def within_18_places(value: Decimal) -> bool:
    return value == value.quantize(UNIT, context=EXACT)


# --- the engine agrees with the reference --------------------------------------------------------------------------


def test_a_fixed_seed_slice_of_the_benchmark_finds_no_disagreement() -> None:
    result = run(SEQUENCES, DEFAULT_SEED)

    assert result.failure is None, describe_failure(result.failure)
    assert result.sequences == SEQUENCES
    covered = {name for name, count in result.counts.items() if count > 0}
    assert covered >= {
        "flips through zero",
        "partial position closes",
        "closes to flat",
        "fills closing several lots",
        "partial lot closes",
        "rebates",
        "gross P&L rounded",
        "gross P&L on a rounding tie",
    }


def decimals(int_digits: int) -> st.SearchStrategy[Decimal]:
    """Positive decimals below 10**int_digits with 0 to 18 decimal places."""
    return st.integers(0, 18).flatmap(
        lambda places: st.integers(1, 10 ** (int_digits + places) - 1).map(lambda m: D(f"{m}E-{places}"))
    )


# Quarters and eighths make exact flattening, lot-boundary closes and rounding ties frequent; the rest is wide.
quantities = st.one_of(st.integers(1, 12).map(lambda n: D(n) / 4), decimals(12))
prices = st.one_of(st.integers(1, 400).map(lambda n: D(n) / 8), decimals(9))
fees = st.one_of(st.just(ZERO), decimals(4), decimals(4).map(lambda fee: -fee))
MOVES = ("any", "add", "reduce", "flatten", "flip")


@st.composite
def fill_specs(draw: st.DrawFn) -> list[FillSpec]:
    """1-20 fills on up to three instruments; each is a move against what the instrument holds by then."""
    held: dict[int, Decimal] = {}
    specs: list[FillSpec] = []
    for number in range(draw(st.integers(1, 20))):
        instrument = draw(st.integers(0, len(KEYS) - 1))
        position = held.get(instrument, ZERO)
        move, qty = draw(st.sampled_from(MOVES)), draw(quantities)
        buy = draw(st.booleans()) if position == ZERO or move == "any" else (position > 0) == (move == "add")
        if position != ZERO and move == "flatten":
            qty = EXACT.abs(position)
        elif position != ZERO and move == "flip":
            qty = EXACT.add(EXACT.abs(position), qty)
        specs.append(FillSpec(f"h{number}", instrument, buy, qty, draw(prices), draw(fees)))
        held[instrument] = EXACT.add(position, qty if buy else EXACT.minus(qty))
    return specs


@settings(max_examples=300, deadline=None)
@given(fill_specs())
def test_any_sequence_of_moves_agrees_with_the_reference(specs: list[FillSpec]) -> None:
    assert check_sequence(specs).disagreements == []


# --- the reference, against values worked out by hand ---------------------------------------------------------------


def test_a_commission_closed_in_thirds_is_shared_so_that_its_parts_add_up_to_it() -> None:
    specs = [spec("b", True, "3", "10", fee="1"), *(spec(f"s{n}", False, "1", "11") for n in range(3))]

    book = reference_replay(specs)

    third, rounded_up = F("0.333333333333333333"), F("0.333333333333333334")
    assert [t.fees for t in book.trades] == [third, rounded_up, third]  # 1/3, 2/3 - 1/3, 1 - 2/3
    assert [t.gross for t in book.trades] == [F(1), F(1), F(1)]
    assert whats(specs) == []


def test_one_exit_fee_shared_over_the_lots_it_closes() -> None:
    specs = [spec("b1", True, "1", "10"), spec("b2", True, "2", "10"), spec("s", False, "3", "10", fee="1")]

    book = reference_replay(specs)

    assert [(t.entry_fill_id, t.fees) for t in book.trades] == [
        ("b1", F("0.333333333333333333")),
        ("b2", F("0.666666666666666667")),
    ]
    assert whats(specs) == []


def test_a_flip_through_zero_closes_the_long_and_opens_a_short_with_the_rest_of_the_fee() -> None:
    specs = [spec("b", True, "1", "100", fee="0.3"), spec("s", False, "3", "90", fee="0.9")]

    book = reference_replay(specs)

    (trade,) = book.trades
    assert (trade.quantity, trade.gross, trade.fees) == (F(1), F(-10), F("0.6"))
    (lot,) = book.lots[0]
    assert (lot.fill_id, lot.sign, lot.remaining, lot.price, lot.commission) == ("s", -1, F(2), F(90), F("0.6"))
    assert reference_position(book, 0) == (F(-2), F(90))
    assert whats(specs) == []


def test_gross_pnl_ties_round_half_to_even() -> None:
    to_zero = [spec("b", True, "0.5", "1.000000000000000001"), spec("s", False, "0.5", "1")]
    away = [spec("b", True, "0.5", "1.000000000000000003"), spec("s", False, "0.5", "1")]

    assert reference_replay(to_zero).trades[0].gross == 0  # exactly -0.5e-18
    assert reference_replay(away).trades[0].gross == F("-0.000000000000000002")  # exactly -1.5e-18
    assert whats(to_zero) == whats(away) == []


def test_the_average_entry_is_rounded_to_18_places() -> None:
    specs = [spec("b1", True, "1", "1"), spec("b2", True, "2", "2")]

    assert reference_position(reference_replay(specs), 0) == (F(3), F("1.666666666666666667"))
    assert whats(specs) == []


# --- broken engines are caught -------------------------------------------------------------------------------------


def gross_rounded_half_up(lots: Books, fills: Fills) -> ReplayOutcome:
    """The engine, but with gross P&L rounded half-up (net kept = gross - fees)."""
    outcome = replay(lots, fills)
    trades = []
    with localcontext(WIDE):
        for t in outcome.trades:
            exact = (t.exit_price - t.entry_price) * t.quantity * t.side.sign
            gross = exact.quantize(UNIT, rounding=ROUND_HALF_UP)
            trades.append(replace(t, gross_pnl=gross, net_pnl=gross - t.fees))
    return replace(outcome, trades=tuple(trades))


def test_a_gross_rounded_half_up_is_caught_although_it_is_within_half_a_unit() -> None:
    tie = [spec("b", True, "0.5", "1.000000000000000001"), spec("s", False, "0.5", "1")]

    found = whats(tie, replay_fn=gross_rounded_half_up)

    assert found == ["trade #0", "total realized gross P&L"]  # the bound on the total alone would let it pass


def fee_one_unit_off(lots: Books, fills: Fills) -> ReplayOutcome:
    """The engine, but the first trade's fees are one unit (1e-18) too high, its net consistent with them."""
    outcome = replay(lots, fills)
    if not outcome.trades:
        return outcome
    first = outcome.trades[0]
    with localcontext(WIDE):
        wrong = replace(first, fees=first.fees + UNIT, net_pnl=first.net_pnl - UNIT)
    return replace(outcome, trades=(wrong, *outcome.trades[1:]))


def test_a_fee_share_one_unit_off_is_caught() -> None:
    specs = [spec("b", True, "3", "10", fee="1"), spec("s", False, "1", "11")]

    found = whats(specs, replay_fn=fee_one_unit_off)

    assert found == [
        "trade #0",
        "total fees of trades",
        "fees: trades' fees + commission the open lots carry = the fills' fees",
    ]


def one_unit_more_in_the_first_lot(lots: Books, fills: Fills) -> ReplayOutcome:
    outcome = replay(lots, fills)
    tampered = {
        key: (replace(found[0], remaining=EXACT.add(found[0].remaining, UNIT)), *found[1:])
        for key, found in outcome.lots.items()
    }
    return replace(outcome, lots=tampered)


def test_a_tampered_lot_is_caught_in_generated_sequences() -> None:
    result = run(20, DEFAULT_SEED, replay_fn=one_unit_more_in_the_first_lot, shrink_failure=False)

    assert result.failure is not None
    assert result.failure.smallest is None
    found = [d.what for d in result.failure.disagreements]
    assert any(what.startswith("open lots of") for what in found)
    assert any(what.endswith("buys - sells = signed position = lots' signed remainders") for what in found)


def last_in_first_out(lots: Books, fills: Fills) -> ReplayOutcome:
    """A LIFO engine: the newest lot is closed first."""
    current = dict(lots)
    trades: list[Trade] = []
    opened: list[Lot] = []
    for fill, source in fills:
        outcome = apply_fill(tuple(reversed(current.get(fill.key, ()))), fill, source)
        kept = [lot for lot in outcome.lots if lot is not outcome.opened]
        current[fill.key] = (*reversed(kept), *([outcome.opened] if outcome.opened else []))
        trades += outcome.trades
        opened += [outcome.opened] if outcome.opened else []
    return ReplayOutcome({key: value for key, value in current.items() if value}, tuple(trades), tuple(opened))


def test_a_lifo_engine_is_caught_and_shrunk_to_two_buys_and_a_sell() -> None:
    result = run(200, DEFAULT_SEED, replay_fn=last_in_first_out)

    assert result.failure is not None
    smallest = result.failure.smallest
    assert smallest is not None
    assert len(smallest) == 3
    assert len({s.buy for s in smallest[:2]}) == 1
    assert smallest[2].buy != smallest[0].buy
    assert describe_failure(result.failure).count("engine   :") == 2  # the sequence's, and the shrunk one's


def rebates_dropped(lots: Books, fills: Fills) -> ReplayOutcome:
    """The engine, but negative fees (rebates) are taken as zero."""
    return replay(lots, ((replace(fill, fee=max(fill.fee, ZERO)), source) for fill, source in fills))


def test_dropped_rebates_are_caught_and_shrunk_to_one_fill_with_a_rebate() -> None:
    result = run(200, DEFAULT_SEED, replay_fn=rebates_dropped)

    assert result.failure is not None
    assert result.failure.smallest is not None
    (lone,) = result.failure.smallest
    assert lone.fee < 0
    report = describe_failure(result.failure)
    assert f"--seed {DEFAULT_SEED} --only {result.failure.index}" in report
    assert f"commission {show(lone.fee)}" in report  # what the reference says the lot carries


def average_truncated(key: InstrumentKey, lots: Sequence[Lot]) -> Position:
    """The engine's position, but with the average entry cut to 18 places instead of rounded."""
    position = position_of(key, lots)
    if position.avg_entry is None:
        return position
    with localcontext(WIDE):
        cost = sum((lot.entry_price * lot.remaining for lot in position.lots), ZERO)
        size = sum((lot.remaining for lot in position.lots), ZERO)
        return replace(position, avg_entry=(cost / size).quantize(UNIT, rounding=ROUND_DOWN))


def test_an_average_entry_truncated_instead_of_rounded_is_caught() -> None:
    specs = [spec("b1", True, "1", "1"), spec("b2", True, "2", "2")]

    found = whats(specs, position_fn=average_truncated)

    assert found == [f"position_of {KEYS[0]} (signed qty, average entry)"]


def test_an_engine_that_raises_is_a_disagreement() -> None:
    def raising(lots: Books, fills: Fills) -> ReplayOutcome:
        raise ZeroDivisionError("boom")

    assert whats([spec("b", True, "1", "1")], replay_fn=raising) == ["the engine raised"]


# --- the generator and the command ---------------------------------------------------------------------------------


def test_sequences_are_reproducible_and_stay_within_the_stored_range() -> None:
    assert sequence_for(DEFAULT_SEED, 7) == sequence_for(DEFAULT_SEED, 7)
    assert sequence_for(DEFAULT_SEED, 7) != sequence_for(DEFAULT_SEED + 1, 7)
    for index in range(300):
        for s in sequence_for(DEFAULT_SEED, index):
            assert ZERO < s.qty < LIMIT and ZERO < s.price < LIMIT and abs(s.fee) < LIMIT
            assert within_18_places(s.qty) and within_18_places(s.price) and within_18_places(s.fee)


def test_the_command_prints_zero_disagreements_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sequences", "100", "--seed", "7"]) == 0

    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "0 disagreements in 100 sequences"
    assert "sequences/s" in out
    assert " 5 / 100 sequences" in err
