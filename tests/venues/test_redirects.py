"""No request follows a redirect: credentials go to the configured URL and nowhere else.

The fake exchange answers 30x pointing at a second loopback server that records whatever reaches it. Plain
pybit follows such a redirect, API key and signature included (shown first, so the setup is known to catch
it); plain alpaca-py does not follow it but reads the redirect's body as the answer. Both adapters refuse.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from alpaca.trading.client import TradingClient
from fake_exchange import DEFAULT_ALPACA_KEYS, DEFAULT_BYBIT_KEYS, FakeExchange, RecordingServer
from pybit.unified_trading import HTTP

from reconciliation.errors import FixConfiguration, ReconError
from reconciliation.values import InstrumentKey, Order, Side
from venues.alpaca import AlpacaSettings, AlpacaVenue
from venues.bybit import BybitSettings, BybitVenue
from venues.credentials import Credentials, Secret

BYBIT_KEY, BYBIT_SECRET = next(iter(DEFAULT_BYBIT_KEYS.items()))
ALPACA_KEY, ALPACA_SECRET = next(iter(DEFAULT_ALPACA_KEYS.items()))
STATUSES = [301, 302, 303, 307, 308]


@pytest.fixture
def elsewhere() -> Iterator[RecordingServer]:
    with RecordingServer() as server:
        yield server


def bybit_venue(url: str) -> BybitVenue:
    credentials = Credentials(Secret(BYBIT_KEY), Secret(BYBIT_SECRET))
    return BybitVenue(BybitSettings(credentials=credentials, base_url=url, timeout_seconds=1, settle_coins=("USDT",)))


def alpaca_venue(url: str) -> AlpacaVenue:
    credentials = Credentials(Secret(ALPACA_KEY), Secret(ALPACA_SECRET))
    return AlpacaVenue(AlpacaSettings(credentials=credentials, base_url=url, timeout_seconds=1))


def assert_refused(error: ReconError, elsewhere: RecordingServer) -> None:
    assert isinstance(error, FixConfiguration)
    assert f"redirected to {elsewhere.url}" in str(error)
    assert "nothing was sent to it" in str(error)
    assert elsewhere.received == []


def test_plain_pybit_follows_a_redirect_and_sends_the_key_and_signature_there(
    exchange: FakeExchange, elsewhere: RecordingServer
) -> None:
    session = HTTP(api_key=BYBIT_KEY, api_secret=BYBIT_SECRET, max_retries=1, retry_codes={-1}, timeout=1)
    session.endpoint = exchange.url
    session.client.trust_env = False
    exchange.fail("/v5/position/list", "redirect", location=f"{elsewhere.url}/v5/position/list")

    session.get_positions(category="linear", settleCoin="USDT")

    (received,) = elsewhere.received
    assert received.headers["X-BAPI-API-KEY"] == BYBIT_KEY and received.headers["X-BAPI-SIGN"]


def test_plain_alpaca_py_reads_a_redirects_body_as_the_answer(exchange: FakeExchange) -> None:
    client = TradingClient(ALPACA_KEY, ALPACA_SECRET, paper=True, raw_data=True, url_override=exchange.url)
    client._session.trust_env = False
    exchange.fail("/v2/positions", "redirect", location="http://127.0.0.1:9/v2/positions")

    assert client.get_all_positions() == {"moved": "http://127.0.0.1:9/v2/positions"}


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("path", ["/v5/position/list", "/v5/order/realtime", "/v5/execution/list",
                                  "/v5/account/wallet-balance"])  # fmt: skip
def test_bybit_refuses_a_redirect_and_sends_nothing_where_it_points(
    exchange: FakeExchange, elsewhere: RecordingServer, path: str, status: int
) -> None:
    exchange.fail(path, "redirect", location=f"{elsewhere.url}{path}", status=status)

    with pytest.raises(ReconError) as caught:
        bybit_venue(exchange.url).fetch_snapshot(datetime.now(UTC))

    assert_refused(caught.value, elsewhere)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("path", ["/v2/account", "/v2/positions", "/v2/orders", "/v2/account/activities/FILL"])
def test_alpaca_refuses_a_redirect_and_sends_nothing_where_it_points(
    exchange: FakeExchange, elsewhere: RecordingServer, path: str, status: int
) -> None:
    exchange.fail(path, "redirect", location=f"{elsewhere.url}{path}", status=status)

    with pytest.raises(ReconError) as caught:
        alpaca_venue(exchange.url).fetch_snapshot(datetime.now(UTC))

    assert_refused(caught.value, elsewhere)


@pytest.mark.parametrize("name", ["bybit", "alpaca"])
def test_orders_and_cancels_are_not_sent_after_a_redirect_either(
    exchange: FakeExchange, elsewhere: RecordingServer, name: str
) -> None:
    if name == "bybit":
        venue: BybitVenue | AlpacaVenue = bybit_venue(exchange.url)
        key, paths = InstrumentKey("linear", "BTCUSDT"), ("/v5/order/create", "/v5/order/cancel")
    else:
        venue = alpaca_venue(exchange.url)
        key, paths = InstrumentKey("us_equity", "AAPL"), ("/v2/orders", "/v2/orders/o-1")
    for path in paths:
        exchange.fail(path, "redirect", location=f"{elsewhere.url}{path}", status=307)  # 307 repeats the body

    with pytest.raises(ReconError) as placed:
        venue.place_order(key, Side.BUY, Decimal(1), False, "recon-1")
    with pytest.raises(ReconError) as cancelled:
        venue.cancel_order(Order(None, "o-1", key, Side.BUY, Decimal(1), None))

    assert_refused(placed.value, elsewhere)
    assert_refused(cancelled.value, elsewhere)
    assert exchange.submitted_orders == [] and exchange.cancelled_orders == []


def test_a_relative_redirect_names_the_venues_own_origin(exchange: FakeExchange) -> None:
    exchange.fail("/v2/account", "redirect", location="/v2/elsewhere")

    with pytest.raises(FixConfiguration, match=f"redirected to {exchange.url} "):
        alpaca_venue(exchange.url).fetch_snapshot(datetime.now(UTC))

    assert exchange.count("/v2/elsewhere") == 0


def test_a_redirect_names_only_the_origin_never_a_user_or_a_path(exchange: FakeExchange) -> None:
    exchange.fail("/v2/account", "redirect", location="http://someone:pw@127.0.0.1:9/path?token=abc")

    with pytest.raises(FixConfiguration) as caught:
        alpaca_venue(exchange.url).fetch_snapshot(datetime.now(UTC))

    assert "redirected to http://127.0.0.1:9 " in str(caught.value)
    assert "someone" not in str(caught.value) and "token" not in str(caught.value)
