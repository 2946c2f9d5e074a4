"""The books' own numbers at scale: random fill sequences through the FIFO engine and an exact reference.

    .venv/bin/python bench/fifo_reference.py [--sequences 100000] [--seed 20261201] [--only INDEX] [--no-shrink]

Every sequence (1-40 fills on 1-3 instruments: longs, shorts, adds, partial closes, closes to flat, flips through
zero; quantities and prices with up to 18 decimal places from 1e-18 to just under 1e20; fees zero, positive or
negative) is generated from its own seed, ``"<seed>/<index>"``, so any one of them can be replayed alone with
``--only INDEX``. It goes through the engine (``reconciliation.fifo.replay`` and ``position_of``) and through the
reference in this file: a FIFO queue of lots per instrument over ``fractions.Fraction``, written from the
engine's contract and sharing no code with it. The contract, and how each part is checked:

* Quantities and prices are never rounded. The open lots (opening fill, side, quantity, remaining, entry price,
  in FIFO order), each trade's lots, quantity and prices, and the signed position must equal the reference
  exactly; per instrument, buys minus sells must equal the signed position and the lots' signed remainders.
* A trade's gross P&L is (exit - entry) x quantity x side, rounded half-even to 18 places: it must equal the
  reference's exact value so rounded, and the total gross may differ from the exact rational total by at most
  (number of trades) x 0.5e-18.
* Fees are shared by quantity. The share of a fee carried by the first q of Q units is fee x q / Q rounded
  half-even to 18 places (the whole fee when q = Q), and a part is the difference of two such shares, so the parts
  of a fee add up to it exactly. A trade's fees are the entry part of its lot's commission plus the exit part of
  the closing fill's fee; a lot's commission is its fill's fee less the exit parts that fill used. Each must equal
  the reference exactly; net = gross - fees for every trade; and trades' fees plus what the open lots still carry
  must add up to the fills' fees exactly (the reference checks the same of every single fee).
* ``position_of``'s average entry is sum(price x remaining) / sum(remaining) rounded half-even to 18 places
  (None when flat).

Progress goes to stderr (every N/20 sequences); then the throughput, what the sequences covered (flips, partial
closes, roundings, ...), and either "0 disagreements in N sequences" or the first disagreement: the sequence,
its fills, what the engine said and what the reference said, and the smallest sub-sequence found (by dropping
fills) that still disagrees. Exit status 0 when there was no disagreement, 1 otherwise. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Context, Decimal
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as `python bench/fifo_reference.py` from anywhere
    sys.path.insert(0, str(ROOT))

from reconciliation.fifo import ReplayOutcome, position_of, replay  # noqa: E402
from reconciliation.values import Fill, InstrumentKey, Lot, LotSide, Position, Side, Source, Trade  # noqa: E402

DEFAULT_SEQUENCES = 100_000
DEFAULT_SEED = 20261201
MAX_FILLS = 40
KEYS = (
    InstrumentKey("linear", "BTCUSDT"),
    InstrumentKey("linear", "ETHUSDT", 1),
    InstrumentKey("linear", "ETHUSDT", 2),
)
START = datetime(2026, 1, 1, tzinfo=UTC)
ZERO = Decimal(0)
LIMIT = Decimal("1e20")  # every generated quantity, price and |fee| stays below it
#: Generator arithmetic (sums of positions, products for partial closes) must never round.
EXACT = Context(prec=120)
SCALE = 10**18
HALF_UNIT = Fraction(1, 2 * SCALE)

# Decimal places and integer digits the generator draws from: many places often, every magnitude sometimes.
PLACES = (0, 1, 2, 4, 6, 8, 8, 10, 12, 12, 15, 16, 18, 18, 18)
QTY_DIGITS = (0, 0, 1, 2, 3, 4, 6, 9, 12, 20)
PRICE_DIGITS = (0, 1, 2, 3, 4, 5, 6, 9, 20)
FEE_DIGITS = (0, 0, 0, 1, 2, 4, 8)


# --- fills as plain data ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FillSpec:
    """One fill as plain data that both the engine and the reference read; ``instrument`` indexes ``KEYS``."""

    fill_id: str
    instrument: int
    buy: bool
    qty: Decimal
    price: Decimal
    fee: Decimal = ZERO

    @property
    def sign(self) -> int:
        return 1 if self.buy else -1

    def describe(self) -> str:
        side = "buy " if self.buy else "sell"
        return f"{self.fill_id:>4} {KEYS[self.instrument]!s:<18} {side} {self.qty:f} @ {self.price:f} fee {self.fee:f}"

    def literal(self) -> str:
        """The fill as Python source, to paste into a test."""
        return (
            f'FillSpec("{self.fill_id}", {self.instrument}, {self.buy}, Decimal("{self.qty:f}"), '
            f'Decimal("{self.price:f}"), Decimal("{self.fee:f}"))'
        )


# --- the generator ----------------------------------------------------------------------------------------------


def random_decimal(rng: random.Random, int_digits: int, places: int) -> Decimal:
    """A positive decimal below 10**int_digits with at most ``places`` decimals, of any magnitude down to 1e-places."""
    width = rng.randint(1, max(1, int_digits + places))
    mantissa = rng.randrange(10 ** (width - 1), 10**width)
    return Decimal(f"{mantissa}E-{places}")  # from text: exact, whatever the context's precision


def truncated(value: Decimal, places: int) -> Decimal:
    """``value`` cut (towards zero) to ``places`` decimals."""
    return value.quantize(Decimal(f"1E-{places}"), rounding=ROUND_DOWN, context=EXACT)


def random_quantity(rng: random.Random) -> Decimal:
    return random_decimal(rng, rng.choice(QTY_DIGITS), rng.choice(PLACES))


def random_fee(rng: random.Random) -> Decimal:
    """Zero (20 %), a rebate, negative (15 %), or a positive fee."""
    roll = rng.random()
    if roll < 0.2:
        return ZERO
    fee = random_decimal(rng, rng.choice(FEE_DIGITS), rng.choice(PLACES))
    return EXACT.minus(fee) if roll < 0.35 else fee


def next_price(rng: random.Random, last: Decimal | None) -> Decimal:
    """A new price, the same price again, or the last one moved by up to 20 %, cut to random places."""
    roll = rng.random()
    if last is None or roll < 0.25:
        return random_decimal(rng, rng.choice(PRICE_DIGITS), rng.choice(PLACES))
    if roll < 0.4:
        return last
    moved = truncated(EXACT.multiply(last, Decimal(1 + rng.uniform(-0.2, 0.2))), rng.choice(PLACES))
    return moved if ZERO < moved < LIMIT else last


def partial_quantity(rng: random.Random, held: Decimal) -> Decimal:
    """Some of ``held``, strictly between nothing and all of it when it can be; all of it otherwise."""
    for places in (rng.choice(PLACES), 18):
        part = truncated(EXACT.multiply(held, Decimal(rng.random())), places)
        if ZERO < part < held and part < LIMIT:
            return part
    return held if held < LIMIT else random_quantity(rng)


def next_move(rng: random.Random, position: Decimal, earlier: Sequence[Decimal]) -> tuple[bool, Decimal]:
    """Side (True: buy) and quantity of the next fill on an instrument holding ``position`` (signed).

    Flat: a random side. Otherwise: add (20 %), partial close (15 %), reduce by the quantity of an ``earlier``
    fill, which often ends exactly on a lot's boundary (10 %), close to flat (15 %), flip through zero (25 %), or
    any side and quantity (15 %).
    """
    held = EXACT.abs(position)
    roll = rng.random()
    if held == ZERO or roll >= 0.85:
        return rng.random() < 0.5, random_quantity(rng)
    reducing = position < ZERO  # a buy reduces a short
    if roll < 0.2:
        return not reducing, random_quantity(rng)
    if roll < 0.35 or held >= LIMIT:
        return reducing, partial_quantity(rng, held)
    if roll < 0.45:
        return reducing, rng.choice(earlier)
    if roll < 0.6:
        return reducing, held
    flipped = EXACT.add(held, random_quantity(rng))
    return reducing, flipped if flipped < LIMIT else held


def random_sequence(rng: random.Random) -> list[FillSpec]:
    """1-40 fills on 1-3 instruments, each instrument's prices following a random walk with jumps."""
    instruments = rng.sample(range(len(KEYS)), rng.randint(1, len(KEYS)))
    positions = dict.fromkeys(instruments, ZERO)
    prices: dict[int, Decimal | None] = dict.fromkeys(instruments)
    earlier: dict[int, list[Decimal]] = {i: [] for i in instruments}
    fills: list[FillSpec] = []
    for number in range(rng.randint(1, MAX_FILLS)):
        instrument = rng.choice(instruments)
        buy, qty = next_move(rng, positions[instrument], earlier[instrument])
        price = prices[instrument] = next_price(rng, prices[instrument])
        fills.append(FillSpec(f"f{number}", instrument, buy, qty, price, random_fee(rng)))
        positions[instrument] = EXACT.add(positions[instrument], qty if buy else EXACT.minus(qty))
        earlier[instrument].append(qty)
    return fills


