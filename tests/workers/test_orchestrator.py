"""The invariants of DESIGN.md, proved through whole runs on SQLite and Postgres against the sim venue."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from models import Action, Alert, Base, Break, Fill, Lot, Run, Trade, history
from models.accounts import find_account
from models.apply import WrittenRun, run_transaction
from models.database import Database
from models.orders import order_statuses
from models.reading import load_books
from models.run_records import begin_run
from reconciliation.plan import Plan, plan
from reconciliation.policy import Policy, Rules, Strategy
from reconciliation.values import Snapshot
from tests.conftest import Clock, books_for, reconcile
from tests.conftest import SimState as Venue
from venues.sim import SimVenue
from workers.books import BooksClient
from workers.fleet import AccountConfig

SYNC = Policy(minor=Strategy.SYNC_TO_BROKER, moderate=Strategy.SYNC_TO_BROKER, critical=Strategy.SYNC_TO_BROKER)
WARN = Policy(minor=Strategy.WARN_ONLY, moderate=Strategy.WARN_ONLY, critical=Strategy.WARN_ONLY)
HALT = Policy(minor=Strategy.WARN_ONLY, moderate=Strategy.WARN_ONLY, critical=Strategy.HALT_AND_ALERT)


@pytest.fixture
def books(database: Database, clock: Clock) -> BooksClient:
    """The books client bots use, on the test database and clock."""
    return books_for(database, clock)


def account(venue: Venue, policy: Policy = SYNC, grace: int = 30) -> AccountConfig:
    return AccountConfig("lxalgo", "paper", "sim", Rules(policy=policy, grace_seconds=grace), 300, venue.path)


def run(database: Database, venue: Venue, clock: Clock, policy: Policy = SYNC, **options: Any) -> Any:
    clock.advance(60)
    return reconcile(database, account(venue, policy), clock=clock, **options)


def count(database: Database, table: type) -> int:
    with database.reading() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def positions(books: BooksClient) -> dict[str, Decimal]:
    return {p.key.symbol: p.qty for p in books.positions("lxalgo", "paper")}


def long(symbol: str, qty: str, avg: str = "100", mark: str | None = None) -> dict[str, Any]:
    return {"symbol": symbol, "side": "long", "qty": qty, "avg_price": avg, "mark_price": mark}


def buy(books: BooksClient, fill_id: str, symbol: str, qty: str, price: str = "100", **extra: Any) -> None:
    books.record_fill("lxalgo", "paper", symbol=symbol, side="buy", qty=qty, price=price, fill_id=fill_id,
                      time="2026-11-01T00:00:00Z", **extra)  # fmt: skip


def plan_now(database: Database, venue: Venue, clock: Clock, rules: Rules) -> tuple[int, Plan]:
    """Plan a run against the books and the venue as they are now, without applying it."""
    snapshot = SimVenue(venue.path).fetch_snapshot(clock.now)
    with database.reading() as session:
        account_id = find_account(session, "lxalgo", "paper").id
        loaded, _ = load_books(session, account_id)
    return account_id, plan(loaded, snapshot, rules, clock.advance(60))


def apply_now(database: Database, account_id: int, intended: Plan, clock: Clock) -> WrittenRun:
    """Begin a real run and write a plan made earlier (as a duplicated task that planned on the same books would)."""
    with database.transaction() as session:
        start = begin_run(session, account_id, "manual", False, clock.now)
    with run_transaction(database, account_id) as transaction:
        transaction.books(run_id=start.run_id, epoch=start.epoch, dry_run=False)
        return transaction.write(run_id=start.run_id, plan=intended, screened=(), now=clock.now, dry_run=False,
                                 snapshot_as_of=None)  # fmt: skip


def test_a_failed_fetch_records_a_failed_run_and_changes_nothing(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    buy(books, "b1", "BTCUSDT", "1")
    venue.path.write_text('{"positions": [{"symbol": "BTCUSDT", "side": "long", "qty": "abc", "avg_price": "1"}]}')

    result = run(database, venue, clock)

    assert result.status == "failed"
    assert "positions[0].qty" in (result.error or "")
    assert positions(books) == {"BTCUSDT": Decimal(1)}
    assert count(database, Action) == 0
    with database.reading() as session:
        failed = session.get_one(Run, result.run_id)
    assert (failed.status, failed.finished_at is not None) == ("failed", True)


def test_every_change_is_an_action_with_the_state_before_and_after(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    buy(books, "b1", "BTCUSDT", "10")
    venue.set([long("BTCUSDT", "4", mark="110"), long("ETHUSDT", "2", avg="3000")])

    result = run(database, venue, clock)

    with database.reading() as session:
        record = history.run_record(session, result.run_id)
    changes = {(a.subject, a.kind): (a.before, a.after, a.applied) for a in record.actions}
    assert changes == {
        ("position:default:BTCUSDT:0", "correct_position"): (
            {"qty": "10", "avg_entry": "100"},
            {"qty": "4", "avg_entry": "100"},
            True,
        ),
        ("position:default:ETHUSDT:0", "correct_position"): (
            {"qty": "0", "avg_entry": None},
            {"qty": "2", "avg_entry": "3000"},
            True,
        ),
    }
    assert count(database, Fill) == 1 + len(changes)


def test_right_after_sync_to_broker_a_new_run_finds_the_account_in_sync(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    buy(books, "b1", "BTCUSDT", "10")
    buy(books, "b2", "SOLUSDT", "5")
    venue.set([long("BTCUSDT", "7", mark="90"), {**long("SOLUSDT", "3"), "side": "short"}, long("XRPUSDT", "100")])

    assert run(database, venue, clock).status == "resolved"
    assert run(database, venue, clock).status == "in_sync"
    assert positions(books) == {"BTCUSDT": Decimal(7), "SOLUSDT": Decimal(-3), "XRPUSDT": Decimal(100)}


def test_a_dry_run_is_stored_as_dry_and_changes_no_books(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    buy(books, "b1", "BTCUSDT", "10")
    venue.set([long("ETHUSDT", "2")], cash={"currency": "USD", "balance": "50"})
    books.set_expected_cash("lxalgo", "paper", "100")
    fills_before, lots_before = count(database, Fill), count(database, Lot)

    result = run(database, venue, clock, dry_run=True)

    assert result.status == "resolved"
    assert (count(database, Fill), count(database, Lot)) == (fills_before, lots_before)
    assert positions(books) == {"BTCUSDT": Decimal(10)}
    with database.reading() as session:
        record = history.run_record(session, result.run_id)
        books_now, _ = load_books(session, find_account(session, "lxalgo", "paper").id)
    assert record.run.dry_run
    assert record.actions and not any(a.applied for a in record.actions)
    assert books_now.expected_cash is not None and books_now.expected_cash.balance == Decimal(100)
    assert count(database, Break) == 0


def test_venue_fills_are_recorded_under_their_ids_so_the_bot_recording_them_later_changes_nothing(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    buy(books, "b1", "BTCUSDT", "10", price="100")
    venue.set(
        [long("BTCUSDT", "6")],
        fills=[{"fill_id": "venue-77", "symbol": "BTCUSDT", "side": "sell", "qty": "4", "price": "120",
                "time": "2026-11-02T00:00:00Z"}],
    )  # fmt: skip

    run(database, venue, clock)
    late = books.record_fill("lxalgo", "paper", symbol="BTCUSDT", side="sell", qty="4", price="120",
                             fill_id="venue-77")  # fmt: skip

    assert not late.recorded
    assert positions(books) == {"BTCUSDT": Decimal(6)}
    with database.reading() as session:
        trade = session.scalars(select(Trade)).one()
    assert (trade.exit_price, trade.gross_pnl, trade.exit_estimated) == (Decimal(120), Decimal(80), False)
    assert trade.status == "CLOSED_EXTERNALLY"


def test_replaying_a_run_against_the_same_books_and_snapshot_never_doubles_the_correction(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    buy(books, "b1", "BTCUSDT", "10")
    venue.set([long("BTCUSDT", "4", mark="90")])
    config = account(venue)
    snapshot = SimVenue(venue.path).fetch_snapshot(clock.now)

    class Frozen:
        """The same snapshot every time, like a retried task."""

        name = "sim"

        def fetch_snapshot(self, now: object) -> Snapshot:
            return snapshot

    first = reconcile(database, config, clock=clock, venue=Frozen())
    replay = reconcile(database, config, clock=clock, venue=Frozen())

    assert first.status == "resolved" and replay.status == "in_sync"
    assert positions(books) == {"BTCUSDT": Decimal(4)}
    assert count(database, Fill) == 2


def test_the_same_synthetic_correction_written_twice_is_one_fill(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    """Two runs that planned against the same books (a duplicated task) write one correction between them."""
    buy(books, "b1", "BTCUSDT", "10")
    venue.set([long("BTCUSDT", "4", mark="90")])
    account_id, intended = plan_now(database, venue, clock, Rules(policy=SYNC))

    for _ in range(2):
        apply_now(database, account_id, intended, clock)

    assert positions(books) == {"BTCUSDT": Decimal(4)}
    assert count(database, Fill) == 2


def test_a_later_correction_of_the_same_size_still_applies(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    venue.set([long("XRPUSDT", "100")])
    run(database, venue, clock)
    venue.set([])
    run(database, venue, clock)
    assert positions(books) == {}

    venue.set([long("XRPUSDT", "100")])
    assert run(database, venue, clock).status == "resolved"

    assert positions(books) == {"XRPUSDT": Decimal(100)}
    assert count(database, Fill) == 3


def test_a_run_that_lost_the_account_to_a_newer_run_writes_nothing(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    buy(books, "b1", "BTCUSDT", "10")
    venue.set([])

    class Overtaken:
        """A fetch during which another run takes the account."""

        name = "sim"

        def fetch_snapshot(self, now: Any) -> Snapshot:
            with database.transaction() as session:
                begin_run(session, account_id, "schedule", False, now)
            return SimVenue(venue.path).fetch_snapshot(now)

    with database.reading() as session:
        account_id = find_account(session, "lxalgo", "paper").id
    result = reconcile(database, account(venue), clock=clock, venue=Overtaken())

    assert result.status == "failed"
    assert "lost the account" in (result.error or "")
    assert positions(books) == {"BTCUSDT": Decimal(10)}
    assert count(database, Action) == 0


class Interrupted(Exception):
    """What can end a task just after its decision committed: a time limit, a connection lost after the commit."""


def test_a_run_interrupted_after_its_decision_committed_keeps_the_status_it_committed(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    buy(books, "b1", "BTCUSDT", "10")
    venue.set([long("BTCUSDT", "15")])
    interrupted: list[str] = []

    def interrupt_once_a_run_has_ended(session: Session) -> None:
        with database.engine.connect() as connection:
            ended = connection.scalar(select(func.count()).select_from(Run).where(Run.status != "running"))
        if ended and not interrupted:
            interrupted.append("once")
            raise Interrupted("the task's time ran out just after the commit")

    clock.advance(60)
    event.listen(Session, "after_commit", interrupt_once_a_run_has_ended)
    try:
        with pytest.raises(Interrupted):
            reconcile(database, account(venue, grace=0), clock=clock)
    finally:
        event.remove(Session, "after_commit", interrupt_once_a_run_has_ended)

    with database.reading() as session:
        (recorded,) = session.scalars(select(Run)).all()
    assert (recorded.status, recorded.error) == ("resolved", None)
    assert positions(books) == {"BTCUSDT": Decimal(15)}


def test_a_fill_the_bot_records_while_the_venue_is_read_is_seen_by_the_decision(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    """The books are read under the account's lock, after the venue: no correction is made on books it did not see."""
    buy(books, "b1", "BTCUSDT", "10")
    venue.set([long("BTCUSDT", "15")])

    class FillArrivesMeanwhile:
        name = "sim"

        def fetch_snapshot(self, now: Any) -> Snapshot:
            buy(books, "b2", "BTCUSDT", "5")  # the bot records the fill that explains the difference, mid-run
            return SimVenue(venue.path).fetch_snapshot(now)

    clock.advance(60)
    result = reconcile(database, account(venue, grace=0), clock=clock, venue=FillArrivesMeanwhile())

    assert result.status == "in_sync"
    assert positions(books) == {"BTCUSDT": Decimal(15)}
    assert count(database, Fill) == 2


