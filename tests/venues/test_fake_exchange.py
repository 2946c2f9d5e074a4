"""The fake exchange itself, proved with the real SDK clients (pybit, alpaca-py) over loopback HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, LimitOrderRequest, MarketOrderRequest
from fake_exchange import FakeExchange, RecordedRequest
from pybit.exceptions import FailedRequestError, InvalidRequestError
from pybit.unified_trading import HTTP

BYBIT_KEY, BYBIT_SECRET = "bybit-key", "bybit-secret"
ALPACA_KEY, ALPACA_SECRET = "alpaca-key", "alpaca-secret"
T0 = datetime(2026, 11, 14, 9, 30, tzinfo=UTC)


def now_ms() -> int:
    return int(time.time() * 1000)


def bybit(exchange: FakeExchange, key: str = BYBIT_KEY, secret: str = BYBIT_SECRET, **options: Any) -> HTTP:
    settings: dict[str, Any] = {"max_retries": 1, "retry_codes": {-1}, "timeout": 2}
    settings.update(options)
    session = HTTP(api_key=key, api_secret=secret, **settings)
    session.endpoint = exchange.url
    session.client.trust_env = False
    return session


def alpaca(exchange: FakeExchange, key: str = ALPACA_KEY, secret: str = ALPACA_SECRET) -> TradingClient:
    client = TradingClient(key, secret, paper=True, raw_data=True, url_override=exchange.url)
    client._session.trust_env = False
    return client


def raw_list(value: object) -> list[dict[str, Any]]:
    """alpaca-py with raw_data=True returns the decoded JSON; its annotations still name the models."""
    assert isinstance(value, list)
    return value


def raw_dict(value: object) -> dict[str, Any]:
    assert isinstance(value, dict)
    return value


def six_linear_positions(exchange: FakeExchange) -> list[str]:
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT"]
    for number, symbol in enumerate(symbols, start=1):
        exchange.add_bybit_position("linear", symbol, "Buy" if number % 2 else "Sell", str(number), "100", "101")
    return symbols


def all_position_pages(session: HTTP, **params: Any) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = session.get_positions(category="linear", cursor=cursor, **params)
        pages.append(response["result"])
        cursor = response["result"]["nextPageCursor"]
        if not cursor:
            return pages


# ------------------------------------------------------------------------------------------------ server


def test_the_server_listens_on_loopback_and_records_requests(exchange: FakeExchange) -> None:
    assert exchange.url.startswith("http://127.0.0.1:") and not exchange.url.endswith("/")
    bybit(exchange).get_wallet_balance(accountType="UNIFIED", coin="USDT")
    alpaca(exchange).get_account()

    assert exchange.requests == [
        RecordedRequest("GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED", "coin": "USDT"}),
        ("GET", "/v2/account", {}),
    ]
    assert exchange.count("/v2/account") == 1 and exchange.count() == 2
    exchange.reset()
    assert exchange.requests == [] and exchange.count() == 0


def test_stop_is_quick_even_with_a_slow_handler_in_flight() -> None:
    fake = FakeExchange().start()
    fake.fail("*", "slow", delay=30)
    with pytest.raises(requests.exceptions.ReadTimeout):
        bybit(fake, timeout=0.1).get_wallet_balance(accountType="UNIFIED")
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 1
    with pytest.raises(RuntimeError):
        _ = fake.url


# ------------------------------------------------------------------------------------------ Bybit: auth


def test_bybit_accepts_the_signature_pybit_computes_for_get_and_post(exchange: FakeExchange) -> None:
    session = bybit(exchange)
    assert session.get_wallet_balance(accountType="UNIFIED")["retCode"] == 0
    created = session.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty=0.01)
    assert created["retCode"] == 0 and created["result"]["orderId"]


def test_bybit_wrong_secret_is_10004(exchange: FakeExchange) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        bybit(exchange, secret="not-the-secret").get_wallet_balance(accountType="UNIFIED")
    assert caught.value.status_code == 10004
    assert caught.value.message == "error sign!"


def test_bybit_revoked_or_unknown_key_is_10003(exchange: FakeExchange) -> None:
    exchange.revoke(BYBIT_KEY)
    with pytest.raises(InvalidRequestError) as caught:
        bybit(exchange).get_positions(category="linear", settleCoin="USDT")
    assert caught.value.status_code == 10003
    with pytest.raises(InvalidRequestError) as unknown:
        bybit(exchange, key="who").get_positions(category="linear", settleCoin="USDT")
    assert unknown.value.status_code == 10003


def test_bybit_timestamp_outside_the_recv_window_is_10002(exchange: FakeExchange) -> None:
    exchange.clock_skew_ms = 60_000  # the venue's clock runs a minute ahead of ours
    with pytest.raises(InvalidRequestError) as caught:
        bybit(exchange).get_wallet_balance(accountType="UNIFIED")
    assert caught.value.status_code == 10002


# -------------------------------------------------------------------------------------- Bybit: positions


def test_bybit_positions_page_with_an_opaque_cursor(exchange: FakeExchange) -> None:
    symbols = six_linear_positions(exchange)
    exchange.add_bybit_position("linear", "BTCPERP", "Buy", "1", "100", "100", settle_coin="USDC")

    pages = all_position_pages(bybit(exchange), settleCoin="USDT", limit=2)

    assert [len(page["list"]) for page in pages] == [2, 2, 2]
    assert pages[-1]["nextPageCursor"] == ""
    assert "%" in pages[0]["nextPageCursor"]  # percent-encoded like Bybit's; pybit sends it back verbatim
    assert [row["symbol"] for page in pages for row in page["list"]] == symbols
    assert exchange.count("/v5/position/list") == 3
    first = pages[0]["list"][0]
    assert first["side"] == "Buy" and first["size"] == "1" and first["avgPrice"] == "100"
    assert first["positionIdx"] == 0 and first["unrealisedPnl"] == "1" and first["positionValue"] == "100"


def test_bybit_position_filters_and_flat_rows(exchange: FakeExchange) -> None:
    exchange.add_bybit_position("linear", "ETHUSDT", "Buy", "2", "3000", "3100", position_idx=1)
    exchange.add_bybit_flat_position("linear", "ETHUSDT", position_idx=2)
    exchange.add_bybit_position("linear", "BTCUSDC", "Sell", "0.5", "60000", "59000", settle_coin="USDC")
    session = bybit(exchange)

    by_symbol = session.get_positions(category="linear", symbol="ETHUSDT")["result"]["list"]
    assert [(row["positionIdx"], row["side"], row["size"]) for row in by_symbol] == [(1, "Buy", "2"), (2, "", "0")]
    by_settle = session.get_positions(category="linear", settleCoin="USDT")["result"]["list"]
    assert [row["symbol"] for row in by_settle] == ["ETHUSDT"]  # flat legs only come back when asked by symbol
    usdc = session.get_positions(category="linear", settleCoin="USDC")["result"]["list"]
    assert usdc[0]["side"] == "Sell" and usdc[0]["unrealisedPnl"] == "500"
    assert session.get_positions(category="inverse", settleCoin="BTC")["result"]["list"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"category": "linear"},  # linear needs symbol or settleCoin
        {"category": "linear", "settleCoin": "USDT", "limit": 201},
        {"category": "linear", "settleCoin": "USDT", "cursor": "forged"},
        {"category": "spot", "symbol": "BTCUSDT"},
    ],
)
def test_bybit_position_params_errors_are_10001(exchange: FakeExchange, params: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        bybit(exchange).get_positions(**params)
    assert caught.value.status_code == 10001


# ------------------------------------------------------------------------------ Bybit: wallet, orders, fills


def test_bybit_wallet_balance(exchange: FakeExchange) -> None:
    exchange.set_bybit_wallet({"USDT": "1500.5", "BTC": "0.1"}, usd_prices={"BTC": "60000"})
    account = bybit(exchange).get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]
    assert account["accountType"] == "UNIFIED"
    assert account["totalEquity"] == account["totalWalletBalance"] == "7500.5"
    assert [(coin["coin"], coin["walletBalance"], coin["usdValue"]) for coin in account["coin"]] == [
        ("USDT", "1500.5", "1500.5"),
        ("BTC", "0.1", "6000"),
    ]
    with pytest.raises(InvalidRequestError) as caught:
        bybit(exchange).get_wallet_balance(accountType="CONTRACT")
    assert caught.value.status_code == 10001


def test_bybit_open_orders_and_order_history(exchange: FakeExchange) -> None:
    for number in range(3):
        exchange.add_bybit_order("linear", "BTCUSDT", "Buy", "0.1", "50000", order_link_id=f"open-{number}")
    exchange.add_bybit_order("linear", "BTCUSDT", "Sell", "0.1", "70000", status="Cancelled", order_link_id="gone")
    session = bybit(exchange)

    first = session.get_open_orders(category="linear", settleCoin="USDT", limit=2)["result"]
    second = session.get_open_orders(category="linear", settleCoin="USDT", limit=2, cursor=first["nextPageCursor"])
    links = {row["orderLinkId"] for row in first["list"] + second["result"]["list"]}
    assert links == {"open-0", "open-1", "open-2"} and second["result"]["nextPageCursor"] == ""
    assert first["list"][0]["orderStatus"] == "New" and first["list"][0]["leavesQty"] == "0.1"

    exchange.set_bybit_order_status("open-1", "Filled", cum_exec_qty="0.1")
    history = session.get_order_history(category="linear", orderLinkId="open-1")["result"]["list"]
    assert [(row["orderLinkId"], row["orderStatus"]) for row in history] == [("open-1", "Filled")]
    cancelled = session.get_order_history(category="linear", orderLinkId="gone")["result"]["list"]
    assert cancelled[0]["orderStatus"] == "Cancelled"
    assert session.get_order_history(category="linear", orderId="unknown")["result"]["list"] == []


def test_bybit_executions_window_paging_and_types(exchange: FakeExchange) -> None:
    base = int(T0.timestamp() * 1000)
    for minute in range(5):
        exchange.add_bybit_execution(
            "linear", "BTCUSDT", "Buy", "0.01", "60000", exec_time=base + minute * 60_000, exec_id=f"e{minute}"
        )
    exchange.add_bybit_execution("linear", "BTCUSDT", "Sell", "0.05", "55000", exec_time=base, exec_type="BustTrade")
    exchange.add_bybit_execution("linear", "BTCUSDT", "Buy", "0.01", "60000", exec_time=base - 10 * 86_400_000)
    session = bybit(exchange)
    window = {"category": "linear", "startTime": base - 3_600_000, "endTime": base + 3_600_000}

    first = session.get_executions(**window, limit=4)["result"]
    rest = session.get_executions(**window, limit=4, cursor=first["nextPageCursor"])["result"]
    rows = first["list"] + rest["list"]
    assert len(rows) == 6 and rest["nextPageCursor"] == ""
    assert [int(row["execTime"]) for row in rows] == sorted((int(row["execTime"]) for row in rows), reverse=True)
    assert {row["execType"] for row in rows} == {"Trade", "BustTrade"}
    assert session.get_executions(**window, execType="BustTrade")["result"]["list"][0]["execQty"] == "0.05"

    with pytest.raises(InvalidRequestError) as caught:
        session.get_executions(category="linear", startTime=base - 8 * 86_400_000, endTime=base)
    assert caught.value.status_code == 10001 and caught.value.message == "The time range cannot exceed 7 days"
    recent = exchange.add_bybit_execution("inverse", "BTCUSD", "Buy", "100", "60000", exec_time=now_ms() - 3_600_000)
    exchange.add_bybit_execution("inverse", "BTCUSD", "Buy", "100", "60000", exec_time=now_ms() - 8 * 86_400_000)
    default_window = session.get_executions(category="inverse")["result"]["list"]  # no times: the last 7 days
    assert [row["execId"] for row in default_window] == [recent["execId"]]
    with pytest.raises(InvalidRequestError):
        session.get_executions(category="linear", limit=101)


def test_bybit_create_order_records_it_and_refuses_a_duplicate_link_id(exchange: FakeExchange) -> None:
    session = bybit(exchange)
    order = dict(category="linear", symbol="BTCUSDT", side="Sell", orderType="Market", qty="0.5", reduceOnly=True)

    created = session.place_order(**order, orderLinkId="close-btc-1", positionIdx=0)["result"]
    assert created["orderLinkId"] == "close-btc-1"
    [submitted] = exchange.submitted_orders
    assert submitted.venue == "bybit" and submitted.order_id == created["orderId"]
    assert submitted.body["reduceOnly"] is True and submitted.body["qty"] == "0.5"
    history = session.get_order_history(category="linear", orderLinkId="close-btc-1")["result"]["list"]
    assert history[0]["orderId"] == created["orderId"]

    with pytest.raises(InvalidRequestError) as caught:
        session.place_order(**order, orderLinkId="close-btc-1")
    assert caught.value.status_code == 110072
    assert len(exchange.submitted_orders) == 1


# ------------------------------------------------------------------------------------------ Bybit: faults


def test_bybit_retcode_10006_raises_with_the_reset_header_when_pybit_must_not_retry(exchange: FakeExchange) -> None:
    exchange.add_bybit_position("linear", "BTCUSDT", "Buy", "1", "100", "100")
    reset_at = int(time.time() * 1000) + 5000
    exchange.fail("/v5/position/list", "retcode10006", reset_at_ms=reset_at)
    session = bybit(exchange)

    with pytest.raises(InvalidRequestError) as caught:
        session.get_positions(category="linear", settleCoin="USDT")
    assert caught.value.status_code == 10006
    assert caught.value.resp_headers["X-Bapi-Limit-Reset-Timestamp"] == str(reset_at)
    assert session.get_positions(category="linear", settleCoin="USDT")["result"]["list"]  # consumed


def test_bybit_10006_with_a_reset_time_in_the_past_crashes_pybits_own_retry(exchange: FakeExchange) -> None:
    exchange.fail("/v5/account/wallet-balance", "retcode10006", reset_in_ms=-1000)
    session = bybit(exchange, retry_codes=None)  # pybit's defaults, which retry 10006 with time.sleep
    with pytest.raises(ValueError, match="sleep length must be non-negative"):
        session.get_wallet_balance(accountType="UNIFIED")


def test_bybit_http_429_is_a_failed_request_with_limit_headers(exchange: FakeExchange) -> None:
    exchange.fail("/v5/position/list", "http429", reset_in_ms=1500)
    with pytest.raises(FailedRequestError) as caught:
        bybit(exchange).get_positions(category="linear", settleCoin="USDT")
    assert caught.value.status_code == 429
    assert int(caught.value.resp_headers["X-Bapi-Limit-Reset-Timestamp"]) > time.time() * 1000
    assert caught.value.resp_headers["X-Bapi-Limit-Status"] == "0"


@pytest.mark.parametrize(("kind", "status"), [("http500", 500), ("http503", 503), ("non_json_error", 502)])
def test_bybit_http_errors_are_failed_requests(exchange: FakeExchange, kind: str, status: int) -> None:
    exchange.fail("*", kind)
    with pytest.raises(FailedRequestError) as caught:
        bybit(exchange).get_wallet_balance(accountType="UNIFIED")
    assert caught.value.status_code == status


def test_bybit_malformed_body_becomes_pybits_409(exchange: FakeExchange) -> None:
    exchange.fail("/v5/position/list", "malformed")
    with pytest.raises(FailedRequestError) as caught:
        bybit(exchange).get_positions(category="linear", settleCoin="USDT")
    assert caught.value.status_code == 409  # pybit's "Could not decode JSON", not an HTTP status


def test_bybit_missing_field_drops_size_from_the_first_row(exchange: FakeExchange) -> None:
    six_linear_positions(exchange)
    exchange.fail("/v5/position/list", "missing_field")
    rows = bybit(exchange).get_positions(category="linear", settleCoin="USDT")["result"]["list"]
    assert "size" not in rows[0] and all("size" in row for row in rows[1:])
    exchange.fail("/v5/position/list", "missing_field", field="side", item=None)
    rows = bybit(exchange).get_positions(category="linear", settleCoin="USDT")["result"]["list"]
    assert all("side" not in row for row in rows)


def test_slow_answer_meets_the_client_timeout(exchange: FakeExchange) -> None:
    exchange.fail("/v5/position/list", "slow", delay=0.3)
    with pytest.raises(requests.exceptions.ReadTimeout):
        bybit(exchange, timeout=0.1).get_positions(category="linear", settleCoin="USDT")


def test_disconnect_is_a_connection_error(exchange: FakeExchange) -> None:
    exchange.fail("*", "disconnect")
    with pytest.raises(requests.exceptions.ConnectionError):
        bybit(exchange).get_wallet_balance(accountType="UNIFIED")


def test_fail_on_request_3_breaks_page_3_of_5_once(exchange: FakeExchange) -> None:
    for number in range(10):
        exchange.add_bybit_position("linear", f"C{number}USDT", "Buy", "1", "1", "1")
    exchange.fail("/v5/position/list", "http500", on_request=3)
    session = bybit(exchange)

    cursor, seen = None, 0
    for _page in range(2):
        result = session.get_positions(category="linear", settleCoin="USDT", limit=2, cursor=cursor)["result"]
        cursor, seen = result["nextPageCursor"], seen + len(result["list"])
    with pytest.raises(FailedRequestError) as caught:
        session.get_positions(category="linear", settleCoin="USDT", limit=2, cursor=cursor)
    assert caught.value.status_code == 500
    while cursor:  # the same page again now works: the fault was consumed
        result = session.get_positions(category="linear", settleCoin="USDT", limit=2, cursor=cursor)["result"]
        cursor, seen = result["nextPageCursor"], seen + len(result["list"])
    assert seen == 10 and exchange.count("/v5/position/list") == 6


def test_faults_are_consumed_in_order_and_cleared_by_reset(exchange: FakeExchange) -> None:
    exchange.fail("/v5/account/wallet-balance", "http500")
    exchange.fail("/v5/account/wallet-balance", "http503")
    session = bybit(exchange)
    for status in (500, 503):
        with pytest.raises(FailedRequestError) as caught:
            session.get_wallet_balance(accountType="UNIFIED")
        assert caught.value.status_code == status
    assert session.get_wallet_balance(accountType="UNIFIED")["retCode"] == 0

    exchange.fail("*", "http500", times=5)
    exchange.reset()
    assert session.get_wallet_balance(accountType="UNIFIED")["retCode"] == 0
    with pytest.raises(ValueError):
        exchange.fail("*", "no-such-kind")


# ------------------------------------------------------------------------------------------------ Alpaca


def test_alpaca_account_and_positions_come_back_raw(exchange: FakeExchange) -> None:
    exchange.set_alpaca_account(cash="2500.25", equity="10000", buying_power="5000")
    exchange.add_alpaca_position("AAPL", "10", "150", "160")
    exchange.add_alpaca_position("TSLA", "-5", "200", "190")
    exchange.add_alpaca_position("BTC/USD", "0.25", "60000", "62000", asset_class="crypto")
    client = alpaca(exchange)

    account = raw_dict(client.get_account())
    assert (account["status"], account["currency"], account["cash"], account["equity"]) == (
        "ACTIVE",
        "USD",
        "2500.25",
        "10000",
    )
    positions = {row["symbol"]: row for row in raw_list(client.get_all_positions())}
    assert set(positions) == {"AAPL", "TSLA", "BTCUSD"}
    short = positions["TSLA"]
    assert (short["qty"], short["side"], short["market_value"], short["unrealized_pl"]) == ("-5", "short", "-950", "50")
    assert positions["BTCUSD"]["asset_class"] == "crypto" and positions["BTCUSD"]["exchange"] == "CRYPTO"
    assert positions["AAPL"]["cost_basis"] == "1500" and positions["AAPL"]["side"] == "long"


def test_alpaca_revoked_or_wrong_key_is_401(exchange: FakeExchange) -> None:
    exchange.revoke(ALPACA_KEY)
    with pytest.raises(APIError) as caught:
        alpaca(exchange).get_all_positions()
    assert caught.value.status_code == 401
    assert (caught.value.code, caught.value.message) == (40110000, "request is not authorized")
    with pytest.raises(APIError) as wrong:
        alpaca(exchange, key="someone-else").get_account()
    assert wrong.value.status_code == 401


def test_alpaca_fill_activities_page_with_page_token(exchange: FakeExchange) -> None:
    fills = [
        exchange.add_alpaca_fill("AAPL", "1", "150", "buy", transaction_time=T0 + timedelta(minutes=minute))
        for minute in range(5)
    ]
    client = alpaca(exchange)

    pages: list[list[dict[str, Any]]] = []
    token = None
    while True:
        params = {"direction": "asc", "page_size": 2} | ({"page_token": token} if token else {})
        page = raw_list(client.get("/account/activities/FILL", params))
        pages.append(page)
        if len(page) < 2:
            break
        token = page[-1]["id"]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [row["id"] for page in pages for row in page] == [fill["id"] for fill in fills]
    assert fills[0]["id"].startswith("20261114093000000::")
    assert pages[0][0]["activity_type"] == "FILL" and pages[0][0]["transaction_time"] == "2026-11-14T09:30:00.000000Z"
    newest = raw_list(client.get("/account/activities/FILL", {"page_size": 1}))
    assert newest[0]["id"] == fills[-1]["id"]


def test_alpaca_open_orders_page_by_after(exchange: FakeExchange) -> None:
    for minute in range(5):
        exchange.add_alpaca_order(
            "BTCUSD", "0.1", "buy", limit_price="50000", submitted_at=T0 + timedelta(minutes=minute)
        )
    exchange.add_alpaca_order("AAPL", "1", "sell", status="filled", submitted_at=T0)
    client = alpaca(exchange)

    seen: list[dict[str, Any]] = []
    after = T0 - timedelta(seconds=1)
    while True:
        request = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=2, direction=Sort.ASC, after=after)
        page = raw_list(client.get_orders(request))
        seen.extend(page)
        if len(page) < 2:
            break
        after = datetime.fromisoformat(page[-1]["submitted_at"])
    assert len(seen) == 5 and {order["symbol"] for order in seen} == {"BTC/USD"}
    assert {order["asset_class"] for order in seen} == {"crypto"}
    closed = raw_list(client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED)))
    assert [order["symbol"] for order in closed] == ["AAPL"]
    with pytest.raises(APIError) as caught:
        client.get_orders(GetOrdersRequest(limit=501))
    assert caught.value.status_code == 422


def test_alpaca_order_lookup_by_id_and_client_id(exchange: FakeExchange) -> None:
    order = exchange.add_alpaca_order("AAPL", "3", "buy", client_order_id="bot-1", status="partially_filled")
    client = alpaca(exchange)
    assert raw_dict(client.get_order_by_id(order["id"]))["filled_qty"] == "0"
    assert raw_dict(client.get_order_by_client_id("bot-1"))["status"] == "partially_filled"
    with pytest.raises(APIError) as by_client_id:
        client.get_order_by_client_id("nope")
    with pytest.raises(APIError) as by_id:
        client.get_order_by_id(order["asset_id"])
    for caught in (by_client_id, by_id):
        assert caught.value.status_code == 404 and caught.value.code == 40410000


def test_alpaca_submit_order_records_it_and_refuses_a_duplicate_client_id(exchange: FakeExchange) -> None:
    client = alpaca(exchange)
    market = MarketOrderRequest(symbol="AAPL", qty=2, side=OrderSide.SELL, time_in_force=TimeInForce.DAY)
    market.client_order_id = "close-aapl-1"

    created = raw_dict(client.submit_order(market))
    assert (created["client_order_id"], created["status"], created["qty"]) == ("close-aapl-1", "accepted", "2")
    [submitted] = exchange.submitted_orders
    assert submitted.venue == "alpaca" and submitted.body["side"] == "sell" and submitted.body["type"] == "market"
    assert submitted.body["qty"] == 2.0  # alpaca-py sends quantities as JSON floats

    with pytest.raises(APIError) as caught:
        client.submit_order(market)
    assert caught.value.status_code == 422 and caught.value.message == "client_order_id must be unique"
    crypto = LimitOrderRequest(symbol="BTC/USD", qty=0.1, side="buy", time_in_force="gtc", limit_price=50000)
    assert raw_dict(client.submit_order(crypto))["symbol"] == "BTC/USD"


def test_alpaca_429_carries_retry_after(exchange: FakeExchange) -> None:
    exchange.fail("/v2/positions", "http429")
    client = alpaca(exchange)
    client._retry = 0  # alpaca-py would retry 429 three times with 3 s sleeps
    with pytest.raises(APIError) as caught:
        client.get_all_positions()
    assert caught.value.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "2"


def test_alpaca_non_json_error_breaks_apierror_code(exchange: FakeExchange) -> None:
    exchange.fail("/v2/account", "non_json_error")
    with pytest.raises(APIError) as caught:
        alpaca(exchange).get_account()
    assert caught.value.status_code == 502
    with pytest.raises(ValueError):  # json.JSONDecodeError: APIError.code parses the HTML body
        _ = caught.value.code


def test_alpaca_missing_field_and_malformed(exchange: FakeExchange) -> None:
    exchange.add_alpaca_position("AAPL", "1", "1", "1")
    exchange.fail("/v2/positions", "missing_field")
    assert "qty" not in raw_list(alpaca(exchange).get_all_positions())[0]
    exchange.fail("/v2/positions", "malformed")
    with pytest.raises(requests.exceptions.JSONDecodeError):
        alpaca(exchange).get_all_positions()


def test_the_conftest_clients_reach_the_fake(
    exchange: FakeExchange, bybit_session: HTTP, alpaca_client: TradingClient
) -> None:
    exchange.fail("/v2/account", "http429")
    with pytest.raises(APIError) as caught:  # no 3 s retry sleeps: the fixture turned alpaca-py's retries off
        alpaca_client.get_account()
    assert caught.value.status_code == 429
    assert raw_dict(alpaca_client.get_account())["status"] == "ACTIVE"
    assert bybit_session.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]["totalEquity"] == "10000"