def sequence_for(seed: int, index: int) -> list[FillSpec]:
    """Sequence ``index`` of ``seed``: the same on every machine and run, independent of the others."""
    return random_sequence(random.Random(f"{seed}/{index}"))


# --- the reference: exact rationals, a FIFO queue per instrument --------------------------------------------------

NOTHING = Fraction(0)


def round18(value: Fraction) -> Fraction:
    """``value`` rounded half-even to 18 decimal places (``round`` of a Fraction rounds half to even)."""
    return Fraction(round(value * SCALE), SCALE)


def fee_share(total: Fraction, part: Fraction, whole: Fraction) -> Fraction:
    """The share of ``total`` carried by the first ``part`` of ``whole`` units: rounded, the whole at the end."""
    if part == whole:
        return total
    if not total or not part:
        return NOTHING
    return round18(total * part / whole)


def fee_part(total: Fraction, before: Fraction, after: Fraction, whole: Fraction) -> Fraction:
    """The part of ``total`` carried by units ``before`` to ``after`` of ``whole``."""
    return fee_share(total, after, whole) - fee_share(total, before, whole)


@dataclass(frozen=True, slots=True)
class ExactFill:
    """A fill's numbers as exact rationals, converted once per sequence."""

    spec: FillSpec
    qty: Fraction
    price: Fraction
    fee: Fraction

    @classmethod
    def of(cls, spec: FillSpec) -> ExactFill:
        return cls(spec, Fraction(spec.qty), Fraction(spec.price), Fraction(spec.fee))

    @property
    def signed_qty(self) -> Fraction:
        return self.qty if self.spec.buy else -self.qty


