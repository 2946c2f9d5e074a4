"""Every venue payload is checked at the edge: what the books cannot hold is an ``InvalidResponse`` naming the field.

The real pybit and alpaca-py clients read the loopback fake exchange, whose ``mutate`` hook rewrites the JSON it
sends. Each case below was once accepted (and broke later: ``decimal.Overflow``, Postgres "numeric field
overflow", ``StringDataRightTruncation``, a fill at price -60000 booked as real) or crashed with an exception
that is not ours (``OverflowError``, ``TypeError: unhashable``, ``AttributeError`` inside pybit).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fake_exchange import DEFAULT_ALPACA_KEYS, DEFAULT_BYBIT_KEYS, FakeExchange, Mutation

import venues.alpaca
import venues.bybit
from reconciliation.errors import InvalidResponse, ReconError
from reconciliation.values import InstrumentKey, Order, Side
from venues.alpaca import AlpacaSettings, AlpacaVenue
from venues.bybit import BybitSettings, BybitVenue
from venues.credentials import Credentials, Secret

BYBIT_KEY, BYBIT_SECRET = next(iter(DEFAULT_BYBIT_KEYS.items()))
ALPACA_KEY, ALPACA_SECRET = next(iter(DEFAULT_ALPACA_KEYS.items()))
POSITIONS, ORDERS, EXECUTIONS, WALLET = (
    "/v5/position/list",
    "/v5/order/realtime",
    "/v5/execution/list",
    "/v5/account/wallet-balance",
)
ACCOUNT, A_POSITIONS, A_ORDERS, A_FILLS = "/v2/account", "/v2/positions", "/v2/orders", "/v2/account/activities/FILL"


def now() -> datetime:
    return datetime.now(UTC)


def bybit_venue(exchange: FakeExchange, **options: Any) -> BybitVenue:
    options.setdefault("settle_coins", ("USDT",))
    credentials = Credentials(Secret(BYBIT_KEY), Secret(BYBIT_SECRET))
    return BybitVenue(BybitSettings(credentials=credentials, base_url=exchange.url, timeout_seconds=1, **options))


def alpaca_venue(exchange: FakeExchange) -> AlpacaVenue:
    credentials = Credentials(Secret(ALPACA_KEY), Secret(ALPACA_SECRET))
    return AlpacaVenue(AlpacaSettings(credentials=credentials, base_url=exchange.url, timeout_seconds=1))


@pytest.fixture
def seeded(exchange: FakeExchange) -> FakeExchange:
    """One position, open order and fill on each venue, so that every field has a row to be wrong in."""
    hour_ago = now() - timedelta(hours=1)
    exchange.add_bybit_position("linear", "BTCUSDT", "Buy", "1", "60000", "61000")
    exchange.add_bybit_order("linear", "BTCUSDT", "Sell", "1", "70000", order_link_id="tp-1", order_id="o-1")
    exchange.add_bybit_execution("linear", "BTCUSDT", "Buy", "1", "60000", exec_time=hour_ago, exec_id="e-1")
    exchange.add_alpaca_position("AAPL", "10", "190", "191")
    exchange.add_alpaca_order("AAPL", "10", "sell", limit_price="250", submitted_at=hour_ago, order_id="a-1")
    exchange.add_alpaca_fill("AAPL", "10", "190", "buy", transaction_time=hour_ago, activity_id="f-1")
    return exchange


def rows_of(path: str, document: Any) -> Any:
    """The rows of a listing as the fake sends it (the wallet's coins; Alpaca's account is its own row)."""
    if path == WALLET:
        return document["result"]["list"][0]["coin"]
    if path.startswith("/v5/"):
        return document["result"]["list"]
    return [document] if path == ACCOUNT else document


def set_field(target: str, name: str, value: Any, row: int = 0) -> Mutation:
    """Sets ``name`` of row ``row`` of every answer on ``target`` to ``value``."""

    def mutate(path: str, document: Any) -> Any:
        if path == target and len(rows_of(path, document)) > row:
            rows_of(path, document)[row][name] = value
        return document

    return mutate


def on(target: str, change: Callable[[Any], Any]) -> Mutation:
    """Replaces every answer on ``target`` with ``change(answer)``."""
    return lambda path, document: change(document) if path == target else document


def refused(venue: BybitVenue | AlpacaVenue) -> str:
    with pytest.raises(InvalidResponse) as caught:
        venue.fetch_snapshot(now())
    return str(caught.value)


# --- numbers the books cannot hold, and signs that make no sense ------------------------------------------------

BYBIT_REFUSED = [
    (POSITIONS, "size", "1e999999"),
    (POSITIONS, "size", "1e25"),
    (POSITIONS, "size", "1e-30"),
    (POSITIONS, "size", "1e999999999999999999"),
    (POSITIONS, "size", "1e-999999999999999999"),
    (POSITIONS, "size", "-1"),
    (POSITIONS, "size", True),
    (POSITIONS, "size", 1.5),
    (POSITIONS, "avgPrice", "0"),
    (POSITIONS, "avgPrice", "-60000"),
    (POSITIONS, "avgPrice", "NaN"),
    (POSITIONS, "markPrice", "-1"),
    (POSITIONS, "markPrice", "inf"),
    (ORDERS, "qty", "1e25"),
    (ORDERS, "qty", "0"),
    (ORDERS, "qty", "-1"),
    (ORDERS, "price", "-5"),
    (EXECUTIONS, "execPrice", "-60000"),
    (EXECUTIONS, "execPrice", "0"),
    (EXECUTIONS, "execQty", "-1"),
    (EXECUTIONS, "execQty", "0"),
    (EXECUTIONS, "execFee", "NaN"),
    (EXECUTIONS, "execFee", "1e20"),
    (WALLET, "walletBalance", "1e25"),
    (WALLET, "walletBalance", "-1e999999"),
]
ALPACA_REFUSED = [
    (ACCOUNT, "cash", "1e999999"),
    (ACCOUNT, "cash", "1e25"),
    (A_POSITIONS, "qty", "1e25"),
    (A_POSITIONS, "qty", "0.0000000000000000001"),
    (A_POSITIONS, "avg_entry_price", "0"),
    (A_POSITIONS, "avg_entry_price", "-190"),
    (A_POSITIONS, "current_price", "-1"),
    (A_ORDERS, "qty", "-10"),
    (A_ORDERS, "qty", "0"),
    (A_ORDERS, "limit_price", "-250"),
    (A_FILLS, "price", "-60000"),
    (A_FILLS, "price", "0"),
    (A_FILLS, "qty", "0"),
    (A_FILLS, "qty", "1e999999"),
]


@pytest.mark.parametrize(("path", "name", "value"), BYBIT_REFUSED, ids=lambda v: str(v)[:20])
def test_bybit_refuses_numbers_out_of_range_or_of_the_wrong_sign(
    seeded: FakeExchange, path: str, name: str, value: Any
) -> None:
    seeded.mutate = set_field(path, name, value)

    assert f".{name}: " in refused(bybit_venue(seeded))


@pytest.mark.parametrize(("path", "name", "value"), ALPACA_REFUSED, ids=lambda v: str(v)[:20])
def test_alpaca_refuses_numbers_out_of_range_or_of_the_wrong_sign(
    seeded: FakeExchange, path: str, name: str, value: Any
) -> None:
    seeded.mutate = set_field(path, name, value)

    assert f".{name}: " in refused(alpaca_venue(seeded))


def test_a_mark_of_zero_is_no_mark_and_a_fee_may_be_a_rebate(seeded: FakeExchange) -> None:
    seeded.add_bybit_flat_position("linear", "ETHUSDT", markPrice="0")
    seeded.mutate = lambda path, document: set_field(EXECUTIONS, "execFee", "-0.25")(
        path, set_field(POSITIONS, "markPrice", "0")(path, document)
    )

    snapshot = bybit_venue(seeded).fetch_snapshot(now())

    (position,) = snapshot.positions
    assert (position.qty, position.mark_price) == (Decimal(1), None)
    assert snapshot.marks == {}
    assert [fill.fee for fill in snapshot.fills] == [Decimal("-0.25")]


def test_alpaca_current_price_of_zero_is_no_mark(seeded: FakeExchange) -> None:
    seeded.mutate = set_field(A_POSITIONS, "current_price", "0")

    (position,) = alpaca_venue(seeded).fetch_snapshot(now()).positions

    assert position.mark_price is None


def test_amounts_at_the_edge_of_the_column_are_kept_exactly(seeded: FakeExchange) -> None:
    seeded.mutate = lambda path, document: set_field(POSITIONS, "size", "99999999999999999999.999999999999999999")(
        path, set_field(WALLET, "walletBalance", "-0.000000000000000001")(path, document)
    )

    snapshot = bybit_venue(seeded).fetch_snapshot(now())

    assert snapshot.positions[0].qty == Decimal("99999999999999999999.999999999999999999")
    assert snapshot.cash is not None and snapshot.cash.balance == Decimal("-1E-18")


# --- times ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z",
     "", "yesterday", 1763089800, None],
)  # fmt: skip
def test_alpaca_refuses_impossible_fill_times(seeded: FakeExchange, value: Any) -> None:
    seeded.mutate = set_field(A_FILLS, "transaction_time", value)

    assert ".transaction_time: " in refused(alpaca_venue(seeded))


@pytest.mark.parametrize("value", ["-1", -1, "99999999999999999999", 10**30, "1e12", "", True, 1.7e12, "１２３"])
def test_bybit_refuses_impossible_execution_times(seeded: FakeExchange, value: Any) -> None:
    seeded.mutate = set_field(EXECUTIONS, "execTime", value)

    assert ".execTime: " in refused(bybit_venue(seeded))


# --- names and ids that do not fit their columns ----------------------------------------------------------------

LONG_SYMBOL = "X" * 65


@pytest.mark.parametrize(
    ("path", "name", "value"),
    [
        (POSITIONS, "symbol", LONG_SYMBOL),
        (POSITIONS, "symbol", ""),
        (POSITIONS, "symbol", "BTC\nUSDT"),
        (ORDERS, "symbol", LONG_SYMBOL),
        (ORDERS, "orderId", "o" * 129),
        (ORDERS, "orderLinkId", "l" * 129),
        (EXECUTIONS, "execId", ""),
        (EXECUTIONS, "execId", "e" * 129),
        (EXECUTIONS, "symbol", LONG_SYMBOL),
        (EXECUTIONS, "orderId", "o" * 129),
    ],
    ids=lambda v: str(v)[:12],
)
def test_bybit_refuses_names_and_ids_longer_than_their_columns_or_empty(
    seeded: FakeExchange, path: str, name: str, value: str
) -> None:
    seeded.mutate = set_field(path, name, value)

    assert f".{name}: " in refused(bybit_venue(seeded))


@pytest.mark.parametrize(
    ("path", "name", "value"),
    [
        (ACCOUNT, "currency", "U" * 17),
        (A_POSITIONS, "symbol", LONG_SYMBOL),
        (A_POSITIONS, "asset_class", "c" * 33),
        (A_ORDERS, "id", "i" * 129),
        (A_ORDERS, "client_order_id", "c" * 129),
        (A_FILLS, "id", "f" * 129),
        (A_FILLS, "symbol", ""),
        (A_FILLS, "symbol", "/"),
    ],
    ids=lambda v: str(v)[:12],
)
def test_alpaca_refuses_names_and_ids_longer_than_their_columns_or_empty(
    seeded: FakeExchange, path: str, name: str, value: str
) -> None:
    seeded.mutate = set_field(path, name, value)

    assert f".{name}: " in refused(alpaca_venue(seeded))


# --- JSON of the wrong type -------------------------------------------------------------------------------------

WRONG_TYPES = [["x"], {"x": 1}, 5, True]


@pytest.mark.parametrize("value", WRONG_TYPES, ids=repr)
@pytest.mark.parametrize(
    ("path", "name"),
    [(POSITIONS, "side"), (POSITIONS, "symbol"), (ORDERS, "orderLinkId"), (ORDERS, "side"), (EXECUTIONS, "orderId"),
     (EXECUTIONS, "execType"), (WALLET, "coin")],
)  # fmt: skip
def test_bybit_refuses_fields_of_the_wrong_json_type(seeded: FakeExchange, path: str, name: str, value: Any) -> None:
    seeded.mutate = set_field(path, name, value)

    assert f".{name}: " in refused(bybit_venue(seeded))


@pytest.mark.parametrize("value", WRONG_TYPES, ids=repr)
@pytest.mark.parametrize(
    ("path", "name"),
    [(ACCOUNT, "currency"), (A_POSITIONS, "asset_class"), (A_POSITIONS, "side"), (A_ORDERS, "client_order_id"),
     (A_FILLS, "order_id"), (A_FILLS, "side")],
)  # fmt: skip
def test_alpaca_refuses_fields_of_the_wrong_json_type(seeded: FakeExchange, path: str, name: str, value: Any) -> None:
    seeded.mutate = set_field(path, name, value)

    assert f".{name}: " in refused(alpaca_venue(seeded))


@pytest.mark.parametrize("cursor", [["x"], {"next": "x"}, 5, True, "c" * 2000, "a\nb"], ids=lambda v: repr(v)[:12])
def test_a_next_page_cursor_that_is_not_a_short_string_is_refused(seeded: FakeExchange, cursor: Any) -> None:
    seeded.mutate = on(POSITIONS, lambda document: {**document, "result": {**document["result"],
                                                                           "nextPageCursor": cursor}})  # fmt: skip

    assert ".nextPageCursor: " in refused(bybit_venue(seeded))


@pytest.mark.parametrize("body", [[], None, "x", 5, {}, {"retCode": 0}, {"retCode": 0, "result": []},
                                  {"retCode": 0, "result": None}, {"retCode": 0, "result": {"list": {}}},
                                  {"retCode": [1], "retMsg": "x"}, {"retCode": "10006"}, {"retCode": {"a": 1}}],
                         ids=lambda v: repr(v)[:30])  # fmt: skip
@pytest.mark.parametrize("path", [POSITIONS, ORDERS, EXECUTIONS, WALLET])
def test_pybit_given_a_body_of_the_wrong_shape_is_an_invalid_response(
    seeded: FakeExchange, path: str, body: Any
) -> None:
    seeded.mutate = on(path, lambda document: body)

    with pytest.raises(ReconError) as caught:  # anything else fails the test
        bybit_venue(seeded).fetch_snapshot(now())

    assert isinstance(caught.value, InvalidResponse), repr(caught.value)


@pytest.mark.parametrize("body", [[], None, "x", 5, {}, [[]], [None], {"list": []}], ids=lambda v: repr(v)[:30])
@pytest.mark.parametrize("path", [ACCOUNT, A_POSITIONS, A_ORDERS, A_FILLS])
def test_alpaca_given_a_body_of_the_wrong_shape_is_an_invalid_response(
    seeded: FakeExchange, path: str, body: Any
) -> None:
    if path == ACCOUNT and body == {}:
        body = {"cash": "1"}  # {} would be a missing currency, as tested elsewhere
    if path != ACCOUNT and body == []:
        body = {}  # [] is an empty listing
    seeded.mutate = on(path, lambda document: body)

    with pytest.raises(ReconError) as caught:
        alpaca_venue(seeded).fetch_snapshot(now())

    assert isinstance(caught.value, InvalidResponse), repr(caught.value)


BAD_JSON = [
    pytest.param(b'{"retCode":0,"result":{"list":[' + b"1" * 5000 + b"]}}", id="5000-digit-integer"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, id="nested-100000-deep"),
    pytest.param(b'{"retCode":0,"result":{"list":[1e999999]}}', id="float-overflow"),
    pytest.param(b"\xff\xfe{}", id="not-utf8"),
]


@pytest.mark.parametrize("raw", BAD_JSON)
@pytest.mark.parametrize("name", ["bybit", "alpaca"])
def test_an_sdk_failing_to_read_a_body_is_an_invalid_response_keeping_the_cause(
    seeded: FakeExchange, name: str, raw: bytes
) -> None:
    path = POSITIONS if name == "bybit" else A_POSITIONS
    seeded.mutate = on(path, lambda document: raw)
    venue = bybit_venue(seeded) if name == "bybit" else alpaca_venue(seeded)

    with pytest.raises(ReconError) as caught:
        venue.fetch_snapshot(now())

    assert isinstance(caught.value, InvalidResponse), repr(caught.value)
    assert caught.value.__cause__ is not None or "list" in str(caught.value)


def test_pybit_choking_on_a_list_body_keeps_its_error_as_the_cause(seeded: FakeExchange) -> None:
    seeded.mutate = on(POSITIONS, lambda document: [])

    with pytest.raises(InvalidResponse) as caught:
        bybit_venue(seeded).fetch_snapshot(now())

    assert "pybit" in str(caught.value)
    assert isinstance(caught.value.__cause__, AttributeError)  # what pybit raised: '[]' has no .get


# --- duplicates -------------------------------------------------------------------------------------------------


def duplicate_first_row(target: str) -> Mutation:
    def mutate(path: str, document: Any) -> Any:
        rows = rows_of(path, document) if path == target else []
        if rows:
            rows.append(dict(rows[0]))
        return document

    return mutate


@pytest.mark.parametrize(("path", "what"), [(POSITIONS, "instrument linear:BTCUSDT:0"), (ORDERS, "order id o-1")])
def test_bybit_refuses_two_rows_for_one_instrument_or_order(seeded: FakeExchange, path: str, what: str) -> None:
    seeded.mutate = duplicate_first_row(path)

    assert f"a second row for {what}" in refused(bybit_venue(seeded))


def test_bybit_refuses_the_same_position_under_two_settle_coins(seeded: FakeExchange) -> None:
    first: list[Any] = []

    def everywhere(path: str, document: Any) -> Any:
        if path == POSITIONS:
            rows = document["result"]["list"]
            first.extend(rows[:1])
            if not rows:
                rows.append(dict(first[0]))
        return document

    seeded.mutate = everywhere

    assert "a second row for instrument linear:BTCUSDT:0" in refused(bybit_venue(seeded, settle_coins=("USDT", "USDC")))


def test_bybit_refuses_two_balances_for_the_cash_coin(seeded: FakeExchange) -> None:
    seeded.mutate = duplicate_first_row(WALLET)

    assert "a second row for coin USDT" in refused(bybit_venue(seeded))


@pytest.mark.parametrize(("path", "what"), [(A_POSITIONS, "instrument us_equity:AAPL:0"), (A_ORDERS, "order id a-1")])
def test_alpaca_refuses_two_rows_for_one_instrument_or_order(seeded: FakeExchange, path: str, what: str) -> None:
    seeded.mutate = duplicate_first_row(path)

    assert f"a second row for {what}" in refused(alpaca_venue(seeded))


def test_alpaca_refuses_a_crypto_position_named_both_ways(seeded: FakeExchange) -> None:
    seeded.add_alpaca_position("BTCUSD", "1", "60000", "61000", asset_class="crypto")
    seeded.mutate = on(A_POSITIONS, lambda rows: [*rows, {**rows[-1], "symbol": "BTC/USD"}])

    assert "a second row for instrument crypto:BTCUSD:0" in refused(alpaca_venue(seeded))


# --- paging that would not end ----------------------------------------------------------------------------------


def endless_positions(template_cursor: list[str], empty: bool) -> Mutation:
    """Every position page hands out a new cursor the fake accepts (its own, made unique) and one new row, or none."""
    numbers = itertools.count()

    def mutate(path: str, document: Any) -> Any:
        if path != POSITIONS:
            return document
        result = document["result"]
        template_cursor.extend([result["nextPageCursor"]] if not template_cursor else [])
        number = next(numbers)
        row = {**result["list"][0], "symbol": f"P{number}USDT"} if result["list"] else None
        result["list"] = [] if empty or row is None else [row]
        result["nextPageCursor"] = f"{template_cursor[0]}%26n%3D{number}"
        return document

    return mutate


@pytest.fixture
def two_position_pages(exchange: FakeExchange) -> FakeExchange:
    for number in range(201):  # the first page's cursor is real, so the fake accepts every cursor built on it
        exchange.add_bybit_position("linear", f"C{number:04d}USDT", "Buy", "1", "1", "1")
    return exchange


def test_more_than_two_empty_pages_with_a_next_cursor_are_refused(two_position_pages: FakeExchange) -> None:
    two_position_pages.mutate = endless_positions([], empty=True)

    assert "3 empty pages in a row" in refused(bybit_venue(two_position_pages))
    assert two_position_pages.count(POSITIONS) == 3


@pytest.mark.parametrize(("empty_pages", "fails"), [(2, False), (3, True)])
def test_two_empty_pages_in_a_row_are_tolerated_and_a_third_is_not(
    exchange: FakeExchange, empty_pages: int, fails: bool
) -> None:
    for number in range(700):  # four pages of 200
        exchange.add_bybit_position("linear", f"C{number:04d}USDT", "Buy", "1", "1", "1")
    answered = itertools.count(1)
    exchange.mutate = lambda path, document: (
        on(POSITIONS, lambda d: {**d, "result": {**d["result"], "list": []}})(path, document)
        if path == POSITIONS and next(answered) <= empty_pages
        else document
    )

    if fails:
        assert "empty pages in a row" in refused(bybit_venue(exchange))
    else:
        assert len(bybit_venue(exchange).fetch_snapshot(now()).positions) == 700 - 200 * empty_pages


def test_a_listing_stops_at_the_page_cap_far_below_ten_thousand(two_position_pages: FakeExchange) -> None:
    two_position_pages.mutate = endless_positions([], empty=False)

    message = refused(bybit_venue(two_position_pages))

    assert venues.bybit.MAX_PAGES <= 500
    assert f"more than {venues.bybit.MAX_PAGES} pages" in message
    assert two_position_pages.count(POSITIONS) == venues.bybit.MAX_PAGES


def fresh_fills(numbers: Iterator[int]) -> Mutation:
    """Every fill page is a full page of fills never seen before."""
    when = (now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def mutate(path: str, document: Any) -> Any:
        if path != A_FILLS:
            return document
        return [
            {"id": f"{n:08d}::fill", "transaction_time": when, "side": "buy", "symbol": "AAPL", "qty": "1",
             "price": "100", "order_id": "x"}
            for n in itertools.islice(numbers, venues.alpaca.FILL_PAGE)
        ]  # fmt: skip

    return mutate


def test_alpaca_fills_stop_at_the_page_cap(seeded: FakeExchange, monkeypatch: pytest.MonkeyPatch) -> None:
    assert venues.alpaca.MAX_PAGES <= 500
    monkeypatch.setattr(venues.alpaca, "MAX_PAGES", 4)
    seeded.mutate = fresh_fills(itertools.count())

    assert "more than 4 pages" in refused(alpaca_venue(seeded))
    assert seeded.count(A_FILLS) == 4


def test_alpaca_fills_that_ignore_the_page_token_are_refused_on_the_second_page(seeded: FakeExchange) -> None:
    numbers = itertools.cycle(range(venues.alpaca.FILL_PAGE))  # the same full page every time
    seeded.mutate = fresh_fills(numbers)

    assert "leads back to fills seen" in refused(alpaca_venue(seeded))
    assert seeded.count(A_FILLS) == 2


def test_alpaca_refuses_a_page_longer_than_asked_for(seeded: FakeExchange) -> None:
    seeded.mutate = on(A_FILLS, lambda rows: fresh_fills(itertools.count())(A_FILLS, rows) * 2)

    assert "200 rows where at most 100 were asked for" in refused(alpaca_venue(seeded))


# --- the other calls meet the same rules ------------------------------------------------------------------------


def test_lookups_placements_and_cancels_raise_only_our_errors_on_wrong_shapes(seeded: FakeExchange) -> None:
    key = InstrumentKey("linear", "BTCUSDT")
    pending = Order("tp-1", "o-1", key, Side.SELL, Decimal(1), None)
    seeded.mutate = lambda path, document: ["not", "an", "object"]
    bybit, alpaca = bybit_venue(seeded), alpaca_venue(seeded)
    equity = InstrumentKey("us_equity", "AAPL")
    calls: list[Callable[[], object]] = [
        lambda: bybit.lookup_order(pending),
        lambda: bybit.place_order(key, Side.SELL, Decimal(1), True, "recon-1"),
        lambda: bybit.cancel_order(pending),
        lambda: bybit.fills_between(now() - timedelta(days=1), now()),
        lambda: alpaca.lookup_order(Order(None, "a-1", equity, Side.SELL, Decimal(1), None)),
        lambda: alpaca.place_order(equity, Side.SELL, Decimal(1), False, "recon-2"),
        lambda: alpaca.fills_between(now() - timedelta(days=1), now()),
    ]

    for call in calls:
        with pytest.raises(InvalidResponse):
            call()


def test_an_order_id_the_venue_answers_with_must_fit_its_column(exchange: FakeExchange) -> None:
    exchange.mutate = lambda path, document: (
        {**document, "result": {"orderId": "o" * 129}} if path == "/v5/order/create" else document
    )

    with pytest.raises(InvalidResponse, match="orderId"):
        bybit_venue(exchange).place_order(InstrumentKey("linear", "BTCUSDT"), Side.BUY, Decimal(1), False, "r-1")
