"""Comparison of books with the venue: which differences are found, of which kind and how severe."""

from __future__ import annotations

from decimal import Decimal

import pytest
from recon_builders import BTC, ETH, d, order, usd

from reconciliation.findings import (
    Kind,
    PositionComparison,
    Severity,
    Thresholds,
    compare_cash,
    compare_orders,
    compare_positions,
    diff_pct,
)
from reconciliation.values import InstrumentKey, OrderStatus

DEFAULT = Thresholds()
DEFAULT_CASH_TOLERANCE = Decimal(1)


def compare_one(ledger: str, venue: str, thresholds: Thresholds = DEFAULT) -> PositionComparison:
    """Compare one instrument held at ``ledger`` in the books and ``venue`` at the venue (signed)."""
    mine = {BTC: d(ledger)} if d(ledger) else {}
    theirs = {BTC: d(venue)} if d(venue) else {}
    return compare_positions(mine, theirs, thresholds)


# --- positions ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ledger", "venue", "kind", "severity"),
    [
        ("100", "101", Kind.QUANTITY_MISMATCH, Severity.MINOR),
        ("100", "103", Kind.QUANTITY_MISMATCH, Severity.MODERATE),
        ("100", "0", Kind.MISSING_AT_VENUE, Severity.CRITICAL),
        ("0", "100", Kind.MISSING_IN_LEDGER, Severity.CRITICAL),
        ("100", "-100", Kind.SIDE_MISMATCH, Severity.CRITICAL),
    ],
    ids=["101-minor", "103-moderate", "vanished-critical", "unknown-critical", "long-vs-short-critical"],
)
def test_seed_examples_are_classified_as_the_story_says_with_default_thresholds(
    ledger: str, venue: str, kind: Kind, severity: Severity
) -> None:
    (found,) = compare_one(ledger, venue).discrepancies

    assert (found.kind, found.severity) == (kind, severity)
    assert (found.key, found.ledger_qty, found.venue_qty) == (BTC, d(ledger), d(venue))
    assert found.subject == "position:linear:BTCUSDT:0"


@pytest.mark.parametrize(
    ("ledger", "venue", "pct"),
    [
        ("100", "101", "0.990099"),
        ("100", "103", "2.912621"),
        ("103", "100", "2.912621"),
        ("-50", "-40", "20"),
        ("100", "-100", "200"),
        ("3", "2", "33.333333"),
        ("100", "0", "100"),
        ("0", "0", "0"),
    ],
)
def test_diff_pct_is_the_gap_over_the_larger_absolute_size_in_percent(ledger: str, venue: str, pct: str) -> None:
    assert diff_pct(d(ledger), d(venue)) == d(pct)


@pytest.mark.parametrize(
    ("venue", "severity"),
    [
        ("99.1", Severity.MINOR),
        ("99", Severity.MODERATE),  # exactly 1 %: no longer below the minor line
        ("95", Severity.MODERATE),  # exactly 5 %: not above the critical line
        ("94.9", Severity.CRITICAL),
    ],
)
def test_severity_boundaries_are_below_1_pct_minor_and_above_5_pct_critical(venue: str, severity: Severity) -> None:
    (found,) = compare_one("100", venue).discrepancies

    assert found.severity is severity


def test_thresholds_are_configurable_per_account() -> None:
    strict = Thresholds(minor_below=d("0.5"), critical_above=d(2))

    assert compare_one("100", "101", strict).discrepancies[0].severity is Severity.MODERATE
    assert compare_one("100", "103", strict).discrepancies[0].severity is Severity.CRITICAL


def test_missing_and_flipped_positions_stay_critical_whatever_the_thresholds() -> None:
    lenient = Thresholds(minor_below=d(1000), critical_above=d(1000))

    for ledger, venue in [("100", "0"), ("0", "100"), ("100", "-100")]:
        assert compare_one(ledger, venue, lenient).discrepancies[0].severity is Severity.CRITICAL
    assert compare_one("100", "50", lenient).discrepancies[0].severity is Severity.MINOR


def test_agreeing_positions_are_matched_and_flat_ones_ignored() -> None:
    comparison = compare_positions({BTC: d("1.5"), ETH: d(-2)}, {BTC: d("1.5"), ETH: d(-2)}, DEFAULT)

    assert comparison.matched == (BTC, ETH)
    assert comparison.discrepancies == ()
    assert compare_positions({}, {}, DEFAULT) == PositionComparison((), ())


def test_hedge_mode_legs_and_categories_are_separate_positions() -> None:
    long_leg = InstrumentKey("linear", "BTCUSDT", 1)
    short_leg = InstrumentKey("linear", "BTCUSDT", 2)
    spot = InstrumentKey("spot", "BTCUSDT")

    comparison = compare_positions(
        {long_leg: d(1), spot: d(3)},
        {long_leg: d(1), short_leg: d(-1), InstrumentKey("inverse", "BTCUSDT"): d(2)},
        DEFAULT,
    )

    assert comparison.matched == (long_leg,)
    assert [(f.key, f.kind) for f in comparison.discrepancies] == [
        (InstrumentKey("inverse", "BTCUSDT"), Kind.MISSING_IN_LEDGER),
        (short_leg, Kind.MISSING_IN_LEDGER),
        (spot, Kind.MISSING_AT_VENUE),
    ]


