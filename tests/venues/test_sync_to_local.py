"""sync_to_local through the real pybit client: guarded orders, deterministic client ids, every order an action.

The fake exchange listens on loopback, a host no environment is known by: it counts as live, so every test that
expects an order to go out says ``allow_live_orders = true``, as an operator pointing at an unknown host must.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fake_exchange import FakeExchange

from models import history
from models.accounts import find_account
from models.database import Database
from models.orders import live_orders
from reconciliation.errors import FixConfiguration
from reconciliation.orders import reference_prices
from reconciliation.values import Books, InstrumentKey, Lot, LotSide, Snapshot, VenuePosition
from tests.conftest import books_for
from tests.conftest import serve_in_process as reconcile
from workers.books import BooksClient
from workers.fleet import load_fleet

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
    books = books_for(database)
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
    path = fleet(tmp_path, exchange, environment='"testnet"', allow_live_orders="true", max_order_notional="1000")

    first = run(database, path)
    [(applied, detail)] = order_actions(database, first)

    assert applied and "sent as" in detail
    [sent] = exchange.submitted_orders
    assert (sent.body["side"], sent.body["qty"], sent.body["orderType"], sent.body["reduceOnly"]) == (
        "Buy", "6", "Market", False,
    )  # fmt: skip
    with database.sessions() as session:
        pending = live_orders(session, find_account(session, "lxalgo", "live").id)
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
    path = fleet(tmp_path, exchange, environment='"demo"', allow_live_orders="true", max_order_notional="1000")

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

    cancelled = run(database, fleet(tmp_path, exchange, environment='"testnet"', allow_live_orders="true"))
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
allow_live_orders = true
[bots.lxalgo.accounts.live.policy]
moderate = "sync_to_local"
""")

    result = run(database, path)

    assert exchange.cancelled_orders == [ORDER_UUID]
    assert order_actions(database, result) == [(True, "planned cancel of venue order web-2: cancelled")]


def test_an_unknown_endpoint_counts_as_live_whatever_the_environment_label_says(
    exchange: FakeExchange, database: Database, drifted: BooksClient, credentials: None, tmp_path: Path
) -> None:
    path = fleet(tmp_path, exchange, environment='"testnet"', max_order_notional="1000")

    [(applied, detail)] = order_actions(database, run(database, path))

    assert load_fleet(path).account("lxalgo", "live").is_live
    assert not applied and "refused: live account without allow_live_orders" in detail
    assert exchange.submitted_orders == []


@pytest.mark.parametrize(
    ("venue", "environment", "url", "known_as"),
    [
        ("bybit", "testnet", "https://api.bybit.com", "mainnet"),
        ("bybit", "demo", "https://api.bytick.com/", "mainnet"),
        ("bybit", "mainnet", "https://api-testnet.bybit.com", "testnet"),
        ("alpaca", "paper", "https://api.alpaca.markets", "live"),
        ("alpaca", "live", "https://paper-api.alpaca.markets", "paper"),
    ],
)
def test_an_environment_label_that_disagrees_with_the_endpoint_is_a_configuration_error(
    tmp_path: Path, venue: str, environment: str, url: str, known_as: str
) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(f"""
[bots.lxalgo.accounts.live]
venue = "{venue}"
environment = "{environment}"
base_url = "{url}"
api_key_env = "KEY"
api_secret_env = "SECRET"
""")

    with pytest.raises(FixConfiguration) as refused:
        load_fleet(path)

    message = str(refused.value)
    assert "[bots.lxalgo.accounts.live]" in message
    assert f"environment = '{environment}'" in message and f"the {known_as} endpoint" in message


def test_no_order_is_sent_for_an_account_an_operator_halted(
    exchange: FakeExchange, database: Database, drifted: BooksClient, credentials: None, tmp_path: Path
) -> None:
    path = fleet(tmp_path, exchange, environment='"testnet"', allow_live_orders="true", max_order_notional="1000")
    with database.sessions.begin() as session:
        account_id = find_account(session, "lxalgo", "live").id
        history.set_halted(session, account_id, True, "investigating", datetime.now(UTC))

    [(applied, detail)] = order_actions(database, run(database, path))

    assert not applied and "refused: the account is halted" in detail
    assert exchange.submitted_orders == []


def test_no_order_is_sent_when_the_same_run_halts_the_account(
    exchange: FakeExchange, database: Database, drifted: BooksClient, credentials: None, tmp_path: Path
) -> None:
    """BTCUSDT differs by a moderate amount (sync_to_local) while ETHUSDT is gone at the venue (critical: halt)."""
    drifted.record_fill("lxalgo", "live", symbol="ETHUSDT", category="linear", side="buy", qty="1", price="2000",
                        fill_id="e1", time="2026-11-01T00:00:00Z")  # fmt: skip
    path = fleet(tmp_path, exchange, environment='"testnet"', allow_live_orders="true", max_order_notional="1000")
    path.write_text(path.read_text().replace('critical = "sync_to_local"', 'critical = "halt_and_alert"'))
    exchange.remove_bybit_position("linear", "BTCUSDT")
    exchange.add_bybit_position("linear", "BTCUSDT", "Buy", "9.7", "100", "100")

    result = run(database, path)

    [(applied, detail)] = order_actions(database, result)
    assert not applied and "refused: the account is halted" in detail
    assert exchange.submitted_orders == []
    assert drifted.is_halted("lxalgo", "live")


def test_no_order_is_sent_when_the_venue_gives_no_positive_price_to_size_it(
    exchange: FakeExchange, database: Database, credentials: None, tmp_path: Path
) -> None:
    """A venue reporting avgPrice 0 and markPrice 0: a cap that a zero price turns off is not a cap."""
    exchange.add_bybit_position("linear", "BTCUSDT", "Buy", "1000", "0", "0")
    path = fleet(tmp_path, exchange, environment='"testnet"', allow_live_orders="true", max_order_notional="1")

    result = run(database, path)

    assert exchange.submitted_orders == []
    with database.sessions() as session:
        record = history.run_record(session, result)
    refusals = [a.detail for a in record.actions if a.kind == "planned_order"]
    assert record.run.status == "failed" or all("refused: no positive mark, last or average price" in d
                                                 for d in refusals)  # fmt: skip


def test_reference_prices_take_the_first_positive_of_mark_last_average_and_book_entry() -> None:
    key, gone, adopted, unpriced = (InstrumentKey("linear", s) for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"))
    when = datetime(2026, 11, 1, tzinfo=UTC)
    lot = Lot("f1", gone, LotSide.LONG, Decimal(1), Decimal(1), Decimal("2000"), when)
    free = Lot("f2", unpriced, LotSide.LONG, Decimal(1), Decimal(1), Decimal(0), when)
    snapshot = Snapshot(
        as_of=when,
        positions=(
            VenuePosition(key, Decimal(1), Decimal("60000"), Decimal(0)),
            VenuePosition(adopted, Decimal(2), Decimal("150"), None),
            VenuePosition(unpriced, Decimal(1), Decimal(0), None),
        ),
        cash=None,
        marks={key: Decimal(0), gone: Decimal(0)},
    )
    books = Books(lots={gone: (lot,), unpriced: (free,)})

    prices = reference_prices(snapshot, books)

    assert prices == {key: Decimal("60000"), gone: Decimal("2000"), adopted: Decimal("150")}
