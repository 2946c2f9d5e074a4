"""The Alpaca adapter through the real alpaca-py client, against the loopback fake exchange (nothing mocked)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fake_exchange import DEFAULT_ALPACA_KEYS, FakeExchange

from reconciliation.errors import InvalidResponse
from reconciliation.values import Cash, InstrumentKey, Order, OrderLookup, OrderStatus, Side
from venues.alpaca import AlpacaSettings, AlpacaVenue
from venues.credentials import Credentials, Secret

KEY, SECRET = next(iter(DEFAULT_ALPACA_KEYS.items()))
T0 = datetime(2026, 11, 16, 14, 30, tzinfo=UTC)
OPTION = "AAPL261218C00150000"


def alpaca_venue(exchange: FakeExchange, **options: Any) -> AlpacaVenue:
    settings = AlpacaSettings(
        credentials=Credentials(Secret(KEY), Secret(SECRET)), base_url=exchange.url, timeout_seconds=1, **options
    )
    return AlpacaVenue(settings)


def now() -> datetime:
    return datetime.now(UTC)


def queries(exchange: FakeExchange, path: str) -> list[dict[str, str]]:
    return [request.query for request in exchange.requests if request.path == path]


def pending(client_order_id: str | None, venue_order_id: str | None = None) -> Order:
    return Order(client_order_id, venue_order_id, InstrumentKey("us_equity", "AAPL"), Side.BUY, Decimal(1), None)


# --- positions --------------------------------------------------------------------------------------------------


def test_a_short_position_has_a_negative_quantity(exchange: FakeExchange) -> None:
    exchange.add_alpaca_position("TSLA", "-25", "250.10", "240")

    (position,) = alpaca_venue(exchange).fetch_snapshot(now()).positions

    assert (position.key, position.qty, position.avg_price, position.mark_price) == (
        InstrumentKey("us_equity", "TSLA"),
        Decimal(-25),
        Decimal("250.10"),
        Decimal(240),
    )


def test_fractional_quantities_stay_exact(exchange: FakeExchange) -> None:
    exchange.add_alpaca_position("AAPL", "0.5", "190.123456789", "191")
    exchange.add_alpaca_position("ETHUSD", "0.000000001", "3000", "3000", asset_class="crypto")

    positions = {p.key.symbol: p for p in alpaca_venue(exchange).fetch_snapshot(now()).positions}

    assert type(positions["AAPL"].qty) is Decimal and str(positions["AAPL"].qty) == "0.5"
    assert str(positions["AAPL"].avg_price) == "190.123456789"
    assert positions["ETHUSD"].qty == Decimal("1E-9")


def test_crypto_position_order_and_fill_name_the_same_instrument(exchange: FakeExchange) -> None:
    exchange.add_alpaca_position("BTCUSD", "0.25", "60000", "61000", asset_class="crypto")
    exchange.add_alpaca_order("BTC/USD", "0.1", "sell", limit_price="70000", client_order_id="take-profit",
                              submitted_at=now() - timedelta(hours=1))  # fmt: skip
    exchange.add_alpaca_fill("BTC/USD", "0.25", "60000", "buy", transaction_time=now() - timedelta(hours=2))

    snapshot = alpaca_venue(exchange).fetch_snapshot(now())

    crypto = InstrumentKey("crypto", "BTCUSD", 0)
    assert exchange.alpaca_orders[0]["symbol"] == "BTC/USD"  # the venue does name them differently
    assert [p.key for p in snapshot.positions] == [crypto]
    assert [o.key for o in snapshot.open_orders] == [crypto]
    assert [f.key for f in snapshot.fills] == [crypto]


def test_an_option_position_is_keyed_by_its_occ_symbol(exchange: FakeExchange) -> None:
    exchange.add_alpaca_position(OPTION, "-2", "3.15", "2.80", asset_class="us_option")

    (position,) = alpaca_venue(exchange).fetch_snapshot(now()).positions

    assert (position.key, position.qty, position.avg_price) == (
        InstrumentKey("us_option", OPTION),
        Decimal(-2),
        Decimal("3.15"),
    )


def test_an_option_fill_without_a_known_asset_class_is_still_an_option(exchange: FakeExchange) -> None:
    exchange.add_alpaca_fill(OPTION, "1", "3.15", "sell", transaction_time=now() - timedelta(hours=1))

    (fill,) = alpaca_venue(exchange).fills_between(now() - timedelta(days=1), now())

    assert fill.key == InstrumentKey("us_option", OPTION)


# --- account ----------------------------------------------------------------------------------------------------


def test_cash_is_the_accounts_cash_in_its_currency(exchange: FakeExchange) -> None:
    exchange.set_alpaca_account(cash="25031.17", currency="USD", equity="30000")

    assert alpaca_venue(exchange).fetch_snapshot(now()).cash == Cash("USD", Decimal("25031.17"))


def test_negative_cash_of_a_margin_account_is_kept(exchange: FakeExchange) -> None:
    exchange.set_alpaca_account(cash="-1500.5")

    snapshot = alpaca_venue(exchange).fetch_snapshot(now())

    assert snapshot.cash == Cash("USD", Decimal("-1500.5"))


# --- open orders ------------------------------------------------------------------------------------------------


def test_open_orders_beyond_one_page_are_all_returned_once_even_with_shared_times(exchange: FakeExchange) -> None:
    ids = []
    for number in range(520):
        # 490 orders a second apart, then 30 sharing one submission time across the 500-order page boundary
        submitted = T0 + timedelta(seconds=min(number, 490))
        order = exchange.add_alpaca_order("AAPL", "1", "buy", limit_price=str(100 + number), submitted_at=submitted,
                                          client_order_id=f"bot-{number}")  # fmt: skip
        ids.append(order["id"])
    exchange.add_alpaca_order("AAPL", "1", "buy", limit_price="1", status="filled", submitted_at=T0)

    orders = alpaca_venue(exchange).fetch_snapshot(now()).open_orders

    assert exchange.count("/v2/orders") >= 2
    assert {q["limit"] for q in queries(exchange, "/v2/orders")} == {"500"}
    assert sorted(o.venue_order_id or "" for o in orders) == sorted(ids)  # each exactly once
    by_client = {o.client_order_id: o for o in orders}
    assert by_client["bot-511"] == Order(
        "bot-511", ids[511], InstrumentKey("us_equity", "AAPL"), Side.BUY, Decimal(1), Decimal(611)
    )


def test_more_than_a_page_of_open_orders_in_one_millisecond_fails_instead_of_dropping_some(
    exchange: FakeExchange,
) -> None:
    for number in range(600):
        exchange.add_alpaca_order("AAPL", "1", "buy", limit_price="100", submitted_at=T0,
                                  client_order_id=f"grid-{number}")  # fmt: skip

    with pytest.raises(InvalidResponse, match="alpaca orders"):
        alpaca_venue(exchange).fetch_snapshot(now())


# --- fills ------------------------------------------------------------------------------------------------------


def test_fill_activities_are_paged_with_page_token_and_each_kept_once(exchange: FakeExchange) -> None:
    moment = now()
    for number in range(250):
        exchange.add_alpaca_fill("AAPL", "1", str(100 + number), "buy" if number % 2 else "sell_short",
                                 transaction_time=moment - timedelta(minutes=250 - number),
                                 activity_id=f"{number:04d}::fill")  # fmt: skip

    fills = alpaca_venue(exchange).fills_between(moment - timedelta(days=1), moment)

    pages = queries(exchange, "/v2/account/activities/FILL")
    assert len(pages) == 3
    assert "page_token" not in pages[0]
    assert [q["page_token"] for q in pages[1:]] == ["0099::fill", "0199::fill"]
    assert [f.fill_id for f in fills] == [f"{number:04d}::fill" for number in range(250)]
    assert {f.side for f in fills} == {Side.BUY, Side.SELL}


def test_the_snapshot_holds_the_fills_of_the_lookback_period_only(exchange: FakeExchange) -> None:
    moment = now()
    exchange.add_alpaca_fill("AAPL", "1", "100", "buy", transaction_time=moment - timedelta(days=2), activity_id="a")
    exchange.add_alpaca_fill("AAPL", "1", "100", "buy", transaction_time=moment - timedelta(days=9), activity_id="b")

    snapshot = alpaca_venue(exchange, fill_lookback=timedelta(days=7)).fetch_snapshot(moment)

    assert [f.fill_id for f in snapshot.fills] == ["a"]


# --- order lookup -----------------------------------------------------------------------------------------------


def test_a_filled_order_is_found_by_client_order_id_with_its_fills(exchange: FakeExchange) -> None:
    submitted = now() - timedelta(hours=1)
    exchange.add_alpaca_order("AAPL", "10", "buy", type="market", status="filled", filled_qty="10",
                              client_order_id="bot-7", order_id="venue-7", submitted_at=submitted)  # fmt: skip
    exchange.add_alpaca_fill("AAPL", "4", "190.5", "buy", order_id="venue-7", fill_type="partial_fill",
                             transaction_time=submitted + timedelta(seconds=1), activity_id="f1")  # fmt: skip
    exchange.add_alpaca_fill("AAPL", "6", "190.75", "buy", order_id="venue-7",
                             transaction_time=submitted + timedelta(seconds=2), activity_id="f2")  # fmt: skip
    exchange.add_alpaca_fill("AAPL", "3", "191", "buy", order_id="someone-else",
                             transaction_time=submitted + timedelta(seconds=3), activity_id="f3")  # fmt: skip

    lookup = alpaca_venue(exchange).lookup_order(pending("bot-7"))

    assert lookup.order is not None
    assert (lookup.order.status, lookup.order.venue_order_id, lookup.order.qty) == (
        OrderStatus.FILLED,
        "venue-7",
        Decimal(10),
    )
    assert [(f.fill_id, f.qty, f.price) for f in lookup.fills] == [
        ("f1", Decimal(4), Decimal("190.5")),
        ("f2", Decimal(6), Decimal("190.75")),
    ]
    assert queries(exchange, "/v2/orders:by_client_order_id") == [{"client_order_id": "bot-7"}]


def test_a_cancelled_order_is_found_cancelled(exchange: FakeExchange) -> None:
    exchange.add_alpaca_order("AAPL", "10", "sell", limit_price="300", status="canceled", client_order_id="bot-8")

    lookup = alpaca_venue(exchange).lookup_order(pending("bot-8"))

    assert lookup.order is not None and lookup.order.status is OrderStatus.CANCELLED
    assert lookup.fills == ()


def test_an_order_without_client_id_is_looked_up_by_venue_id(exchange: FakeExchange) -> None:
    exchange.add_alpaca_order("AAPL", "1", "buy", limit_price="100", status="expired", order_id="venue-9")

    lookup = alpaca_venue(exchange).lookup_order(pending(None, "venue-9"))

    assert lookup.order is not None and lookup.order.status is OrderStatus.EXPIRED
    assert exchange.count("/v2/orders/venue-9") == 1


def test_an_order_alpaca_does_not_know_is_a_lookup_of_none(exchange: FakeExchange) -> None:
    assert alpaca_venue(exchange).lookup_order(pending("never-sent")) == OrderLookup(None)
    assert alpaca_venue(exchange).lookup_order(pending(None, "no-such-id")) == OrderLookup(None)


# --- placing orders ---------------------------------------------------------------------------------------------


def test_place_order_sends_the_quantity_as_a_string_and_the_client_order_id(exchange: FakeExchange) -> None:
    venue = alpaca_venue(exchange)

    order_id = venue.place_order(InstrumentKey("us_equity", "AAPL"), Side.SELL, Decimal("0.5"), True, "recon-1")

    (submitted,) = exchange.submitted_orders
    assert submitted.order_id == order_id
    assert submitted.body == {
        "symbol": "AAPL",
        "qty": "0.5",
        "side": "sell",
        "type": "market",
        "time_in_force": "day",
        "client_order_id": "recon-1",
    }


def test_a_crypto_order_is_good_till_cancelled(exchange: FakeExchange) -> None:
    alpaca_venue(exchange).place_order(InstrumentKey("crypto", "BTCUSD"), Side.BUY, Decimal("1E-8"), False, "recon-2")

    (submitted,) = exchange.submitted_orders
    assert (submitted.body["qty"], submitted.body["time_in_force"], submitted.body["side"]) == ("0.00000001", "gtc",
                                                                                              "buy")  # fmt: skip


def test_an_open_order_sized_in_dollars_does_not_break_the_fetch(exchange: FakeExchange) -> None:
    exchange.add_alpaca_order("AAPL", None, "buy", type="market", order_id="n1", notional="500")

    [order] = alpaca_venue(exchange).fetch_snapshot(now()).open_orders

    assert (order.venue_order_id, order.qty) == ("n1", Decimal(0))
