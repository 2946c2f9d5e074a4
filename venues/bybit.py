"""Bybit (v5 unified account) through pybit: positions, wallet, open orders, executions, orders.

pybit is bounded so that the worker owns the retry policy: one attempt per call (``max_retries=1``), no
retry codes (a 10006 rate limit raises at once instead of sleeping inside the library), a timeout on
every request, and no proxy variables for loopback URLs. Every SDK error becomes one of ours, cause kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError
from pybit.unified_trading import HTTP

from reconciliation.errors import (
    AuthenticationFailed,
    InvalidResponse,
    RateLimited,
    ReconError,
    RequestRejected,
    VenueUnavailable,
)
from reconciliation.values import (
    ZERO,
    Cash,
    Fill,
    FillKind,
    InstrumentKey,
    Order,
    OrderLookup,
    OrderStatus,
    Side,
    Snapshot,
    VenuePosition,
    plain,
)
from venues import parsing
from venues.credentials import Credentials

URLS = {
    "mainnet": "https://api.bybit.com",
    "testnet": "https://api-testnet.bybit.com",
    "demo": "https://api-demo.bybit.com",
}
POSITION_PAGE, ORDER_PAGE, EXECUTION_PAGE = 200, 50, 100
EXECUTION_WINDOW = timedelta(days=7)
MAX_PAGES = 10_000
NEVER_RETRY = {-1}  # pybit replaces an empty set with its defaults (10002, 10006, ...), which it sleeps on
AUTH_CODES = {10003, 10004, 10005, 10007, 10009, 10010, 33004}
RATE_CODES = {10006, 10018}
TRANSIENT_CODES = {10000, 10002, 10016, 10019}
KINDS = {
    "Trade": FillKind.TRADE,
    "BustTrade": FillKind.LIQUIDATION,
    "AdlTrade": FillKind.ADL,
    "Delivery": FillKind.EXPIRY,
}
SIDES = {"Buy": Side.BUY, "Sell": Side.SELL}
OPEN_STATUSES = {
    "New": OrderStatus.OPEN,
    "Untriggered": OrderStatus.OPEN,
    "PartiallyFilled": OrderStatus.PARTIALLY_FILLED,
}
FINAL_STATUSES = {
    "Filled": OrderStatus.FILLED,
    "Cancelled": OrderStatus.CANCELLED,
    "PartiallyFilledCanceled": OrderStatus.CANCELLED,
    "Deactivated": OrderStatus.CANCELLED,
    "Rejected": OrderStatus.REJECTED,
    **OPEN_STATUSES,
}


@dataclass(frozen=True)
class BybitSettings:
    """Where and how to reach one Bybit account."""

    credentials: Credentials
    environment: str = "mainnet"
    base_url: str | None = None
    categories: tuple[str, ...] = ("linear",)
    settle_coins: tuple[str, ...] = ("USDT", "USDC")
    cash_coin: str = "USDT"
    timeout_seconds: float = 10.0
    fill_lookback: timedelta = field(default=timedelta(days=7))

    @property
    def url(self) -> str:
        """The base URL: ``base_url`` if set, else the environment's."""
        return (self.base_url or URLS[self.environment]).rstrip("/")