# --- cash ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("venue", ["10000", "9950", "9900", "10100"])
def test_cash_within_the_default_1_pct_tolerance_is_no_discrepancy(venue: str) -> None:
    finding = compare_cash(usd("10000"), usd(venue), DEFAULT_CASH_TOLERANCE, DEFAULT)

    assert finding is not None
    assert not finding.is_discrepancy
    assert finding.severity is None
    assert (finding.expected, finding.venue) == (d(10000), d(venue))


@pytest.mark.parametrize(("venue", "severity"), [("9800", Severity.MODERATE), ("9000", Severity.CRITICAL)])
def test_cash_beyond_tolerance_is_a_discrepancy_graded_like_a_quantity(venue: str, severity: Severity) -> None:
    finding = compare_cash(usd("10000"), usd(venue), DEFAULT_CASH_TOLERANCE, DEFAULT)

    assert finding is not None
    assert finding.is_discrepancy
    assert finding.severity is severity
    assert finding.kind is Kind.CASH_MISMATCH


def test_a_tighter_cash_tolerance_turns_a_small_gap_into_a_minor_discrepancy() -> None:
    finding = compare_cash(usd("10000"), usd("9950"), d("0.1"), DEFAULT)

    assert finding is not None
    assert finding.severity is Severity.MINOR
    assert finding.diff_pct == d("0.5")


def test_a_currency_mismatch_is_critical_even_at_the_same_balance() -> None:
    finding = compare_cash(usd("10000", "USD"), usd("10000", "USDT"), DEFAULT_CASH_TOLERANCE, DEFAULT)

    assert finding is not None
    assert finding.severity is Severity.CRITICAL
    assert finding.diff_pct is None


def test_cash_with_no_expectation_in_the_books_is_informational() -> None:
    finding = compare_cash(None, usd("1234.5"), DEFAULT_CASH_TOLERANCE, DEFAULT)

    assert finding is not None
    assert not finding.is_discrepancy
    assert (finding.expected, finding.venue, finding.currency) == (None, d("1234.5"), "USD")


def test_no_cash_reported_by_the_venue_gives_no_cash_finding() -> None:
    assert compare_cash(usd("10000"), None, DEFAULT_CASH_TOLERANCE, DEFAULT) is None


# --- orders -----------------------------------------------------------------------------------------------------


def test_a_pending_order_not_open_at_the_venue_is_missing_at_venue() -> None:
    mine = order("c1", "v1")

    (found,) = compare_orders([mine], [])

    assert (found.kind, found.severity, found.ledger, found.venue) == (
        Kind.ORDER_MISSING_AT_VENUE,
        Severity.MODERATE,
        mine,
        None,
    )
    assert found.subject == "order:c1"


def test_an_open_venue_order_unknown_to_the_books_is_reported_with_the_venues_id() -> None:
    theirs = order(None, "v9")

    (found,) = compare_orders([], [theirs])

    assert (found.kind, found.severity, found.venue) == (Kind.ORDER_UNKNOWN_TO_LEDGER, Severity.MODERATE, theirs)
    assert found.subject == "order:v9"


def test_a_status_difference_is_a_minor_status_mismatch_carrying_both_sides() -> None:
    mine, theirs = order("c1", "v1"), order("c1", "v1", status=OrderStatus.PARTIALLY_FILLED)

    (found,) = compare_orders([mine], [theirs])

    assert (found.kind, found.severity, found.ledger, found.venue) == (
        Kind.ORDER_STATUS_MISMATCH,
        Severity.MINOR,
        mine,
        theirs,
    )


def test_orders_match_by_client_order_id_even_when_the_books_lack_the_venue_id() -> None:
    assert compare_orders([order("c1", None)], [order("c1", "v1")]) == ()


def test_orders_match_by_venue_order_id_when_the_client_id_does_not_match() -> None:
    assert compare_orders([order(None, "v1")], [order(None, "v1")]) == ()
    assert compare_orders([order("c-lost", "v1")], [order("c-venue", "v1")]) == ()


def test_a_client_id_match_wins_over_a_different_order_with_the_same_venue_id() -> None:
    found = compare_orders([order("c1", "v2")], [order("c1", "v1"), order("c2", "v2")])

    assert [(f.kind, f.venue and f.venue.client_order_id) for f in found] == [(Kind.ORDER_UNKNOWN_TO_LEDGER, "c2")]


@pytest.mark.parametrize(
    "status", [OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED]
)
def test_finished_book_orders_are_not_expected_at_the_venue(status: OrderStatus) -> None:
    assert compare_orders([order("c1", "v1", status=status)], []) == ()