@dataclass(slots=True)
class RefLot:
    fill_id: str
    sign: int
    quantity: Fraction
    remaining: Fraction
    price: Fraction
    commission: Fraction

    @property
    def closed(self) -> Fraction:
        return self.quantity - self.remaining

    def carried_commission(self) -> Fraction:
        """The part of the lot's commission that no trade has taken yet."""
        return self.commission - fee_share(self.commission, self.closed, self.quantity)


@dataclass(frozen=True, slots=True)
class RefTrade:
    instrument: int
    entry_fill_id: str
    exit_fill_id: str
    sign: int
    quantity: Fraction
    entry_price: Fraction
    exit_price: Fraction
    exact_gross: Fraction
    gross: Fraction  # exact_gross rounded half-even to 18 places
    entry_fee: Fraction
    exit_fee: Fraction

    @property
    def fees(self) -> Fraction:
        return self.entry_fee + self.exit_fee


@dataclass
class RefBook:
    """What the reference holds after a sequence; ``fee_parts`` lists, per fill, the parts its fee went to."""

    fills: list[ExactFill]
    lots: dict[int, deque[RefLot]] = field(default_factory=dict)
    trades: list[RefTrade] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    fee_parts: dict[str, list[Fraction]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)


def reference_replay(specs: Sequence[FillSpec]) -> RefBook:
    book = RefBook([ExactFill.of(spec) for spec in specs])
    for fill in book.fills:
        reference_fill(book, fill)
    return book


def reference_fill(book: RefBook, fill: ExactFill) -> None:
    """Close the oldest opposite lots first; what is left of the fill opens a lot on its own side."""
    spec = fill.spec
    queue = book.lots.setdefault(spec.instrument, deque())
    book.fee_parts[spec.fill_id] = []
    matched = NOTHING
    closed_lots = 0
    while queue and queue[0].sign != spec.sign and matched < fill.qty:
        lot = queue[0]
        closing = min(lot.remaining, fill.qty - matched)
        book.trades.append(reference_trade(book, fill, lot, closing, matched))
        book.counts["partial lot closes" if closing < lot.remaining else "whole lot closes"] += 1
        lot.remaining -= closing
        matched += closing
        closed_lots += 1
        if not lot.remaining:
            queue.popleft()
    if matched < fill.qty:
        rest = fill.qty - matched
        commission = fill.fee - fee_share(fill.fee, matched, fill.qty)
        queue.append(RefLot(spec.fill_id, spec.sign, rest, rest, fill.price, commission))
        book.opened.append(spec.fill_id)
    count_fill(book.counts, fill, closed_lots, matched, flat=not queue)


