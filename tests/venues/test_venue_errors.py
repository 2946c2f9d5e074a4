"""Venue faults become the error the caller must act on, never a partial snapshot; failed runs leave the books.

Every fault is served by the loopback fake exchange to the real pybit and alpaca-py clients. Each raised error
keeps the SDK's (or requests') error as ``__cause__``.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from alpaca.common.exceptions import APIError
from fake_exchange import DEFAULT_ALPACA_KEYS, DEFAULT_BYBIT_KEYS, FakeExchange
from pybit.exceptions import FailedRequestError, InvalidRequestError
from sqlalchemy import func, select

from models import Action, Run
from models import Fill as FillRow
from models.database import Database
from reconciliation.errors import (
    AuthenticationFailed,
    InvalidResponse,
    RateLimited,
    ReconError,
    RequestRejected,
    VenueUnavailable,
)
from reconciliation.values import InstrumentKey, Order, Side
from tests.conftest import Clock, books_for, reconcile
from venues.alpaca import AlpacaSettings, AlpacaVenue
from venues.bybit import BybitSettings, BybitVenue
from venues.credentials import Credentials, Secret
from venues.http import MAX_RETRY_AFTER
from workers.books import BooksClient
from workers.fleet import AccountConfig, load_fleet

BYBIT_KEY, BYBIT_SECRET = next(iter(DEFAULT_BYBIT_KEYS.items()))
ALPACA_KEY, ALPACA_SECRET = next(iter(DEFAULT_ALPACA_KEYS.items()))
VenueT = BybitVenue | AlpacaVenue


@dataclass(frozen=True)
class VenueKind:
    """How to build, seed and fault one venue in these tests."""

    name: str
    build: Callable[..., VenueT]
    seed: Callable[[FakeExchange], None]
    paths: tuple[str, ...]  # every path one fetch_snapshot reads, in the order it reads them
    causes: tuple[type[BaseException], ...]  # what the SDK raises, kept as __cause__

    def __str__(self) -> str:
        return self.name


def build_bybit(url: str, timeout: float = 1, key: str = BYBIT_KEY, secret: str = BYBIT_SECRET) -> BybitVenue:
    credentials = Credentials(Secret(key), Secret(secret))
    return BybitVenue(BybitSettings(credentials=credentials, base_url=url, timeout_seconds=timeout,
                                    settle_coins=("USDT",)))  # fmt: skip


def build_alpaca(url: str, timeout: float = 1, key: str = ALPACA_KEY, secret: str = ALPACA_SECRET) -> AlpacaVenue:
    credentials = Credentials(Secret(key), Secret(secret))
    return AlpacaVenue(AlpacaSettings(credentials=credentials, base_url=url, timeout_seconds=timeout))


def seed_bybit(exchange: FakeExchange) -> None:
    """One of everything, so a dropped field has a row to be dropped from."""
    exchange.add_bybit_position("linear", "BTCUSDT", "Buy", "1", "60000", "61000")
    exchange.add_bybit_order("linear", "BTCUSDT", "Sell", "1", "70000", order_link_id="tp-1")
    exchange.add_bybit_execution("linear", "BTCUSDT", "Buy", "1", "60000", exec_time=now() - timedelta(hours=1))


def seed_alpaca(exchange: FakeExchange) -> None:
    exchange.add_alpaca_position("AAPL", "10", "190", "191")
    exchange.add_alpaca_order("AAPL", "10", "sell", limit_price="250", submitted_at=now() - timedelta(hours=1))
    exchange.add_alpaca_fill("AAPL", "10", "190", "buy", transaction_time=now() - timedelta(hours=1))


BYBIT = VenueKind(
    "bybit",
    build_bybit,
    seed_bybit,
    ("/v5/position/list", "/v5/order/realtime", "/v5/execution/list", "/v5/account/wallet-balance"),
    (FailedRequestError, InvalidRequestError, requests.RequestException),
)
ALPACA = VenueKind(
    "alpaca",
    build_alpaca,
    seed_alpaca,
    ("/v2/account", "/v2/positions", "/v2/orders", "/v2/account/activities/FILL"),
    (APIError, requests.RequestException),
)
VENUES = [BYBIT, ALPACA]
EVERY_PATH = [pytest.param(kind, path, id=f"{kind}{path}") for kind in VENUES for path in kind.paths]
FIRST_PATH = [pytest.param(kind, kind.paths[0], id=f"{kind}{kind.paths[0]}") for kind in VENUES]
LAST_PATH = [pytest.param(kind, kind.paths[-1], id=f"{kind}{kind.paths[-1]}") for kind in VENUES]


def now() -> datetime:
    return datetime.now(UTC)


def fetch_fails(kind: VenueKind, venue: VenueT) -> tuple[ReconError, float]:
    """Fetch a snapshot that must fail: the error, and how long the call took."""
    started = time.monotonic()
    with pytest.raises(ReconError) as caught:
        venue.fetch_snapshot(now())
    return caught.value, time.monotonic() - started


def assert_sdk_cause(kind: VenueKind, error: BaseException) -> None:
    assert isinstance(error.__cause__, kind.causes), repr(error.__cause__)


def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def seeded(exchange: FakeExchange) -> FakeExchange:
    for kind in VENUES:
        kind.seed(exchange)
    return exchange


# --- rate limits ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "path"), EVERY_PATH)
def test_http_429_is_rate_limited_with_the_venues_wait(seeded: FakeExchange, kind: VenueKind, path: str) -> None:
    seeded.fail(path, "http429", reset_in_ms=1500, retry_after="2")

    error, elapsed = fetch_fails(kind, kind.build(seeded.url))

    assert isinstance(error, RateLimited)
    assert error.retry_after is not None
    if kind is BYBIT:
        assert 0 < error.retry_after <= 2  # from X-Bapi-Limit-Reset-Timestamp, ~1.5 s from now
    else:
        assert error.retry_after == 2.0  # Retry-After: 2
    assert elapsed < 0.5  # the SDK did not sleep and retry on its own
    assert seeded.count(path) == 1
    assert_sdk_cause(kind, error)


@pytest.mark.parametrize("reset_in_ms", [1500, -5000], ids=["reset-ahead", "reset-in-the-past"])
@pytest.mark.parametrize("path", BYBIT.paths)
def test_bybit_retcode_10006_is_rate_limited_at_once_without_pybit_sleeping(
    seeded: FakeExchange, path: str, reset_in_ms: int
) -> None:
    seeded.fail(path, "retcode10006", reset_in_ms=reset_in_ms)

    error, elapsed = fetch_fails(BYBIT, build_bybit(seeded.url))

    assert isinstance(error, RateLimited)
    assert elapsed < 0.5
    assert seeded.count(path) == 1
    assert error.retry_after is not None and 0 <= error.retry_after <= 2
    if reset_in_ms > 0:
        assert error.retry_after > 0
    assert_sdk_cause(BYBIT, error)


def test_bybit_ip_limit_403_is_rate_limited(seeded: FakeExchange) -> None:
    seeded.fail("/v5/position/list", "http403")

    error, _ = fetch_fails(BYBIT, build_bybit(seeded.url))

    assert isinstance(error, RateLimited)
    assert_sdk_cause(BYBIT, error)


def test_alpaca_403_is_an_authentication_failure(seeded: FakeExchange) -> None:
    seeded.fail("/v2/positions", "http403")

    error, _ = fetch_fails(ALPACA, build_alpaca(seeded.url))

    assert isinstance(error, AuthenticationFailed)
    assert_sdk_cause(ALPACA, error)


# --- the venue failing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["http500", "http503"])
@pytest.mark.parametrize(("kind", "path"), EVERY_PATH)
def test_server_errors_are_venue_unavailable(seeded: FakeExchange, kind: VenueKind, path: str, fault: str) -> None:
    seeded.fail(path, fault)

    error, _ = fetch_fails(kind, kind.build(seeded.url))

    assert isinstance(error, VenueUnavailable)
    assert fault.removeprefix("http") in str(error)
    assert_sdk_cause(kind, error)


@pytest.mark.parametrize(("kind", "path"), FIRST_PATH + LAST_PATH)
def test_a_slow_answer_is_venue_unavailable_within_the_timeout(
    seeded: FakeExchange, kind: VenueKind, path: str
) -> None:
    seeded.fail(path, "slow", delay=1.0)

    error, elapsed = fetch_fails(kind, kind.build(seeded.url, timeout=0.3))

    assert isinstance(error, VenueUnavailable)
    assert "0.3" in str(error)
    assert elapsed < 0.9
    assert_sdk_cause(kind, error)


@pytest.mark.parametrize(("kind", "path"), FIRST_PATH + LAST_PATH)
def test_a_dropped_connection_is_venue_unavailable(seeded: FakeExchange, kind: VenueKind, path: str) -> None:
    seeded.fail(path, "disconnect")

    error, _ = fetch_fails(kind, kind.build(seeded.url))

    assert isinstance(error, VenueUnavailable)
    assert_sdk_cause(kind, error)


@pytest.mark.parametrize("kind", VENUES, ids=str)
def test_a_refused_connection_is_venue_unavailable(kind: VenueKind) -> None:
    error, elapsed = fetch_fails(kind, kind.build(closed_port_url()))

    assert isinstance(error, VenueUnavailable)
    assert elapsed < 2
    assert_sdk_cause(kind, error)


@pytest.mark.parametrize(("kind", "path"), EVERY_PATH)
def test_an_html_502_is_unavailable_or_invalid_never_another_crash(
    seeded: FakeExchange, kind: VenueKind, path: str
) -> None:
    seeded.fail(path, "non_json_error")

    error, _ = fetch_fails(kind, kind.build(seeded.url))  # anything but a ReconError escapes pytest.raises

    assert isinstance(error, VenueUnavailable | InvalidResponse)
    assert "502" in str(error)
    assert_sdk_cause(kind, error)


# --- answers we cannot trust ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "path"), EVERY_PATH)
def test_malformed_json_is_an_invalid_response(seeded: FakeExchange, kind: VenueKind, path: str) -> None:
    seeded.fail(path, "malformed")

    error, _ = fetch_fails(kind, kind.build(seeded.url))

    assert isinstance(error, InvalidResponse)
    assert_sdk_cause(kind, error)


MISSING_FIELDS = [
    (BYBIT, "/v5/position/list", "size"),
    (BYBIT, "/v5/position/list", "side"),
    (BYBIT, "/v5/position/list", "positionIdx"),
    (BYBIT, "/v5/position/list", "symbol"),
    (BYBIT, "/v5/position/list", "avgPrice"),
    (BYBIT, "/v5/order/realtime", "qty"),
    (BYBIT, "/v5/order/realtime", "orderStatus"),
    (BYBIT, "/v5/execution/list", "execQty"),
    (BYBIT, "/v5/execution/list", "execId"),
    (BYBIT, "/v5/execution/list", "execTime"),
    (BYBIT, "/v5/account/wallet-balance", "coin"),
    (ALPACA, "/v2/account", "cash"),
    (ALPACA, "/v2/account", "currency"),
    (ALPACA, "/v2/positions", "qty"),
    (ALPACA, "/v2/positions", "side"),
    (ALPACA, "/v2/positions", "avg_entry_price"),
    (ALPACA, "/v2/orders", "qty"),
    (ALPACA, "/v2/orders", "status"),
    (ALPACA, "/v2/account/activities/FILL", "qty"),
    (ALPACA, "/v2/account/activities/FILL", "price"),
    (ALPACA, "/v2/account/activities/FILL", "transaction_time"),
]


@pytest.mark.parametrize(
    ("kind", "path", "field"), [pytest.param(*case, id=f"{case[0]}{case[1]}.{case[2]}") for case in MISSING_FIELDS]
)
def test_a_missing_field_is_an_invalid_response_naming_it(
    seeded: FakeExchange, kind: VenueKind, path: str, field: str
) -> None:
    seeded.fail(path, "missing_field", field=field)

    error, _ = fetch_fails(kind, kind.build(seeded.url))

    assert isinstance(error, InvalidResponse)
    assert f".{field}: missing" in str(error)


# --- a failing page fails the whole fetch -----------------------------------------------------------------------


def five_pages(kind: VenueKind, exchange: FakeExchange, moment: datetime | None = None) -> str:
    """Fill the fake so one listing takes five pages (fills: in the day before ``moment``); returns its path."""
    if kind is BYBIT:
        for number in range(1000):
            exchange.add_bybit_position("linear", f"C{number:04d}USDT", "Buy", "1", "1", "1")
        return "/v5/position/list"
    moment = moment or now()
    for number in range(450):
        exchange.add_alpaca_fill("AAPL", "1", "100", "buy", transaction_time=moment - timedelta(minutes=number + 1),
                                 activity_id=f"{number:04d}::fill")  # fmt: skip
    return "/v2/account/activities/FILL"


@pytest.mark.parametrize("fault", ["http500", "malformed", "missing_field", "retcode10006", "non_json_error"])
@pytest.mark.parametrize("kind", VENUES, ids=str)
def test_a_failure_on_page_three_of_five_fails_the_whole_fetch(
    exchange: FakeExchange, kind: VenueKind, fault: str
) -> None:
    path = five_pages(kind, exchange)
    venue = kind.build(exchange.url)
    exchange.fail(path, fault, on_request=3)

    error, _ = fetch_fails(kind, venue)

    assert isinstance(error, VenueUnavailable | InvalidResponse | RateLimited)
    assert exchange.count(path) == 3  # stopped at the failing page, and returned nothing
    exchange.requests.clear()
    complete = venue.fetch_snapshot(now())  # the fault is spent: the same fetch now reads all five pages
    assert exchange.count(path) == 5
    assert len(complete.positions) == 1000 or len(complete.fills) == 450


# --- credentials and other calls --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", VENUES, ids=str)
def test_a_revoked_key_is_an_authentication_failure(seeded: FakeExchange, kind: VenueKind) -> None:
    seeded.revoke(BYBIT_KEY if kind is BYBIT else ALPACA_KEY)

    error, _ = fetch_fails(kind, kind.build(seeded.url))

    assert isinstance(error, AuthenticationFailed)
    assert_sdk_cause(kind, error)


@pytest.mark.parametrize("kind", VENUES, ids=str)
def test_a_wrong_secret_is_an_authentication_failure(seeded: FakeExchange, kind: VenueKind) -> None:
    key = BYBIT_KEY if kind is BYBIT else ALPACA_KEY

    error, _ = fetch_fails(kind, kind.build(seeded.url, key=key, secret="not-the-secret"))

    assert isinstance(error, AuthenticationFailed)


LOOKUP_PATHS = {BYBIT.name: "/v5/order/history", ALPACA.name: "/v2/orders:by_client_order_id"}


@pytest.mark.parametrize("fault", ["http500", "slow", "malformed"])
@pytest.mark.parametrize("kind", VENUES, ids=str)
def test_a_lookup_that_fails_raises_instead_of_saying_the_order_is_unknown(
    exchange: FakeExchange, kind: VenueKind, fault: str
) -> None:
    exchange.fail(LOOKUP_PATHS[kind.name], fault, delay=1.0)
    order = Order("bot-1", None, InstrumentKey("linear", "BTCUSDT"), Side.BUY, Decimal(1), None)

    with pytest.raises((VenueUnavailable, InvalidResponse)) as caught:
        kind.build(exchange.url, timeout=0.3).lookup_order(order)

    assert_sdk_cause(kind, caught.value)


@pytest.mark.parametrize("kind", VENUES, ids=str)
def test_an_order_the_venue_refuses_is_request_rejected(exchange: FakeExchange, kind: VenueKind) -> None:
    venue = kind.build(exchange.url)
    key = InstrumentKey("linear", "BTCUSDT") if kind is BYBIT else InstrumentKey("us_equity", "AAPL")
    venue.place_order(key, Side.BUY, Decimal(1), False, "dup-1")

    with pytest.raises(RequestRejected) as caught:
        venue.place_order(key, Side.BUY, Decimal(1), False, "dup-1")  # a client order id is used only once

    assert_sdk_cause(kind, caught.value)
    assert len(exchange.submitted_orders) == 1


@pytest.mark.parametrize("kind", VENUES, ids=str)
def test_placing_an_order_during_an_outage_is_venue_unavailable(exchange: FakeExchange, kind: VenueKind) -> None:
    path = "/v5/order/create" if kind is BYBIT else "/v2/orders"
    exchange.fail(path, "http503")
    key = InstrumentKey("linear", "BTCUSDT") if kind is BYBIT else InstrumentKey("us_equity", "AAPL")

    with pytest.raises(VenueUnavailable) as caught:
        kind.build(exchange.url).place_order(key, Side.SELL, Decimal(1), True, "recon-1")

    assert_sdk_cause(kind, caught.value)
    assert exchange.submitted_orders == []


# --- end to end: a failed fetch fails the run and changes nothing -----------------------------------------------


def fleet_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: VenueKind, url: str) -> AccountConfig:
    """The account of a one-account fleet file, its credentials in the environment as in production."""
    key, secret = (BYBIT_KEY, BYBIT_SECRET) if kind is BYBIT else (ALPACA_KEY, ALPACA_SECRET)
    monkeypatch.setenv("RECON_TEST_API_KEY", key)
    monkeypatch.setenv("RECON_TEST_API_SECRET", secret)
    extra = 'environment = "testnet"\nsettle_coins = ["USDT"]\n' if kind is BYBIT else 'environment = "paper"\n'
    path = tmp_path / "fleet.toml"
    path.write_text(
        "[bots.lxalgo.accounts.paper]\n"
        f'venue = "{kind.name}"\n'
        f'base_url = "{url}"\n'
        'api_key_env = "RECON_TEST_API_KEY"\n'
        'api_secret_env = "RECON_TEST_API_SECRET"\n'
        "timeout_seconds = 1\n" + extra,
        encoding="utf-8",
    )
    return load_fleet(path).account("lxalgo", "paper")


def count(database: Database, table: type) -> int:
    with database.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def book_positions(books: BooksClient) -> dict[InstrumentKey, Decimal]:
    return {p.key: p.qty for p in books.positions("lxalgo", "paper")}


@pytest.mark.parametrize(("kind", "fault", "message"), [
    (BYBIT, "http500", "bybit HTTP 500"),
    (ALPACA, "missing_field", "alpaca fills[0].qty: missing"),
], ids=["bybit", "alpaca"])  # fmt: skip
def test_a_fetch_failing_on_page_three_fails_the_run_and_leaves_the_books_unchanged(
    database: Database,
    clock: Clock,
    exchange: FakeExchange,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: VenueKind,
    fault: str,
    message: str,
) -> None:
    books = books_for(database, clock)
    category = "linear" if kind is BYBIT else "us_equity"
    symbol = "C0001USDT" if kind is BYBIT else "AAPL"
    books.record_fill("lxalgo", "paper", symbol=symbol, category=category, side="buy", qty="7", price="100",
                      fill_id="bot-fill-1", time="2026-11-19T00:00:00Z")  # fmt: skip
    books.record_fill("lxalgo", "paper", symbol="GONE", category=category, side="sell", qty="3", price="50",
                      fill_id="bot-fill-2", time="2026-11-19T00:00:00Z")  # fmt: skip
    path = five_pages(kind, exchange, clock.now)  # the venue disagrees: a run that got this far would change the books
    exchange.fail(path, fault, on_request=3)
    config = fleet_account(tmp_path, monkeypatch, kind, exchange.url)
    before, fills_before = book_positions(books), count(database, FillRow)

    clock.advance(60)
    result = reconcile(database, config, clock=clock)

    assert result.status == "failed"
    assert result.error is not None and "fetch failed" in result.error and message in result.error
    assert exchange.count(path) == 3
    assert before == {InstrumentKey(category, symbol): Decimal(7), InstrumentKey(category, "GONE"): Decimal(-3)}
    assert book_positions(books) == before
    assert count(database, FillRow) == fills_before == 2
    assert count(database, Action) == 0
    with database.sessions() as session:
        run = session.get_one(Run, result.run_id)
        assert (run.status, run.error, run.finished_at is not None) == ("failed", result.error, True)


# --- retry hints are finite and bounded -------------------------------------------------------------------------


def assert_bounded(error: RateLimited) -> None:
    wait = error.retry_after
    assert wait is None or (isinstance(wait, float) and math.isfinite(wait) and 0 <= wait <= MAX_RETRY_AFTER), wait


@pytest.mark.parametrize(
    ("header", "expected"),
    [("inf", None), ("nan", None), ("-inf", None), ("-5", 0.0), ("99999999", MAX_RETRY_AFTER), ("1e400", None),
     ("Wed, 21 Oct 2026 07:28:00 GMT", None), ("7", 7.0), ("0.5", 0.5)],
)  # fmt: skip
def test_alpaca_retry_after_is_none_or_a_finite_wait_within_the_clamp(
    seeded: FakeExchange, header: str, expected: float | None
) -> None:
    seeded.fail("/v2/positions", "http429", retry_after=header)

    error, _ = fetch_fails(ALPACA, build_alpaca(seeded.url))

    assert isinstance(error, RateLimited)
    assert_bounded(error)
    assert error.retry_after == expected


@pytest.mark.parametrize(
    ("reset", "expected"),
    [(10**23, MAX_RETRY_AFTER), (10**400, None), ("-5", None), ("abc", None), (0, 0.0), ("1e30", None)],
    ids=lambda value: str(value)[:12],
)
@pytest.mark.parametrize("fault", ["retcode10006", "http429"])
def test_bybit_reset_timestamps_give_a_finite_wait_within_the_clamp(
    seeded: FakeExchange, fault: str, reset: int | str, expected: float | None
) -> None:
    seeded.fail("/v5/position/list", fault, reset_at_ms=str(reset) if isinstance(reset, int) else reset)

    error, _ = fetch_fails(BYBIT, build_bybit(seeded.url))

    assert isinstance(error, RateLimited)
    assert_bounded(error)
    assert error.retry_after == expected


@pytest.mark.parametrize(("header", "expected"), [("inf", None), ("nan", None), ("-3", 0.0), ("5000", MAX_RETRY_AFTER)])
def test_bybit_falls_back_to_retry_after_and_clamps_it(
    seeded: FakeExchange, header: str, expected: float | None
) -> None:
    seeded.fail("/v5/position/list", "http429", reset_at_ms="", retry_after=header)

    error, _ = fetch_fails(BYBIT, build_bybit(seeded.url))

    assert isinstance(error, RateLimited) and error.retry_after == expected


def test_the_clamp_is_an_hour() -> None:
    assert MAX_RETRY_AFTER == 3600.0


# --- pybit never sleeps on a retCode a venue sends --------------------------------------------------------------


@pytest.mark.parametrize("code", [-1, 10002, 10006, 30034, 130150])
def test_no_ret_code_makes_pybit_sleep_and_retry(seeded: FakeExchange, code: int) -> None:
    seeded.mutate = lambda path, document: {**document, "retCode": code, "retMsg": "x"} if "/v5/" in path else document

    error, elapsed = fetch_fails(BYBIT, build_bybit(seeded.url))

    assert elapsed < 0.5  # pybit's own retry sleeps 2-3 s
    assert seeded.count() == 1
    assert isinstance(error, RequestRejected | RateLimited | VenueUnavailable)
    assert_sdk_cause(BYBIT, error)
