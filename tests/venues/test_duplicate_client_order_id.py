"""A client order id the venue already holds is ``DuplicateClientOrderId``: an earlier attempt got through.

Through the real pybit and alpaca-py clients against the loopback fake exchange: the first ``place_order`` sends,
the second with the same client order id is refused by the venue (Bybit retCode 110072, Alpaca HTTP 422
"client_order_id must be unique") and raises the typed error, its message masked and the SDK's error kept as the
cause. Other refusals, even ones naming the client order id, stay a plain ``RequestRejected``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import requests
from alpaca.common.exceptions import APIError
from fake_exchange import DEFAULT_ALPACA_KEYS, DEFAULT_BYBIT_KEYS, FakeExchange
from pybit.exceptions import InvalidRequestError

from reconciliation.errors import DuplicateClientOrderId, RequestRejected
from reconciliation.values import InstrumentKey, Side
from venues import alpaca_errors
from venues.alpaca import AlpacaSettings, AlpacaVenue
from venues.bybit import BybitSettings, BybitVenue
from venues.credentials import Credentials, Secret
from venues.redaction import Redactor

BYBIT_KEY, BYBIT_SECRET = next(iter(DEFAULT_BYBIT_KEYS.items()))
ALPACA_KEY, ALPACA_SECRET = next(iter(DEFAULT_ALPACA_KEYS.items()))
BYBIT_CREATE, ALPACA_CREATE = "/v5/order/create", "/v2/orders"


@dataclass(frozen=True)
class Kind:
    name: str
    build: Callable[[str], BybitVenue | AlpacaVenue]
    key: InstrumentKey
    create_path: str
    cause: type[BaseException]
    api_key: str
    secret: str

    def __str__(self) -> str:
        return self.name


def build_bybit(url: str) -> BybitVenue:
    credentials = Credentials(Secret(BYBIT_KEY), Secret(BYBIT_SECRET))
    return BybitVenue(BybitSettings(credentials=credentials, base_url=url, timeout_seconds=1, settle_coins=("USDT",)))


def build_alpaca(url: str) -> AlpacaVenue:
    credentials = Credentials(Secret(ALPACA_KEY), Secret(ALPACA_SECRET))
    return AlpacaVenue(AlpacaSettings(credentials=credentials, base_url=url, timeout_seconds=1))


BYBIT = Kind("bybit", build_bybit, InstrumentKey("linear", "BTCUSDT"), BYBIT_CREATE, InvalidRequestError,
             BYBIT_KEY, BYBIT_SECRET)  # fmt: skip
ALPACA = Kind("alpaca", build_alpaca, InstrumentKey("us_equity", "AAPL"), ALPACA_CREATE, APIError,
              ALPACA_KEY, ALPACA_SECRET)  # fmt: skip
KINDS = [BYBIT, ALPACA]
DUPLICATE_MESSAGES = {
    "bybit": "bybit retCode 110072: OrderLinkedID is duplicate",
    "alpaca": "alpaca HTTP 422: client_order_id must be unique",
}


def order_create_answers(code: int, message: str) -> Callable[[str, Any], Any]:
    """A ``mutate`` hook: Bybit's order create answers retCode ``code`` with ``message``, whatever was sent."""

    def answer(path: str, document: Any) -> Any:
        return {**document, "retCode": code, "retMsg": message, "result": {}} if path == BYBIT_CREATE else document

    return answer


def creates(exchange: FakeExchange, kind: Kind) -> int:
    """How many order-create requests reached the fake."""
    return sum(1 for request in exchange.requests if request.path == kind.create_path)


def assert_clean(error: BaseException, kind: Kind) -> None:
    """Neither the error nor its kept cause holds the key or the secret."""
    for text in (str(error), repr(error), str(error.__cause__), repr(vars(error.__cause__))):
        assert kind.api_key not in text and kind.secret not in text


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_the_first_order_is_sent_and_its_client_id_again_is_a_duplicate(exchange: FakeExchange, kind: Kind) -> None:
    venue = kind.build(exchange.url)

    venue_id = venue.place_order(kind.key, Side.BUY, Decimal(1), False, "recon-dup-1")

    [submitted] = exchange.submitted_orders
    assert submitted.order_id == venue_id
    assert submitted.body.get("orderLinkId", submitted.body.get("client_order_id")) == "recon-dup-1"

    with pytest.raises(DuplicateClientOrderId) as caught:
        venue.place_order(kind.key, Side.BUY, Decimal(1), False, "recon-dup-1")

    assert isinstance(caught.value, RequestRejected)  # what callers that do not know the subclass still catch
    assert isinstance(caught.value.__cause__, kind.cause)
    assert creates(exchange, kind) == 2 and len(exchange.submitted_orders) == 1  # asked twice, one order
    assert str(caught.value) == DUPLICATE_MESSAGES[kind.name]
    assert_clean(caught.value, kind)


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_another_client_id_is_sent_as_a_new_order(exchange: FakeExchange, kind: Kind) -> None:
    venue = kind.build(exchange.url)

    first = venue.place_order(kind.key, Side.BUY, Decimal(1), False, "recon-a")
    second = venue.place_order(kind.key, Side.BUY, Decimal(1), False, "recon-b")

    assert first != second
    assert [order.order_id for order in exchange.submitted_orders] == [first, second]


