"""Books that refuse nonsense: fills from the future, a known fill id with other contents, a category the
account's venue does not know (or none where it knows several), accounts outside the fleet file, and currencies
written any which way. Each refusal is ``FixConfiguration`` naming what to fix, and writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models.books import Account, Fill
from models.database import Database
from reconciliation.errors import ConflictingFill, FixConfiguration
from workers.books import BooksClient
from workers.fleet import Fleet, load_fleet

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

FLEET = """
[bots.lxalgo.accounts.paper]
venue = "sim"
state_file = "paper.json"

[bots.lxalgo.accounts.live]
venue = "bybit"
api_key_env = "BYBIT_KEY"
api_secret_env = "BYBIT_SECRET"
categories = ["linear", "inverse"]

[bots.momentum.accounts.live]
venue = "alpaca"
api_key_env = "ALPACA_KEY"
api_secret_env = "ALPACA_SECRET"

[bots.shortseller.accounts.live]
venue = "bybit"
api_key_env = "BYBIT_KEY"
api_secret_env = "BYBIT_SECRET"
"""
SIM_STATE = '{"positions": [{"symbol": "BTCUSDT", "category": "linear", "side": "long", "qty": "1", "avg_price": "1"}]}'


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    """lxalgo/paper on a sim venue naming only `linear`, lxalgo/live on Bybit reading linear and inverse,
    momentum/live on Alpaca, shortseller/live on Bybit reading linear only."""
    (tmp_path / "paper.json").write_text(SIM_STATE)
    (tmp_path / "fleet.toml").write_text(FLEET)
    return load_fleet(tmp_path / "fleet.toml")


@pytest.fixture
def books(database: Database, fleet: Fleet) -> BooksClient:
    return BooksClient(database, lambda: NOW, fleet=fleet)


def buy(books: BooksClient, bot: str = "lxalgo", account: str = "paper", **given: object) -> object:
    fields: dict[str, object] = {"symbol": "BTCUSDT", "side": "buy", "qty": "1", "price": "50000", "fill_id": "f1"}
    return books.record_fill(bot, account, **{**fields, **given})  # type: ignore[arg-type]


def fills_in(database: Database) -> int:
    with database.reading() as session:
        return int(session.scalar(select(func.count()).select_from(Fill)) or 0)


# --- time ---------------------------------------------------------------------------------------------------------


def test_a_fill_dated_beyond_the_clock_skew_allowance_is_refused_and_nothing_is_written(
    books: BooksClient, database: Database
) -> None:
    with pytest.raises(
        FixConfiguration, match=r"^time: 2099-01-01T00:00:00\+00:00 is \d+ s in the future \(at most 60"
    ):
        buy(books, time="2099-01-01T00:00:00Z")

    assert fills_in(database) == 0


@pytest.mark.parametrize("ahead", [0, 30, 60])
def test_a_fill_within_the_clock_skew_allowance_is_recorded(books: BooksClient, ahead: int) -> None:
    assert buy(books, time=NOW + timedelta(seconds=ahead)).recorded  # type: ignore[attr-defined]


def test_a_fill_61_seconds_ahead_is_refused(books: BooksClient) -> None:
    with pytest.raises(FixConfiguration, match="61 s in the future"):
        buy(books, time=NOW + timedelta(seconds=61))


# --- a known fill id ------------------------------------------------------------------------------------------------


def test_the_same_fill_again_is_a_no_op(books: BooksClient) -> None:
    buy(books, fee="0.5", time=NOW)

    again = buy(books, fee="0.50", time=NOW, price="50000.0")

    assert not again.recorded  # type: ignore[attr-defined]
    assert [p.qty for p in books.positions("lxalgo", "paper")] == [Decimal(1)]


@pytest.mark.parametrize(
    ("changed", "says"),
    [
        ({"qty": "2"}, "qty 2 (recorded 1)"),
        ({"side": "sell"}, "side sell (recorded buy)"),
        ({"price": "50001"}, "price 50001 (recorded 50000)"),
        ({"symbol": "ETHUSDT"}, "instrument linear:ETHUSDT:0 (recorded linear:BTCUSDT:0)"),
        ({"fee": "1"}, "fee 1 (recorded 0.5)"),
        ({"time": NOW - timedelta(hours=1)}, "time 2026-11-20T11:00:00+00:00 (recorded 2026-11-20T12:00:00+00:00)"),
        ({"kind": "liquidation"}, "kind liquidation (recorded trade)"),
    ],
    ids=["qty", "side", "price", "instrument", "fee", "time", "kind"],
)
def test_a_known_fill_id_with_other_contents_is_a_conflict_naming_what_differs(
    books: BooksClient, changed: dict[str, object], says: str
) -> None:
    buy(books, fee="0.5", time=NOW)

    with pytest.raises(ConflictingFill) as caught:
        buy(books, **{"fee": "0.5", "time": NOW, **changed})

    assert str(caught.value) == (f"fill_id 'f1' is already recorded for lxalgo/paper with other contents: {says}")
    assert [p.qty for p in books.positions("lxalgo", "paper")] == [Decimal(1)]


def test_a_retry_that_leaves_out_the_fee_and_time_is_the_same_fill(books: BooksClient) -> None:
    buy(books, fee="0.5", time=NOW - timedelta(minutes=1))

    assert not buy(books).recorded  # type: ignore[attr-defined]


# --- categories ----------------------------------------------------------------------------------------------------


def test_the_category_may_be_left_out_where_the_venue_knows_one_and_is_then_that_one(books: BooksClient) -> None:
    buy(books)
    buy(books, "shortseller", "live", fill_id="s1")

    assert [str(p.key) for p in books.positions("lxalgo", "paper")] == ["linear:BTCUSDT:0"]
    assert [str(p.key) for p in books.positions("shortseller", "live")] == ["linear:BTCUSDT:0"]


@pytest.mark.parametrize(
    ("bot", "says"),
    [
        ("lxalgo", "category: required for lxalgo/live on bybit (one of linear, inverse)"),
        ("momentum", "category: required for momentum/live on alpaca (one of us_equity, us_option, crypto)"),
    ],
)
def test_the_category_is_required_where_the_venue_knows_several(
    books: BooksClient, database: Database, bot: str, says: str
) -> None:
    with pytest.raises(FixConfiguration) as caught:
        buy(books, bot, "live")

    assert str(caught.value) == says
    assert fills_in(database) == 0


@pytest.mark.parametrize(
    ("bot", "account", "category", "knows"),
    [
        ("lxalgo", "paper", "lineer", "linear"),
        ("lxalgo", "live", "spot", "linear, inverse"),
        ("momentum", "live", "equity", "us_equity, us_option, crypto"),
    ],
)
def test_a_category_the_venue_does_not_know_is_refused_naming_those_it_knows(
    books: BooksClient, bot: str, account: str, category: str, knows: str
) -> None:
    with pytest.raises(FixConfiguration, match=f"category: '{category}' is not one .* knows: {knows}$"):
        buy(books, bot, account, category=category)


def test_a_category_in_capitals_is_the_venues_own(books: BooksClient) -> None:
    buy(books, "lxalgo", "live", category=" Inverse ")

    assert [p.key.category for p in books.positions("lxalgo", "live")] == ["inverse"]


def test_a_pending_order_follows_the_same_category_rules(books: BooksClient) -> None:
    with pytest.raises(FixConfiguration, match="category: required for lxalgo/live"):
        books.record_order("lxalgo", "live", client_order_id="c1", symbol="BTCUSDT", side="buy", qty="1")


# --- accounts and currencies -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "write",
    [
        lambda b: buy(b, "newbot", "paper"),
        lambda b: b.record_order("newbot", "paper", client_order_id="c1", symbol="X", side="buy", qty="1"),
        lambda b: b.set_expected_cash("lxalgo", "demo", "100", "USD"),
    ],
    ids=["fill", "order", "cash"],
)
def test_books_are_written_only_for_accounts_in_the_fleet_file(
    books: BooksClient, database: Database, write: object
) -> None:
    with pytest.raises(FixConfiguration, match=r"no account (newbot/paper|lxalgo/demo) \(known: lxalgo/paper, "):
        write(books)  # type: ignore[operator]

    with database.reading() as session:
        assert session.scalar(select(func.count()).select_from(Account)) == 0


def test_without_a_fleet_file_books_are_not_written(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECON_FLEET", raising=False)

    with pytest.raises(FixConfiguration, match=r"^no fleet file: books are written only for accounts in the fleet"):
        buy(BooksClient(database))


@pytest.mark.parametrize(("given", "kept"), [("usdt", "USDT"), (" usd ", "USD"), ("Btc", "BTC")])
def test_currencies_are_upper_cased(books: BooksClient, given: str, kept: str) -> None:
    books.set_expected_cash("lxalgo", "paper", "100", given)

    previous = books.set_expected_cash("lxalgo", "paper", "100", "USD")
    assert previous is not None
    assert (previous.currency, previous.balance) == (kept, Decimal(100))


@pytest.mark.parametrize("given", ["US D", "$", "u", "usd!"])
def test_a_currency_that_is_not_a_code_is_refused(books: BooksClient, given: str) -> None:
    with pytest.raises(FixConfiguration, match="is not a currency code"):
        books.set_expected_cash("lxalgo", "paper", "100", given)