class BybitVenue:
    """A Bybit unified account."""

    name = "bybit"

    def __init__(self, settings: BybitSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.session = HTTP(
            api_key=settings.credentials.key.reveal(),
            api_secret=settings.credentials.secret.reveal(),
            max_retries=1,
            retry_codes=NEVER_RETRY,
            timeout=settings.timeout_seconds,
            log_requests=False,
        )
        self.session.endpoint = settings.url  # pybit reads it on every call; there is no constructor argument
        self.session.client.trust_env = False  # no proxy variables: the URL is exactly the one configured

    def describe(self) -> str:
        """Environment and URL."""
        return f"bybit {self.settings.environment} at {self.settings.url}"

    # --- reading ----------------------------------------------------------------------------------------------

    def fetch_snapshot(self, now: datetime) -> Snapshot:
        """Every position, the wallet, open orders and the fills of the lookback period, or an error."""
        positions = [p for category in self.settings.categories for p in self._positions(category)]
        orders = [o for category in self.settings.categories for o in self._open_orders(category)]
        fills = self.fills_between(now - self.settings.fill_lookback, now)
        return Snapshot(
            as_of=now,
            positions=tuple(p for p in positions if p.qty != ZERO),
            cash=self._cash(),
            open_orders=tuple(orders),
            fills=fills,
            marks={p.key: p.mark_price for p in positions if p.qty == ZERO and p.mark_price is not None},
        )

    def _scopes(self, category: str) -> list[dict[str, str]]:
        """Linear and inverse positions and orders are asked per settle coin (Bybit requires one, or a symbol);
        options in one go."""
        if category in ("linear", "inverse"):
            return [{"settleCoin": coin} for coin in self.settings.settle_coins]
        return [{}]

    def _positions(self, category: str) -> Iterator[VenuePosition]:
        for scope in self._scopes(category):
            where = f"bybit position list ({category} {scope.get('settleCoin', '')})".replace(" )", ")")
            for index, row in enumerate(self._paged(self.session.get_positions, where, POSITION_PAGE,
                                                    category=category, **scope)):  # fmt: skip
                position = _position(row, category, f"{where}[{index}]")
                if position is not None:
                    yield position

    def _open_orders(self, category: str) -> Iterator[Order]:
        for scope in self._scopes(category):
            where = f"bybit open orders ({category})"
            for index, row in enumerate(self._paged(self.session.get_open_orders, where, ORDER_PAGE,
                                                    category=category, **scope)):  # fmt: skip
                yield _order(row, category, f"{where}[{index}]", OPEN_STATUSES)

    def _cash(self) -> Cash:
        where = "bybit wallet balance"
        result = self._result(self._call(self.session.get_wallet_balance, accountType="UNIFIED"), where)
        accounts = parsing.items(parsing.field(result, "list", where), f"{where}.list")
        if not accounts:
            raise InvalidResponse(f"{where}.list: empty")
        coins = parsing.items(parsing.field(accounts[0], "coin", f"{where}.list[0]"), f"{where}.list[0].coin")
        for index, coin in enumerate(coins):
            if parsing.text(coin, "coin", f"{where}.coin[{index}]") == self.settings.cash_coin:
                return Cash(self.settings.cash_coin, parsing.decimal(coin, "walletBalance", f"{where}.coin[{index}]"))
        return Cash(self.settings.cash_coin, ZERO)

    def fills_between(self, start: datetime, end: datetime) -> tuple[Fill, ...]:
        """Executions (trades, liquidations, ADL; funding left out), walking back in windows of 7 days."""
        fills: dict[str, Fill] = {}
        window_end = end
        while window_end > start:
            window_start = max(start, window_end - EXECUTION_WINDOW)
            for category in self.settings.categories:
                window = {"startTime": _ms(window_start), "endTime": _ms(window_end)}
                fills.update((f.fill_id, f) for f in self._executions(category, **window))
            window_end = window_start
        return tuple(sorted(fills.values(), key=lambda f: (f.time, f.fill_id)))

    def _executions(self, category: str, **query: Any) -> Iterator[Fill]:
        """Executions of ``category`` matching ``query`` (a time window, or an order id)."""
        where = f"bybit executions ({category})"
        for index, row in enumerate(self._paged(self.session.get_executions, where, EXECUTION_PAGE,
                                                category=category, **query)):  # fmt: skip
            fill = _fill(row, category, f"{where}[{index}]")
            if fill is not None:
                yield fill

    def lookup_order(self, order: Order) -> OrderLookup:
        """The order's final status from the order history, and its executions."""
        category = order.key.category
        ask = {"orderLinkId": order.client_order_id} if order.client_order_id else {"orderId": order.venue_order_id}
        where = f"bybit order history ({category})"
        result = self._result(self._call(self.session.get_order_history, category=category, **ask), where)
        rows = parsing.items(parsing.field(result, "list", where), f"{where}.list")
        if not rows:
            return OrderLookup(None)
        found = _order(rows[0], category, f"{where}.list[0]", FINAL_STATUSES)
        if found.venue_order_id is None:
            return OrderLookup(found)
        return OrderLookup(found, tuple(self._executions(category, orderId=found.venue_order_id)))

    # --- writing ----------------------------------------------------------------------------------------------

    def place_order(self, key: InstrumentKey, side: Side, qty: Decimal, reduce_only: bool, client_order_id: str) -> str:
        """A market order; reduce-only when it only shrinks the position."""
        where = "bybit order create"
        result = self._result(
            self._call(
                self.session.place_order,
                category=key.category,
                symbol=key.symbol,
                side="Buy" if side is Side.BUY else "Sell",
                orderType="Market",
                qty=plain(qty),
                reduceOnly=reduce_only,
                orderLinkId=client_order_id,
                positionIdx=key.leg,
            ),
            where,
        )
        return parsing.text(result, "orderId", where)

    def cancel_order(self, order: Order) -> None:
        """Cancel an open order by its venue id."""
        self._result(
            self._call(
                self.session.cancel_order,
                category=order.key.category,
                symbol=order.key.symbol,
                orderId=order.venue_order_id,
            ),
            "bybit order cancel",
        )

    # --- the SDK boundary -------------------------------------------------------------------------------------

    def _paged(self, method: Callable[..., Any], where: str, limit: int, **params: Any) -> Iterator[Any]:
        """Every row of a cursor-paged list; any failing page fails the whole listing."""
        cursor = ""
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            response = self._call(method, limit=limit, cursor=cursor or None, **params)
            result = self._result(response, where)
            yield from parsing.items(parsing.field(result, "list", where), f"{where}.list")
            cursor = result.get("nextPageCursor") or ""
            if not cursor:
                return
            if cursor in seen:
                raise InvalidResponse(f"{where}.nextPageCursor: {cursor!r} came back a second time")
            seen.add(cursor)
        raise InvalidResponse(f"{where}: more than {MAX_PAGES} pages")

    def _result(self, response: Any, where: str) -> Any:
        return parsing.field(response, "result", where)

    def _call(self, method: Callable[..., Any], **params: Any) -> Any:
        try:
            return method(**params)
        except InvalidRequestError as error:
            raise self._from_ret_code(error) from error
        except FailedRequestError as error:
            raise self._from_http(error) from error
        except requests.exceptions.Timeout as error:
            raise VenueUnavailable(f"bybit did not answer within {self.settings.timeout_seconds} s") from error
        except requests.exceptions.RequestException as error:
            raise VenueUnavailable(f"bybit unreachable at {self.settings.url}: {type(error).__name__}") from error
        except ValueError as error:  # pybit parsing a rate-limit reset time in the past
            raise RateLimited("bybit rate limit (reset time already passed)", retry_after=1.0) from error

    def _from_ret_code(self, error: InvalidRequestError) -> ReconError:
        code = error.status_code
        message = f"bybit retCode {code}: {error.message}"
        if code in RATE_CODES:
            return RateLimited(message, retry_after=self._retry_after(error.resp_headers))
        if code in AUTH_CODES:  # Bybit's message may echo the signed string, which holds the key: not repeated
            return AuthenticationFailed(f"bybit refused the credentials (retCode {code})")
        if code in TRANSIENT_CODES:
            return VenueUnavailable(message)
        return RequestRejected(message)

    def _from_http(self, error: FailedRequestError) -> ReconError:
        status = error.status_code
        if status in (403, 429):
            return RateLimited(f"bybit HTTP {status}: rate limited", retry_after=self._retry_after(error.resp_headers))
        if status == 401:
            return AuthenticationFailed("bybit HTTP 401: not authorised")
        if status == 409:  # pybit's code for a body that is not JSON
            return InvalidResponse("bybit answered with a body that is not JSON")
        return VenueUnavailable(f"bybit HTTP {status}")

    def _retry_after(self, headers: Any) -> float | None:
        """Seconds until Bybit's X-Bapi-Limit-Reset-Timestamp, else an HTTP Retry-After, else unknown."""
        headers = headers or {}
        reset = headers.get("X-Bapi-Limit-Reset-Timestamp")
        if reset is not None:
            try:
                return max(0.0, int(reset) / 1000 - self.clock())
            except ValueError:
                return None
        retry_after = headers.get("Retry-After")
        try:
            return float(retry_after) if retry_after is not None else None
        except ValueError:
            return None


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _position(row: Any, category: str, where: str) -> VenuePosition | None:
    """A position row; None for a flat leg (size 0 or side "" / "None") unless it carries a mark."""
    side = parsing.field(row, "side", where)  # required: a row without it must not read as flat
    size = parsing.decimal(row, "size", where)
    symbol = parsing.text(row, "symbol", where)
    leg = _leg(row, where)
    mark = parsing.optional_decimal(row, "markPrice", where)
    key = InstrumentKey(category, symbol, leg)
    if side in ("", "None") or size == ZERO:
        return VenuePosition(key, ZERO, ZERO, mark) if mark is not None else None
    if side not in SIDES:
        raise InvalidResponse(f"{where}.side: {side!r} is not Buy, Sell or flat")
    if size < ZERO:
        raise InvalidResponse(f"{where}.size: negative ({size})")
    sign = SIDES[side].sign
    return VenuePosition(key, size * sign, parsing.decimal(row, "avgPrice", where), mark)


def _leg(row: Any, where: str) -> int:
    value = parsing.field(row, "positionIdx", where)  # required: a default of 0 would merge hedge-mode legs
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value) not in ("0", "1", "2"):
        raise InvalidResponse(f"{where}.positionIdx: {value!r} is not 0, 1 or 2")
    return int(value)


