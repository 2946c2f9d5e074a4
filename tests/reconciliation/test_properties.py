"""Properties of the engine over generated fills, books and snapshots (hypothesis, bounded to a few seconds)."""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

from hypothesis import event, given, settings
from hypothesis import strategies as st
from recon_builders import SYNC_ALL, applied, at, books_from, order, usd

from reconciliation.effects import BookFill
from reconciliation.fifo import replay
from reconciliation.findings import PositionDiscrepancy
from reconciliation.plan import Resolution, plan
from reconciliation.policy import Policy, Rules, Strategy
from reconciliation.values import (
    Books,
    Fill,
    InstrumentKey,
    Lot,
    Side,
    Snapshot,
    Source,
    VenuePosition,
)

BOUNDED = settings(max_examples=150, deadline=None)
KEY = InstrumentKey("linear", "BTCUSDT")
KEYS = (KEY, InstrumentKey("linear", "ETHUSDT", 1), InstrumentKey("linear", "ETHUSDT", 2))
AS_OF = at(600)
NOW = AS_OF + timedelta(days=1)

# Quarter units make exact flattening and zero-crossing fills frequent; fees reach 8 places and may be rebates.
quantities = st.integers(1, 400).map(lambda n: Decimal(n) / 4)
prices = st.integers(1, 10_000_000).map(lambda n: Decimal(n).scaleb(-2))
fees = st.integers(-100, 100_000).map(lambda n: Decimal(n).scaleb(-8))
sides = st.sampled_from(Side)


@st.composite
def fill_sequences(draw: st.DrawFn, key: InstrumentKey = KEY, prefix: str = "f", max_size: int = 25) -> list[Fill]:
    """Fills on one instrument in time order, with unique ids."""
    rows = draw(st.lists(st.tuples(sides, quantities, prices, fees), max_size=max_size))
    return [
        Fill(f"{prefix}{i}", key, side, qty, price, at(i), fee=fee) for i, (side, qty, price, fee) in enumerate(rows)
    ]


def open_lots(fills: list[Fill]) -> tuple[Lot, ...]:
    return replay({}, ((f, Source.BOT) for f in fills)).lots.get(KEY, ())


# --- (a) FIFO conserves quantity ---------------------------------------------------------------------------------


@BOUNDED
@given(fill_sequences())
def test_fifo_open_quantity_always_equals_the_signed_sum_of_fills_and_sits_on_one_side(fills: list[Fill]) -> None:
    lots = open_lots(fills)

    assert sum((lot.signed_remaining for lot in lots), Decimal(0)) == sum((f.signed_qty for f in fills), Decimal(0))
    assert len({lot.side for lot in lots}) <= 1
    assert all(Decimal(0) < lot.remaining <= lot.quantity for lot in lots)


# --- (b) FIFO against an independent reference ------------------------------------------------------------------


@dataclass
class RefLot:
    fill_id: str
    signed: Fraction
    price: Fraction


def reference_fifo(fills: list[Fill]) -> tuple[Fraction, list[RefLot]]:
    """Realised gross P&L and open lots by plain FIFO over exact fractions, written independently of the engine."""
    queue: deque[RefLot] = deque()
    realised = Fraction(0)
    for f in fills:
        incoming, price = Fraction(f.signed_qty), Fraction(f.price)
        while incoming and queue and (queue[0].signed > 0) != (incoming > 0):
            head = queue[0]
            direction = 1 if head.signed > 0 else -1
            take = min(abs(incoming), abs(head.signed))
            realised += (price - head.price) * take * direction
            head.signed -= direction * take
            incoming += direction * take
            if head.signed == 0:
                queue.popleft()
        if incoming:
            queue.append(RefLot(f.fill_id, incoming, price))
    return realised, list(queue)


@BOUNDED
@given(fill_sequences())
def test_fifo_realised_pnl_and_open_lots_match_a_reference_fifo_over_fractions(fills: list[Fill]) -> None:
    result = replay({}, ((f, Source.BOT) for f in fills))
    lots = result.lots.get(KEY, ())
    realised, reference_lots = reference_fifo(fills)

    engine_realised = sum((Fraction(t.gross_pnl) for t in result.trades), Fraction(0))
    assert engine_realised == realised
    assert [(lot.entry_fill_id, Fraction(lot.signed_remaining), Fraction(lot.entry_price)) for lot in lots] == [
        (ref.fill_id, ref.signed, ref.price) for ref in reference_lots
    ]
    open_cost = sum((Fraction(lot.entry_price * lot.signed_remaining) for lot in lots), Fraction(0))
    cash_flow = -sum((Fraction(f.signed_qty * f.price) for f in fills), Fraction(0))
    assert engine_realised - open_cost == cash_flow, "realised P&L and open cost account for every unit of cash"


@BOUNDED
@given(fill_sequences(), prices, fees)
def test_fifo_fees_reappear_in_trades_to_the_last_decimal_once_flat(
    fills: list[Fill], price: Decimal, fee: Decimal
) -> None:
    position = sum((f.signed_qty for f in fills), Decimal(0))
    if position:
        flatten = Side.SELL if position > 0 else Side.BUY
        fills = [*fills, Fill("flat", KEY, flatten, abs(position), price, at(len(fills)), fee=fee)]

    result = replay({}, ((f, Source.BOT) for f in fills))

    assert result.lots == {}
    assert sum((t.fees for t in result.trades), Decimal(0)) == sum((f.fee for f in fills), Decimal(0))
    assert all(t.net_pnl == t.gross_pnl - t.fees for t in result.trades)