def test_a_discrepancy_with_fills_inside_the_grace_window_is_left_for_the_next_run(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    books.record_fill("lxalgo", "paper", symbol="BTCUSDT", side="buy", qty="1", price="1", fill_id="new")
    venue.set([])

    deferred = reconcile(database, account(venue), clock=clock)
    clock.advance(31)
    acted = reconcile(database, account(venue), clock=clock)

    assert (deferred.status, acted.status) == ("warned", "resolved")
    assert positions(books) == {}


def test_a_persisting_discrepancy_is_one_break_until_it_disappears(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    venue.set([long("NVDA", "10")])
    runs = [run(database, venue, clock, WARN) for _ in range(3)]
    with database.reading() as session:
        [open_break] = session.scalars(select(Break)).all()
        assert (open_break.occurrences, open_break.resolved_at) == (3, None)
        assert (open_break.first_seen_run_id, open_break.last_seen_run_id) == (runs[0].run_id, runs[2].run_id)

    venue.set([])
    cleared = run(database, venue, clock, WARN)

    with database.reading() as session:
        closed = session.scalars(select(Break)).one()
    assert cleared.status == "in_sync"
    assert (closed.resolved_run_id, closed.occurrences) == (cleared.run_id, 3)


def test_halt_and_alert_halts_the_account_once_and_raises_one_alert(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    buy(books, "b1", "BTCUSDT", "10")
    venue.set([long("BTCUSDT", "5")])

    first = run(database, venue, clock, HALT)
    second = run(database, venue, clock, HALT)

    assert (first.status, second.status) == ("halted", "halted")
    assert books.is_halted("lxalgo", "paper")
    assert positions(books) == {"BTCUSDT": Decimal(10)}
    with database.reading() as session:
        kinds = sorted(session.scalars(select(Alert.kind)))
    assert kinds == ["break_opened", "halted"]  # the second run's persisting break and standing halt raise nothing


def test_a_dry_run_started_during_a_real_run_does_not_fence_it_off(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    buy(books, "b1", "BTCUSDT", "10")
    venue.set([long("BTCUSDT", "4")])

    class DryRunMeanwhile:
        name = "sim"

        def fetch_snapshot(self, now: Any) -> Snapshot:
            assert reconcile(database, account(venue), clock=clock, dry_run=True).status == "resolved"
            return SimVenue(venue.path).fetch_snapshot(now)

    clock.advance(60)
    real = reconcile(database, account(venue), clock=clock, venue=DryRunMeanwhile())

    assert real.status == "resolved"
    assert positions(books) == {"BTCUSDT": Decimal(4)}


def test_an_unexpected_error_marks_the_run_failed_and_is_raised(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    class Broken:
        name = "sim"

        def fetch_snapshot(self, now: Any) -> Snapshot:
            raise RuntimeError("socket exploded")

    with pytest.raises(RuntimeError, match="socket exploded"):
        reconcile(database, account(venue), clock=clock, venue=Broken())

    with database.reading() as session:
        [line] = history.list_runs(session)
        stored = session.get_one(Run, line.run_id)
    assert (stored.status, stored.error) == ("failed", "unexpected error: RuntimeError: socket exploded")


def test_cash_and_orders_the_bot_changed_while_the_venue_is_read_are_seen_by_the_decision(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    books.set_expected_cash("lxalgo", "paper", "1000")
    books.record_order("lxalgo", "paper", client_order_id="c1", symbol="BTCUSDT", side="buy", qty="1")
    venue.set([], cash={"currency": "USD", "balance": "500"})

    class BotMovesMeanwhile:
        name = "sim"

        def fetch_snapshot(self, now: Any) -> Snapshot:
            books.set_expected_cash("lxalgo", "paper", "500")
            books.record_order("lxalgo", "paper", client_order_id="c1", symbol="BTCUSDT", side="buy", qty="1",
                               status="filled")  # fmt: skip
            return SimVenue(venue.path).fetch_snapshot(now)

        def lookup_order(self, order: Any) -> Any:
            return SimVenue(venue.path).lookup_order(order)

    clock.advance(60)
    result = reconcile(database, account(venue), clock=clock, venue=BotMovesMeanwhile())

    assert result.status == "in_sync"
    with database.reading() as session:
        account_id = find_account(session, "lxalgo", "paper").id
        now_books, _ = load_books(session, account_id)
        assert order_statuses(session, account_id, ["c1"]) == {"c1": "filled"}
    assert now_books.expected_cash is not None and now_books.expected_cash.balance == Decimal(500)


def test_a_run_on_an_already_halted_account_says_so_instead_of_halting_again(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    buy(books, "b1", "BTCUSDT", "10")
    venue.set([long("BTCUSDT", "5")])
    run(database, venue, clock, HALT)

    again = run(database, venue, clock, HALT)

    with database.reading() as session:
        record = history.run_record(session, again.run_id)
    assert [f.action for f in record.findings] == ["account already halted (quantity_mismatch default:BTCUSDT:0)"]
    assert record.actions == []


def test_a_run_records_when_the_venue_reported_its_snapshot(database: Database, venue: Venue, clock: Clock) -> None:
    result = run(database, venue, clock)

    with database.reading() as session:
        assert session.get_one(Run, result.run_id).snapshot_as_of == clock.now


def statements_of_one_run(database: Database, venue: Venue, clock: Clock, books: BooksClient, size: int) -> int:
    """SQL statements of one sync run over ``size`` positions of which every fifth one drifts, five ways."""
    fills = [
        {
            "fill_id": f"b{i}",
            "symbol": f"S{i}",
            "side": "buy",
            "qty": "10",
            "price": "100",
            "time": "2026-11-01T00:00:00Z",
        }
        for i in range(size)
    ]
    for fill in fills:
        books.record_fill("lxalgo", "paper", **fill)
    held = {0: None, 1: "4", 2: "15", 3: "-3"}  # vanished, less, more, flipped; the rest agree
    positions = [
        {**long(f"S{i}", held.get(i % 5, "10") or "10", mark="101"), "side": "short" if i % 5 == 3 else "long"}
        | ({"qty": "3"} if i % 5 == 3 else {})
        for i in range(size)
        if i % 5 != 0
    ]
    venue.set(positions + [long(f"NEW{i}", "1") for i in range(size // 5)])
    count_statements = 0

    def count(*_: object) -> None:
        nonlocal count_statements
        count_statements += 1

    event.listen(database.engine, "before_cursor_execute", count)
    try:
        assert run(database, venue, clock).status == "resolved"
    finally:
        event.remove(database.engine, "before_cursor_execute", count)
    return count_statements


def test_the_statements_of_a_run_do_not_grow_with_the_number_of_positions(
    database_url: str, tmp_path: Path, clock: Clock
) -> None:
    counts = []
    for size in (10, 100):
        database = Database(database_url)
        with database.transaction() as session:
            for table in reversed(Base.metadata.sorted_tables):
                session.execute(table.delete())
        venue = Venue(tmp_path / f"venue-{size}.json")
        counts.append(statements_of_one_run(database, venue, clock, books_for(database, clock), size))
        database.dispose()

    assert counts[0] == counts[1]


def test_a_currency_mismatch_synced_to_the_venue_is_resolved_not_deferred_forever(
    database: Database, venue: Venue, books: BooksClient, clock: Clock
) -> None:
    books.set_expected_cash("lxalgo", "paper", "1000", "USD")
    venue.set([], cash={"currency": "USDT", "balance": "990"})

    first = run(database, venue, clock)
    second = run(database, venue, clock)

    assert (first.status, second.status) == ("resolved", "in_sync")
    with database.reading() as session:
        report_cash = session.get_one(Run, first.run_id).cash
    assert report_cash is not None
    assert (report_cash["expected_currency"], report_cash["currency"], report_cash["severity"]) == (
        "USD",
        "USDT",
        "critical",
    )