def _order(row: Any, category: str, where: str, statuses: dict[str, OrderStatus]) -> Order:
    status = parsing.text(row, "orderStatus", where)
    if status not in statuses:
        raise InvalidResponse(f"{where}.orderStatus: {status!r} is not an order status we know")
    side = parsing.text(row, "side", where)
    if side not in SIDES:
        raise InvalidResponse(f"{where}.side: {side!r}")
    return Order(
        client_order_id=row.get("orderLinkId") or None,
        venue_order_id=parsing.text(row, "orderId", where),
        key=InstrumentKey(category, parsing.text(row, "symbol", where), _leg(row, where)),
        side=SIDES[side],
        qty=parsing.decimal(row, "qty", where),
        price=parsing.optional_decimal(row, "price", where) or None,
        status=statuses[status],
    )


def _fill(row: Any, category: str, where: str) -> Fill | None:
    """An execution as a fill; None for funding and other non-trade rows."""
    kind = KINDS.get(parsing.text(row, "execType", where))
    if kind is None:
        return None
    side = parsing.text(row, "side", where)
    if side not in SIDES:
        raise InvalidResponse(f"{where}.side: {side!r}")
    return Fill(
        fill_id=parsing.text(row, "execId", where),
        key=InstrumentKey(category, parsing.text(row, "symbol", where), 0),
        side=SIDES[side],
        qty=parsing.decimal(row, "execQty", where),
        price=parsing.decimal(row, "execPrice", where),
        fee=parsing.optional_decimal(row, "execFee", where) or ZERO,
        time=parsing.millis(row, "execTime", where),
        order_id=row.get("orderId") or None,
        kind=kind,
    )
