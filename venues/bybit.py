"""Bybit (v5 unified account) through pybit: positions, wallet, open orders, executions, orders.

pybit is bounded so that the worker owns the retry policy: one attempt per call (``max_retries=1``), no
retry codes (a 10006 rate limit raises at once instead of sleeping inside the library), a timeout on
every request, no proxy variables for loopback URLs, and no redirects (credentials go to the configured URL
only). Every SDK error becomes one of ours (``venues.bybit_errors``), its cause kept but emptied of the
request; every answer is checked at the edge (``venues.bybit_rows`` on ``venues.parsing``), so whatever passes
is something the books can hold. Every request first takes a token from the key's shared request budget
(``venues.budget``). Executions carry no ``positionIdx``: each is put on the hedge-mode leg of its order, read from
the order history; inverse contracts are listed per the settle coins of Bybit's inverse instruments.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError
from pybit.unified_trading import HTTP

from reconciliation.errors import InvalidResponse, ReconError, VenueUnavailable
from reconciliation.limits import MAX_ID
from reconciliation.values import (
    ZERO,
    Cash,
    Fill,
    InstrumentKey,
    Order,
    OrderLookup,
    Side,
    Snapshot,
    VenuePosition,
    plain,
)
from venues import bybit_errors, bybit_rows, http, parsing
from venues.budget import UNLIMITED, RequestBudget, key_identity
from venues.credentials import Credentials, Secret
from venues.endpoints import BYBIT_URLS, Endpoint, bybit_endpoint
from venues.redaction import Redactor

URLS = BYBIT_URLS
POSITION_PAGE, ORDER_PAGE, EXECUTION_PAGE, INSTRUMENT_PAGE = 200, 50, 100, 1000
EXECUTION_WINDOW = timedelta(days=7)
#: How far back Bybit keeps executions and orders: an order's fills are looked for no further back than this.
HISTORY = timedelta(days=730)
#: Executions of an order may be stamped a little before the order's own creation time (clocks of two services).
CREATION_MARGIN = timedelta(minutes=1)
#: Pages one listing may take (100 000 positions, 25 000 open orders, 50 000 executions per 7-day window).
MAX_PAGES = 500
#: Empty pages in a row that may still hand out a next cursor; one more and the listing is refused.
MAX_EMPTY_PAGES = 2
MAX_CURSOR = 1024


class _NoCode:
    """Equal to no retCode a venue can send (a number like -1 could be)."""


#: pybit replaces an empty set with its own retry codes (10002, 10006, ...), on which it sleeps: give it one that
#: matches nothing.
NEVER_RETRY = frozenset({_NoCode()})


@dataclass(frozen=True)
class BybitSettings:
    """Where and how to reach one Bybit account."""

    credentials: Credentials
    environment: str = "mainnet"
    base_url: str | None = None
    categories: tuple[str, ...] = ("linear",)
    #: Linear contracts are listed per settle coin; inverse ones per the settle coins Bybit lists for them.
    settle_coins: tuple[str, ...] = ("USDT", "USDC")
    cash_coin: str = "USDT"
    timeout_seconds: float = 10.0
    fill_lookback: timedelta = field(default=timedelta(days=7))

    @property
    def endpoint(self) -> Endpoint:
        """Where requests go (``base_url`` if set, else the environment's) and whether that is live."""
        return bybit_endpoint(self.environment, self.base_url)

    @property
    def url(self) -> str:
        """The base URL: ``base_url`` if set, else the environment's."""
        return self.endpoint.url


class _Session(HTTP):  # type: ignore[misc]  # pybit ships no type information
    """pybit's session with the credentials held as ``Secret`` (so neither its repr nor ``vars()`` shows them)."""

    @property
    def api_key(self) -> str:
        return self._key.reveal()

    @api_key.setter
    def api_key(self, value: str) -> None:
        self._key = Secret(value)

    @property
    def api_secret(self) -> str:
        return self._secret.reveal()

    @api_secret.setter
    def api_secret(self, value: str) -> None:
        self._secret = Secret(value)

    def __repr__(self) -> str:
        return f"<pybit session for {self.endpoint}, credentials ***>"


class BybitVenue:
    """A Bybit unified account."""

    name = "bybit"

    def __init__(
        self, settings: BybitSettings, clock: Callable[[], float] = time.time, budget: RequestBudget | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._budget = budget or UNLIMITED  # taken before every request (``_call``): one call is one HTTP request
        self._redactor = Redactor(settings.credentials)
        self._session = _Session(
            api_key=settings.credentials.key.reveal(),
            api_secret=settings.credentials.secret.reveal(),
            max_retries=1,
            retry_codes=NEVER_RETRY,
            timeout=settings.timeout_seconds,
            log_requests=False,
        )
        self._session.endpoint = settings.url  # pybit reads it on every call; there is no constructor argument
        self._session.client.trust_env = False  # no proxy variables: the URL is exactly the one configured
        self._session.logger = self._redactor.logger(self._session.logger)  # it logs error bodies at DEBUG
        http.refuse_redirects(self._session.client, "bybit")
        #: orderId -> positionIdx of every order seen: executions do not say which hedge-mode leg they filled, their
        #: orders do, and an order never moves to another leg; so it is kept for the process, per URL and key, and
        #: each run looks up only the orders it has not seen (a week of executions is re-read every run).
        self._legs = _LEGS.setdefault((settings.url, key_identity("bybit", settings.credentials)), _Legs())

    def describe(self) -> str:
        """Environment and URL."""
        return f"bybit {self.settings.environment} at {self.settings.url}"

    def __repr__(self) -> str:
        return f"<BybitVenue {self.describe()}>"

    # --- reading ----------------------------------------------------------------------------------------------

    def fetch_snapshot(self, now: datetime) -> Snapshot:
        """Every position, the wallet, open orders and the fills of the lookback period, or an error."""
        with self._redactor.scrubbed():
            scopes = {category: self._scopes(category) for category in self.settings.categories}
            rows = [p for category, scope in scopes.items() for p in self._positions(category, scope)]
            parsing.refuse_duplicates((p.key for p in rows), "bybit positions", "instrument")
            orders = [o for category, scope in scopes.items() for o in self._open_orders(category, scope)]
            parsing.refuse_duplicates((o.venue_order_id for o in orders), "bybit open orders", "order id")
            fills = self.fills_between(now - self.settings.fill_lookback, now)
            return Snapshot(
                as_of=now,
                positions=tuple(p for p in rows if p.qty != ZERO),
                cash=self._cash(),
                open_orders=tuple(orders),
                fills=fills,
                marks={p.key: p.mark_price for p in rows if p.qty == ZERO and p.mark_price is not None},
            )

    def _scopes(self, category: str) -> list[dict[str, str]]:
        """Linear and inverse positions and orders are asked per settle coin (Bybit requires one, or a symbol);
        options in one go. Linear contracts settle in the configured coins (USDT, USDC); an inverse contract
        settles in its base coin (BTCUSD in BTC), so its coins are those Bybit lists for its inverse instruments:
        a coin left out of a configured list would read as flat."""
        if category == "linear":
            return [{"settleCoin": coin} for coin in self.settings.settle_coins]
        if category == "inverse":
            return [{"settleCoin": coin} for coin in self._inverse_settle_coins()]
        return [{}]

    def _inverse_settle_coins(self) -> list[str]:
        """The settle coins of Bybit's inverse instruments (``/v5/market/instruments-info``), in first-seen order."""
        where = "bybit instruments (inverse)"
        coins: dict[str, None] = {}
        for index, row in enumerate(self._paged(self._session.get_instruments_info, where, INSTRUMENT_PAGE,
                                                category="inverse")):  # fmt: skip
            coins[bybit_rows.settle_coin(row, f"{where}[{index}]")] = None
        if not coins:  # an empty list would read every inverse position as flat
            raise InvalidResponse(f"{where}: no instruments listed, so no settle coin to list positions by")
        return list(coins)

    def _positions(self, category: str, scopes: list[dict[str, str]]) -> Iterator[VenuePosition]:
        """Every position row of ``category``, flat legs included (their marks are exit price estimates)."""
        for scope in scopes:
            where = f"bybit position list ({category} {scope.get('settleCoin', '')})".replace(" )", ")")
            for index, row in enumerate(self._paged(self._session.get_positions, where, POSITION_PAGE,
                                                    category=category, **scope)):  # fmt: skip
                position = bybit_rows.position(row, category, f"{where}[{index}]")
                yield replace(position, currency=settle_currency(category, scope))

    def _open_orders(self, category: str, scopes: list[dict[str, str]]) -> Iterator[Order]:
        for scope in scopes:
            where = f"bybit open orders ({category})"
            for index, row in enumerate(self._paged(self._session.get_open_orders, where, ORDER_PAGE,
                                                    category=category, **scope)):  # fmt: skip
                order = bybit_rows.order(row, category, f"{where}[{index}]", bybit_rows.OPEN_STATUSES)
                if order.venue_order_id is not None:
                    self._legs[order.venue_order_id] = order.key.leg
                yield order

    def _cash(self) -> Cash:
        where = "bybit wallet balance"
        result = self._result(self._call(self._session.get_wallet_balance, accountType="UNIFIED"), where)
        accounts = parsing.items(parsing.field(result, "list", where), f"{where}.list")
        if not accounts:
            raise InvalidResponse(f"{where}.list: empty")
        coins = parsing.items(parsing.field(accounts[0], "coin", f"{where}.list[0]"), f"{where}.list[0].coin")
        balances = [
            parsing.decimal(coin, "walletBalance", f"{where}.coin[{index}]")
            for index, coin in enumerate(coins)
            if parsing.text(coin, "coin", f"{where}.coin[{index}]") == self.settings.cash_coin
        ]
        if len(balances) > 1:
            raise InvalidResponse(f"{where}.coin: a second row for coin {self.settings.cash_coin}")
        return Cash(self.settings.cash_coin, balances[0] if balances else ZERO)

    def fills_between(self, start: datetime, end: datetime) -> tuple[Fill, ...]:
        """Executions (trades, liquidations, ADL; funding left out), walking back in windows of 7 days."""
        with self._redactor.scrubbed():
            fills: dict[str, Fill] = {}
            for window in _windows(start, end):
                for category in self.settings.categories:
                    fills.update((f.fill_id, f) for f in self._executions(category, window))
            return tuple(sorted(fills.values(), key=lambda f: (f.time, f.fill_id)))

    def _executions(self, category: str, window: dict[str, int], **query: Any) -> list[Fill]:
        """Executions of ``category`` in ``window`` (Bybit's ``startTime``/``endTime``, at most 7 days apart)
        matching ``query`` (an order id, or nothing), each on the leg of its order."""
        where = f"bybit executions ({category})"
        fills: list[tuple[Fill, str]] = []
        for index, row in enumerate(self._paged(self._session.get_executions, where, EXECUTION_PAGE,
                                                category=category, **window, **query)):  # fmt: skip
            fill = bybit_rows.fill(row, category, f"{where}[{index}]")
            if fill is not None:
                if fill.order_id is None:  # the leg of an execution is its order's: without one it has no leg
                    raise InvalidResponse(f"{where}[{index}].orderId: missing")
                fills.append((fill, fill.order_id))
        legs = self._legs_of(category, {order_id for _, order_id in fills}, window)
        return [replace(fill, key=replace(fill.key, leg=legs[order_id])) for fill, order_id in fills]

    def _legs_of(self, category: str, order_ids: set[str], window: dict[str, int]) -> dict[str, int]:
        """The hedge-mode leg (``positionIdx``) of each order, from the order history: first the orders created in
        the executions' window (at most as many pages as orders are missing), then the rest one by one."""
        where = f"bybit order history ({category})"
        missing = order_ids - self._legs.keys()
        if len(missing) > 1:  # one listing page names up to 50 orders; one order is asked for by its id
            most = len(missing) * ORDER_PAGE  # rows of as many pages as there are orders to find: never costlier
            for index, row in enumerate(self._paged(self._session.get_order_history, where, ORDER_PAGE,
                                                    category=category, **window)):  # fmt: skip
                self._learn_leg(row, f"{where}[{index}]")
                missing = order_ids - self._legs.keys()
                if not missing or index + 1 >= most:
                    break
        for order_id in sorted(missing):
            result = self._result(self._call(self._session.get_order_history, category=category, orderId=order_id),
                                  where)  # fmt: skip
            for index, row in enumerate(parsing.items(parsing.field(result, "list", where), f"{where}.list")):
                self._learn_leg(row, f"{where}.list[{index}]")
            if order_id not in self._legs:
                raise InvalidResponse(f"{where}: order {parsing.shown(order_id)} of an execution is not in the order "
                                      "history, so the position leg it filled is unknown")  # fmt: skip
        return {order_id: self._legs[order_id] for order_id in order_ids}

    def _learn_leg(self, row: Any, where: str) -> None:
        order_id, leg = bybit_rows.order_leg(row, where)
        self._legs[order_id] = leg

    def lookup_order(self, order: Order) -> OrderLookup:
        """The order's final status from the order history, and its executions: from now back to the order's
        creation, in windows of 7 days (Bybit lists executions 7 days at a time, the last 7 when not told when)."""
        with self._redactor.scrubbed():
            category = order.key.category
            ask = {"orderLinkId": order.client_order_id} if order.client_order_id else {"orderId": order.venue_order_id}
            where = f"bybit order history ({category})"
            result = self._result(self._call(self._session.get_order_history, category=category, **ask), where)
            rows = parsing.items(parsing.field(result, "list", where), f"{where}.list")
            if not rows:
                return OrderLookup(None)
            found = bybit_rows.order(rows[0], category, f"{where}.list[0]", bybit_rows.FINAL_STATUSES)
            if found.venue_order_id is None:
                return OrderLookup(found)
            self._legs[found.venue_order_id] = found.key.leg
            now = datetime.fromtimestamp(self.clock(), UTC)
            created = bybit_rows.created(rows[0], f"{where}.list[0]")
            since = max(created - CREATION_MARGIN, now - HISTORY) if created else now - self.settings.fill_lookback
            since = min(since, now - CREATION_MARGIN)  # a creation time ahead of our clock still gets a window
            fills = {
                f.fill_id: f
                for window in _windows(since, now)
                for f in self._executions(category, window, orderId=found.venue_order_id)
            }
            return OrderLookup(found, tuple(sorted(fills.values(), key=lambda f: (f.time, f.fill_id))))

    # --- writing ----------------------------------------------------------------------------------------------

    def place_order(self, key: InstrumentKey, side: Side, qty: Decimal, reduce_only: bool, client_order_id: str) -> str:
        """A market order; reduce-only when it only shrinks the position.

        An ``orderLinkId`` Bybit already holds raises ``DuplicateClientOrderId`` (``venues.bybit_errors``): an
        earlier attempt with this client order id got through.
        """
        where = "bybit order create"
        with self._redactor.scrubbed():
            result = self._result(
                self._call(
                    self._session.place_order,
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
            return parsing.text(result, "orderId", where, MAX_ID)

    def cancel_order(self, order: Order) -> None:
        """Cancel an open order by its venue id."""
        with self._redactor.scrubbed():
            self._result(
                self._call(
                    self._session.cancel_order,
                    category=order.key.category,
                    symbol=order.key.symbol,
                    orderId=order.venue_order_id,
                ),
                "bybit order cancel",
            )

    # --- the SDK boundary -------------------------------------------------------------------------------------

    def _paged(self, method: Callable[..., Any], where: str, limit: int, **params: Any) -> Iterator[Any]:
        """Every row of a cursor-paged list; any failing page fails the whole listing.

        A cursor that comes back, more than ``MAX_EMPTY_PAGES`` empty pages in a row with a next cursor, or more
        than ``MAX_PAGES`` pages are refused: a venue stuck in a loop must not keep the worker asking forever.
        """
        cursor = ""
        seen: set[str] = set()
        empty_in_a_row = 0
        for _ in range(MAX_PAGES):
            result = self._result(self._call(method, limit=limit, cursor=cursor or None, **params), where)
            rows = parsing.items(parsing.field(result, "list", where), f"{where}.list")
            if len(rows) > limit:
                raise InvalidResponse(f"{where}.list: {len(rows)} rows where at most {limit} were asked for")
            yield from rows
            cursor = parsing.optional_text(result, "nextPageCursor", where, MAX_CURSOR) or ""
            if not cursor:
                return
            empty_in_a_row = 0 if rows else empty_in_a_row + 1
            if empty_in_a_row > MAX_EMPTY_PAGES:
                raise InvalidResponse(f"{where}: {empty_in_a_row} empty pages in a row, each with a next cursor")
            if cursor in seen:
                raise InvalidResponse(f"{where}.nextPageCursor: {parsing.shown(cursor)} came back a second time")
            seen.add(cursor)
        raise InvalidResponse(f"{where}: more than {MAX_PAGES} pages")

    def _result(self, response: Any, where: str) -> Any:
        return parsing.field(response, "result", where)

    def _call(self, method: Callable[..., Any], **params: Any) -> Any:
        """``method(**params)`` once the request budget allows it; whatever it raises becomes one of our errors, its
        cause emptied of the request. Every request goes through here (pybit runs one attempt, no retries)."""
        self._budget.take()
        try:
            return method(**params)
        except ReconError:  # a redirect refused by our own response hook
            raise
        except InvalidRequestError as error:
            translated = bybit_errors.from_ret_code(error, self._redactor, self.clock)
            raise translated from self._stripped(error)
        except FailedRequestError as error:
            translated = bybit_errors.from_http(error, self.clock)
            raise translated from self._stripped(error)
        except requests.exceptions.Timeout as error:
            message = f"bybit did not answer within {self.settings.timeout_seconds} s"
            raise VenueUnavailable(message) from self._stripped(error)
        except (requests.exceptions.RequestException, OSError) as error:
            message = f"bybit unreachable at {self.settings.url}: {type(error).__name__}"
            raise VenueUnavailable(message) from self._stripped(error)
        except Exception as error:  # pybit reading an answer that is not what it expects ([] or null as the body)
            message = f"bybit answered with something pybit cannot read ({type(error).__name__})"
            raise InvalidResponse(message) from self._stripped(error)

    def _stripped(self, error: BaseException) -> BaseException:
        return bybit_errors.stripped(error, self._redactor)


def settle_currency(category: str, scope: dict[str, str]) -> str | None:
    """What a position of ``category`` asked for with ``scope`` is valued in: a linear contract in the settle coin
    it was listed under, an option in USDC; an inverse contract (a USD amount settled in the coin) in none, as
    quantity × mark does not give its value."""
    if category == "linear":
        return scope.get("settleCoin")
    return "USDC" if category == "option" else None


class _Legs(dict[str, int]):
    """The legs of orders seen with one key: at most ``MAX_KNOWN_LEGS``, the oldest forgotten first."""

    def __setitem__(self, order_id: str, leg: int) -> None:
        with _LEGS_GUARD:
            super().__setitem__(order_id, leg)
            while len(self) > MAX_KNOWN_LEGS:
                del self[next(iter(self))]


MAX_KNOWN_LEGS = 200_000
_LEGS: dict[tuple[str, str], _Legs] = {}
_LEGS_GUARD = threading.Lock()


def _windows(start: datetime, end: datetime) -> Iterator[dict[str, int]]:
    """Bybit's ``startTime``/``endTime`` from ``end`` back to ``start``, each span at most 7 days."""
    window_end = end
    while window_end > start:
        window_start = max(start, window_end - EXECUTION_WINDOW)
        yield {"startTime": _ms(window_start), "endTime": _ms(window_end)}
        window_end = window_start


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