def reference_trade(book: RefBook, fill: ExactFill, lot: RefLot, closing: Fraction, matched: Fraction) -> RefTrade:
    exact_gross = (fill.price - lot.price) * closing * lot.sign
    closed = lot.closed
    trade = RefTrade(
        instrument=fill.spec.instrument,
        entry_fill_id=lot.fill_id,
        exit_fill_id=fill.spec.fill_id,
        sign=lot.sign,
        quantity=closing,
        entry_price=lot.price,
        exit_price=fill.price,
        exact_gross=exact_gross,
        gross=round18(exact_gross),
        entry_fee=fee_part(lot.commission, closed, closed + closing, lot.quantity),
        exit_fee=fee_part(fill.fee, matched, matched + closing, fill.qty),
    )
    book.fee_parts[lot.fill_id].append(trade.entry_fee)
    book.fee_parts[fill.spec.fill_id].append(trade.exit_fee)
    count_roundings(book.counts, trade)
    return trade


def count_fill(counts: Counter[str], fill: ExactFill, closed_lots: int, matched: Fraction, flat: bool) -> None:
    """What kind of move the fill was, for the coverage line of the report."""
    counts["fills"] += 1
    if not matched:
        counts["fills opening or adding"] += 1
    elif matched < fill.qty:
        counts["flips through zero"] += 1
    elif flat:
        counts["closes to flat"] += 1
    else:
        counts["partial position closes"] += 1
    if closed_lots > 1:
        counts["fills closing several lots"] += 1
    if fill.fee < 0:
        counts["rebates"] += 1


def count_roundings(counts: Counter[str], trade: RefTrade) -> None:
    counts["trades"] += 1
    if trade.gross != trade.exact_gross:
        counts["gross P&L rounded"] += 1
        if (trade.exact_gross * SCALE).denominator == 2:
            counts["gross P&L on a rounding tie"] += 1


def reference_position(book: RefBook, instrument: int) -> tuple[Fraction, Fraction | None]:
    """Signed quantity and average entry (rounded to 18 places; None when flat) of one instrument."""
    lots = book.lots.get(instrument, deque())
    size = sum((lot.remaining for lot in lots), NOTHING)
    signed = sum((lot.remaining * lot.sign for lot in lots), NOTHING)
    if not size:
        return signed, None
    return signed, round18(sum((lot.price * lot.remaining for lot in lots), NOTHING) / size)


def bought_minus_sold(book: RefBook, instrument: int) -> Fraction:
    return sum((fill.signed_qty for fill in book.fills if fill.spec.instrument == instrument), NOTHING)


# --- the engine -------------------------------------------------------------------------------------------------

ReplayFunction = Callable[[dict[InstrumentKey, tuple[Lot, ...]], Iterable[tuple[Fill, Source]]], ReplayOutcome]
PositionFunction = Callable[[InstrumentKey, Sequence[Lot]], Position]


@dataclass(frozen=True)
class EngineResult:
    outcome: ReplayOutcome
    positions: dict[int, Position]


def to_fill(spec: FillSpec, number: int) -> Fill:
    side = Side.BUY if spec.buy else Side.SELL
    time_ = START + timedelta(seconds=number)
    return Fill(spec.fill_id, KEYS[spec.instrument], side, spec.qty, spec.price, time_, fee=spec.fee)


def run_engine(
    specs: Sequence[FillSpec], replay_fn: ReplayFunction = replay, position_fn: PositionFunction = position_of
) -> EngineResult:
    """Replay the fills, recorded by the bot, from empty books; then each instrument's position."""
    fills = [to_fill(spec, number) for number, spec in enumerate(specs)]
    outcome = replay_fn({}, ((fill, Source.BOT) for fill in fills))
    instruments = sorted({spec.instrument for spec in specs})
    positions = {i: position_fn(KEYS[i], outcome.lots.get(KEYS[i], ())) for i in instruments}
    return EngineResult(outcome, positions)


