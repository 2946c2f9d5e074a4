"""Alpaca (trading API v2) through alpaca-py's ``TradingClient``, read as raw JSON and parsed with Decimal.

alpaca-py sends requests without a timeout and sleeps 3 s before retrying a 429; our client subclass puts a
timeout on every request and turns internal retries off, so the worker owns the retry policy. It refuses
redirects too: alpaca-py does not follow them, but would read a redirect's body as the answer. Raw data
(``raw_data=True``) avoids the SDK's strict models, where one unknown enum value fails a whole listing; every
answer is checked at the edge instead (``venues.alpaca_rows`` on ``venues.parsing``). Crypto positions say
``BTCUSD`` while orders say ``BTC/USD``: both become ``BTCUSD``. Every SDK error becomes one of ours
(``venues.alpaca_errors``), its cause kept but emptied of the request. Every request first takes a token from the
key's shared request budget (``venues.budget``), in the client's one-request method.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient

from reconciliation.errors import InvalidResponse, ReconError, RequestRejected, VenueUnavailable
from reconciliation.limits import MAX_CURRENCY, MAX_ID
from reconciliation.values import (
    ZERO,
    Cash,
    Fill,
    InstrumentKey,
    Order,
    OrderLookup,
    OrderStatus,
    Side,
    Snapshot,
    plain,
)
from venues import alpaca_errors, alpaca_rows, http, parsing
from venues.budget import UNLIMITED, RequestBudget
from venues.credentials import Credentials, Secret
from venues.endpoints import ALPACA_URLS, Endpoint, alpaca_endpoint
from venues.redaction import Redactor

URLS = ALPACA_URLS
ORDER_PAGE, FILL_PAGE = 500, 100
#: Pages one listing may take (250 000 open orders, 50 000 fills in the lookback period).
MAX_PAGES = 500


@dataclass(frozen=True)
class AlpacaSettings:
    """Where and how to reach one Alpaca account."""

    credentials: Credentials
    environment: str = "paper"
    base_url: str | None = None
    timeout_seconds: float = 10.0
    fill_lookback: timedelta = field(default=timedelta(days=7))

    @property
    def endpoint(self) -> Endpoint:
        """Where requests go (``base_url`` if set, else the environment's) and whether that is live."""
        return alpaca_endpoint(self.environment, self.base_url)

    @property
    def url(self) -> str:
        """The base URL: ``base_url`` if set, else the environment's."""
        return self.endpoint.url


class _BoundedClient(TradingClient):
    """``TradingClient`` with a timeout on every request, no retries and no redirects of its own, and the
    credentials held as ``Secret`` (so neither its repr nor ``vars()`` shows them)."""

    def __init__(self, settings: AlpacaSettings, budget: RequestBudget = UNLIMITED) -> None:
        super().__init__(
            settings.credentials.key.reveal(),
            settings.credentials.secret.reveal(),
            paper=settings.environment != "live",
            raw_data=True,
            url_override=settings.url,
        )
        self._timeout = settings.timeout_seconds
        self._retry = 0  # no internal retry loop: a 429 raises at once
        self._budget = budget
        self._session.trust_env = False
        http.refuse_redirects(self._session, "alpaca")

    @property  # the SDK sets a plain attribute; this keeps it as a Secret
    def _api_key(self) -> str:
        return self._key.reveal()

    @_api_key.setter
    def _api_key(self, value: str) -> None:
        self._key = Secret(value)

    @property
    def _secret_key(self) -> str:
        return self._secret.reveal()

    @_secret_key.setter
    def _secret_key(self, value: str) -> None:
        self._secret = Secret(value)

    def __repr__(self) -> str:
        return f"<alpaca-py client for {self._base_url}, credentials ***>"

    def _one_request(self, method: str, url: str, opts: dict[str, Any], retry: int) -> Any:
        """One HTTP request, once the request budget allows it: every request alpaca-py sends comes through here."""
        self._budget.take()
        return super()._one_request(method, url, {**opts, "timeout": self._timeout}, 0)


class AlpacaVenue:
    """An Alpaca trading account."""

    name = "alpaca"

    def __init__(
        self, settings: AlpacaSettings, clock: Callable[[], float] = time.time, budget: RequestBudget | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._redactor = Redactor(settings.credentials)
        self._client = _BoundedClient(settings, budget or UNLIMITED)
        self.asset_classes: dict[str, str] = {}  # fills do not say it: learnt from positions and orders

    def describe(self) -> str:
        """Environment and URL."""
        return f"alpaca {self.settings.environment} at {self.settings.url}"

    def __repr__(self) -> str:
        return f"<AlpacaVenue {self.describe()}>"

    def fetch_snapshot(self, now: datetime) -> Snapshot:
        """Every position, the account's cash, open orders and the fills of the lookback period."""
        with self._redactor.scrubbed():
            account = self._call(self._client.get_account)
            cash = Cash(
                parsing.text(account, "currency", "alpaca account", MAX_CURRENCY),
                parsing.decimal(account, "cash", "alpaca account"),
            )
            rows = parsing.items(self._call(self._client.get_all_positions), "alpaca positions")
            positions = tuple(
                replace(alpaca_rows.position(row, f"alpaca positions[{i}]"), currency=cash.currency)  # one per account
                for i, row in enumerate(rows)
            )
            parsing.refuse_duplicates((p.key for p in positions), "alpaca positions", "instrument")
            open_orders = self._open_orders()
            self.asset_classes.update({p.key.symbol: p.key.category for p in positions})
            self.asset_classes.update({o.key.symbol: o.key.category for o in open_orders})
            return Snapshot(
                as_of=now,
                positions=tuple(p for p in positions if p.qty != ZERO),
                cash=cash,
                open_orders=open_orders,
                fills=self.fills_between(now - self.settings.fill_lookback, now),
            )

    def _open_orders(self) -> tuple[Order, ...]:
        """Open orders, oldest first, a page of 500 at a time.

        Alpaca pages orders by time only and ``after`` excludes its boundary, so each page starts a
        millisecond before the last order seen; orders are kept by id (one page naming an id twice is refused).
        A full page adding none cannot be paged past by time, so the listing fails rather than end incomplete.
        """
        orders: dict[str, Order] = {}
        after: str | None = None
        for _ in range(MAX_PAGES):
            query: dict[str, Any] = {"status": "open", "limit": ORDER_PAGE, "direction": "asc", "nested": "false"}
            if after:
                query["after"] = after
            page = _page(self._get("/orders", query), "alpaca orders", ORDER_PAGE)
            parsed = [alpaca_rows.order(row, f"alpaca orders[{index}]") for index, row in enumerate(page)]
            parsing.refuse_duplicates((o.venue_order_id for o in parsed), "alpaca orders", "order id")
            before = len(orders)
            orders.update((str(order.venue_order_id), order) for order in parsed)
            if len(page) < ORDER_PAGE:
                return tuple(orders.values())
            if len(orders) == before:  # a full page within one millisecond: paging by time cannot go past it
                raise InvalidResponse(f"alpaca orders: more than {ORDER_PAGE} open orders within one millisecond")
            last = parsing.iso_time(page[-1], "submitted_at", f"alpaca orders[{len(page) - 1}]")
            after = (last - timedelta(milliseconds=1)).isoformat()
        raise InvalidResponse(f"alpaca orders: more than {MAX_PAGES} pages")

    def fills_between(self, start: datetime, end: datetime) -> tuple[Fill, ...]:
        """FILL activities from ``start`` to ``end``, paged with ``page_token``, oldest first.

        A page token that comes back, or a full page adding no fill, is refused: the listing would never end.
        """
        with self._redactor.scrubbed():
            fills: dict[str, Fill] = {}
            tokens: set[str] = set()
            token: str | None = None
            for _ in range(MAX_PAGES):
                query: dict[str, Any] = {
                    "page_size": FILL_PAGE,
                    "direction": "asc",
                    "after": start.isoformat(),
                    "until": end.isoformat(),
                }
                if token:
                    query["page_token"] = token
                page = _page(self._get("/account/activities/FILL", query), "alpaca fills", FILL_PAGE)
                before = len(fills)
                for index, row in enumerate(page):
                    fill = alpaca_rows.fill(row, f"alpaca fills[{index}]", self.asset_classes)
                    fills[fill.fill_id] = fill
                if len(page) < FILL_PAGE:
                    return tuple(sorted(fills.values(), key=lambda f: (f.time, f.fill_id)))
                token = parsing.text(page[-1], "id", f"alpaca fills[{len(page) - 1}]", MAX_ID)
                if len(fills) == before or token in tokens:
                    raise InvalidResponse(f"alpaca fills: page token {parsing.shown(token)} leads back to fills seen")
                tokens.add(token)
            raise InvalidResponse(f"alpaca fills: more than {MAX_PAGES} pages")

    def lookup_order(self, order: Order) -> OrderLookup:
        """The order by client order id (else venue id) and its fills; None when Alpaca does not know it."""
        with self._redactor.scrubbed():
            try:
                if order.client_order_id:
                    row = self._get("/orders:by_client_order_id", {"client_order_id": order.client_order_id})
                else:
                    row = self._get(f"/orders/{order.venue_order_id}", None)
            except RequestRejected as error:
                if isinstance(error.__cause__, APIError) and error.__cause__.status_code == 404:
                    return OrderLookup(None)
                raise
            found = alpaca_rows.order(row, "alpaca order")
            if found.status not in (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED, OrderStatus.CANCELLED):
                return OrderLookup(found)
            created = parsing.iso_time(row, "created_at", "alpaca order")
            fills = self.fills_between(created - timedelta(minutes=1), datetime.now(created.tzinfo))
            return OrderLookup(found, tuple(f for f in fills if f.order_id == found.venue_order_id))

    def place_order(self, key: InstrumentKey, side: Side, qty: Decimal, reduce_only: bool, client_order_id: str) -> str:
        """A market day order (reduce-only does not exist at Alpaca: the quantity is already bounded).

        A ``client_order_id`` Alpaca already holds raises ``DuplicateClientOrderId`` (``venues.alpaca_errors``): an
        earlier attempt with this client order id got through.
        """
        body = {
            "symbol": key.symbol,
            "qty": plain(qty),
            "side": side.value,
            "type": "market",
            "time_in_force": "gtc" if key.category == "crypto" else "day",
            "client_order_id": client_order_id,
        }
        with self._redactor.scrubbed():
            row = self._call(lambda: self._client.post("/orders", body))
            return parsing.text(row, "id", "alpaca order", MAX_ID)

    def cancel_order(self, order: Order) -> None:
        """Cancel an open order by its venue id."""
        # client.delete, not cancel_order_by_id: that one raises a bare ValueError on an id that is not a UUID
        with self._redactor.scrubbed():
            self._call(lambda: self._client.delete(f"/orders/{order.venue_order_id}"))

    # --- the SDK boundary -------------------------------------------------------------------------------------

    def _get(self, path: str, query: dict[str, Any] | None) -> Any:
        return self._call(lambda: self._client.get(path, query))

    def _call(self, method: Callable[[], Any]) -> Any:
        """``method()``; whatever it raises becomes one of our errors, its cause emptied of the request."""
        try:
            return method()
        except ReconError:  # a redirect refused by our own response hook
            raise
        except APIError as error:
            translated = alpaca_errors.from_api_error(error, self._redactor)
            raise translated from self._redactor.stripped(error)
        except requests.exceptions.Timeout as error:
            message = f"alpaca did not answer within {self.settings.timeout_seconds} s"
            raise VenueUnavailable(message) from self._redactor.stripped(error)
        except requests.exceptions.JSONDecodeError as error:
            raise InvalidResponse("alpaca answered with a body that is not JSON") from self._redactor.stripped(error)
        except (requests.exceptions.RequestException, OSError) as error:
            message = f"alpaca unreachable at {self.settings.url}: {type(error).__name__}"
            raise VenueUnavailable(message) from self._redactor.stripped(error)
        except Exception as error:  # alpaca-py failing on an answer it cannot read
            message = f"alpaca answered with something alpaca-py cannot read ({type(error).__name__})"
            raise InvalidResponse(message) from self._redactor.stripped(error)


def _page(document: Any, where: str, limit: int) -> list[Any]:
    rows = parsing.items(document, where)
    if len(rows) > limit:
        raise InvalidResponse(f"{where}: {len(rows)} rows where at most {limit} were asked for")
    return rows
