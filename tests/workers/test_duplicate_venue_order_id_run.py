"""Two book orders naming one venue order id, through whole runs (SQLite and Postgres, sim venue): reported as
``duplicate_venue_order_id``, the default policy halts, no strategy settles either order, and the fleet file takes
the kind under ``by_kind``."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from cli.exports import run_csv
from models import history
from models.accounts import find_account
from models.database import Database
from models.orders import live_orders
from reconciliation.findings import Kind, Severity
from reconciliation.policy import Policy, Rules, Strategy
from tests.conftest import Clock, SimState, books_for, reconcile
from workers.books import BooksClient
from workers.fleet import AccountConfig, load_fleet
from workers.reports import run_json

SYNC = Policy(minor=Strategy.SYNC_TO_BROKER, moderate=Strategy.SYNC_TO_BROKER, critical=Strategy.SYNC_TO_BROKER)
VENUE_ORDER = {"order_id": "v1", "client_order_id": "bot-a", "symbol": "BTCUSDT", "side": "buy", "qty": "1",
               "price": "50000"}  # fmt: skip


@pytest.fixture
def books(database: Database, clock: Clock) -> BooksClient:
    """Books holding two pending buys that both name venue order v1 (two bot instances booked one order)."""
    client = books_for(database, clock)
    for client_order_id in ("bot-a", "bot-b"):
        client.record_order("lxalgo", "paper", client_order_id=client_order_id, symbol="BTCUSDT", side="buy",
                            qty="1", price="50000", venue_order_id="v1")  # fmt: skip
    return client


def run(database: Database, venue: SimState, clock: Clock, policy: Policy) -> Any:
    clock.advance(60)
    config = AccountConfig("lxalgo", "paper", "sim", Rules(policy=policy, grace_seconds=0), 300, venue.path)
    return reconcile(database, config, clock=clock)


def pending(database: Database) -> list[tuple[str | None, str | None, str]]:
    with database.reading() as session:
        account_id = find_account(session, "lxalgo", "paper").id
        return sorted((o.client_order_id, o.venue_order_id, o.status.value) for o in live_orders(session, account_id))


def findings(database: Database, run_id: int) -> list[tuple[str, str, str, str, str]]:
    with database.reading() as session:
        record = history.run_record(session, run_id)
    return [(f.kind, f.subject, f.severity, f.outcome, f.action) for f in record.findings]


def test_the_default_policy_halts_on_a_venue_order_booked_twice_and_changes_no_order(
    database: Database, venue: SimState, books: BooksClient, clock: Clock
) -> None:
    venue.set([], open_orders=[VENUE_ORDER])

    result = run(database, venue, clock, Policy())

    assert result.status == "halted" and books.is_halted("lxalgo", "paper")
    assert findings(database, result.run_id) == [
        (
            "duplicate_venue_order_id",
            "order:venue:v1",
            "critical",
            "halted",
            "the books hold 2 live orders for venue order v1 (bot-a, bot-b); halted the account: fix the books by hand",
        )
    ]
    assert pending(database) == [("bot-a", "v1", "open"), ("bot-b", "v1", "open")]


def test_sync_to_broker_settles_neither_order_even_when_the_venue_order_filled(
    database: Database, venue: SimState, books: BooksClient, clock: Clock
) -> None:
    filled = {**VENUE_ORDER, "status": "filled"}
    fill = {"fill_id": "x-1", "order_id": "v1", "symbol": "BTCUSDT", "side": "buy", "qty": "1", "price": "50000",
            "time": "2026-11-20T11:00:00Z"}  # fmt: skip
    venue.set([{"symbol": "BTCUSDT", "side": "long", "qty": "1", "avg_price": "50000"}], open_orders=[filled],
              fills=[fill])  # fmt: skip

    first = run(database, venue, clock, SYNC)
    second = run(database, venue, clock, SYNC)

    kinds = {kind: outcome for kind, _, _, outcome, _ in findings(database, first.run_id)}
    assert kinds[Kind.DUPLICATE_VENUE_ORDER_ID] == "warned"
    assert pending(database) == [("bot-a", "v1", "open"), ("bot-b", "v1", "open")]  # nothing settled either order
    assert not books.is_halted("lxalgo", "paper")
    duplicate = [f for f in findings(database, second.run_id) if f[0] == "duplicate_venue_order_id"]
    assert [(subject, outcome) for _, subject, _, outcome, _ in duplicate] == [("order:venue:v1", "warned")]
    assert "order:venue:v1" in books.breaks("lxalgo", "paper")


def test_the_fleet_file_takes_the_kind_under_by_kind(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text("""
[defaults.policy.by_kind]
duplicate_venue_order_id = "warn_only"
[bots.lxalgo.accounts.paper]
venue = "sim"
state_file = "venue.json"
""")

    rules = load_fleet(path).account("lxalgo", "paper").rules

    assert rules.policy.strategy_for(Kind.DUPLICATE_VENUE_ORDER_ID, Severity.CRITICAL) is Strategy.WARN_ONLY


def test_the_csv_report_names_the_duplicate_by_its_venue_order_id_as_the_breaks_do(
    database: Database, venue: SimState, books: BooksClient, clock: Clock
) -> None:
    venue.set([], open_orders=[VENUE_ORDER])
    result = run(database, venue, clock, Policy())

    with database.reading() as session:
        rows = list(csv.DictReader(io.StringIO(run_csv(run_json(history.run_record(session, result.run_id))))))

    assert [(r["section"], r["subject"], r["kind"]) for r in rows if r["section"] == "order"] == [
        ("order", "order:venue:v1", "duplicate_venue_order_id")
    ]