# --- the comparison ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disagreement:
    """One check that failed: what was compared, what the engine said, what the reference (or the rule) said."""

    what: str
    engine: str
    reference: str


@dataclass(frozen=True)
class SequenceCheck:
    disagreements: list[Disagreement]
    counts: Counter[str]


class LotRow(NamedTuple):
    fill_id: str
    side: str
    quantity: Fraction
    remaining: Fraction
    price: Fraction
    commission: Fraction


class TradeRow(NamedTuple):
    instrument: str
    entry_fill: str
    exit_fill: str
    side: str
    qty: Fraction
    entry: Fraction
    exit: Fraction
    gross: Fraction
    fees: Fraction
    net: Fraction


@dataclass(frozen=True)
class EngineRows:
    """The engine's lots, trades and positions with every number as an exact rational."""

    lots: dict[int, list[LotRow]]
    opened: list[str]
    trades: list[TradeRow]
    positions: dict[int, tuple[Fraction, Fraction | None]]


def check_sequence(
    specs: Sequence[FillSpec], replay_fn: ReplayFunction = replay, position_fn: PositionFunction = position_of
) -> SequenceCheck:
    """Every disagreement between the engine and the reference over ``specs``, the most telling first."""
    book = reference_replay(specs)
    try:
        engine = engine_rows(run_engine(specs, replay_fn, position_fn))
    except Exception as error:  # an engine that raises disagrees with a reference that does not
        raised = Disagreement("the engine raised", f"{type(error).__name__}: {error}", "no error")
        return SequenceCheck([raised], book.counts)
    found = [
        *compare_lots(engine, book),
        *compare_trades(engine, book),
        *compare_positions(engine, book),
        *compare_totals(engine, book),
        *check_engine_invariants(engine, book),
        *check_reference_invariants(book),
    ]
    return SequenceCheck(found, book.counts)


def engine_rows(result: EngineResult) -> EngineRows:
    outcome = result.outcome
    return EngineRows(
        lots={i: [engine_lot_row(lot) for lot in outcome.lots.get(key, ())] for i, key in enumerate(KEYS)},
        opened=[lot.entry_fill_id for lot in outcome.opened],
        trades=[engine_trade_row(trade) for trade in outcome.trades],
        positions={
            i: (Fraction(p.qty), None if p.avg_entry is None else Fraction(p.avg_entry))
            for i, p in result.positions.items()
        },
    )


def engine_lot_row(lot: Lot) -> LotRow:
    return LotRow(
        lot.entry_fill_id,
        lot.side.value,
        Fraction(lot.quantity),
        Fraction(lot.remaining),
        Fraction(lot.entry_price),
        Fraction(lot.commission),
    )


def reference_lot_row(lot: RefLot) -> LotRow:
    side = LotSide.LONG.value if lot.sign > 0 else LotSide.SHORT.value
    return LotRow(lot.fill_id, side, lot.quantity, lot.remaining, lot.price, lot.commission)


def engine_trade_row(trade: Trade) -> TradeRow:
    return TradeRow(
        str(trade.key),
        trade.entry_fill_id,
        trade.exit_fill_id,
        trade.side.value,
        Fraction(trade.quantity),
        Fraction(trade.entry_price),
        Fraction(trade.exit_price),
        Fraction(trade.gross_pnl),
        Fraction(trade.fees),
        Fraction(trade.net_pnl),
    )


def reference_trade_row(trade: RefTrade) -> TradeRow:
    side = LotSide.LONG.value if trade.sign > 0 else LotSide.SHORT.value
    fees = trade.fees
    return TradeRow(
        str(KEYS[trade.instrument]),
        trade.entry_fill_id,
        trade.exit_fill_id,
        side,
        trade.quantity,
        trade.entry_price,
        trade.exit_price,
        trade.gross,
        fees,
        trade.gross - fees,
    )


def show(value: Fraction | Decimal | None) -> str:
    """A number exactly: plain decimal when it has one, else numerator/denominator."""
    if value is None:
        return "None"
    value = Fraction(value)
    rest, places = value.denominator, 0
    for prime in (2, 5):
        count = 0
        while rest % prime == 0:
            rest //= prime
            count += 1
        places = max(places, count)
    if rest != 1:
        return f"{value.numerator}/{value.denominator} (~{float(value):.20g})"
    return f"{Decimal(f'{value.numerator * 10**places // value.denominator}E-{places}'):f}"


