"""sync_to_local through the real pybit client: guarded orders, deterministic client ids, every order an action."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from fake_exchange import FakeExchange

from models import history, ledger
from models.database import Database
from workers.books import BooksClient
from workers.fleet import load_fleet
from workers.orchestrator import reconcile

KEYS = {"BYBIT_KEY": "bybit-key", "BYBIT_SECRET": "bybit-secret"}
ORDER_UUID = "61e69015-8549-4bfd-b9c3-01e75843f47d"


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake exchange's Bybit key in the variables the fleet file names."""
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def drifted(exchange: FakeExchange, database: Database) -> BooksClient:
    """Books long 10 BTCUSDT; the venue holds 4 (mark 100): the venue must buy 6 to match the books."""
    books = BooksClient(database)
    books.record_fill("lxalgo", "live", symbol="BTCUSDT", category="linear", side="buy", qty="10", price="100",
                      fill_id="b1", time="2026-11-01T00:00:00Z")  # fmt: skip
    exchange.add_bybit_position("linear", "BTCUSDT", "Buy", "4", "100", "100")
    return books


def fleet(tmp_path: Path, exchange: FakeExchange, **account: str) -> Path:
    options = "\n".join(f"{key} = {value}" for key, value in account.items())
    path = tmp_path / "fleet.toml"
    path.write_text(f"""
[bots.lxalgo.accounts.live]
venue = "bybit"
base_url = "{exchange.url}"
api_key_env = "BYBIT_KEY"
api_secret_env = "BYBIT_SECRET"
settle_coins = ["USDT"]
timeout_seconds = 2
grace_seconds = 0
{options}
[bots.lxalgo.accounts.live.policy]
minor = "sync_to_local"
moderate = "sync_to_local"
critical = "sync_to_local"
""")
    return path


def order_actions(database: Database, run_id: int) -> list[tuple[bool, str]]:
    with database.sessions() as session:
        record = history.run_record(session, run_id)
    return [(a.applied, a.detail) for a in record.actions if a.kind == "planned_order"]


def run(database: Database, path: Path, dry_run: bool = False) -> int:
    return reconcile(database, load_fleet(path).account("lxalgo", "live"), dry_run=dry_run).run_id


def test_an_order_within_the_cap_is_sent_once_even_when_the_run_is_retried(
    exchange: FakeExchange, database: Database, drifted: BooksClient, credentials: None, tmp_path: Path
) -> None:
    path = fleet(tmp_path, exchange, environment='"testnet"', max_order_notional="1000")

    first = run(database, path)
    [(applied, detail)] = order_actions(database, first)

    assert applied and "sent as" in detail
    [sent] = exchange.submitted_orders
    assert (sent.body["side"], sent.body["qty"], sent.body["orderType"], sent.body["reduceOnly"]) == (
        "Buy", "6", "Market", False,
    )  # fmt: skip
    with database.sessions() as session:
        pending = ledger.live_orders(session, ledger.find_account(session, "lxalgo", "live").id)
    assert [o.client_order_id for o in pending] == [sent.body["orderLinkId"]]

    retried = run(database, path)  # the venue has not moved yet: the same correction, the same client id
    assert len(exchange.submitted_orders) == 1
    assert all("already sent" in detail or "sent as" in detail for _, detail in order_actions(database, retried))


def test_a_live_account_without_allow_live_orders_sends_nothing(
    exchange: FakeExchange, database: Database, drifted: BooksClient, credentials: None, tmp_path: Path
) -> None:
    path = fleet(tmp_path, exchange, environment='"mainnet"', max_order_notional="1000000")

    [(applied, detail)] = order_actions(database, run(database, path))

    assert not applied and "live account without allow_live_orders" in detail
    assert exchange.submitted_orders == []


def test_orders_over_the_notional_cap_are_refused(
    exchange: FakeExchange, database: Database, drifted: BooksClient, credentials: None, tmp_path: Path
) -> None:
    path = fleet(tmp_path, exchange, environment='"mainnet"', allow_live_orders="true", max_order_notional="500")

    [(applied, detail)] = order_actions(database, run(database, path))

    assert not applied and "would take the run over max_order_notional 500" in detail
    assert exchange.submitted_orders == []


def test_a_dry_run_prints_the_order_it_would_send_and_sends_nothing(
    exchange: FakeExchange, database: Database, drifted: BooksClient, credentials: None, tmp_path: Path
) -> None:
    path = fleet(tmp_path, exchange, environment='"demo"', max_order_notional="1000")

    [(applied, detail)] = order_actions(database, run(database, path, dry_run=True))

    assert not applied and "would send (notional 600)" in detail
    assert exchange.submitted_orders == []
    assert drifted.positions("lxalgo", "live")[0].qty == Decimal(10)


def test_an_open_venue_order_unknown_to_the_books_is_cancelled_but_not_on_a_live_account_without_consent(
    exchange: FakeExchange, database: Database, credentials: None, tmp_path: Path
) -> None:
    exchange.add_bybit_order("linear", "ETHUSDT", "Buy", "1", "2000", order_id="manual-1", order_link_id="web-1")

    refused = run(database, fleet(tmp_path, exchange, environment='"mainnet"'))
    assert exchange.cancelled_orders == []
    assert "refused: live account" in order_actions(database, refused)[0][1]

    cancelled = run(database, fleet(tmp_path, exchange, environment='"testnet"'))
    assert exchange.cancelled_orders == ["manual-1"]
    assert order_actions(database, cancelled) == [(True, "planned cancel of venue order web-1: cancelled")]


def test_alpaca_cancels_through_alpaca_py(
    exchange: FakeExchange, database: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ALPACA_KEY", "alpaca-key")
    monkeypatch.setenv("ALPACA_SECRET", "alpaca-secret")
    exchange.add_alpaca_order("TSLA", "3", "buy", limit_price="200", order_id=ORDER_UUID, client_order_id="web-2")
    path = tmp_path / "alpaca.toml"
    path.write_text(f"""
[bots.lxalgo.accounts.live]
venue = "alpaca"
environment = "paper"
base_url = "{exchange.url}"
api_key_env = "ALPACA_KEY"
api_secret_env = "ALPACA_SECRET"
timeout_seconds = 2
[bots.lxalgo.accounts.live.policy]
moderate = "sync_to_local"
""")

    result = run(database, path)

    assert exchange.cancelled_orders == [ORDER_UUID]
    assert order_actions(database, result) == [(True, "planned cancel of venue order web-2: cancelled")]
