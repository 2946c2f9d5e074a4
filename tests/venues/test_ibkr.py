"""The IBKR adapter through the real ib_async client, against the loopback fake gateway (nothing mocked).

Every test talks to a socket; the module-wide timeout bounds each, and the adapter's own timeouts are short
(``TIMEOUT``), so a hang shows up as a failure within seconds, never as a stuck run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fake_tws import DEFAULT_ACCOUNT, FakeTws, free_port, future, option, stock

from reconciliation.errors import (
    DuplicateClientOrderId,
    FixConfiguration,
    InvalidResponse,
    RateLimited,
    RequestRejected,
    VenueUnavailable,
)
from reconciliation.values import Cash, FillKind, InstrumentKey, Order, OrderStatus, Side
from venues.ibkr import IbkrSettings, IbkrVenue

pytestmark = pytest.mark.timeout(20)

TIMEOUT = 0.5
CLIENT_ID = 7
AAPL = stock(265598, "AAPL")
AAPL_CALL = option(512345678, "AAPL  261218C00150000")
ES = future(495512563, "ESZ6")
ES_KEY = InstrumentKey("future", "ESZ6")


@pytest.fixture
def tws() -> Iterator[FakeTws]:
    with FakeTws() as fake:
        yield fake


def ibkr(tws: FakeTws | None = None, **options: Any) -> IbkrVenue:
    port = tws.port if tws is not None else free_port()
    settings = {"client_id": CLIENT_ID, "port": port, "timeout_seconds": TIMEOUT, **options}
    return IbkrVenue(IbkrSettings(**settings))


def now() -> datetime:
    return datetime.now(UTC)


def book_order(client_order_id: str | None, venue_order_id: str | None = None) -> Order:
    return Order(client_order_id, venue_order_id, InstrumentKey("stock", "AAPL"), Side.SELL, Decimal(2), None)


# --- positions ------------------------------------------------------------------------------------------------------


def test_stocks_options_and_futures_are_keyed_by_category_and_local_symbol(tws: FakeTws) -> None:
    tws.set_cash("USD", "1000")
    tws.add_position(AAPL, "10", "190.5", market_price="191.25")
    tws.add_position(AAPL_CALL, "-2", "315", market_price="3.2")  # IB's avgCost of an option carries the x100
    tws.add_position(ES, "1", "250000")

    positions = {p.key: p for p in ibkr(tws).fetch_snapshot(now()).positions}

    call = positions[InstrumentKey("option", "AAPL261218C00150000")]
    assert (call.qty, call.avg_price, call.mark_price, call.multiplier) == (
        Decimal(-2),
        Decimal("3.15"),
        Decimal("3.2"),
        Decimal(100),
    )
    es = positions[InstrumentKey("future", "ESZ6")]
    assert (es.qty, es.avg_price, es.multiplier, es.mark_price) == (Decimal(1), Decimal(5000), Decimal(50), None)
    shares = positions[InstrumentKey("stock", "AAPL")]
    assert (shares.qty, shares.avg_price, shares.mark_price, shares.multiplier, shares.currency) == (
        Decimal(10),
        Decimal("190.5"),
        Decimal("191.25"),
        None,
        "USD",
    )


def test_quantities_and_prices_keep_the_gateways_digits(tws: FakeTws) -> None:
    tws.set_cash("USD", "0")
    tws.add_position(AAPL, "0.5", "190.123456789")

    (position,) = ibkr(tws).fetch_snapshot(now()).positions

    assert str(position.qty) == "0.5" and str(position.avg_price) == "190.123456789"


def test_only_the_configured_accounts_positions_are_read() -> None:
    with FakeTws(accounts=("U1111111", "U2222222")) as tws:
        tws.set_cash("USD", "5", account="U2222222")
        tws.add_position(AAPL, "10", "190", account="U1111111")
        tws.add_position(ES, "-3", "250000", account="U2222222")

        snapshot = ibkr(tws, account="U2222222").fetch_snapshot(now())

    assert [(p.key.symbol, p.qty) for p in snapshot.positions] == [("ESZ6", Decimal(-3))]


def test_a_flat_position_row_is_not_a_position(tws: FakeTws) -> None:
    tws.set_cash("USD", "0")
    tws.add_position(AAPL, "0", "0")

    assert ibkr(tws).fetch_snapshot(now()).positions == ()


# --- cash -----------------------------------------------------------------------------------------------------------


def test_cash_is_the_cash_balance_in_the_configured_currency(tws: FakeTws) -> None:
    tws.set_cash("USD", "25031.17")
    tws.set_cash("EUR", "-120.5")
    tws.set_cash("BASE", "24900")

    assert ibkr(tws).fetch_snapshot(now()).cash == Cash("USD", Decimal("25031.17"))
    assert ibkr(tws, cash_currency="EUR").fetch_snapshot(now()).cash == Cash("EUR", Decimal("-120.5"))
    assert ibkr(tws, cash_currency="CHF").fetch_snapshot(now()).cash == Cash("CHF", Decimal(0))  # none held


def test_an_account_download_without_any_values_fails_instead_of_reading_zero_cash(tws: FakeTws) -> None:
    with pytest.raises(InvalidResponse, match="no account values"):
        ibkr(tws).fetch_snapshot(now())


# --- open orders ----------------------------------------------------------------------------------------------------


def test_open_orders_of_every_client_come_with_their_ids(tws: FakeTws) -> None:
    tws.set_cash("USD", "0")
    tws.add_order(AAPL, "SELL", "5", order_id=11, client_id=3, lmt_price="200", order_ref="take-profit")
    tws.add_order(ES, "BUY", "2", order_id=0, status="PreSubmitted", filled="1")  # placed in TWS: no API ids
    tws.add_order(AAPL, "BUY", "1", order_id=12, status="Filled")

    orders = ibkr(tws).fetch_snapshot(now()).open_orders

    by_ref = {o.client_order_id: o for o in orders}
    assert set(by_ref) == {"take-profit", None}
    take_profit = by_ref["take-profit"]
    assert (take_profit.venue_order_id, take_profit.side, take_profit.qty, take_profit.price, take_profit.status) == (
        str(tws.open_orders[0].perm_id),
        Side.SELL,
        Decimal(5),
        Decimal(200),
        OrderStatus.OPEN,
    )
    manual = by_ref[None]
    assert (manual.key, manual.price, manual.status) == (ES_KEY, None, OrderStatus.PARTIALLY_FILLED)


# --- fills ----------------------------------------------------------------------------------------------------------


def test_executions_are_fills_with_their_commissions(tws: FakeTws) -> None:
    hour_ago = now().replace(microsecond=0) - timedelta(hours=1)
    order = tws.add_order(AAPL_CALL, "BUY", "2", order_id=21, client_id=CLIENT_ID, order_ref="lx-1", status="Filled")
    tws.add_execution(AAPL_CALL, "BOT", "2", "3.15", hour_ago, exec_id="0000e0d5.01", order=order, commission="1.3")
    tws.add_execution(
        ES,
        "SLD",
        "1",
        "5001.25",
        hour_ago,
        exec_id="0000e0d6.01",
        liquidation=1,
        zone="America/New_York",
        commission="2.02",
    )
    tws.add_execution(AAPL, "BOT", "1", "190", now() - timedelta(days=9), exec_id="old.01")

    fills = ibkr(tws).fills_between(now() - timedelta(days=1), now())

    option_fill, es_fill = fills
    assert (option_fill.fill_id, option_fill.key, option_fill.side, option_fill.qty, option_fill.price) == (
        "0000e0d5.01",
        InstrumentKey("option", "AAPL261218C00150000"),
        Side.BUY,
        Decimal(2),
        Decimal("3.15"),
    )
    assert (option_fill.fee, option_fill.order_id, option_fill.time, option_fill.multiplier) == (
        Decimal("1.3"),
        str(order.perm_id),
        hour_ago,
        Decimal(100),
    )
    assert (es_fill.kind, es_fill.fee, es_fill.side, es_fill.time) == (
        FillKind.LIQUIDATION,
        Decimal("2.02"),
        Side.SELL,
        hour_ago,
    )
    assert es_fill.time.tzinfo is UTC


def test_commission_reports_sent_after_the_executions_end_are_waited_for(tws: FakeTws) -> None:
    tws.add_execution(AAPL, "BOT", "3", "190", now() - timedelta(hours=1), exec_id="late.01", commission="0.35")
    tws.add_execution(AAPL, "SLD", "3", "191", now() - timedelta(minutes=5), exec_id="late.02", commission="0.36")
    tws.commissions_after_end = 0.2

    fills = ibkr(tws, timeout_seconds=3).fills_between(now() - timedelta(days=1), now())

    assert [(f.fill_id, f.fee) for f in fills] == [("late.01", Decimal("0.35")), ("late.02", Decimal("0.36"))]


def test_an_execution_whose_commission_report_never_comes_is_refused_as_configuration_not_read_as_free(
    tws: FakeTws,
) -> None:
    tws.add_execution(AAPL, "BOT", "3", "190", now() - timedelta(hours=1), exec_id="other-client.01", commission=None)

    started = time.monotonic()
    with pytest.raises(FixConfiguration) as refused:
        ibkr(tws).fills_between(now() - timedelta(days=1), now())

    assert time.monotonic() - started < 10 * TIMEOUT, "the wait for the report is bounded by the timeout"
    assert "no commission report for other-client.01" in str(refused.value)
    assert f"Master API client id: set it to {CLIENT_ID}" in str(refused.value)


def test_the_snapshot_carries_the_fills_of_the_lookback_period(tws: FakeTws) -> None:
    tws.set_cash("USD", "0")
    tws.add_execution(AAPL, "BOT", "1", "190", now() - timedelta(hours=2), exec_id="recent.01")
    tws.add_execution(AAPL, "BOT", "1", "190", now() - timedelta(days=3), exec_id="older.01")

    snapshot = ibkr(tws, fill_lookback=timedelta(days=1)).fetch_snapshot(now())

    assert [f.fill_id for f in snapshot.fills] == ["recent.01"]


# --- order look-ups -------------------------------------------------------------------------------------------------


def test_lookup_finds_a_completed_order_by_its_order_ref_with_its_fills(tws: FakeTws) -> None:
    done = tws.add_order(AAPL, "SELL", "2", order_id=31, client_id=CLIENT_ID, order_ref="lx-9", status="Filled")
    tws.add_execution(AAPL, "SLD", "2", "191.5", now() - timedelta(minutes=5), exec_id="e-9.01", order=done)
    tws.add_execution(AAPL, "SLD", "1", "191.5", now() - timedelta(minutes=4), exec_id="someone-else.01")

    lookup = ibkr(tws).lookup_order(book_order("lx-9"))

    assert lookup.order is not None
    assert (lookup.order.status, lookup.order.venue_order_id) == (OrderStatus.FILLED, str(done.perm_id))
    assert [f.fill_id for f in lookup.fills] == ["e-9.01"]


def test_lookup_of_an_order_ib_does_not_show_is_none_and_an_open_one_is_open(tws: FakeTws) -> None:
    working = tws.add_order(AAPL, "SELL", "2", order_id=32, lmt_price="250", order_ref="lx-open")

    assert ibkr(tws).lookup_order(book_order("lx-unknown")).order is None
    found = ibkr(tws).lookup_order(book_order(None, str(working.perm_id))).order
    assert found is not None and (found.client_order_id, found.status) == ("lx-open", OrderStatus.OPEN)


# --- placing and cancelling -----------------------------------------------------------------------------------------


def test_a_market_order_goes_out_with_our_client_order_id_as_order_ref(tws: FakeTws) -> None:
    tws.add_position(AAPL_CALL, "-2", "315")

    venue_id = ibkr(tws).place_order(
        InstrumentKey("option", "AAPL261218C00150000"), Side.BUY, Decimal(2), True, "recon-42-1"
    )

    (placed,) = tws.placed
    assert {k: placed[k] for k in ("orderRef", "action", "totalQuantity", "orderType", "tif", "account")} == {
        "orderRef": "recon-42-1",
        "action": "BUY",
        "totalQuantity": "2.0",
        "orderType": "MKT",
        "tif": "DAY",
        "account": DEFAULT_ACCOUNT,
    }
    assert (placed["conId"], placed["exchange"]) == (str(AAPL_CALL.con_id), "SMART")  # the held contract, by id
    assert venue_id == str(tws.open_orders[-1].perm_id)


def test_a_stock_the_account_does_not_hold_is_ordered_at_smart_in_the_cash_currency(tws: FakeTws) -> None:
    ibkr(tws).place_order(InstrumentKey("stock", "MSFT"), Side.BUY, Decimal(3), False, "recon-43-1")

    (placed,) = tws.placed
    assert (placed["symbol"], placed["secType"], placed["exchange"], placed["currency"]) == (
        "MSFT",
        "STK",
        "SMART",
        "USD",
    )


def test_an_option_without_a_known_contract_is_refused_before_anything_is_sent(tws: FakeTws) -> None:
    with pytest.raises(RequestRejected, match="no contract id known for option:AAPL261218P00100000"):
        ibkr(tws).place_order(InstrumentKey("option", "AAPL261218P00100000"), Side.BUY, Decimal(1), False, "x-1")
    assert tws.placed == []


def test_an_order_ref_ib_already_shows_is_a_duplicate_and_nothing_is_sent(tws: FakeTws) -> None:
    tws.add_order(AAPL, "BUY", "3", order_id=41, client_id=CLIENT_ID, order_ref="recon-44-1", status="Filled")

    with pytest.raises(DuplicateClientOrderId, match="recon-44-1"):
        ibkr(tws).place_order(InstrumentKey("stock", "AAPL"), Side.BUY, Decimal(3), False, "recon-44-1")
    assert tws.placed == []


def test_an_unacknowledged_order_is_retry_later_and_the_retry_finds_it_sent(tws: FakeTws) -> None:
    tws.place_reply = "silent"
    venue = ibkr(tws)

    with pytest.raises(VenueUnavailable, match=r"no answer to order \d+ \(recon-45-1\) within 0.5 s"):
        venue.place_order(InstrumentKey("stock", "AAPL"), Side.SELL, Decimal(1), True, "recon-45-1")
    with pytest.raises(DuplicateClientOrderId):
        venue.place_order(InstrumentKey("stock", "AAPL"), Side.SELL, Decimal(1), True, "recon-45-1")
    assert len(tws.placed) == 1


def test_a_rejected_order_is_request_rejected_with_ibs_reason(tws: FakeTws) -> None:
    tws.place_reply = (
        201,
        "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED POSITION",
    )

    with pytest.raises(RequestRejected, match="IB error 201: Order rejected - reason:YOUR ORDER IS NOT ACCEPTED"):
        ibkr(tws).place_order(InstrumentKey("stock", "AAPL"), Side.BUY, Decimal(1), False, "recon-46-1")


def test_a_warning_that_the_order_waits_for_the_open_does_not_fail_it(tws: FakeTws) -> None:
    tws.place_notices = [
        (
            399,
            "Order Message:\nBUY 1 AAPL NASDAQ.NMS\nWarning: your order will not be placed at the "
            "exchange until 2026-12-03 09:30:00 US/Eastern",
        )
    ]

    venue_id = ibkr(tws).place_order(InstrumentKey("stock", "AAPL"), Side.BUY, Decimal(1), False, "recon-48-1")

    assert venue_id == str(tws.open_orders[-1].perm_id)


def test_a_read_only_api_refuses_orders_as_a_configuration_problem(tws: FakeTws) -> None:
    tws.place_reply = (
        321,
        "Error validating request.-'bW' : cause - The API interface is currently in Read-Only mode.",
    )

    with pytest.raises(FixConfiguration, match="Read-Only API"):
        ibkr(tws).place_order(InstrumentKey("stock", "AAPL"), Side.BUY, Decimal(1), False, "recon-47-1")


def test_cancel_cancels_our_working_order_by_its_perm_id(tws: FakeTws) -> None:
    working = tws.add_order(AAPL, "SELL", "2", order_id=51, client_id=CLIENT_ID, lmt_price="250", order_ref="lx-5")

    ibkr(tws).cancel_order(book_order("lx-5", str(working.perm_id)))

    assert tws.open_orders == []
    assert [(o.perm_id, o.status) for o in tws.completed_orders] == [(working.perm_id, "Cancelled")]


def test_cancel_of_another_clients_order_or_an_unknown_one_is_refused(tws: FakeTws) -> None:
    theirs = tws.add_order(AAPL, "SELL", "2", order_id=52, client_id=99, lmt_price="250")

    with pytest.raises(RequestRejected, match="placed by client id 99"):
        ibkr(tws).cancel_order(book_order(None, str(theirs.perm_id)))
    with pytest.raises(RequestRejected, match="no working order with permId 123"):
        ibkr(tws).cancel_order(book_order(None, "123"))
    assert tws.open_orders == [theirs]


def test_a_cancel_ib_refuses_is_request_rejected(tws: FakeTws) -> None:
    working = tws.add_order(AAPL, "SELL", "2", order_id=53, client_id=CLIENT_ID, lmt_price="250")
    tws.cancel_reply = (10148, "OrderId 53 that needs to be cancelled cannot be cancelled, state: PendingCancel.")

    with pytest.raises(RequestRejected, match="IB error 10148"):
        ibkr(tws).cancel_order(book_order(None, str(working.perm_id)))


# --- errors: what the caller must do ------------------------------------------------------------------------------


def elapsed(call: Any) -> tuple[BaseException, float]:
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        call()
    return caught.value, time.monotonic() - started


def test_connection_refused_is_retry_later_at_once() -> None:
    error, seconds = elapsed(lambda: ibkr().fetch_snapshot(now()))

    assert isinstance(error, VenueUnavailable) and "connection refused" in str(error)
    assert seconds < 1


def test_a_listener_that_never_answers_the_handshake_fails_within_the_timeout(tws: FakeTws) -> None:
    tws.handshake = "silent"

    error, seconds = elapsed(lambda: ibkr(tws).fetch_snapshot(now()))

    assert isinstance(error, VenueUnavailable) and "no answer to the API handshake" in str(error)
    assert seconds < 4 * TIMEOUT


def test_a_gateway_that_drops_us_after_the_handshake_fails_at_once(tws: FakeTws) -> None:
    tws.handshake = "drop"

    error, seconds = elapsed(lambda: ibkr(tws).fetch_snapshot(now()))

    assert isinstance(error, VenueUnavailable) and "closed the connection" in str(error)
    assert seconds < TIMEOUT


def test_a_gateway_not_logged_in_names_no_account_and_is_retry_later(tws: FakeTws) -> None:
    tws.handshake = "no_accounts"

    error, seconds = elapsed(lambda: ibkr(tws).fetch_snapshot(now()))

    assert isinstance(error, VenueUnavailable) and "not logged in" in str(error)
    assert seconds < 4 * TIMEOUT


def test_a_gateway_that_lost_ib_fails_the_fetch_at_once(tws: FakeTws) -> None:
    tws.set_cash("USD", "1")
    tws.errors_on_start = [(1100, "Connectivity between IB and Trader Workstation has been lost.")]
    tws.silent = {6}  # and then nothing it would say could be trusted

    error, seconds = elapsed(lambda: ibkr(tws).fetch_snapshot(now()))

    assert isinstance(error, VenueUnavailable) and "IB error 1100" in str(error)
    assert seconds < TIMEOUT


def test_a_client_id_in_use_is_retry_later_naming_the_client_id(tws: FakeTws) -> None:
    tws.errors_on_start = [
        (326, "Unable to connect as the client id is already in use. Retry with a unique client id.")
    ]

    with pytest.raises(VenueUnavailable, match=r"IB error 326.*another connection uses this client_id"):
        ibkr(tws).fetch_snapshot(now())


@pytest.mark.parametrize("msg_id", [7, 61], ids=["executions", "positions"])
def test_a_pacing_violation_is_rate_limited(tws: FakeTws, msg_id: int) -> None:
    tws.set_cash("USD", "1")
    tws.fail(
        msg_id,
        162,
        "Historical Market Data Service error message:API historical data query cancelled: pacing violation",
    )

    with pytest.raises(RateLimited, match=r"IB error 162.*pacing violation"):
        ibkr(tws).fetch_snapshot(now())


def test_a_listing_the_gateway_never_ends_fails_the_whole_snapshot(tws: FakeTws) -> None:
    tws.set_cash("USD", "1")
    tws.add_position(AAPL, "10", "190")
    tws.silent = {16}  # positions come, the open orders never end

    error, seconds = elapsed(lambda: ibkr(tws).fetch_snapshot(now()))

    assert isinstance(error, VenueUnavailable) and "no answer to open orders within 0.5 s" in str(error)
    assert seconds < 4 * TIMEOUT


def test_an_account_the_login_does_not_manage_is_a_configuration_problem(tws: FakeTws) -> None:
    with pytest.raises(FixConfiguration, match=r"account 'U9999999' is not managed by the login.*DU1234567"):
        ibkr(tws, account="U9999999").fetch_snapshot(now())


def test_a_login_with_several_accounts_needs_one_named() -> None:
    with FakeTws(accounts=("U1111111", "U2222222")) as tws, pytest.raises(FixConfiguration, match="several accounts"):
        ibkr(tws).fetch_snapshot(now())


# --- where it runs --------------------------------------------------------------------------------------------------


def test_calls_from_worker_threads_and_from_inside_a_running_event_loop_work(tws: FakeTws) -> None:
    tws.set_cash("USD", "7")
    tws.add_position(AAPL, "10", "190")
    venue = ibkr(tws)

    with ThreadPoolExecutor(max_workers=4) as pool:
        snapshots = list(pool.map(lambda _: venue.fetch_snapshot(now()), range(4)))

    async def from_async_code() -> Cash | None:
        return venue.fetch_snapshot(now()).cash

    assert {s.cash for s in snapshots} == {Cash("USD", Decimal(7))}
    assert asyncio.run(from_async_code()) == Cash("USD", Decimal(7))
    assert tws.connections == 5  # one session per call, closed after it


def test_describe_names_the_gateway_without_anything_secret(tws: FakeTws) -> None:
    assert ibkr(tws, account="DU1234567").describe() == (
        f"ibkr paper at 127.0.0.1:{tws.port} (client id 7, account DU1234567)"
    )