# --- generated books and snapshots ----------------------------------------------------------------------------------

RELATIONS = ("same", "missing", "flipped", "scaled", "any")
SCALES = tuple(Decimal(n) / 4 for n in (1, 2, 3, 5, 6, 8))


@dataclass(frozen=True)
class Case:
    books: Books
    snapshot: Snapshot


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Books from bot fills on a few instruments, and a venue that agrees, lost, added, flipped or resized them.

    Some differences come with the venue's own unknown fills that explain them exactly, some with fills that
    do not, some with the venue's copies of fills the books already hold.
    """
    book_fills: list[Fill] = []
    positions: list[VenuePosition] = []
    venue_fills: list[Fill] = []
    marks: dict[InstrumentKey, Decimal] = {}
    for index, key in enumerate(KEYS):
        fills = draw(fill_sequences(key=key, prefix=f"{index}-b", max_size=8))
        book_fills.extend(fills)
        ledger = sum((f.signed_qty for f in fills), Decimal(0))
        relation = draw(st.sampled_from(RELATIONS))
        if relation == "same":
            venue = ledger
        elif relation == "missing":
            venue = Decimal(0)
        elif relation == "flipped":
            venue = -ledger if ledger else draw(quantities)
        elif relation == "scaled":
            venue = ledger * draw(st.sampled_from(SCALES))
        else:
            venue = draw(quantities) * draw(st.sampled_from((-1, 0, 1)))
        if venue or draw(st.booleans()):
            mark = draw(st.none() | prices)
            positions.append(VenuePosition(key, venue, draw(prices), mark))
        if draw(st.booleans()):
            marks[key] = draw(prices)
        if draw(st.booleans()):
            venue_fills.extend(fills[: draw(st.integers(0, len(fills)))])
        delta = venue - ledger
        explain = draw(st.sampled_from(("none", "exact", "split", "wrong")))
        if delta and explain != "none":
            parts = [delta] if explain != "split" else [delta / 2, delta - delta / 2]
            if explain == "wrong":
                parts = [delta * 3]
            for n, part in enumerate(parts):
                side = Side.BUY if part > 0 else Side.SELL
                minutes = draw(st.integers(0, 590))
                venue_fills.append(Fill(f"{index}-v{n}", key, side, abs(part), draw(prices), at(minutes)))
    books = books_from(*book_fills, expected_cash=usd("10000"), pending_orders=[order("c1", "v1")])
    snapshot = Snapshot(
        as_of=AS_OF,
        positions=tuple(positions),
        cash=usd(draw(st.sampled_from(("10000", "9990", "9000")))),
        open_orders=tuple(draw(st.sampled_from(((), (order("c1", "v1"),), (order(None, "v7"),))))),
        fills=tuple(venue_fills),
        marks=marks,
    )
    return Case(books, snapshot)


# --- (c) invariant 4: after sync_to_broker, the same snapshot is in sync ---------------------------------------------


@BOUNDED
@given(cases())
def test_after_applying_a_sync_to_broker_plan_the_same_snapshot_finds_no_position_discrepancy(case: Case) -> None:
    first = plan(case.books, case.snapshot, SYNC_ALL, NOW)
    for decision in first.decisions:
        if isinstance(decision.finding, PositionDiscrepancy):
            venue_fills = any(isinstance(e, BookFill) and e.from_venue for e in decision.effects)
            event(f"{decision.finding.kind} by {'venue fills' if venue_fills else 'synthetic fills'}")
            assert decision.outcome is Resolution.RESOLVED
    recorded = [e.fill for e in first.effects() if isinstance(e, BookFill) and e.from_venue]
    assert all(f in case.snapshot.fills and f.fill_id not in case.books.known_fill_ids for f in recorded)
    after = applied(case.books, first)

    again = plan(after, case.snapshot, SYNC_ALL, NOW)

    assert [dec.finding for dec in again.decisions if isinstance(dec.finding, PositionDiscrepancy)] == []
    assert again.book_fills() == ()
    assert set(again.matched) == set(case.snapshot.positions_by_key())
    assert after.signed_quantities() == {key: p.qty for key, p in case.snapshot.positions_by_key().items()}


# --- (d) plan is pure ---------------------------------------------------------------------------------------------

any_strategy = st.sampled_from(Strategy)
policies = st.builds(Policy, minor=any_strategy, moderate=any_strategy, critical=any_strategy)


@BOUNDED
@given(cases(), policies, st.integers(0, 120), st.integers(-3600, 3600))
def test_plan_is_pure_same_inputs_same_plan_and_inputs_untouched(
    case: Case, policy: Policy, grace_seconds: int, now_offset: int
) -> None:
    rules = Rules(policy=policy, grace_seconds=grace_seconds)
    now = AS_OF + timedelta(seconds=now_offset)
    books_before, snapshot_before = copy.deepcopy(case.books), copy.deepcopy(case.snapshot)

    first = plan(case.books, case.snapshot, rules, now)
    second = plan(case.books, case.snapshot, rules, now)

    assert first == second
    assert case.books == books_before
    assert case.snapshot == snapshot_before
    assert plan(books_before, snapshot_before, rules, now) == first, "an equal copy of the inputs plans the same"