def show_lots(rows: Sequence[LotRow]) -> str:
    if not rows:
        return "no open lots"
    return "; ".join(
        f"{row.fill_id} {row.side} qty {show(row.quantity)} remaining {show(row.remaining)} @ {show(row.price)} "
        f"commission {show(row.commission)}"
        for row in rows
    )


def show_trade(row: TradeRow) -> str:
    texts = [*row[:4], *(show(value) for value in row[4:])]
    return ", ".join(f"{name} {text}" for name, text in zip(TradeRow._fields, texts, strict=True))


def compare_lots(engine: EngineRows, book: RefBook) -> list[Disagreement]:
    found = []
    for instrument, key in enumerate(KEYS):
        theirs = [reference_lot_row(lot) for lot in book.lots.get(instrument, ())]
        if engine.lots[instrument] != theirs:
            found.append(Disagreement(f"open lots of {key}", show_lots(engine.lots[instrument]), show_lots(theirs)))
    if engine.opened != book.opened:
        found.append(Disagreement("fills that opened a lot", ", ".join(engine.opened), ", ".join(book.opened)))
    return found


def compare_trades(engine: EngineRows, book: RefBook) -> list[Disagreement]:
    theirs = [reference_trade_row(trade) for trade in book.trades]
    found = [
        Disagreement(f"trade #{number}", show_trade(mine), show_trade(expected))
        for number, (mine, expected) in enumerate(zip(engine.trades, theirs, strict=False))
        if mine != expected
    ]
    if len(engine.trades) != len(theirs):
        found.append(Disagreement("number of trades", str(len(engine.trades)), str(len(theirs))))
    return found


def compare_positions(engine: EngineRows, book: RefBook) -> list[Disagreement]:
    found = []
    for instrument, (signed, average) in engine.positions.items():
        expected = reference_position(book, instrument)
        if (signed, average) != expected:
            found.append(
                Disagreement(
                    f"position_of {KEYS[instrument]} (signed qty, average entry)",
                    f"{show(signed)}, {show(average)}",
                    f"{show(expected[0])}, {show(expected[1])}",
                )
            )
    return found


def compare_totals(engine: EngineRows, book: RefBook) -> list[Disagreement]:
    found = []
    gross = sum((row.gross for row in engine.trades), NOTHING)
    expected_gross = sum((trade.gross for trade in book.trades), NOTHING)
    if gross != expected_gross:
        found.append(Disagreement("total realized gross P&L", show(gross), show(expected_gross)))
    fees = sum((row.fees for row in engine.trades), NOTHING)
    expected_fees = sum((trade.fees for trade in book.trades), NOTHING)
    if fees != expected_fees:
        found.append(Disagreement("total fees of trades", show(fees), show(expected_fees)))
    return found


def check_engine_invariants(engine: EngineRows, book: RefBook) -> list[Disagreement]:
    """Rules the engine's own numbers must keep, whatever the reference says of each of them."""
    found = [
        Disagreement(f"trade #{number}: net = gross - fees", f"net {show(row.net)}", show(row.gross - row.fees))
        for number, row in enumerate(engine.trades)
        if row.net != row.gross - row.fees
    ]
    gross = sum((row.gross for row in engine.trades), NOTHING)
    exact = sum((trade.exact_gross for trade in book.trades), NOTHING)
    if abs(gross - exact) > len(engine.trades) * HALF_UNIT:
        found.append(
            Disagreement(
                f"total gross P&L within {len(engine.trades)} x 0.5e-18 of the exact total",
                show(gross),
                f"exact {show(exact)} (off by {show(gross - exact)})",
            )
        )
    return found + check_engine_fees_add_up(engine, book) + check_engine_quantities_add_up(engine, book)


def check_engine_fees_add_up(engine: EngineRows, book: RefBook) -> list[Disagreement]:
    """Trades' fees plus what the open lots still carry (commission less the shares taken) = all the fees."""
    taken = sum((row.fees for row in engine.trades), NOTHING)
    carried = sum(
        (
            lot.commission - fee_share(lot.commission, lot.quantity - lot.remaining, lot.quantity)
            for lots in engine.lots.values()
            for lot in lots
        ),
        NOTHING,
    )
    paid = sum((fill.fee for fill in book.fills), NOTHING)
    if taken + carried == paid:
        return []
    return [
        Disagreement(
            "fees: trades' fees + commission the open lots carry = the fills' fees",
            f"{show(taken)} + {show(carried)} = {show(taken + carried)}",
            show(paid),
        )
    ]


