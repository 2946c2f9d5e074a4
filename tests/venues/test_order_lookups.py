"""Pending orders the venue no longer shows are looked up before anything is decided (real pybit, loopback)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fake_exchange import FakeExchange
from sqlalchemy import select

from cli.app import main
from models import Trade, history
from models.accounts import find_account
from models.database import Database
from models.orders import live_orders
from tests.conftest import books_for, reconcile
from workers.backfill import backfill
from workers.books import BooksClient
from workers.fleet import load_fleet


@pytest.fixture
def books(database: Database, monkeypatch: pytest.MonkeyPatch) -> BooksClient:
    """Books holding one pending buy of 2 BTCUSDT (client id lx-1) that timed out at the bot."""
    monkeypatch.setenv("BYBIT_KEY", "bybit-key")
    monkeypatch.setenv("BYBIT_SECRET", "bybit-secret")
    client = books_for(database)
    client.record_order("lxalgo", "live", client_order_id="lx-1", symbol="BTCUSDT", category="linear",
                        side="buy", qty="2", price="100")  # fmt: skip
    return client


def account(tmp_path: Path, exchange: FakeExchange, policy: str) -> object:
    path = tmp_path / "fleet.toml"
    path.write_text(f"""
[bots.lxalgo.accounts.live]
venue = "bybit"
environment = "testnet"
base_url = "{exchange.url}"
api_key_env = "BYBIT_KEY"
api_secret_env = "BYBIT_SECRET"
settle_coins = ["USDT"]
grace_seconds = 0
[bots.lxalgo.accounts.live.policy]
minor = "{policy}"
moderate = "{policy}"
critical = "{policy}"
""")
    return load_fleet(path).account("lxalgo", "live")


def pending(database: Database) -> list[tuple[str | None, str]]:
    with database.sessions() as session:
        account_id = find_account(session, "lxalgo", "live").id
        return [(o.client_order_id, o.status.value) for o in live_orders(session, account_id)]


@pytest.mark.parametrize("policy", ["warn_only", "sync_to_broker"])
def test_a_timed_out_order_that_filled_is_booked_with_its_fills_and_leaves_no_ghost(
    exchange: FakeExchange, database: Database, books: BooksClient, tmp_path: Path, policy: str
) -> None:
    filled_at = datetime.now(UTC) - timedelta(minutes=5)
    exchange.add_bybit_order("linear", "BTCUSDT", "Buy", "2", "100", order_id="o-1", order_link_id="lx-1",
                             created_time=filled_at - timedelta(seconds=30))  # fmt: skip
    exchange.set_bybit_order_status("o-1", "Filled", cum_exec_qty="2")
    for exec_id, qty in (("e-1", "1.5"), ("e-2", "0.5")):
        exchange.add_bybit_execution("linear", "BTCUSDT", "Buy", qty, "100", exec_id=exec_id, order_id="o-1",
                                     order_link_id="lx-1", exec_time=filled_at, exec_fee="0.01")  # fmt: skip
    exchange.add_bybit_position("linear", "BTCUSDT", "Buy", "2", "100", "101")

    result = reconcile(database, account(tmp_path, exchange, policy))  # type: ignore[arg-type]

    [position] = books.positions("lxalgo", "live")
    assert position.qty == Decimal(2)
    assert pending(database) == []
    late = books.record_fill("lxalgo", "live", symbol="BTCUSDT", category="linear", side="buy", qty="1.5",
                             price="100", fill_id="e-1")  # fmt: skip
    assert not late.recorded
    assert reconcile(database, account(tmp_path, exchange, policy)).status == "in_sync"  # type: ignore[arg-type]
    with database.sessions() as session:
        actions = {f.subject: f.action for f in history.run_record(session, result.run_id).findings}
    assert actions["order:lx-1"] == "looked up: filled, recorded 2 fill(s)"


def test_a_cancelled_order_is_marked_and_an_unknown_one_is_reported_without_change(
    exchange: FakeExchange, database: Database, books: BooksClient, tmp_path: Path
) -> None:
    books.record_order("lxalgo", "live", client_order_id="lx-2", symbol="BTCUSDT", category="linear",
                       side="sell", qty="1", price="120")  # fmt: skip
    exchange.add_bybit_order("linear", "BTCUSDT", "Sell", "1", "120", order_id="o-2", order_link_id="lx-2")
    exchange.set_bybit_order_status("o-2", "Cancelled")

    result = reconcile(database, account(tmp_path, exchange, "warn_only"))  # type: ignore[arg-type]

    with database.sessions() as session:
        actions = {f.subject: f.action for f in history.run_record(session, result.run_id).findings}
    assert actions == {
        "order:lx-1": "not found at the venue: nothing changed",
        "order:lx-2": "looked up: cancelled",
    }
    assert pending(database) == [("lx-1", "open")]


def test_venue_check_shows_what_the_venue_reports_or_why_it_cannot(
    exchange: FakeExchange, books: BooksClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exchange.add_bybit_position("linear", "BTCUSDT", "Sell", "0.5", "60000", "59000")
    account(tmp_path, exchange, "warn_only")

    def check(*extra: str) -> tuple[int, str, str]:
        try:
            main(["--config", str(tmp_path / "fleet.toml"), "venue", "check", "lxalgo", "live", *extra])
        except SystemExit as done:
            captured = capsys.readouterr()
            return int(done.code or 0), captured.out, captured.err
        raise AssertionError("main always exits")

    code, out, _ = check("--json")
    document = json.loads(out)
    assert code == 0
    assert (document["ok"], document["positions"], document["live"]) == (True, 1, True)  # loopback: unknown, so live
    assert document["venue"] == f"bybit testnet at {exchange.url}"

    exchange.revoke("bybit-key")
    code, out, err = check()
    assert code == 2 and err == "recon: error: bybit refused the credentials (retCode 10003)\n"
    assert "bybit-secret" not in out + err

    exchange.fail("/v5/position/list", "http503")
    exchange.revoked.clear()
    code, out, _ = check()
    assert code == 3 and "cannot read the account: bybit HTTP 503" in out


def test_backfill_through_pybit_replaces_the_estimate_with_the_liquidation_fill_once(
    exchange: FakeExchange, database: Database, books: BooksClient, tmp_path: Path
) -> None:
    books.record_fill("lxalgo", "live", symbol="SOLUSDT", category="linear", side="buy", qty="10", price="180",
                      fill_id="b-sol", time=datetime.now(UTC) - timedelta(days=3))  # fmt: skip
    config = account(tmp_path, exchange, "sync_to_broker")
    reconcile(database, config)  # type: ignore[arg-type]
    [estimated] = [t for t in trades(database) if t.symbol == "SOLUSDT"]
    assert estimated.exit_estimated

    exchange.add_bybit_execution("linear", "SOLUSDT", "Sell", "10", "151.2", exec_type="BustTrade", exec_id="liq-1",
                                 exec_fee="0.83", exec_time=datetime.now(UTC) - timedelta(days=1))  # fmt: skip
    first = backfill(database, config)  # type: ignore[arg-type]
    second = backfill(database, config)  # type: ignore[arg-type]

    [real] = [t for t in trades(database) if t.symbol == "SOLUSDT"]
    assert (first.backfilled, second.backfilled, second.status) == (1, 0, "in_sync")
    assert (real.exit_price, real.exit_estimated, real.exit_reason) == (
        Decimal("151.2"),
        False,
        "liquidated by the venue",
    )
    assert real.net_pnl == (Decimal("151.2") - 180) * 10 - Decimal("0.83")


def trades(database: Database) -> list[Trade]:
    with database.sessions() as session:
        return list(session.scalars(select(Trade)))


def test_a_hedge_mode_leg_closed_at_the_venue_is_synced_with_the_venues_own_fill_on_that_leg(
    exchange: FakeExchange, database: Database, books: BooksClient, tmp_path: Path
) -> None:
    opened = datetime.now(UTC) - timedelta(days=2)
    books.record_fill("lxalgo", "live", symbol="ETHUSDT", category="linear", leg=1, side="buy", qty="1",
                      price="3000", fill_id="b-long", time=opened)  # fmt: skip
    books.record_fill("lxalgo", "live", symbol="ETHUSDT", category="linear", leg=2, side="sell", qty="2",
                      price="3100", fill_id="b-short", time=opened)  # fmt: skip
    exchange.add_bybit_position("linear", "ETHUSDT", "Buy", "1", "3000", "2950", position_idx=1)
    exchange.add_bybit_flat_position("linear", "ETHUSDT", position_idx=2, markPrice="2950")
    exchange.add_bybit_execution("linear", "ETHUSDT", "Buy", "2", "2900", exec_id="hand-cover", order_id="o-cover",
                                 position_idx=2, exec_fee="0.5",
                                 exec_time=datetime.now(UTC) - timedelta(hours=1))  # fmt: skip

    reconcile(database, account(tmp_path, exchange, "sync_to_broker"))  # type: ignore[arg-type]

    assert [(p.key.leg, p.qty) for p in books.positions("lxalgo", "live")] == [(1, Decimal(1))]
    [closed] = [t for t in trades(database) if t.symbol == "ETHUSDT"]
    assert (closed.leg, closed.exit_fill_id, closed.exit_price, closed.exit_estimated) == (
        2,
        "hand-cover",
        Decimal(2900),
        False,
    )
