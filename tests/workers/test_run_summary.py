"""The summary of a run against the sim venue, on SQLite and Postgres: positions on each side, added, removed,
adjusted (or would be, in a dry run), the venue's value at mark per currency; stored with the run, so the report
of an old run says the same; null figures for a failed run."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from cli.render import run_view
from models.database import Database
from models.history import run_record
from reconciliation.policy import Policy, Rules, Strategy
from tests.conftest import Clock, SimState, books_for, reconcile
from workers.fleet import AccountConfig
from workers.reports import NO_SUMMARY, run_json

SYNC = Policy(minor=Strategy.SYNC_TO_BROKER, moderate=Strategy.SYNC_TO_BROKER, critical=Strategy.SYNC_TO_BROKER)
EXPECTED = {
    "venue_positions": 5,  # BTC, SOL, XRP, DOGE, SPY option
    "book_positions": 3,  # BTC, ETH, SOL
    "added": 3,  # XRP, DOGE, the option
    "removed": 1,  # ETH
    "adjusted": 1,  # SOL
    "venue_value_at_mark": {"USD": "0.5", "USDT": "100702"},  # 2 × 50000 + 4 × 150.5 + |-1000| × 0.1; 1 × 0.5
    "unvalued_positions": 1,  # the option: no mark
}


def position(symbol: str, category: str, qty: str, mark: str | None, **extra: str) -> dict[str, Any]:
    side, size = ("short", qty[1:]) if qty.startswith("-") else ("long", qty)
    row = {"symbol": symbol, "category": category, "side": side, "qty": size, "avg_price": "1", **extra}
    return {**row, "mark_price": mark} if mark else row


def setup(database: Database, venue: SimState, clock: Clock) -> AccountConfig:
    """Books holding BTC 2, ETH 3, SOL 10; a venue holding BTC 2, SOL 4, XRP -1000 (valued in USDT), a coin
    valued in the account's cash currency (USD) and an option without a mark."""
    books = books_for(database, clock)
    for symbol, qty in (("BTCUSDT", "2"), ("ETHUSDT", "3"), ("SOLUSDT", "10")):
        books.record_fill("lxalgo", "paper", symbol=symbol, side="buy", qty=qty, price="100", fill_id=f"b-{symbol}",
                          time="2026-11-01T00:00:00Z", category="linear")  # fmt: skip
    venue.set(
        [
            position("BTCUSDT", "linear", "2", "50000", currency="USDT"),
            position("SOLUSDT", "linear", "4", "150.5", currency="USDT"),
            position("XRPUSDT", "linear", "-1000", "0.1", currency="USDT"),
            position("SPY261218P00570000", "us_option", "2", None),
            position("DOGE", "crypto", "1", "0.5"),  # no currency of its own: the cash's, USD
        ],
        cash={"currency": "USD", "balance": "1000"},
    )
    return AccountConfig("lxalgo", "paper", "sim", Rules(policy=SYNC, grace_seconds=0), 300, venue.path)


def stored_summary(database: Database, run_id: int) -> dict[str, Any]:
    with database.reading() as session:
        return dict(run_json(run_record(session, run_id))["summary"])


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: summary[key] for key in NO_SUMMARY}


def test_a_run_counts_each_side_what_it_added_removed_and_adjusted_and_values_the_venue_at_mark(
    database: Database, venue: SimState, clock: Clock
) -> None:
    config = setup(database, venue, clock)

    result = reconcile(database, config, clock=clock)

    assert result.status == "resolved"
    summary = stored_summary(database, result.run_id)
    assert figures(summary) == EXPECTED

    again = reconcile(database, config, clock=clock)  # the books now follow the venue

    assert figures(stored_summary(database, again.run_id)) == {
        **EXPECTED, "book_positions": 5, "added": 0, "removed": 0, "adjusted": 0
    }  # fmt: skip


def test_a_dry_run_reports_what_a_real_run_would_do_and_its_report_says_would(
    database: Database, venue: SimState, clock: Clock
) -> None:
    config = setup(database, venue, clock)

    dry = reconcile(database, config, clock=clock, dry_run=True)
    real = reconcile(database, config, clock=clock)

    assert figures(stored_summary(database, dry.run_id)) == EXPECTED
    assert figures(stored_summary(database, real.run_id)) == EXPECTED
    with database.reading() as session:
        text = rendered(run_view(run_record(session, dry.run_id)))
    assert "positions: venue 5, books 3; would add 3, remove 1, adjust 1" in text
    assert "venue value at mark: 0.50 USD, 100,702.00 USDT (1 not valued)" in text


def test_a_failed_run_has_no_figures_and_its_report_prints_none(
    database: Database, venue: SimState, clock: Clock
) -> None:
    config = setup(database, venue, clock)
    venue.path.write_text('{"positions": [{"symbol": "BTCUSDT", "side": "long", "qty": "-5", "avg_price": "1"}]}')

    failed = reconcile(database, config, clock=clock)

    assert failed.status == "failed"
    summary = stored_summary(database, failed.run_id)
    assert figures(summary) == NO_SUMMARY and all(value is None for value in NO_SUMMARY.values())
    with database.reading() as session:
        text = rendered(run_view(run_record(session, failed.run_id)))
    assert "positions:" not in text and "value at mark" not in text


def rendered(view: Any) -> str:
    console = Console(file=io.StringIO(), width=80)
    console.print(view)
    return console.file.getvalue()  # type: ignore[attr-defined]
