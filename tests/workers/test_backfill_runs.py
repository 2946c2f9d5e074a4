"""Backfill of exits, end to end on SQLite and Postgres against the sim venue.

Each test books a position, lets a reconciliation (``sync_to_broker``) close it at the mark because the
venue shows it gone with no fill to explain it (an estimated exit), then puts the real exit fills into the
venue's history, as the venue reports them once it is asked, and backfills.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import func, insert, select, update

from cli import render
from cli.render import backfill_view as result_view
from models import Action, Fill, Lot, Run, Trade, history
from models.accounts import find_account
from models.backfill import apply_backfill, estimated_trades
from models.database import Database
from models.reading import known_fill_ids, load_books
from models.run_records import begin_run
from reconciliation.backfill import match_exits
from reconciliation.errors import FixConfiguration, VenueUnavailable
from reconciliation.policy import Policy, Rules, Strategy
from reconciliation.values import Fill as VenueFill
from tests.conftest import Clock, books_for, reconcile
from tests.conftest import SimState as Venue
from venues.sim import SimVenue
from workers import reports
from workers.backfill import BackfillResult, backfill
from workers.books import BooksClient
from workers.fleet import AccountConfig
from workers.reports import backfill_json as result_json

SYNC = Policy(minor=Strategy.SYNC_TO_BROKER, moderate=Strategy.SYNC_TO_BROKER, critical=Strategy.SYNC_TO_BROKER)
ENTRY = "2026-11-01T00:00:00Z"


@pytest.fixture
def books(database: Database, clock: Clock) -> BooksClient:
    return books_for(database, clock)


def account(venue: Venue) -> AccountConfig:
    return AccountConfig("lxalgo", "paper", "sim", Rules(policy=SYNC, grace_seconds=30), 300, venue.path)


def reconciled(database: Database, venue: Venue, clock: Clock) -> str:
    clock.advance(60)
    return reconcile(database, account(venue), clock=clock).status


def backfilled(database: Database, sim: Venue, clock: Clock, **options: Any) -> BackfillResult:
    clock.advance(60)
    return backfill(database, account(sim), clock=clock, **options)


def mark(symbol: str, price: str) -> dict[str, Any]:
    return {"symbol": symbol, "price": price}


def venue_fill(
    fill_id: str, symbol: str, side: str, qty: str, price: str, fee: str, time: str, kind: str = "trade"
) -> dict[str, str]:
    return {"fill_id": fill_id, "symbol": symbol, "side": side, "qty": qty, "price": price, "fee": fee,
            "time": time, "kind": kind}  # fmt: skip


REAL_EXIT = [
    venue_fill("v1", "BTCUSDT", "sell", "6", "95", "0.57", "2026-11-10T00:00:00Z"),
    venue_fill("v2", "BTCUSDT", "sell", "4", "96", "0.384", "2026-11-10T00:05:00Z"),
]


def count(database: Database, table: type) -> int:
    with database.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def trades(database: Database) -> dict[str, Trade]:
    with database.sessions() as session:
        return {t.symbol: t for t in session.scalars(select(Trade).order_by(Trade.id))}


def trade_state(database: Database) -> list[tuple[Any, ...]]:
    return [
        (t.exit_price, t.exit_time, t.fees, t.gross_pnl, t.net_pnl, t.pnl_pct, t.exit_estimated, t.exit_reason)
        for t in trades(database).values()
    ]


def lots(database: Database) -> dict[str, Lot]:
    with database.sessions() as session:
        return {lot.symbol: lot for lot in session.scalars(select(Lot))}


def record(database: Database, run_id: int) -> history.RunRecord:
    with database.sessions() as session:
        return history.run_record(session, run_id)


@pytest.fixture
def estimated_btc(database: Database, venue: Venue, books: BooksClient, clock: Clock) -> None:
    """Books long 10 BTCUSDT @ 100 (fee 1); the venue holds nothing and shows no fill: closed at the mark 90."""
    books.record_fill("lxalgo", "paper", symbol="BTCUSDT", side="buy", qty="10", price="100", fee="1",
                      fill_id="b1", time=ENTRY)  # fmt: skip
    venue.set(marks=[mark("BTCUSDT", "90")])
    assert reconciled(database, venue, clock) == "resolved"
    trade = trades(database)["BTCUSDT"]
    assert (trade.exit_price, trade.exit_estimated, trade.net_pnl) == (Decimal(90), True, Decimal(-101))


# --- the real exit replaces the estimate ----------------------------------------------------------------------


@pytest.mark.usefixtures("estimated_btc")
def test_the_real_exit_fills_replace_the_estimate(database: Database, venue: Venue, clock: Clock) -> None:
    venue.set(marks=[mark("BTCUSDT", "90")], fills=REAL_EXIT)
    fills_before = count(database, Fill)

    result = backfilled(database, venue, clock)

    assert (result.status, result.candidates, result.backfilled, result.not_found) == ("resolved", 1, 1, ())
    trade = trades(database)["BTCUSDT"]
    assert trade.exit_price == Decimal("95.4")
    assert trade.exit_time == datetime(2026, 11, 10, 0, 5, tzinfo=UTC)
    assert trade.gross_pnl == Decimal(-46)
    assert trade.fees == Decimal("1.954")  # entry 1 + real exit fees 0.57 + 0.384
    assert trade.net_pnl == Decimal("-47.954")
    assert trade.pnl_pct == Decimal("-4.7954")
    assert (trade.exit_estimated, trade.exit_reason) == (False, "closed by hand at the venue")
    assert trade.status == "CLOSED_EXTERNALLY"
    lot = lots(database)["BTCUSDT"]
    assert (lot.status, lot.exit_reason) == ("CLOSED_EXTERNALLY", "closed by hand at the venue")
    assert lot.closed_at == datetime(2026, 11, 10, 0, 5, tzinfo=UTC)
    assert count(database, Fill) == fills_before + 2
    with database.sessions() as session:
        recorded = {f.fill_id: f for f in session.scalars(select(Fill).where(Fill.source == "backfill"))}
        run = session.get_one(Run, result.run_id)
    assert sorted(recorded) == ["v1", "v2"]
    assert {(f.qty, f.price, f.fee, f.run_id, f.estimated) for f in recorded.values()} == {
        (Decimal(6), Decimal(95), Decimal("0.57"), result.run_id, False),
        (Decimal(4), Decimal(96), Decimal("0.384"), result.run_id, False),
    }
    assert (run.reason, run.status, run.matched, run.dry_run) == ("backfill", "resolved", 1, False)
    assert run.finished_at is not None


@pytest.mark.usefixtures("estimated_btc")
def test_the_run_reports_the_change_as_an_action_with_before_and_after(
    database: Database, venue: Venue, clock: Clock
) -> None:
    venue.set(fills=REAL_EXIT)

    result = backfilled(database, venue, clock)

    run = record(database, result.run_id)
    assert run.findings == []
    (action,) = run.actions
    assert (action.kind, action.subject, action.applied) == ("backfill_exit", "position:default:BTCUSDT:0", True)
    assert action.before is not None and action.after is not None
    assert {k: action.before[k] for k in ("exit_price", "net_pnl", "exit_estimated")} == {
        "exit_price": "90",
        "net_pnl": "-101",
        "exit_estimated": True,
    }
    assert action.after == {
        "exit_price": "95.4",
        "exit_time": "2026-11-10T00:05:00Z",
        "fees": "1.954",
        "net_pnl": "-47.954",
        "exit_reason": "closed by hand at the venue",
        "exit_estimated": False,
    }
    assert "v1" in action.detail and "v2" in action.detail
    document = reports.run_json(run)
    assert (document["reason"], document["status"], document["summary"]) == (
        "backfill",
        "resolved",
        {"matched": 1, "discrepancies": 0, "actions": 1, **reports.NO_SUMMARY},  # a backfill compares no positions
    )
    console = Console(file=io.StringIO(), width=200)
    console.print(render.run_view(run))
    assert "backfill_exit position:default:BTCUSDT:0" in console.file.getvalue()  # type: ignore[attr-defined]


def test_a_liquidated_short_is_labelled_so(database: Database, venue: Venue, books: BooksClient, clock: Clock) -> None:
    books.record_fill("lxalgo", "paper", symbol="ETHUSDT", side="sell", qty="2", price="3000", fill_id="s1",
                      time=ENTRY)  # fmt: skip
    venue.set(marks=[mark("ETHUSDT", "3500")])
    reconciled(database, venue, clock)
    venue.set(fills=[venue_fill("liq-1", "ETHUSDT", "buy", "2", "3600", "3.6", "2026-11-05T00:00:00Z", "liquidation")])

    assert backfilled(database, venue, clock).status == "resolved"

    trade = trades(database)["ETHUSDT"]
    assert (trade.exit_price, trade.gross_pnl, trade.fees, trade.net_pnl) == (
        Decimal(3600),
        Decimal(-1200),
        Decimal("3.6"),
        Decimal("-1203.6"),
    )
    assert (trade.exit_reason, trade.exit_estimated) == ("liquidated by the venue", False)
    assert lots(database)["ETHUSDT"].exit_reason == "liquidated by the venue"


def test_a_partial_estimated_close_updates_the_trade_and_leaves_the_open_lot_alone(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    books.record_fill("lxalgo", "paper", symbol="BTCUSDT", side="buy", qty="10", price="100", fill_id="b1",
                      time=ENTRY)  # fmt: skip
    held = [{"symbol": "BTCUSDT", "side": "long", "qty": "4", "avg_price": "100", "mark_price": "90"}]
    venue.set(held)
    reconciled(database, venue, clock)
    venue.set(held, fills=[venue_fill("v1", "BTCUSDT", "sell", "6", "97", "0", "2026-11-03T00:00:00Z")])

    assert backfilled(database, venue, clock).status == "resolved"

    trade = trades(database)["BTCUSDT"]
    assert (trade.quantity, trade.exit_price, trade.net_pnl, trade.exit_estimated) == (
        Decimal(6),
        Decimal(97),
        Decimal(-18),
        False,
    )
    lot = lots(database)["BTCUSDT"]
    assert (lot.status, lot.remaining, lot.exit_reason, lot.closed_at) == ("OPEN", Decimal(4), None, None)
    assert reconciled(database, venue, clock) == "in_sync"


# --- idempotence, dry run ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("estimated_btc")
def test_a_second_backfill_changes_nothing(database: Database, venue: Venue, clock: Clock) -> None:
    venue.set(fills=REAL_EXIT)
    assert backfilled(database, venue, clock).status == "resolved"
    fills_before, state_before, actions_before = count(database, Fill), trade_state(database), count(database, Action)

    again = backfilled(database, venue, clock)

    assert (again.status, again.candidates, again.backfilled, again.not_found) == ("in_sync", 0, 0, ())
    assert count(database, Fill) == fills_before
    assert trade_state(database) == state_before
    assert count(database, Action) == actions_before
    with database.sessions() as session:
        run = session.get_one(Run, again.run_id)
    assert (run.status, run.matched, run.finished_at is not None) == ("in_sync", 0, True)


@pytest.mark.usefixtures("estimated_btc")
def test_a_dry_run_changes_nothing_but_reports_what_it_would_do(database: Database, venue: Venue, clock: Clock) -> None:
    venue.set(fills=REAL_EXIT)
    fills_before, state_before = count(database, Fill), trade_state(database)
    with database.sessions() as session:
        epoch_before = find_account(session, "lxalgo", "paper").epoch

    result = backfilled(database, venue, clock, dry_run=True)

    assert (result.status, result.backfilled, result.dry_run) == ("resolved", 1, True)
    assert count(database, Fill) == fills_before
    assert trade_state(database) == state_before
    run = record(database, result.run_id)
    assert run.run.dry_run
    (action,) = run.actions
    assert (action.kind, action.applied) == ("backfill_exit", False)
    assert action.after is not None and action.after["exit_price"] == "95.4"
    with database.sessions() as session:
        assert find_account(session, "lxalgo", "paper").epoch == epoch_before
    assert backfilled(database, venue, clock).status == "resolved"  # the real run still has everything to do


# --- exits not found, failures ------------------------------------------------------------------------------


@pytest.mark.usefixtures("estimated_btc")
def test_an_exit_not_at_the_venue_stays_estimated_and_is_reported(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    books.record_fill("lxalgo", "paper", symbol="SOLUSDT", side="buy", qty="5", price="20", fill_id="b2",
                      time=ENTRY)  # fmt: skip
    venue.set(marks=[mark("SOLUSDT", "18")])
    reconciled(database, venue, clock)
    only_part_of_sol = venue_fill("v3", "SOLUSDT", "sell", "3", "19", "0", "2026-11-10T00:00:00Z")
    venue.set(fills=[*REAL_EXIT, only_part_of_sol])

    result = backfilled(database, venue, clock)

    assert (result.status, result.candidates, result.backfilled) == ("warned", 2, 1)
    (missing,) = result.not_found
    assert (str(missing.trade.key), missing.trade.quantity, missing.trade.exit_price) == (
        "default:SOLUSDT:0",
        Decimal(5),
        Decimal(18),
    )
    assert "stays estimated" in missing.why
    sol = trades(database)["SOLUSDT"]
    assert (sol.exit_price, sol.exit_estimated) == (Decimal(18), True)
    assert trades(database)["BTCUSDT"].exit_estimated is False
    with database.sessions() as session:
        account_id = find_account(session, "lxalgo", "paper").id
        assert known_fill_ids(session, account_id, ["v1", "v2", "v3"]) == {"v1", "v2"}
        assert session.get_one(Run, result.run_id).matched == 1
    kinds = {(a.kind, a.subject, a.applied) for a in record(database, result.run_id).actions}
    assert kinds == {
        ("backfill_exit", "position:default:BTCUSDT:0", True),
        ("exit_not_found", "position:default:SOLUSDT:0", False),
    }
    document = result_json(result)
    assert document["not_found"] == [
        {
            "category": "default",
            "symbol": "SOLUSDT",
            "leg": 0,
            "side": "long",
            "quantity": "5",
            "estimated_exit_price": "18",
            "estimated_exit_time": missing.trade.exit_time.isoformat().replace("+00:00", "Z"),
            "why": missing.why,
        }
    ]
    assert (document["status"], document["estimated_exits"], document["backfilled"]) == ("warned", 2, 1)


@pytest.mark.usefixtures("estimated_btc")
def test_a_failed_fetch_records_a_failed_run_and_changes_nothing(
    database: Database, venue: Venue, clock: Clock
) -> None:
    venue.path.write_text('{"fills": [{"fill_id": "v1", "symbol": "BTCUSDT", "side": "sell", "qty": "x"}]}')
    fills_before, state_before = count(database, Fill), trade_state(database)

    result = backfilled(database, venue, clock)

    assert result.status == "failed"
    assert "fetch failed" in (result.error or "") and "fills[0]" in (result.error or "")
    assert (count(database, Fill), trade_state(database)) == (fills_before, state_before)
    with database.sessions() as session:
        run = session.get_one(Run, result.run_id)
    assert (run.reason, run.status, run.finished_at is not None) == ("backfill", "failed", True)
    assert record(database, result.run_id).actions == []


class Unreachable(SimVenue):
    def fills_between(self, start: datetime, end: datetime) -> tuple[VenueFill, ...]:
        raise VenueUnavailable("bybit did not answer in 10 s")


@pytest.mark.usefixtures("estimated_btc")
def test_a_venue_that_does_not_answer_fails_the_run(database: Database, venue: Venue, clock: Clock) -> None:
    state_before = trade_state(database)

    result = backfilled(database, venue, clock, venue=Unreachable(venue.path))

    assert (result.status, result.error) == ("failed", "fetch failed: bybit did not answer in 10 s")
    assert trade_state(database) == state_before


class Exploding(SimVenue):
    def fills_between(self, start: datetime, end: datetime) -> tuple[VenueFill, ...]:
        raise RuntimeError("bug")


@pytest.mark.usefixtures("estimated_btc")
def test_an_unexpected_error_is_raised_and_the_run_recorded_failed(
    database: Database, venue: Venue, clock: Clock
) -> None:
    with pytest.raises(RuntimeError, match="bug"):
        backfilled(database, venue, clock, venue=Exploding(venue.path))

    with database.sessions() as session:
        run = session.scalars(select(Run).where(Run.reason == "backfill")).one()
    assert (run.status, run.error) == ("failed", "unexpected error: RuntimeError: bug")


def test_an_account_without_books_is_a_configuration_error(database: Database, venue: Venue, clock: Clock) -> None:
    with pytest.raises(FixConfiguration, match="no books for lxalgo/paper"):
        backfilled(database, venue, clock)


def test_an_account_without_estimated_exits_is_in_sync_without_asking_the_venue(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    books.record_fill("lxalgo", "paper", symbol="BTCUSDT", side="buy", qty="1", price="100", fill_id="b1",
                      time=ENTRY)  # fmt: skip

    result = backfilled(database, venue, clock, venue=Exploding(venue.path))

    assert (result.status, result.candidates) == ("in_sync", 0)


# --- with reconciliation ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("estimated_btc")
def test_the_backfilled_fills_are_not_applied_again_by_a_following_reconciliation(
    database: Database, venue: Venue, clock: Clock
) -> None:
    venue.set(marks=[mark("BTCUSDT", "90")], fills=REAL_EXIT)
    backfilled(database, venue, clock)
    counts = (count(database, Fill), count(database, Lot), count(database, Trade))
    state = trade_state(database)

    assert reconciled(database, venue, clock) == "in_sync"

    assert (count(database, Fill), count(database, Lot), count(database, Trade)) == counts
    assert trade_state(database) == state
    with database.sessions() as session:
        account_id = find_account(session, "lxalgo", "paper").id
        loaded, _ = load_books(session, account_id, ["v1", "v2"])
    assert loaded.known_fill_ids == {"v1", "v2"}
    assert loaded.lots == {}


@pytest.mark.usefixtures("estimated_btc")
def test_two_backfills_racing_write_each_exit_once(database: Database, venue: Venue, clock: Clock) -> None:
    venue.set(fills=REAL_EXIT)
    fills = SimVenue(venue.path).fills_between(datetime(2026, 11, 1, tzinfo=UTC), clock.now)
    with database.sessions.begin() as session:
        account_id = find_account(session, "lxalgo", "paper").id
        first = begin_run(session, account_id, "backfill", False, clock.now)
        second = begin_run(session, account_id, "backfill", False, clock.now)
    with database.sessions() as session:
        candidates = estimated_trades(session, account_id)
    match = match_exits(candidates, fills, frozenset())

    with database.sessions.begin() as session:
        one = apply_backfill(session, account_id, first.run_id, match, clock.now, dry_run=False)
    state = trade_state(database)
    with database.sessions.begin() as session:
        other = apply_backfill(session, account_id, second.run_id, match, clock.now, dry_run=False)

    assert (one.status, len(one.backfilled)) == ("resolved", 1)
    assert (other.status, other.backfilled, other.not_found) == ("in_sync", (), ())
    assert trade_state(database) == state
    with database.sessions() as session:
        assert session.scalar(select(func.count()).where(Fill.source == "backfill")) == 2


def test_an_exit_fill_that_carried_a_fee_is_taken_out_of_the_entry_fee(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    books.record_fill("lxalgo", "paper", symbol="BTCUSDT", side="buy", qty="1", price="100", fee="0.1",
                      fill_id="b1", time=ENTRY)  # fmt: skip
    books.record_fill("lxalgo", "paper", symbol="BTCUSDT", side="buy", qty="2", price="100", fee="0.2",
                      fill_id="b2", time=ENTRY)  # fmt: skip
    books.record_fill("lxalgo", "paper", symbol="BTCUSDT", side="sell", qty="3", price="90", fee="1",
                      fill_id="est", time="2026-11-02T00:00:00Z")  # fmt: skip
    with database.sessions.begin() as session:
        session.execute(update(Trade).values(exit_estimated=True))

    with database.sessions() as session:
        candidates = estimated_trades(session, find_account(session, "lxalgo", "paper").id)

    with database.sessions() as session:
        fees = [t.fees for t in session.scalars(select(Trade).order_by(Trade.id))]
    assert fees == [Decimal("0.433333333333333333"), Decimal("0.866666666666666667")]
    assert [(c.quantity, c.entry_fee) for c in candidates] == [
        (Decimal(1), Decimal("0.1")),
        (Decimal(2), Decimal("0.2")),
    ]


@pytest.mark.usefixtures("estimated_btc")
def test_an_exit_whose_fill_reached_the_books_during_the_run_is_deferred(
    database: Database, venue: Venue, clock: Clock
) -> None:
    venue.set(fills=REAL_EXIT)
    fills = SimVenue(venue.path).fills_between(datetime(2026, 11, 1, tzinfo=UTC), clock.now)
    with database.sessions.begin() as session:
        account_id = find_account(session, "lxalgo", "paper").id
        start = begin_run(session, account_id, "backfill", False, clock.now)
    with database.sessions() as session:
        match = match_exits(estimated_trades(session, account_id), fills, frozenset())
    with database.sessions.begin() as session:  # meanwhile a reconciliation records v2 under its venue id
        session.execute(
            insert(Fill).values(account_id=account_id, fill_id="v2", category="default", symbol="BTCUSDT", leg=0,
                                side="sell", qty=Decimal(4), price=Decimal(96), fee=Decimal(0), time=clock.now,
                                kind="trade", source="reconciliation", estimated=False, recorded_at=clock.now)
        )  # fmt: skip
    state = trade_state(database)

    with database.sessions.begin() as session:
        applied = apply_backfill(session, account_id, start.run_id, match, clock.now, dry_run=False)

    assert (applied.status, applied.backfilled) == ("warned", ())
    ((trade, why),) = applied.not_found
    assert trade.key.symbol == "BTCUSDT" and why.startswith("deferred")
    assert trade_state(database) == state
    with database.sessions() as session:
        assert session.scalar(select(func.count()).where(Fill.source == "backfill")) == 0


@pytest.mark.usefixtures("estimated_btc")
def test_the_outcome_reads_for_people(database: Database, venue: Venue, clock: Clock) -> None:
    result = backfilled(database, venue, clock, dry_run=True)
    console = Console(file=io.StringIO(), width=200)

    console.print(result_view(result))

    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert f"backfill run {result.run_id}  warned (dry run)" in text
    assert "estimated exits 1, would replace with venue fills 0" in text
    assert "default:BTCUSDT:0  long  10   90              2026-11-20T12:01:00Z" in text