@pytest.mark.parametrize("kind", KINDS, ids=str)
def test_a_duplicate_message_echoing_the_key_is_masked(exchange: FakeExchange, kind: Kind) -> None:
    def echo_key(path: str, document: Any) -> Any:
        if path != kind.create_path or not isinstance(document, dict):
            return document
        field = "retMsg" if kind is BYBIT else "message"
        if document.get("retCode") == 110072 or "must be unique" in str(document.get("message")):
            return {**document, field: f"{document[field]} (origin_string[{kind.api_key}] secret[{kind.secret}])"}
        return document

    exchange.mutate = echo_key
    venue = kind.build(exchange.url)
    venue.place_order(kind.key, Side.SELL, Decimal(2), True, "recon-echo")

    with pytest.raises(DuplicateClientOrderId) as caught:
        venue.place_order(kind.key, Side.SELL, Decimal(2), True, "recon-echo")

    assert "***" in str(caught.value)
    assert_clean(caught.value, kind)


@pytest.mark.parametrize(
    ("code", "message"),
    [(170141, "Duplicate clientOrderId"), (12141, "Duplicate clientOrderId."), (110072, "OrderLinkedID is duplicate")],
)
def test_every_bybit_code_for_a_taken_link_id_is_a_duplicate(exchange: FakeExchange, code: int, message: str) -> None:
    exchange.mutate = order_create_answers(code, message)

    with pytest.raises(DuplicateClientOrderId) as caught:
        build_bybit(exchange.url).place_order(InstrumentKey("spot", "BTCUSDT"), Side.BUY, Decimal(1), False, "s-1")

    assert str(caught.value) == f"bybit retCode {code}: {message}"
    assert isinstance(caught.value.__cause__, InvalidRequestError)


@pytest.mark.parametrize(
    ("code", "message"),
    [(110030, "Duplicate orderId"), (10014, "Invalid duplicate request"), (110007, "ab not enough for new order")],
)
def test_other_bybit_order_refusals_are_not_duplicates(exchange: FakeExchange, code: int, message: str) -> None:
    exchange.mutate = order_create_answers(code, message)

    with pytest.raises(RequestRejected) as caught:
        build_bybit(exchange.url).place_order(BYBIT.key, Side.BUY, Decimal(1), False, "r-1")

    assert not isinstance(caught.value, DuplicateClientOrderId)


def test_a_bybit_link_id_refused_for_its_length_is_not_a_duplicate(exchange: FakeExchange) -> None:
    with pytest.raises(RequestRejected) as caught:
        build_bybit(exchange.url).place_order(BYBIT.key, Side.BUY, Decimal(1), False, "x" * 37)

    assert not isinstance(caught.value, DuplicateClientOrderId)
    assert "orderLinkId is longer than 36 characters" in str(caught.value)
    assert exchange.submitted_orders == []


def test_an_alpaca_client_id_refused_for_its_length_is_not_a_duplicate(exchange: FakeExchange) -> None:
    # the same HTTP 422 and code 40010001 as a duplicate, naming client_order_id too: only the message tells them apart
    with pytest.raises(RequestRejected) as caught:
        build_alpaca(exchange.url).place_order(ALPACA.key, Side.BUY, Decimal(1), False, "x" * 129)

    assert not isinstance(caught.value, DuplicateClientOrderId)
    assert str(caught.value) == "alpaca HTTP 422: client_order_id must be no more than 128 characters"
    assert exchange.submitted_orders == []


def api_error(status: int, body: str) -> APIError:
    """An ``APIError`` as alpaca-py raises it: the body as text, the ``HTTPError`` of the response."""
    response = requests.Response()
    response.status_code = status
    response._content = body.encode()
    return APIError(body, requests.HTTPError(response=response))


@pytest.mark.parametrize(
    ("status", "body", "duplicate"),
    [
        (422, '{"code": 40010001, "message": "client_order_id must be unique"}', True),
        (409, '{"code": 40910000, "message": "client_order_id must be unique"}', True),
        (422, '{"message": "Client order id must be unique"}', True),
        (422, '{"code": 40010001, "message": "client_order_id must be no more than 128 characters"}', False),
        (422, '{"code": 40010001, "message": "qty must be unique"}', False),
        (403, '{"code": 40310000, "message": "client_order_id must be unique"}', False),  # 403 is authentication
        (400, '{"code": 40010000, "message": "client_order_id must be unique"}', False),
        (422, "client_order_id must be unique", True),  # a body that is not JSON: its text is the message
    ],
)
def test_alpaca_statuses_and_messages_that_make_a_duplicate(status: int, body: str, duplicate: bool) -> None:
    redactor = Redactor(Credentials(Secret(ALPACA_KEY), Secret(ALPACA_SECRET)))

    error = alpaca_errors.from_api_error(api_error(status, body), redactor)

    assert isinstance(error, DuplicateClientOrderId) is duplicate