def check_engine_quantities_add_up(engine: EngineRows, book: RefBook) -> list[Disagreement]:
    """Per instrument: buys - sells = the signed position = the open lots' signed remainders."""
    found = []
    for instrument, (signed, _) in engine.positions.items():
        bought = bought_minus_sold(book, instrument)
        in_lots = sum(
            (lot.remaining if lot.side == LotSide.LONG.value else -lot.remaining for lot in engine.lots[instrument]),
            NOTHING,
        )
        if not bought == signed == in_lots:
            found.append(
                Disagreement(
                    f"{KEYS[instrument]}: buys - sells = signed position = lots' signed remainders",
                    f"position {show(signed)}, lots {show(in_lots)}",
                    show(bought),
                )
            )
    return found


def check_reference_invariants(book: RefBook) -> list[Disagreement]:
    """The reference's own bookkeeping: every fee's parts add up to it, quantities are conserved."""
    found = []
    carried = {lot.fill_id: lot.carried_commission() for lots in book.lots.values() for lot in lots}
    for fill in book.fills:
        fill_id = fill.spec.fill_id
        parts = sum(book.fee_parts[fill_id], NOTHING) + carried.get(fill_id, NOTHING)
        if parts != fill.fee:
            found.append(Disagreement(f"reference self-check: parts of {fill_id}'s fee", "-", show(parts)))
    for instrument in {fill.spec.instrument for fill in book.fills}:
        signed, _ = reference_position(book, instrument)
        if signed != bought_minus_sold(book, instrument):
            found.append(Disagreement(f"reference self-check: {KEYS[instrument]} quantity", "-", show(signed)))
    return found


# --- shrinking and running --------------------------------------------------------------------------------------


def shrink(specs: Sequence[FillSpec], still_fails: Callable[[list[FillSpec]], bool]) -> list[FillSpec]:
    """Drop fills one at a time while the sequence still fails, until no single fill can go."""
    current = list(specs)
    changed = True
    while changed:
        changed = False
        for number in reversed(range(len(current))):
            candidate = current[:number] + current[number + 1 :]
            if candidate and still_fails(candidate):
                current, changed = candidate, True
    return current


@dataclass(frozen=True)
class Failure:
    seed: int
    index: int
    specs: list[FillSpec]
    disagreements: list[Disagreement]
    smallest: list[FillSpec] | None = None
    smallest_disagreements: list[Disagreement] = field(default_factory=list)


@dataclass
class RunResult:
    seed: int
    sequences: int = 0
    seconds: float = 0.0
    counts: Counter[str] = field(default_factory=Counter)
    failure: Failure | None = None


