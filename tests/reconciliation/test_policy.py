"""Per-account policy: which strategy handles a discrepancy, with overrides by kind winning over severity."""

from __future__ import annotations

import pytest
from recon_builders import (
    AAPL,
    BTC,
    GOOGL,
    LATER,
    MSFT,
    applied,
    book_fills,
    books_from,
    buy,
    by_instrument,
    d,
    held,
    snapshot,
    trades_after,
)

from reconciliation.findings import Kind, Severity
from reconciliation.plan import Resolution, RunStatus, plan
from reconciliation.policy import Policy, Rules, Strategy
from reconciliation.values import InstrumentKey, LotSide, PositionStatus, Source

#: Seed 000: a position closed by hand or by a margin call while the bot was down is closed in the books
#: (CLOSED_EXTERNALLY); a position opened by hand at the venue is only warned about.
SEED_000 = Rules(
    policy=Policy(by_kind={Kind.MISSING_AT_VENUE: Strategy.SYNC_TO_BROKER, Kind.MISSING_IN_LEDGER: Strategy.WARN_ONLY}),
    grace_seconds=0,
)
#: Seed 001: orphaned positions at the venue are adopted into the books so the monitor protects them.
SEED_001 = Rules(policy=Policy(by_kind={Kind.MISSING_IN_LEDGER: Strategy.SYNC_TO_BROKER}), grace_seconds=0)


@pytest.mark.parametrize(
    ("severity", "strategy"),
    [
        (Severity.MINOR, Strategy.WARN_ONLY),
        (Severity.MODERATE, Strategy.WARN_ONLY),
        (Severity.CRITICAL, Strategy.HALT_AND_ALERT),
    ],
)
def test_the_default_policy_never_touches_the_books_and_halts_on_critical(
    severity: Severity, strategy: Strategy
) -> None:
    assert Policy().strategy_for(Kind.QUANTITY_MISMATCH, severity) is strategy


def test_the_strategy_for_each_severity_is_configurable() -> None:
    policy = Policy(minor=Strategy.SYNC_TO_BROKER, moderate=Strategy.SYNC_TO_LOCAL, critical=Strategy.WARN_ONLY)

    assert policy.strategy_for(Kind.QUANTITY_MISMATCH, Severity.MINOR) is Strategy.SYNC_TO_BROKER
    assert policy.strategy_for(Kind.QUANTITY_MISMATCH, Severity.MODERATE) is Strategy.SYNC_TO_LOCAL
    assert policy.strategy_for(Kind.SIDE_MISMATCH, Severity.CRITICAL) is Strategy.WARN_ONLY


@pytest.mark.parametrize("severity", list(Severity))
def test_a_kind_override_wins_over_the_severity_strategy(severity: Severity) -> None:
    policy = Policy(
        minor=Strategy.HALT_AND_ALERT,
        moderate=Strategy.HALT_AND_ALERT,
        critical=Strategy.HALT_AND_ALERT,
        by_kind={Kind.CASH_MISMATCH: Strategy.WARN_ONLY},
    )

    assert policy.strategy_for(Kind.CASH_MISMATCH, severity) is Strategy.WARN_ONLY
    assert policy.strategy_for(Kind.QUANTITY_MISMATCH, severity) is Strategy.HALT_AND_ALERT


def test_seed_000_policy_closes_vanished_positions_warns_about_manual_ones_and_still_halts_on_a_flip() -> None:
    policy = SEED_000.policy

    assert policy.strategy_for(Kind.MISSING_AT_VENUE, Severity.CRITICAL) is Strategy.SYNC_TO_BROKER
    assert policy.strategy_for(Kind.MISSING_IN_LEDGER, Severity.CRITICAL) is Strategy.WARN_ONLY
    assert policy.strategy_for(Kind.SIDE_MISMATCH, Severity.CRITICAL) is Strategy.HALT_AND_ALERT


def test_seed_000_after_a_crash_the_vanished_aapl_is_closed_externally_and_the_manual_googl_only_warned() -> None:
    books = books_from(buy("b1", "2", "180", key=AAPL), buy("b2", "5", "400", key=MSFT, minutes=1))
    venue = snapshot(held("5", "400", key=MSFT), held("3", "170", key=GOOGL), marks={AAPL: "175"})

    result = plan(books, venue, SEED_000, LATER)

    assert result.matched == (MSFT,)
    assert {key: (dec.strategy, dec.outcome) for key, dec in by_instrument(result).items()} == {
        AAPL: (Strategy.SYNC_TO_BROKER, Resolution.RESOLVED),
        GOOGL: (Strategy.WARN_ONLY, Resolution.WARNED),
    }
    assert result.status is RunStatus.WARNED
    assert [f.fill.key for f in book_fills(result)] == [AAPL]
    after = applied(books, result)
    assert set(after.lots) == {MSFT}, "GOOGL is not adopted, AAPL is gone"
    (closed,) = [t for t in trades_after(books, result) if t.key == AAPL]
    assert (closed.status, closed.quantity, closed.exit_price) == (PositionStatus.CLOSED_EXTERNALLY, d(2), d(175))


def test_seed_001_orphaned_spread_legs_are_adopted_into_the_books_at_the_venue_cost() -> None:
    long_put = InstrumentKey("option", "SPXW251121P25560")
    short_put = InstrumentKey("option", "SPXW251121P25620")
    venue = snapshot(held("1", "13.20", key=long_put), held("-1", "21.00", key=short_put), held("1", "50000", key=BTC))

    result = plan(books_from(buy("b1", "1", "50000")), venue, SEED_001, LATER)

    assert result.status is RunStatus.RESOLVED
    after = applied(books_from(buy("b1", "1", "50000")), result)
    adopted = {key: after.lots[key] for key in (long_put, short_put)}
    assert [(lot.side, lot.remaining, lot.entry_price, lot.source) for lot in adopted[long_put]] == [
        (LotSide.LONG, d(1), d("13.20"), Source.RECONCILIATION)
    ]
    assert [(lot.side, lot.remaining, lot.entry_price, lot.source) for lot in adopted[short_put]] == [
        (LotSide.SHORT, d(1), d("21.00"), Source.RECONCILIATION)
    ]
