"""A run's summary figures from books, snapshot and plan: counts per side, what the plan does to the books'
positions, and the venue's value at mark per currency."""

from __future__ import annotations

from decimal import Decimal

from reconciliation.plan import plan
from reconciliation.policy import Policy, Rules, Strategy
from reconciliation.summary import summarize, value_at_mark
from reconciliation.values import Books, Cash, InstrumentKey, Lot, LotSide, Snapshot, VenuePosition
from tests.reconciliation.recon_builders import T0

SYNC = Rules(policy=Policy(Strategy.SYNC_TO_BROKER, Strategy.SYNC_TO_BROKER, Strategy.SYNC_TO_BROKER), grace_seconds=0)
WARN = Rules(policy=Policy(Strategy.WARN_ONLY, Strategy.WARN_ONLY, Strategy.WARN_ONLY), grace_seconds=0)
HELD, GONE, SHRUNK, NEW = (InstrumentKey("linear", s) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"))


def lot(key: InstrumentKey, qty: str) -> Lot:
    return Lot(f"entry-{key.symbol}", key, LotSide.LONG, Decimal(qty), Decimal(qty), Decimal(100), T0)


def held(key: InstrumentKey, qty: str, mark: str | None, currency: str | None = "USDT") -> VenuePosition:
    return VenuePosition(key, Decimal(qty), Decimal(100), Decimal(mark) if mark else None, currency)


BOOKS = Books(lots={k: (lot(k, q),) for k, q in ((HELD, "2"), (GONE, "3"), (SHRUNK, "10"))})
SNAPSHOT = Snapshot(
    as_of=T0,
    positions=(held(HELD, "2", "50000"), held(SHRUNK, "4", "150.5"), held(NEW, "-1000", "0.5"), held(GONE, "0", "9")),
    cash=Cash("USDT", Decimal(0)),
)


def test_sync_to_broker_adds_removes_and_adjusts_and_the_venue_is_valued_at_mark() -> None:
    summary = summarize(BOOKS, SNAPSHOT, plan(BOOKS, SNAPSHOT, SYNC, T0))

    assert (summary.venue_positions, summary.book_positions) == (3, 3)  # the flat ETH row is no position
    assert (summary.added, summary.removed, summary.adjusted) == (1, 1, 1)
    assert summary.value_at_mark == {"USDT": Decimal("101102")}  # 2 × 50000 + 4 × 150.5 + |-1000| × 0.5
    assert summary.unvalued == 0


def test_findings_that_only_warn_change_no_position() -> None:
    summary = summarize(BOOKS, SNAPSHOT, plan(BOOKS, SNAPSHOT, WARN, T0))

    assert (summary.added, summary.removed, summary.adjusted) == (0, 0, 0)
    assert (summary.venue_positions, summary.book_positions) == (3, 3)


def test_in_sync_books_count_the_same_on_both_sides_and_nothing_changes() -> None:
    books = Books(lots={HELD: (lot(HELD, "2"),)})
    snapshot = Snapshot(as_of=T0, positions=(held(HELD, "2", "50000"),), cash=None)

    summary = summarize(books, snapshot, plan(books, snapshot, SYNC, T0))

    assert (summary.venue_positions, summary.book_positions, summary.added, summary.removed, summary.adjusted) == (
        1, 1, 0, 0, 0,
    )  # fmt: skip


def test_each_currency_is_summed_apart_options_count_100_shares_and_what_cannot_be_valued_is_counted() -> None:
    option = InstrumentKey("us_option", "SPY261218P00570000")
    positions = (
        held(option, "-2", "4.1", "USD"),
        held(InstrumentKey("us_equity", "AAPL"), "10", "192.5", "USD"),
        held(HELD, "0.5", "50000.1", "USDT"),
        held(InstrumentKey("linear", "ETHPERP"), "1", "3000", "USDC"),
        held(NEW, "5", None, "USDT"),  # no mark
        held(InstrumentKey("inverse", "BTCUSD"), "100", "50000", None),  # no currency it is valued in
    )

    values, unvalued = value_at_mark(positions)

    assert values == {"USD": Decimal("2745.0"), "USDC": Decimal("3000"), "USDT": Decimal("25000.05")}
    assert list(values) == ["USD", "USDC", "USDT"]
    assert unvalued == 2