def run(
    sequences: int,
    seed: int,
    *,
    first: int = 0,
    replay_fn: ReplayFunction = replay,
    position_fn: PositionFunction = position_of,
    shrink_failure: bool = True,
    progress: Callable[[RunResult], None] | None = None,
) -> RunResult:
    """Check sequences ``first`` .. ``first + sequences - 1`` of ``seed``; stop at the first that disagrees."""
    result = RunResult(seed)
    every = max(1, sequences // 20)
    started = time.perf_counter()
    for index in range(first, first + sequences):
        specs = sequence_for(seed, index)
        check = check_sequence(specs, replay_fn, position_fn)
        result.sequences += 1
        result.counts.update(check.counts)
        if check.disagreements:
            result.failure = failure_of(seed, index, specs, check.disagreements, replay_fn, position_fn, shrink_failure)
            break
        if progress is not None and result.sequences % every == 0 and result.sequences < sequences:
            result.seconds = time.perf_counter() - started
            progress(result)
    result.seconds = time.perf_counter() - started
    return result


def failure_of(
    seed: int,
    index: int,
    specs: list[FillSpec],
    disagreements: list[Disagreement],
    replay_fn: ReplayFunction,
    position_fn: PositionFunction,
    shrink_failure: bool,
) -> Failure:
    if not shrink_failure:
        return Failure(seed, index, specs, disagreements)
    smallest = shrink(specs, lambda candidate: bool(check_sequence(candidate, replay_fn, position_fn).disagreements))
    return Failure(
        seed, index, specs, disagreements, smallest, check_sequence(smallest, replay_fn, position_fn).disagreements
    )


# --- the report -------------------------------------------------------------------------------------------------

COVERAGE = (
    "fills",
    "fills opening or adding",
    "partial position closes",
    "closes to flat",
    "flips through zero",
    "fills closing several lots",
    "rebates",
    "trades",
    "partial lot closes",
    "whole lot closes",
    "gross P&L rounded",
    "gross P&L on a rounding tie",
)


def describe_disagreements(disagreements: Sequence[Disagreement], indent: str = "  ") -> list[str]:
    first = disagreements[0]
    lines = [
        f"{indent}first disagreement: {first.what}",
        f"{indent}  engine   : {first.engine}",
        f"{indent}  reference: {first.reference}",
    ]
    if len(disagreements) > 1:
        others = "; ".join(d.what for d in disagreements[1:6])
        more = f" and {len(disagreements) - 6} more" if len(disagreements) > 6 else ""
        lines.append(f"{indent}also disagreeing: {others}{more}")
    return lines


def describe_failure(failure: Failure) -> str:
    lines = [
        f"DISAGREEMENT in sequence {failure.index} of seed {failure.seed} "
        f"(replay it alone: bench/fifo_reference.py --seed {failure.seed} --only {failure.index})",
        f"fills ({len(failure.specs)}), in order:",
        *(f"  {spec.describe()}" for spec in failure.specs),
        *describe_disagreements(failure.disagreements),
    ]
    if failure.smallest is not None and failure.smallest_disagreements:
        lines += [
            f"smallest sub-sequence found that still disagrees ({len(failure.smallest)} fills):",
            *(f"  {spec.describe()}" for spec in failure.smallest),
            *describe_disagreements(failure.smallest_disagreements),
            "as Python:",
            *(f"  {spec.literal()}," for spec in failure.smallest),
        ]
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def sequences(count: int) -> str:
    return f"{count:,} sequence{'' if count == 1 else 's'}"


def describe_run(result: RunResult) -> str:
    counts = result.counts
    rate = result.sequences / result.seconds if result.seconds else 0.0
    fill_rate = counts["fills"] / result.seconds if result.seconds else 0.0
    lines = [
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs, {platform.machine()}; "
        f"{platform.python_implementation()} {platform.python_version()}",
        f"{sequences(result.sequences)} of seed {result.seed} in {result.seconds:.1f} s: {rate:,.0f} sequences/s, "
        f"{fill_rate:,.0f} fills/s (engine, reference and checks together)",
        "covered: " + ", ".join(f"{name} {counts[name]:,}" for name in COVERAGE),
    ]
    if result.failure is None:
        lines.append(f"0 disagreements in {sequences(result.sequences)}")
    else:
        lines.append(describe_failure(result.failure))
    return "\n".join(lines)


def show_progress(result: RunResult, total: int) -> None:
    rate = result.sequences / result.seconds if result.seconds else 0.0
    print(
        f"... {result.sequences:>9,} / {total:,} sequences, {result.counts['fills']:,} fills, "
        f"{result.seconds:.1f} s, {rate:,.0f} sequences/s, 0 disagreements so far",
        file=sys.stderr,
        flush=True,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--sequences", type=int, default=DEFAULT_SEQUENCES, help=f"sequences to check (default {DEFAULT_SEQUENCES})")
    add("--seed", type=int, default=DEFAULT_SEED, help=f"seed of the generator (default {DEFAULT_SEED})")
    add("--first", type=int, default=0, help="index of the first sequence (default 0)")
    add("--only", type=int, metavar="INDEX", help="check sequence INDEX alone and print its fills")
    add("--no-shrink", action="store_true", help="do not look for a smaller sequence that still disagrees")
    args = parser.parse_args(argv)
    if args.sequences < 1 or args.first < 0:
        parser.error("--sequences must be positive and --first not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.only is not None:
        print("\n".join(spec.describe() for spec in sequence_for(args.seed, args.only)))
        args.first, args.sequences = args.only, 1
    print(f"... checking {args.sequences:,} sequences of seed {args.seed}", file=sys.stderr, flush=True)
    result = run(
        args.sequences,
        args.seed,
        first=args.first,
        shrink_failure=not args.no_shrink,
        progress=lambda partial: show_progress(partial, args.sequences),
    )
    print(describe_run(result))
    return 0 if result.failure is None else 1


if __name__ == "__main__":
    sys.exit(main())
