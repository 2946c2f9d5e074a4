"""The Bybit adapter through the real pybit client, against the loopback fake exchange (nothing mocked)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fake_exchange import DEFAULT_BYBIT_KEYS, FakeExchange
from pybit.exceptions import InvalidRequestError
from pybit.unified_trading import HTTP

from reconciliation.errors import InvalidResponse, RequestRejected
from reconciliation.values import (
    Cash,
    FillKind,
    InstrumentKey,
    Order,
    OrderLookup,
    OrderStatus,
    Side,
)
from venues.bybit import BybitSettings, BybitVenue
from venues.credentials import Credentials, Secret

KEY, SECRET = next(iter(DEFAULT_BYBIT_KEYS.items()))
DAY_MS = 24 * 3600 * 1000


def bybit_venue(exchange: FakeExchange, **options: Any) -> BybitVenue:
    """The real adapter aimed at the fake: one settle coin unless a test asks for more, short timeout."""
    options.setdefault("settle_coins", ("USDT",))
    settings = BybitSettings(
        credentials=Credentials(Secret(KEY), Secret(SECRET)), base_url=exchange.url, timeout_seconds=1, **options
    )
    return BybitVenue(settings)


def now() -> datetime:
    return datetime.now(UTC)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def queries(exchange: FakeExchange, path: str) -> list[dict[str, str]]:
    return [request.query for request in exchange.requests if request.path == path]


def pending(client_order_id: str | None, venue_order_id: str | None = None, symbol: str = "BTCUSDT") -> Order:
    """An order the books hold as pending."""
    return Order(client_order_id, venue_order_id, InstrumentKey("linear", symbol), Side.BUY, Decimal(1), None)


# --- positions --------------------------------------------------------------------------------------------------


def test_hedge_mode_legs_become_two_instruments_and_one_way_is_leg_zero(exchange: FakeExchange) -> None:
    exchange.add_bybit_position("linear", "BTCUSDT", "Buy", "0.5", "60000", "61000", position_idx=1)
    exchange.add_bybit_position("linear", "BTCUSDT", "Sell", "0.2", "62000", "61000", position_idx=2)
    exchange.add_bybit_position("linear", "ETHUSDT", "Buy", "3", "3000", "3100", position_idx=0)

    snapshot = bybit_venue(exchange).fetch_snapshot(now())

    assert {p.key: p.qty for p in snapshot.positions} == {
        InstrumentKey("linear", "BTCUSDT", 1): Decimal("0.5"),
        InstrumentKey("linear", "BTCUSDT", 2): Decimal("-0.2"),
        InstrumentKey("linear", "ETHUSDT", 0): Decimal(3),
    }
    assert {p.key.leg: p.avg_price for p in snapshot.positions if p.key.symbol == "BTCUSDT"} == {
        1: Decimal(60000),
        2: Decimal(62000),
    }


def test_a_sell_position_is_a_short_with_negative_quantity(exchange: FakeExchange) -> None:
    exchange.add_bybit_position("linear", "SOLUSDT", "Sell", "12", "150", "140")

    (position,) = bybit_venue(exchange).fetch_snapshot(now()).positions

    assert (position.key, position.qty, position.avg_price, position.mark_price) == (
        InstrumentKey("linear", "SOLUSDT", 0),
        Decimal(-12),
        Decimal(150),
        Decimal(140),
    )


@pytest.mark.parametrize("flat_side", ["", "None"])
def test_flat_legs_are_not_positions(exchange: FakeExchange, flat_side: str) -> None:
    exchange.add_bybit_position("linear", "BTCUSDT", "Buy", "1", "60000", "61000", position_idx=1)
    exchange.add_bybit_flat_position("linear", "BTCUSDT", position_idx=2, side=flat_side, markPrice="61000")
    exchange.add_bybit_flat_position("linear", "XRPUSDT", side=flat_side, markPrice="0.5")

    snapshot = bybit_venue(exchange).fetch_snapshot(now())

    assert [(p.key, p.qty) for p in snapshot.positions] == [(InstrumentKey("linear", "BTCUSDT", 1), Decimal(1))]
    assert all(p.qty != 0 for p in snapshot.positions)


def test_quantities_prices_and_cash_stay_exact_decimals(exchange: FakeExchange) -> None:
    exchange.add_bybit_position("linear", "BTCUSDT", "Sell", "0.001", "65000.12345678", "64999.9")
    exchange.set_bybit_wallet({"USDT": "10000.00000001"})
    exchange.add_bybit_execution("linear", "BTCUSDT", "Sell", "0.001", "65000.12345678", exec_fee="0.00003575",
                                 exec_id="e-exact")  # fmt: skip

    snapshot = bybit_venue(exchange).fetch_snapshot(now())

    (position,) = snapshot.positions
    assert type(position.qty) is Decimal and str(position.qty) == "-0.001"
    assert position.avg_price == Decimal("65000.12345678") and str(position.avg_price) == "65000.12345678"
    assert snapshot.cash == Cash("USDT", Decimal("10000.00000001"))
    (fill,) = snapshot.fills
    assert (str(fill.qty), str(fill.price), str(fill.fee)) == ("0.001", "65000.12345678", "0.00003575")


def test_a_thousand_positions_are_read_to_the_end_in_five_pages_of_two_hundred(exchange: FakeExchange) -> None:
    for number in range(1000):
        exchange.add_bybit_position("linear", f"C{number:04d}USDT", "Buy", str(number + 1), "1", "1")

    snapshot = bybit_venue(exchange, settle_coins=("USDT",)).fetch_snapshot(now())

    assert exchange.count("/v5/position/list") == 5
    assert all(query["limit"] == "200" and query["settleCoin"] == "USDT"
               for query in queries(exchange, "/v5/position/list"))  # fmt: skip
    assert len(snapshot.positions) == 1000
    assert {p.key.symbol: p.qty for p in snapshot.positions} == {
        f"C{number:04d}USDT": Decimal(number + 1) for number in range(1000)
    }


def test_positions_are_asked_once_per_configured_settle_coin(exchange: FakeExchange) -> None:
    exchange.add_bybit_position("linear", "BTCUSDT", "Buy", "1", "60000", "60000", settle_coin="USDT")
    exchange.add_bybit_position("linear", "BTCPERP", "Sell", "2", "60000", "60000", settle_coin="USDC")

    snapshot = bybit_venue(exchange, settle_coins=("USDT", "USDC")).fetch_snapshot(now())

    assert sorted(q["settleCoin"] for q in queries(exchange, "/v5/position/list")) == ["USDC", "USDT"]
    assert {p.key.symbol: p.qty for p in snapshot.positions} == {"BTCUSDT": Decimal(1), "BTCPERP": Decimal(-2)}


def test_every_configured_category_is_queried_and_keyed_by_category(exchange: FakeExchange) -> None:
    exchange.add_bybit_position("linear", "BTCUSDT", "Buy", "1", "60000", "60000")
    exchange.add_bybit_position("inverse", "BTCUSD", "Sell", "1000", "60000", "60000", settle_coin="BTC")
    exchange.add_bybit_position("option", "BTC-26DEC26-80000-C", "Buy", "2", "1500", "1600", settle_coin="USDC")
    exchange.add_bybit_order("inverse", "BTCUSD", "Buy", "500", "55000", order_link_id="inv-1", settle_coin="BTC")
    exchange.add_bybit_execution("option", "BTC-26DEC26-80000-C", "Buy", "2", "1500", exec_id="opt-1",
                                 exec_time=now() - timedelta(hours=1))  # fmt: skip

    venue = bybit_venue(exchange, categories=("linear", "inverse", "option"), settle_coins=("USDT", "BTC"))
    snapshot = venue.fetch_snapshot(now())

    for path in ("/v5/position/list", "/v5/order/realtime", "/v5/execution/list"):
        assert {q["category"] for q in queries(exchange, path)} == {"linear", "inverse", "option"}, path
    assert {p.key: p.qty for p in snapshot.positions} == {
        InstrumentKey("linear", "BTCUSDT"): Decimal(1),
        InstrumentKey("inverse", "BTCUSD"): Decimal(-1000),
        InstrumentKey("option", "BTC-26DEC26-80000-C"): Decimal(2),
    }
    assert [(o.key, o.client_order_id) for o in snapshot.open_orders] == [(InstrumentKey("inverse", "BTCUSD"), "inv-1")]
    assert [(f.key, f.fill_id) for f in snapshot.fills] == [(InstrumentKey("option", "BTC-26DEC26-80000-C"), "opt-1")]


def test_inverse_positions_are_listed_by_the_settle_coins_bybit_lists_for_inverse_contracts(
    exchange: FakeExchange,
) -> None:
    exchange.add_bybit_instrument("inverse", "XRPUSD")  # settles in XRP
    exchange.add_bybit_position("inverse", "BTCUSD", "Sell", "1000", "60000", "60000", settle_coin="BTC")
    exchange.add_bybit_position("inverse", "ETHUSDH27", "Buy", "300", "3000", "3100", settle_coin="ETH")
    exchange.add_bybit_order("inverse", "XRPUSD", "Buy", "50", "0.5", order_link_id="xrp-1", settle_coin="XRP")

    snapshot = bybit_venue(exchange, categories=("linear", "inverse")).fetch_snapshot(now())  # settle_coins: USDT

    assert {p.key: p.qty for p in snapshot.positions} == {
        InstrumentKey("inverse", "BTCUSD"): Decimal(-1000),
        InstrumentKey("inverse", "ETHUSDH27"): Decimal(300),
    }
    assert [o.client_order_id for o in snapshot.open_orders] == ["xrp-1"]
    by_category = {
        category: sorted(q["settleCoin"] for q in queries(exchange, "/v5/position/list") if q["category"] == category)
        for category in ("linear", "inverse")
    }
    assert by_category == {"linear": ["USDT"], "inverse": ["BTC", "ETH", "XRP"]}
    assert [q["category"] for q in queries(exchange, "/v5/market/instruments-info")] == ["inverse"]


def test_no_inverse_instrument_listed_fails_the_fetch_instead_of_reading_inverse_positions_as_flat(
    exchange: FakeExchange,
) -> None:
    exchange.add_bybit_position("inverse", "BTCUSD", "Sell", "1000", "60000", "60000", settle_coin="BTC")
    exchange.remove_bybit_instrument("inverse")

    with pytest.raises(InvalidResponse) as raised:
        bybit_venue(exchange, categories=("linear", "inverse")).fetch_snapshot(now())

    assert str(raised.value) == (
        "bybit instruments (inverse): no instruments listed, so no settle coin to list positions by"
    )


def test_an_inverse_instrument_without_its_settle_coin_fails_the_fetch_naming_the_field(exchange: FakeExchange) -> None:
    exchange.fail("/v5/market/instruments-info", "missing_field", field="settleCoin", item=1)

    with pytest.raises(InvalidResponse) as raised:
        bybit_venue(exchange, categories=("inverse",)).fetch_snapshot(now())

    assert str(raised.value) == "bybit instruments (inverse)[1].settleCoin: missing"


def test_a_linear_only_account_never_asks_for_instruments(exchange: FakeExchange) -> None:
    bybit_venue(exchange).fetch_snapshot(now())

    assert exchange.count("/v5/market/instruments-info") == 0


# --- wallet -----------------------------------------------------------------------------------------------------


def test_cash_is_the_unified_wallet_balance_of_the_cash_coin(exchange: FakeExchange) -> None:
    exchange.set_bybit_wallet({"USDT": "1234.5", "USDC": "777.25", "BTC": "0.1"}, usd_prices={"BTC": "60000"})

    assert bybit_venue(exchange, cash_coin="USDC").fetch_snapshot(now()).cash == Cash("USDC", Decimal("777.25"))
    assert bybit_venue(exchange).fetch_snapshot(now()).cash == Cash("USDT", Decimal("1234.5"))
    assert {q["accountType"] for q in queries(exchange, "/v5/account/wallet-balance")} == {"UNIFIED"}


def test_a_cash_coin_the_wallet_does_not_hold_is_zero(exchange: FakeExchange) -> None:
    exchange.set_bybit_wallet({"USDT": "10"})

    assert bybit_venue(exchange, cash_coin="USDC").fetch_snapshot(now()).cash == Cash("USDC", Decimal(0))


# --- open orders ------------------------------------------------------------------------------------------------


def test_open_orders_are_paged_by_fifty_with_the_order_link_id_as_client_id(exchange: FakeExchange) -> None:
    start = now() - timedelta(hours=2)
    for number in range(120):
        exchange.add_bybit_order("linear", "BTCUSDT", "Buy" if number % 2 else "Sell", "0.01", str(50000 + number),
                                 order_id=f"venue-{number}", order_link_id=f"bot-{number}",
                                 position_idx=1 if number % 2 else 2,
                                 created_time=start + timedelta(seconds=number))  # fmt: skip
    exchange.add_bybit_order("linear", "BTCUSDT", "Buy", "1", "1", status="Filled", order_link_id="done")
    exchange.add_bybit_order("linear", "ETHUSDT", "Buy", "1", "1", order_link_id="")  # placed by hand

    orders = bybit_venue(exchange).fetch_snapshot(now()).open_orders

    realtime = queries(exchange, "/v5/order/realtime")
    assert len(realtime) == 3 and {q["limit"] for q in realtime} == {"50"}
    assert len(orders) == 121
    by_client = {o.client_order_id: o for o in orders}
    assert set(by_client) == {f"bot-{n}" for n in range(120)} | {None}
    assert by_client["bot-7"] == Order(
        "bot-7", "venue-7", InstrumentKey("linear", "BTCUSDT", 1), Side.BUY, Decimal("0.01"), Decimal(50007)
    )
    assert by_client["bot-8"].key.leg == 2 and by_client["bot-8"].side is Side.SELL
    assert by_client[None].key.symbol == "ETHUSDT"


# --- executions -------------------------------------------------------------------------------------------------


def test_fills_walk_back_in_windows_of_at_most_seven_days(exchange: FakeExchange) -> None:
    moment = now()
    for days, exec_id in ((1, "recent"), (10, "last-week"), (18, "older"), (25, "too-old")):
        exchange.add_bybit_execution("linear", "BTCUSDT", "Buy", "1", "60000", exec_id=exec_id,
                                     exec_time=moment - timedelta(days=days))  # fmt: skip

    snapshot = bybit_venue(exchange, fill_lookback=timedelta(days=20)).fetch_snapshot(moment)

    windows = [(int(q["startTime"]), int(q["endTime"])) for q in queries(exchange, "/v5/execution/list")]
    assert len(windows) >= 3
    assert all(0 < end - start <= 7 * DAY_MS for start, end in windows)
    assert min(start for start, _ in windows) == ms(moment - timedelta(days=20))
    assert max(end for _, end in windows) == ms(moment)
    assert [f.fill_id for f in snapshot.fills] == ["older", "last-week", "recent"]  # oldest first


def test_many_fills_in_one_window_are_paged_to_the_end(exchange: FakeExchange) -> None:
    moment = now()
    for number in range(250):
        exchange.add_bybit_execution("linear", "BTCUSDT", "Buy", "0.001", "60000", exec_id=f"e{number:03d}",
                                     exec_time=moment - timedelta(minutes=number + 1))  # fmt: skip

    fills = bybit_venue(exchange).fills_between(moment - timedelta(days=1), moment)

    assert exchange.count("/v5/execution/list") == 3
    assert {q["limit"] for q in queries(exchange, "/v5/execution/list")} == {"100"}
    assert sorted(f.fill_id for f in fills) == [f"e{number:03d}" for number in range(250)]


def test_liquidations_and_adl_are_labelled_and_funding_is_not_a_fill(exchange: FakeExchange) -> None:
    when = now() - timedelta(hours=3)
    exchange.add_bybit_execution("linear", "BTCUSDT", "Buy", "1", "60000", exec_id="t", exec_time=when)
    exchange.add_bybit_execution("linear", "BTCUSDT", "Sell", "1", "50000", exec_type="BustTrade", exec_id="liq",
                                 exec_time=when + timedelta(minutes=1))  # fmt: skip
    exchange.add_bybit_execution("linear", "ETHUSDT", "Buy", "2", "3000", exec_type="AdlTrade", exec_id="adl",
                                 exec_time=when + timedelta(minutes=2))  # fmt: skip
    exchange.add_bybit_execution("linear", "ETHUSDT", "Sell", "2", "3000", exec_type="Funding", exec_id="fund",
                                 exec_time=when + timedelta(minutes=3))  # fmt: skip

    fills = bybit_venue(exchange).fetch_snapshot(now()).fills

    assert {f.fill_id: f.kind for f in fills} == {
        "t": FillKind.TRADE,
        "liq": FillKind.LIQUIDATION,
        "adl": FillKind.ADL,
    }
    liquidation = next(f for f in fills if f.fill_id == "liq")
    assert (liquidation.side, liquidation.qty, liquidation.price) == (Side.SELL, Decimal(1), Decimal(50000))


def test_hedge_mode_fills_are_on_the_leg_of_their_order_found_in_one_order_history_page(
    exchange: FakeExchange,
) -> None:
    when = now() - timedelta(hours=2)
    exchange.set_bybit_position_mode("linear", "BTCUSDT", hedge=True)
    exchange.add_bybit_execution("linear", "BTCUSDT", "Buy", "1", "60000", exec_id="open-long", order_id="o-long",
                                 position_idx=1, exec_time=when)  # fmt: skip
    exchange.add_bybit_execution("linear", "BTCUSDT", "Sell", "2", "60100", exec_id="open-short", order_id="o-short",
                                 position_idx=2, exec_time=when + timedelta(minutes=1))  # fmt: skip
    exchange.add_bybit_execution("linear", "BTCUSDT", "Buy", "2", "59000", exec_id="close-short", order_id="o-cover",
                                 position_idx=2, exec_time=when + timedelta(minutes=2))  # fmt: skip
    exchange.add_bybit_execution("linear", "ETHUSDT", "Buy", "3", "3000", exec_id="one-way", order_id="o-eth",
                                 exec_time=when + timedelta(minutes=3))  # fmt: skip

    fills = bybit_venue(exchange).fills_between(now() - timedelta(days=1), now())

    assert {f.fill_id: f.key for f in fills} == {
        "open-long": InstrumentKey("linear", "BTCUSDT", 1),
        "open-short": InstrumentKey("linear", "BTCUSDT", 2),
        "close-short": InstrumentKey("linear", "BTCUSDT", 2),  # a buy that closes the short leg, not a long
        "one-way": InstrumentKey("linear", "ETHUSDT", 0),
    }
    (history,) = queries(exchange, "/v5/order/history")  # one page names every order of the window
    assert int(history["endTime"]) - int(history["startTime"]) <= 7 * DAY_MS and "orderId" not in history


def test_the_order_of_an_execution_older_than_its_window_is_asked_for_by_id_once(exchange: FakeExchange) -> None:
    placed, moment = now() - timedelta(days=9), now()
    exchange.add_bybit_order("linear", "BTCUSDT", "Sell", "2", "70000", order_id="o-old", position_idx=2,
                             status="Filled", cum_exec_qty="2", created_time=placed)  # fmt: skip
    exchange.add_bybit_execution("linear", "BTCUSDT", "Sell", "1", "70000", exec_id="x1", order_id="o-old",
                                 exec_time=moment - timedelta(days=2))  # fmt: skip
    exchange.add_bybit_execution("linear", "BTCUSDT", "Sell", "1", "70000", exec_id="x2", order_id="o-old",
                                 exec_time=moment - timedelta(days=1))  # fmt: skip

    first = bybit_venue(exchange).fills_between(moment - timedelta(days=3), moment)
    next_run = bybit_venue(exchange).fills_between(moment - timedelta(days=3), moment)  # a new adapter, same key

    assert {f.key.leg for f in first + next_run} == {2}
    assert [q.get("orderId") for q in queries(exchange, "/v5/order/history")] == ["o-old"]  # remembered after


def test_an_execution_whose_order_bybit_does_not_know_fails_the_fetch(exchange: FakeExchange) -> None:
    exchange.add_bybit_execution("linear", "BTCUSDT", "Buy", "1", "60000", exec_id="x1", order_id="o-gone",
                                 exec_time=now() - timedelta(hours=1))  # fmt: skip
    exchange.bybit_orders.clear()

    with pytest.raises(InvalidResponse) as raised:
        bybit_venue(exchange).fetch_snapshot(now())

    assert str(raised.value) == (
        "bybit order history (linear): order 'o-gone' of an execution is not in the order history, "
        "so the position leg it filled is unknown"
    )


def test_an_order_placed_on_the_wrong_leg_for_the_position_mode_is_refused_by_the_fake(exchange: FakeExchange) -> None:
    exchange.add_bybit_position("linear", "BTCUSDT", "Buy", "1", "60000", "60000", position_idx=1)
    venue = bybit_venue(exchange)

    with pytest.raises(RequestRejected, match="position idx not match position mode"):
        venue.place_order(InstrumentKey("linear", "BTCUSDT", 0), Side.SELL, Decimal(1), True, "recon-leg0")
    venue.place_order(InstrumentKey("linear", "BTCUSDT", 1), Side.SELL, Decimal(1), True, "recon-leg1")

    assert [o.body["positionIdx"] for o in exchange.submitted_orders] == [1]


# --- order lookup -----------------------------------------------------------------------------------------------


def test_a_filled_order_is_found_by_its_link_id_with_its_executions(exchange: FakeExchange) -> None:
    when = now() - timedelta(hours=1)
    exchange.add_bybit_order("linear", "BTCUSDT", "Buy", "1", "60000", status="Filled", order_id="v-1",
                             order_link_id="bot-1", cum_exec_qty="1", created_time=when)  # fmt: skip
    exchange.add_bybit_execution("linear", "BTCUSDT", "Buy", "0.4", "60000", order_id="v-1", exec_id="x1",
                                 exec_time=when + timedelta(seconds=1))  # fmt: skip
    exchange.add_bybit_execution("linear", "BTCUSDT", "Buy", "0.6", "60010", order_id="v-1", exec_id="x2",
                                 exec_time=when + timedelta(seconds=2))  # fmt: skip
    exchange.add_bybit_execution("linear", "BTCUSDT", "Buy", "5", "60000", order_id="other", exec_id="x3",
                                 exec_time=when + timedelta(seconds=3))  # fmt: skip

    lookup = bybit_venue(exchange).lookup_order(pending("bot-1"))

    assert lookup.order is not None
    assert (lookup.order.status, lookup.order.venue_order_id, lookup.order.client_order_id) == (
        OrderStatus.FILLED,
        "v-1",
        "bot-1",
    )
    assert {(f.fill_id, f.qty, f.price) for f in lookup.fills} == {
        ("x1", Decimal("0.4"), Decimal(60000)),
        ("x2", Decimal("0.6"), Decimal(60010)),
    }
    assert queries(exchange, "/v5/order/history")[0]["orderLinkId"] == "bot-1"


def test_a_cancelled_order_is_found_cancelled_without_fills(exchange: FakeExchange) -> None:
    exchange.add_bybit_order("linear", "BTCUSDT", "Sell", "1", "70000", status="Cancelled", order_id="v-2",
                             order_link_id="bot-2")  # fmt: skip

    lookup = bybit_venue(exchange).lookup_order(pending("bot-2"))

    assert lookup.order is not None and lookup.order.status is OrderStatus.CANCELLED
    assert lookup.fills == ()


def test_an_order_without_client_id_is_looked_up_by_venue_id(exchange: FakeExchange) -> None:
    exchange.add_bybit_order("linear", "BTCUSDT", "Sell", "1", "70000", status="Filled", order_id="v-3")

    lookup = bybit_venue(exchange).lookup_order(pending(None, "v-3"))

    assert lookup.order is not None and lookup.order.status is OrderStatus.FILLED
    assert queries(exchange, "/v5/order/history")[0]["orderId"] == "v-3"


def test_an_order_the_venue_does_not_know_is_a_lookup_of_none(exchange: FakeExchange) -> None:
    assert bybit_venue(exchange).lookup_order(pending("never-sent")) == OrderLookup(None)


def test_an_old_pending_order_is_settled_with_fills_paged_back_to_its_creation_in_seven_day_windows(
    exchange: FakeExchange,
) -> None:
    moment = now()
    placed = moment - timedelta(days=20)
    exchange.add_bybit_order("linear", "BTCUSDT", "Buy", "3", "50000", order_id="v-old", order_link_id="bot-old",
                             position_idx=1, status="Filled", cum_exec_qty="3", created_time=placed)  # fmt: skip
    for days, exec_id in ((19, "x-19d"), (12, "x-12d"), (2, "x-2d")):  # a resting limit order, filled piece by piece
        exchange.add_bybit_execution("linear", "BTCUSDT", "Buy", "1", "50000", exec_id=exec_id, order_id="v-old",
                                     exec_time=moment - timedelta(days=days))  # fmt: skip
    exchange.add_bybit_execution("linear", "BTCUSDT", "Buy", "1", "50000", exec_id="x-before", order_id="v-other",
                                 exec_time=placed - timedelta(days=1))  # fmt: skip

    lookup = bybit_venue(exchange).lookup_order(pending("bot-old"))

    assert lookup.order is not None and lookup.order.status is OrderStatus.FILLED
    assert [(f.fill_id, f.key.leg) for f in lookup.fills] == [("x-19d", 1), ("x-12d", 1), ("x-2d", 1)]
    assert sum(f.qty for f in lookup.fills) == lookup.order.qty
    windows = [(int(q["startTime"]), int(q["endTime"])) for q in queries(exchange, "/v5/execution/list")]
    assert all(0 < end - start <= 7 * DAY_MS for start, end in windows)  # the fake refuses a longer span
    assert min(start for start, _ in windows) <= ms(placed) and max(end for _, end in windows) >= ms(moment)
    assert {q["orderId"] for q in queries(exchange, "/v5/execution/list")} == {"v-old"}


def test_the_fake_refuses_an_execution_window_over_seven_days_as_bybit_does(bybit_session: HTTP) -> None:
    end = ms(now())

    with pytest.raises(InvalidRequestError, match="The time range cannot exceed 7 days"):
        bybit_session.get_executions(category="linear", startTime=end - 7 * DAY_MS - 1, endTime=end)
    assert bybit_session.get_executions(category="linear", startTime=end - 7 * DAY_MS, endTime=end)["retCode"] == 0


# --- placing orders ---------------------------------------------------------------------------------------------


def test_place_order_sends_a_reduce_only_market_order_with_the_link_id(exchange: FakeExchange) -> None:
    venue = bybit_venue(exchange)

    order_id = venue.place_order(InstrumentKey("linear", "BTCUSDT", 2), Side.BUY, Decimal("0.005"), True, "recon-1")

    (submitted,) = exchange.submitted_orders
    assert submitted.order_id == order_id
    assert submitted.body == {
        "category": "linear",
        "symbol": "BTCUSDT",
        "side": "Buy",
        "orderType": "Market",
        "qty": "0.005",
        "reduceOnly": True,
        "orderLinkId": "recon-1",
        "positionIdx": 2,
    }


def test_place_order_writes_large_and_tiny_quantities_without_exponent(exchange: FakeExchange) -> None:
    venue = bybit_venue(exchange)

    venue.place_order(InstrumentKey("linear", "PEPEUSDT"), Side.SELL, Decimal("1E+7"), False, "recon-2")
    venue.place_order(InstrumentKey("linear", "BTCUSDT"), Side.SELL, Decimal("1E-8"), False, "recon-3")

    assert [(o.body["qty"], o.body["side"], o.body["reduceOnly"]) for o in exchange.submitted_orders] == [
        ("10000000", "Sell", False),
        ("0.00000001", "Sell", False),
    ]
