"""Contract multipliers in P&L and adoption, and orphaned option legs recovered as one spread."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from reconciliation.contracts import Multipliers, OptionSeries, option_series, recovered_groups
from reconciliation.fifo import replay
from reconciliation.orders import reference_prices
from reconciliation.plan import plan
from reconciliation.policy import Rules
from reconciliation.values import InstrumentKey, Source, VenuePosition
from tests.reconciliation.recon_builders import LATER, SYNC_ALL, book_fills, books_from, buy, d, sell, snapshot

LONG_PUT = InstrumentKey("us_option", "NDX261218P25560000")
SHORT_PUT = InstrumentKey("us_option", "NDX261218P25620000")
OTHER_EXPIRY = InstrumentKey("us_option", "NDX270115P25620000")


@pytest.mark.parametrize(
    ("symbol", "series"),
    [
        ("NDX261218P25560000", OptionSeries("NDX", date(2026, 12, 18))),
        ("AAPL  270115C00190000", OptionSeries("AAPL", date(2027, 1, 15))),  # IBKR pads the root
        ("BTC-27DEC26-100000-C", OptionSeries("BTC", date(2026, 12, 27))),
        ("ETH-3JAN27-4000-P-USDT", OptionSeries("ETH", date(2027, 1, 3))),
        ("BTCUSDT", None),
        ("AAPL", None),
    ],
)
def test_option_symbols_name_their_underlying_and_expiry(symbol: str, series: OptionSeries | None) -> None:
    assert option_series(symbol) == series


def test_the_fleet_file_overrides_the_venue_which_overrides_the_defaults() -> None:
    multipliers = Multipliers(
        by_symbol={("future", "ESZ6"): d(50)}, by_category={"option": d(10)}, defaults={"us_option": d(100)}
    )

    assert multipliers.of(InstrumentKey("future", "ESZ6"), venue_reported=d(5)) == d(50)
    assert multipliers.of(InstrumentKey("option", "X"), venue_reported=d(100)) == d(10)
    assert multipliers.of(InstrumentKey("future", "NQZ6"), venue_reported=d(20)) == d(20)
    assert multipliers.of(LONG_PUT) == d(100)
    assert multipliers.of(InstrumentKey("linear", "BTCUSDT")) == d(1)


def test_an_option_trade_makes_price_difference_times_quantity_times_100() -> None:
    opened = replace(buy("o1", "2", "13.20", key=LONG_PUT), multiplier=d(100))
    closed = sell("o2", "2", "15.70", key=LONG_PUT, minutes=5)

    (trade,) = replay({}, [(opened, Source.BOT), (closed, Source.BOT)]).trades

    assert (trade.gross_pnl, trade.multiplier) == (d(500), d(100))
    assert trade.pnl_pct == Decimal("18.939394")  # 500 / (13.20 × 2 × 100)


def test_legs_of_one_series_adopted_together_form_one_group_and_other_legs_none() -> None:
    groups = recovered_groups([LONG_PUT, SHORT_PUT, OTHER_EXPIRY, InstrumentKey("linear", "BTCUSDT")])

    assert set(groups) == {LONG_PUT, SHORT_PUT}
    assert groups[LONG_PUT] == groups[SHORT_PUT]
    assert groups[LONG_PUT].startswith("recovered NDX 2026-12-18 ")
    assert recovered_groups([SHORT_PUT, LONG_PUT]) == groups  # the same legs name the same group again


def test_an_orphaned_put_spread_is_adopted_as_one_group_with_the_multiplier() -> None:
    venue = snapshot(
        VenuePosition(LONG_PUT, d(1), d("13.20")),
        VenuePosition(SHORT_PUT, d(-1), d("21.00")),
    )

    fills = [effect.fill for effect in book_fills(plan(books_from(), venue, SYNC_ALL, LATER))]

    assert {(f.key, f.side, f.multiplier) for f in fills} == {
        (LONG_PUT, "buy", d(100)),
        (SHORT_PUT, "sell", d(100)),
    }
    assert len({f.group for f in fills}) == 1
    assert fills[0].group is not None


def test_a_venue_reported_multiplier_is_used_when_the_fleet_file_is_silent() -> None:
    future = InstrumentKey("future", "ESZ6")
    venue = snapshot(VenuePosition(future, d(2), d("6000"), multiplier=d(50)))

    (fill,) = [effect.fill for effect in book_fills(plan(books_from(), venue, SYNC_ALL, LATER))]

    assert fill.multiplier == d(50)
    assert fill.group is None


def test_a_configured_multiplier_wins_over_the_venue() -> None:
    future = InstrumentKey("future", "ESZ6")
    venue = snapshot(VenuePosition(future, d(2), d("6000"), multiplier=d(50)))
    rules = Rules(policy=SYNC_ALL.policy, grace_seconds=0, multipliers=Multipliers(by_category={"future": d(5)}))

    (fill,) = [effect.fill for effect in book_fills(plan(books_from(), venue, rules, LATER))]

    assert fill.multiplier == d(5)


def test_an_option_orders_notional_is_counted_per_contract_against_the_cap() -> None:
    venue = snapshot(VenuePosition(LONG_PUT, d(3), d("2.50"), mark_price=d("2.40")))
    books = books_from(buy("b1", "1", "2.50", key=LONG_PUT))

    assert reference_prices(venue, books, Multipliers()) == {LONG_PUT: d(240)}  # 2.40 × 100 shares a contract
