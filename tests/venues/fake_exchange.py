"""A loopback fake of the Bybit v5 and Alpaca v2 REST APIs, for tests that drive the real SDK clients.

``FakeExchange`` is a ``ThreadingHTTPServer`` on 127.0.0.1 (random port) served from a daemon thread. The real
``pybit.unified_trading.HTTP`` (after ``session.endpoint = exchange.url``) and the real
``alpaca.trading.TradingClient`` (``url_override=exchange.url``) talk to it over HTTP; nothing is mocked.

What it checks, as the venues do:

- Bybit: ``X-BAPI-API-KEY`` (unknown or revoked key -> ``retCode`` 10003), ``X-BAPI-TIMESTAMP`` inside
  ``X-BAPI-RECV-WINDOW`` (else 10002) and ``X-BAPI-SIGN`` = HMAC-SHA256 hex of
  ``timestamp + api_key + recv_window + payload`` where the payload is the raw query string as received (GET) or
  the body as sent (POST) (else 10004). Bybit errors are HTTP 200 with a non-zero ``retCode``.
- Alpaca: ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` (else HTTP 401 ``{"code": 40110000, ...}``).

State is set with the ``add_*`` / ``set_*`` helpers and read back from ``requests`` and ``submitted_orders``.
Faults are queued with ``fail(path, kind, ...)`` and consumed in order; ``reset()`` clears everything.

Two hooks reach further than faults: ``mutate`` (a callable ``(path, document) -> document``) rewrites every JSON
body just before it is sent, for tests that feed the SDKs payloads a venue should never send (returning ``bytes``
sends those bytes as the body); ``echo_credentials`` makes the fake repeat the API key in its error messages, as
Bybit does (the signed ``origin_string``) and as an Alpaca gateway may do. ``RecordingServer`` is a second
loopback server that answers 200 to everything and records what reached it (headers included), the place a
``redirect`` fault points to.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

Number = str | int | Decimal
TimeLike = int | datetime | str | None
Mutation = Callable[[str, Any], Any]

DEFAULT_BYBIT_KEYS: dict[str, str] = {"bybit-key": "bybit-secret"}
DEFAULT_ALPACA_KEYS: dict[str, str] = {"alpaca-key": "alpaca-secret"}

FAULT_KINDS = frozenset(
    {
        "http429",  # Bybit: 429 + X-Bapi-Limit-* headers; Alpaca: 429 + Retry-After
        "http403",  # Bybit's answer to an IP over its rate limit; Alpaca: 403 forbidden
        "retcode10006",  # Bybit: HTTP 200 retCode 10006 + reset header; on an Alpaca path it acts as http429
        "http500",
        "http503",
        "slow",  # sleep ``delay`` seconds, then answer normally
        "malformed",  # HTTP 200, body "{not json"
        "missing_field",  # drop ``field`` from list items (item ``item``, or every item when item is None)
        "non_json_error",  # HTTP 502 with an HTML body
        "disconnect",  # close the connection without an answer
        "redirect",  # HTTP ``status`` (302 unless given) with ``Location: location``
    }
)

SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
#: Inverse instruments listed by ``/v5/market/instruments-info`` after ``reset()`` (each settles in its base coin).
DEFAULT_INVERSE_SYMBOLS = ("BTCUSD", "ETHUSD")
#: Bybit paths answered without authentication (market data).
BYBIT_PUBLIC_PATHS = frozenset({"/v5/market/instruments-info"})
BYBIT_CATEGORIES = ("linear", "inverse", "option")
BYBIT_OPEN_STATUSES = frozenset({"New", "PartiallyFilled", "Untriggered"})
ALPACA_CLOSED_STATUSES = frozenset({"filled", "canceled", "expired", "rejected", "replaced", "done_for_day"})
CRYPTO_BASES = frozenset({"BTC", "ETH", "SOL", "LTC", "DOGE", "AVAX", "LINK", "BCH", "UNI", "AAVE", "DOT", "XRP"})
CRYPTO_QUOTES = ("USDT", "USDC", "USD", "BTC")

# the field "missing_field" drops when none is named
DEFAULT_MISSING_FIELD = {
    "/v5/position/list": "size",
    "/v5/order/realtime": "qty",
    "/v5/order/history": "orderStatus",
    "/v5/execution/list": "execQty",
    "/v5/account/wallet-balance": "totalEquity",
    "/v2/account": "equity",
    "/v2/positions": "qty",
    "/v2/orders": "qty",
    "/v2/account/activities/FILL": "qty",
    "/v2/account/activities": "qty",
}

HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


class RecordedRequest(NamedTuple):
    """One request the fake received: ``(method, path, query)``; ``query`` holds the decoded parameters."""

    method: str
    path: str
    query: dict[str, str]


@dataclass(frozen=True)
class SubmittedOrder:
    """An order a client created: ``venue`` "bybit" or "alpaca", the id the fake gave it, and the JSON body sent."""

    venue: str
    order_id: str
    body: dict[str, Any]


@dataclass
class Fault:
    """A queued fault; see ``FakeExchange.fail``."""

    path: str
    kind: str
    times: int = 1
    on_request: int = 1
    delay: float = 1.0
    field: str | None = None
    item: int | None = 0
    reset_in_ms: int = 1500
    reset_at_ms: int | str | None = None
    retry_after: str = "2"
    location: str = ""
    status: int = 302
    seen: int = 0
    fired: int = 0


@dataclass
class _Row:
    """A stored Bybit record: the JSON the API returns plus what the API filters it by."""

    category: str
    settle_coin: str
    data: dict[str, Any]


@dataclass
class _Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json"
    drop_connection: bool = False

    def payload(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body, separators=(",", ":")).encode("utf-8")


class _BybitError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _AlpacaError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


# ----------------------------------------------------------------------------------------------------- helpers


def _now_ms() -> int:
    return int(time.time() * 1000)


def _num(value: Number) -> str:
    """A decimal string: a given string is kept as written (after checking it is a number)."""
    if isinstance(value, float):
        raise TypeError("use str or Decimal for money and quantities, not float")
    if isinstance(value, str):
        Decimal(value)  # raises on a non-number
        return value
    return format(Decimal(value), "f")


def _dec(value: Number) -> Decimal:
    return Decimal(_num(value))


def _fmt(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _to_ms(value: TimeLike) -> int:
    if value is None:
        return _now_ms()
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = _parse_iso(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def _to_dt(value: TimeLike) -> datetime:
    if value is None:
        return datetime.now(UTC)
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, str):
        return _parse_iso(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _parse_iso(text: str) -> datetime:
    """RFC 3339 / ISO 8601 (``Z`` or offset; a bare date is midnight UTC); naive means UTC."""
    text = text.strip()
    if len(text) == 10:
        parsed_date = date.fromisoformat(text)
        return datetime(parsed_date.year, parsed_date.month, parsed_date.day, tzinfo=UTC)
    parsed = datetime.fromisoformat(text.replace(" ", "+"))  # "+" may arrive decoded as a space
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _is_crypto_pair(symbol: str) -> bool:
    if "/" in symbol:
        return True
    return any(symbol.endswith(quote_) and symbol[: -len(quote_)] in CRYPTO_BASES for quote_ in CRYPTO_QUOTES)


def _alpaca_order_symbol(symbol: str) -> str:
    """Orders name crypto ``BTC/USD``; positions name it ``BTCUSD``."""
    if "/" in symbol or not _is_crypto_pair(symbol):
        return symbol
    for quote_ in CRYPTO_QUOTES:
        if symbol.endswith(quote_) and symbol[: -len(quote_)] in CRYPTO_BASES:
            return f"{symbol[: -len(quote_)]}/{quote_}"
    return symbol


def _alpaca_asset_class(symbol: str) -> str:
    if _is_crypto_pair(symbol):
        return "crypto"
    if len(symbol) > 15 and symbol[-9] in "CP" and symbol[-8:].isdigit():  # OCC: ROOT YYMMDD C/P STRIKE*1000
        return "us_option"
    return "us_equity"


def _guess_settle_coin(category: str, symbol: str) -> str:
    """USDC for USDC perpetuals (``BTCPERP``, ``...USDC``) and options, the base coin for inverse, else USDT."""
    if category == "option" or symbol.endswith(("USDC", "PERP")) or "-" in symbol:
        return "USDC"
    if category == "inverse":
        return symbol.split("USD", maxsplit=1)[0]  # BTCUSD and the future BTCUSDH26 settle in BTC
    return "USDT"


def _cursor(offset: int, fingerprint: str) -> str:
    """An opaque cursor that, like Bybit's, is already percent-encoded (``offset%3D2%26fp%3D...``)."""
    return quote(f"offset={offset}&fp={fingerprint}", safe="")


def _sent_key(headers: Any) -> str:
    """The API key a request carried (Bybit's or Alpaca's header), or ""."""
    return str(headers.get("X-BAPI-API-KEY") or headers.get("APCA-API-KEY-ID") or "")


def _fingerprint(path: str, params: Mapping[str, str], keys: Iterable[str]) -> str:
    material = path + "|" + "|".join(f"{key}={params.get(key, '')}" for key in keys)
    return hashlib.sha256(material.encode()).hexdigest()[:12]


# ------------------------------------------------------------------------------------------------------ server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, exchange: FakeExchange) -> None:
        self.exchange = exchange
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out and hang up are part of the tests: stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers after stop()

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""

    def _serve(self) -> None:
        try:
            self.server.exchange._serve(self)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()


# ---------------------------------------------------------------------------------------------------- exchange


class FakeExchange:
    """Bybit v5 + Alpaca v2 on one loopback port. Use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(
        self,
        bybit_keys: Mapping[str, str] | None = None,
        alpaca_keys: Mapping[str, str] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._initial_bybit_keys = dict(bybit_keys if bybit_keys is not None else DEFAULT_BYBIT_KEYS)
        self._initial_alpaca_keys = dict(alpaca_keys if alpaca_keys is not None else DEFAULT_ALPACA_KEYS)
        self._seq = itertools.count(1)
        self.bybit_keys: dict[str, str] = {}
        self.alpaca_keys: dict[str, str] = {}
        self.revoked: set[str] = set()
        self.requests: list[RecordedRequest] = []
        self.arrivals: dict[str, list[float]] = {}  # API key -> when each of its requests arrived (time.time())
        self.submitted_orders: list[SubmittedOrder] = []
        self.cancelled_orders: list[str] = []  # venue order ids cancelled through the API
        self.faults: list[Fault] = []
        self.mutate: Mutation | None = None
        self.echo_credentials = False
        self.clock_skew_ms = 0  # added to the fake's clock when it checks Bybit timestamps
        self.execution_default_window_ms = SEVEN_DAYS_MS  # /v5/execution/list without startTime/endTime
        self.bybit_positions: dict[str, list[_Row]] = {}
        self.bybit_orders: list[_Row] = []
        self.bybit_executions: list[_Row] = []
        self.bybit_wallet: dict[str, Any] = {}
        self.bybit_instruments: dict[str, dict[str, dict[str, Any]]] = {}  # category -> symbol -> instrument row
        self.bybit_hedge_mode: dict[tuple[str, str], bool] = {}  # (category, symbol) -> hedge mode, where known
        self.alpaca_account: dict[str, Any] = {}
        self.alpaca_positions: list[dict[str, Any]] = []
        self.alpaca_orders: list[dict[str, Any]] = []
        self.alpaca_fills: list[dict[str, Any]] = []
        self.reset()

    # ------------------------------------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Bind 127.0.0.1 on a free port and serve from a daemon thread."""
        with self._lock:
            if self._server is not None:
                return self
            self._stopping.clear()
            self._server = _Server(self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"fake-exchange-{self._server.server_address[1]}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; handlers still sleeping in a "slow" fault wake up at once."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=2)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeExchange is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` with no trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Back to the initial state: default keys, no revocations, faults, requests or orders; default balances."""
        with self._lock:
            self.bybit_keys.clear()
            self.bybit_keys.update(self._initial_bybit_keys)
            self.alpaca_keys.clear()
            self.alpaca_keys.update(self._initial_alpaca_keys)
            self.revoked.clear()
            self.requests.clear()
            self.arrivals.clear()
            self.submitted_orders.clear()
            self.cancelled_orders.clear()
            self.faults.clear()
            self.mutate = None
            self.echo_credentials = False
            self.clock_skew_ms = 0
            self.execution_default_window_ms = SEVEN_DAYS_MS
            self.bybit_positions = {category: [] for category in BYBIT_CATEGORIES}
            self.bybit_instruments = {category: {} for category in BYBIT_CATEGORIES}
            self.bybit_hedge_mode = {}
            for symbol in DEFAULT_INVERSE_SYMBOLS:
                self.add_bybit_instrument("inverse", symbol)
            self.bybit_orders = []
            self.bybit_executions = []
            self.alpaca_positions = []
            self.alpaca_orders = []
            self.alpaca_fills = []
            self.set_bybit_wallet({"USDT": "10000"})
            self.alpaca_account = {}
            self.set_alpaca_account(cash="100000", equity="100000", buying_power="200000")

    # ----------------------------------------------------------------------------------- requests and keys

    def count(self, path: str | None = None) -> int:
        """How many requests reached ``path`` (the path without its query), or the fake at all."""
        with self._lock:
            return sum(1 for request in self.requests if path is None or request.path == path)

    def arrivals_of(self, key: str) -> list[float]:
        """When each request carrying API key ``key`` arrived (``time.time()``, in order): what a venue counts its
        per-key rate limit on."""
        with self._lock:
            return sorted(self.arrivals.get(key, ()))

    def revoke(self, key: str) -> None:
        """From now on ``key`` is refused (Bybit 10003, Alpaca 401) until ``reset()``."""
        with self._lock:
            self.revoked.add(key)

    # -------------------------------------------------------------------------------------------- faults

    def fail(
        self,
        path: str,
        kind: str,
        times: int = 1,
        on_request: int = 1,
        *,
        delay: float = 1.0,
        field: str | None = None,
        item: int | None = 0,
        reset_in_ms: int = 1500,
        reset_at_ms: int | str | None = None,
        retry_after: str = "2",
        location: str = "",
        status: int = 302,
    ) -> Fault:
        """Queue a fault for ``path`` (e.g. ``"/v5/position/list"``, ``"/v2/account/activities/FILL"``) or ``"*"``.

        It fires on the ``on_request``-th request to that path counted from now, and on the ``times - 1`` requests
        after it; then it is spent. Several faults on one path are consumed in the order they were queued; one
        request meets at most one fault. ``delay`` is for "slow"; ``field``/``item`` for "missing_field"
        (default field per endpoint, e.g. ``size`` for positions; ``item=None`` drops it from every item);
        ``reset_in_ms`` (relative to the answer, may be negative) or ``reset_at_ms`` (absolute) set Bybit's
        ``X-Bapi-Limit-Reset-Timestamp`` (a string is sent as written); ``retry_after`` is the ``Retry-After`` of
        a 429 (Alpaca's, and Bybit's too when given). ``location`` and ``status`` are for "redirect".
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(FAULT_KINDS)}")
        if times < 1 or on_request < 1:
            raise ValueError("times and on_request count from 1")
        fault = Fault(
            path=path if path == "*" else urlsplit(path).path,
            kind=kind,
            times=times,
            on_request=on_request,
            delay=delay,
            field=field,
            item=item,
            reset_in_ms=reset_in_ms,
            reset_at_ms=reset_at_ms,
            retry_after=retry_after,
            location=location,
            status=status,
        )
        with self._lock:
            self.faults.append(fault)
        return fault

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            chosen: Fault | None = None
            for fault in self.faults:
                if fault.path not in ("*", path):
                    continue
                fault.seen += 1
                if chosen is None and fault.seen >= fault.on_request:
                    chosen = fault
            if chosen is not None:
                chosen.fired += 1
            self.faults = [fault for fault in self.faults if fault.fired < fault.times]
            return chosen

    # ------------------------------------------------------------------------------------ Bybit: positions

    def add_bybit_position(
        self,
        category: str,
        symbol: str,
        side: str,
        size: Number,
        avg_price: Number,
        mark_price: Number,
        position_idx: int = 0,
        settle_coin: str = "USDT",
        *,
        created_time: TimeLike = None,
        updated_time: TimeLike = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Store a position row as ``/v5/position/list`` returns it; ``extra`` overrides any field (camelCase).

        ``side`` is "Buy", "Sell", or "" (or "None") for a flat leg. ``settle_coin`` is what ``settleCoin`` filters
        on (linear USDT/USDC, inverse the base coin, option USDC); Bybit does not echo it in the row.
        """
        if category not in BYBIT_CATEGORIES:
            raise ValueError(f"category must be one of {BYBIT_CATEGORIES}")
        if position_idx not in (0, 1, 2):
            raise ValueError("positionIdx is 0 (one-way) or 1/2 (hedge buy/sell leg)")
        size_d, avg_d, mark_d = _dec(size), _dec(avg_price), _dec(mark_price)
        if size_d < 0:
            raise ValueError("Bybit sizes are positive; direction is the side")
        flat = size_d == 0 or side in ("", "None")
        sign = Decimal(1) if side == "Buy" else Decimal(-1)
        if category == "inverse":
            value = size_d / avg_d if avg_d else Decimal(0)
            pnl = sign * size_d * (1 / avg_d - 1 / mark_d) if avg_d and mark_d and not flat else Decimal(0)
            value, pnl = value.quantize(Decimal("1e-8")), pnl.quantize(Decimal("1e-8"))
        else:
            value = size_d * avg_d
            pnl = Decimal(0) if flat else sign * (mark_d - avg_d) * size_d
        created = _to_ms(created_time)
        data: dict[str, Any] = {
            "positionIdx": position_idx,
            "riskId": 1,
            "riskLimitValue": "2000000",
            "symbol": symbol,
            "side": side,
            "size": _num(size),
            "avgPrice": _num(avg_price),
            "positionValue": _fmt(value),
            "tradeMode": 0,
            "positionStatus": "Normal",
            "autoAddMargin": 0,
            "adlRankIndicator": 0 if flat else 2,
            "leverage": "10",
            "positionBalance": "0",
            "markPrice": _num(mark_price),
            "liqPrice": "",
            "bustPrice": "",
            "positionMM": "0",
            "positionIM": "0",
            "tpslMode": "Full",
            "takeProfit": "0",
            "stopLoss": "0",
            "trailingStop": "0",
            "sessionAvgPrice": "",
            "unrealisedPnl": _fmt(pnl),
            "curRealisedPnl": "0",
            "cumRealisedPnl": "0",
            "seq": next(self._seq),
            "isReduceOnly": False,
            "mmrSysUpdatedTime": "",
            "leverageSysUpdatedTime": "",
            "createdTime": str(created),
            "updatedTime": str(_to_ms(updated_time) if updated_time is not None else created),
        }
        if category == "option":
            data.update({"delta": "0", "gamma": "0", "vega": "0", "theta": "0"})
        data.update(extra)
        self._know_instrument(category, symbol, settle_coin)
        with self._lock:
            if position_idx:  # a leg 1 or 2 exists only in hedge mode
                self.bybit_hedge_mode[(category, symbol)] = True
            rows = self.bybit_positions[category]
            rows[:] = [row for row in rows if (row.data["symbol"], row.data["positionIdx"]) != (symbol, position_idx)]
            rows.append(_Row(category, settle_coin, data))
        return dict(data)

    def add_bybit_flat_position(
        self,
        category: str,
        symbol: str,
        position_idx: int = 0,
        settle_coin: str = "USDT",
        side: str = "",
        **extra: Any,
    ) -> dict[str, Any]:
        """A flat leg: ``side`` "" (or "None"), ``size`` "0"; Bybit returns these when asked by ``symbol``."""
        return self.add_bybit_position(
            category, symbol, side, "0", "0", extra.pop("markPrice", "0"), position_idx, settle_coin, **extra
        )

    def remove_bybit_position(self, category: str, symbol: str, position_idx: int | None = None) -> None:
        """Forget a position row (``position_idx=None``: every leg of the symbol)."""
        with self._lock:
            self.bybit_positions[category] = [
                row
                for row in self.bybit_positions[category]
                if not (row.data["symbol"] == symbol and position_idx in (None, row.data["positionIdx"]))
            ]

    # ---------------------------------------------------------------------------------- Bybit: instruments

    def add_bybit_instrument(
        self, category: str, symbol: str, settle_coin: str | None = None, *, status: str = "Trading", **extra: Any
    ) -> dict[str, Any]:
        """List an instrument in ``/v5/market/instruments-info`` (``settle_coin`` guessed when not given: an
        inverse contract settles in its base coin); ``extra`` overrides any field (camelCase)."""
        settle = settle_coin or _guess_settle_coin(category, symbol)
        base = symbol.split("-", maxsplit=1)[0].removesuffix("PERP").split("USD", maxsplit=1)[0]
        contract = {"linear": "LinearPerpetual", "inverse": "InversePerpetual"}.get(category, "")
        data: dict[str, Any] = {
            "symbol": symbol,
            "contractType": contract,
            "status": status,
            "baseCoin": base,
            "quoteCoin": "USD" if category == "inverse" else settle,
            "settleCoin": settle,
            "launchTime": "1585526400000",
            "deliveryTime": "0",
            "deliveryFeeRate": "",
            "priceScale": "2",
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
            "priceFilter": {"minPrice": "0.50", "maxPrice": "999999.00", "tickSize": "0.50"},
            "lotSizeFilter": {"maxOrderQty": "1000000", "minOrderQty": "1", "qtyStep": "1"},
            "unifiedMarginTrade": True,
            "fundingInterval": 480,
            "copyTrading": "none",
        }
        data.update(extra)
        with self._lock:
            self.bybit_instruments[category][symbol] = data
        return dict(data)

    def remove_bybit_instrument(self, category: str, symbol: str | None = None) -> None:
        """Stop listing ``symbol`` (``None``: every instrument of ``category``)."""
        with self._lock:
            if symbol is None:
                self.bybit_instruments[category].clear()
            else:
                self.bybit_instruments[category].pop(symbol, None)

    def _know_instrument(self, category: str, symbol: str, settle_coin: str) -> None:
        """A position or order on a contract implies the contract is listed."""
        if category in ("linear", "inverse") and symbol not in self.bybit_instruments.get(category, {}):
            self.add_bybit_instrument(category, symbol, settle_coin)

    def set_bybit_position_mode(self, category: str, symbol: str, hedge: bool) -> None:
        """Put ``symbol`` in hedge mode (two legs, ``positionIdx`` 1 buy side and 2 sell side) or one-way mode
        (``positionIdx`` 0). Orders must then name a matching ``positionIdx`` (else retCode 10001); a symbol whose
        mode is not set takes any (a position on leg 1 or 2 sets hedge mode)."""
        with self._lock:
            self.bybit_hedge_mode[(category, symbol)] = hedge

    # --------------------------------------------------------------------------------------- Bybit: wallet

    def set_bybit_wallet(
        self,
        coins: Mapping[str, Number | Mapping[str, Any]],
        *,
        usd_prices: Mapping[str, Number] | None = None,
        total_available_balance: Number | None = None,
        **account_fields: Any,
    ) -> dict[str, Any]:
        """The UNIFIED account of ``/v5/account/wallet-balance``: ``{"USDT": "10000", "BTC": "0.5"}``.

        A coin's value may be a mapping of fields overriding the defaults (``equity``, ``usdValue``,
        ``unrealisedPnl``...). ``usdValue`` is balance x ``usd_prices[coin]`` (1 for USD stablecoins);
        totals are the sums of ``usdValue`` unless given in ``account_fields`` (camelCase).
        """
        prices = {"USDT": Decimal(1), "USDC": Decimal(1), "USD": Decimal(1)}
        prices.update({coin: _dec(price) for coin, price in (usd_prices or {}).items()})
        coin_rows: list[dict[str, Any]] = []
        total = Decimal(0)
        for coin, spec in coins.items():
            overrides: dict[str, Any] = dict(spec) if isinstance(spec, Mapping) else {"walletBalance": _num(spec)}
            balance = _dec(overrides.get("walletBalance", "0"))
            usd_value = overrides.get("usdValue") or _fmt(balance * prices.get(coin, Decimal(0)))
            row: dict[str, Any] = {
                "coin": coin,
                "equity": _fmt(balance),
                "usdValue": usd_value,
                "walletBalance": _fmt(balance),
                "locked": "0",
                "borrowAmount": "0",
                "availableToWithdraw": "",
                "accruedInterest": "0",
                "totalOrderIM": "0",
                "totalPositionIM": "0",
                "totalPositionMM": "0",
                "unrealisedPnl": "0",
                "cumRealisedPnl": "0",
                "bonus": "0",
                "marginCollateral": True,
                "collateralSwitch": True,
                "spotHedgingQty": "0",
            }
            row.update(overrides)
            total += _dec(row["usdValue"])
            coin_rows.append(row)
        account: dict[str, Any] = {
            "accountType": "UNIFIED",
            "accountIMRate": "0",
            "accountMMRate": "0",
            "accountLTV": "0",
            "totalEquity": _fmt(total),
            "totalWalletBalance": _fmt(total),
            "totalMarginBalance": _fmt(total),
            "totalAvailableBalance": _num(total_available_balance)
            if total_available_balance is not None
            else _fmt(total),
            "totalPerpUPL": "0",
            "totalInitialMargin": "0",
            "totalMaintenanceMargin": "0",
            "coin": coin_rows,
        }
        account.update(account_fields)
        with self._lock:
            self.bybit_wallet = account
        return copy.deepcopy(account)

    # --------------------------------------------------------------------------------------- Bybit: orders

    def add_bybit_order(
        self,
        category: str,
        symbol: str,
        side: str,
        qty: Number,
        price: Number = "0",
        *,
        order_type: str = "Limit",
        status: str = "New",
        order_id: str | None = None,
        order_link_id: str = "",
        position_idx: int = 0,
        cum_exec_qty: Number = "0",
        avg_price: Number | None = None,
        reduce_only: bool = False,
        time_in_force: str = "GTC",
        created_time: TimeLike = None,
        updated_time: TimeLike = None,
        settle_coin: str = "USDT",
        **extra: Any,
    ) -> dict[str, Any]:
        """Store an order (open: "New"/"PartiallyFilled"; final: "Filled", "Cancelled", "Rejected",
        "Deactivated", "PartiallyFilledCanceled"...). Open ones are listed by ``/v5/order/realtime``; every order
        is found by ``/v5/order/history``."""
        qty_d, cum_d = _dec(qty), _dec(cum_exec_qty)
        created = _to_ms(created_time)
        leaves = qty_d - cum_d if status in BYBIT_OPEN_STATUSES else Decimal(0)
        data: dict[str, Any] = {
            "orderId": order_id or str(uuid.uuid4()),
            "orderLinkId": order_link_id,
            "blockTradeId": "",
            "symbol": symbol,
            "price": _num(price),
            "qty": _num(qty),
            "side": side,
            "isLeverage": "",
            "positionIdx": position_idx,
            "orderStatus": status,
            "createType": "CreateByUser",
            "cancelType": "UNKNOWN",
            "rejectReason": "EC_NoError",
            "avgPrice": _num(avg_price) if avg_price is not None else ("" if cum_d == 0 else _num(price)),
            "leavesQty": _fmt(leaves),
            "leavesValue": _fmt(leaves * _dec(price)),
            "cumExecQty": _fmt(cum_d),
            "cumExecValue": _fmt(cum_d * _dec(price)),
            "cumExecFee": "0",
            "timeInForce": time_in_force,
            "orderType": order_type,
            "stopOrderType": "",
            "orderIv": "",
            "triggerPrice": "",
            "takeProfit": "",
            "stopLoss": "",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": 0,
            "triggerBy": "",
            "lastPriceOnCreated": "",
            "reduceOnly": reduce_only,
            "closeOnTrigger": False,
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "tpslMode": "",
            "tpLimitPrice": "",
            "slLimitPrice": "",
            "placeType": "",
            "createdTime": str(created),
            "updatedTime": str(_to_ms(updated_time) if updated_time is not None else created),
        }
        data.update(extra)
        self._know_instrument(category, symbol, settle_coin)
        with self._lock:
            self.bybit_orders.append(_Row(category, settle_coin, data))
        return dict(data)

    def set_bybit_order_status(self, order_id: str, status: str, cum_exec_qty: Number | None = None) -> None:
        """Move an order (by ``orderId`` or ``orderLinkId``) to ``status``, e.g. "Filled" or "Cancelled"."""
        with self._lock:
            row = self._find_bybit_order(order_id)
            row.data["orderStatus"] = status
            if cum_exec_qty is not None:
                row.data["cumExecQty"] = _num(cum_exec_qty)
            if status not in BYBIT_OPEN_STATUSES:
                row.data["leavesQty"] = "0"
                row.data["leavesValue"] = "0"
            row.data["updatedTime"] = str(_now_ms())

    def _find_bybit_order(self, order_id: str) -> _Row:
        for row in self.bybit_orders:
            if order_id in (row.data["orderId"], row.data["orderLinkId"]):
                return row
        raise KeyError(order_id)

    # ----------------------------------------------------------------------------------- Bybit: executions

    def add_bybit_execution(
        self,
        category: str,
        symbol: str,
        side: str,
        exec_qty: Number,
        exec_price: Number,
        *,
        exec_fee: Number = "0",
        exec_time: TimeLike = None,
        exec_type: str = "Trade",
        exec_id: str | None = None,
        order_id: str = "",
        order_link_id: str = "",
        is_maker: bool = False,
        order_type: str = "Market",
        closed_size: Number = "0",
        fee_rate: Number = "0.00055",
        fee_currency: str = "USDT",
        settle_coin: str = "USDT",
        position_idx: int = 0,
        **extra: Any,
    ) -> dict[str, Any]:
        """Store an execution; ``exec_type`` is "Trade", "BustTrade" (liquidation), "AdlTrade", "Funding"...

        Like Bybit's, the row carries no ``positionIdx``: the leg it filled is its order's. An execution of an order
        the fake does not hold stores that order too (filled, on leg ``position_idx``, created at ``exec_time``), as
        every execution at Bybit belongs to an order in its order history.
        """
        if "positionIdx" in extra:
            raise ValueError("Bybit executions carry no positionIdx: give position_idx (the order's leg)")
        qty_d, price_d = _dec(exec_qty), _dec(exec_price)
        order_id = order_id or str(uuid.uuid4())
        if exec_type != "Funding" and not any(row.data["orderId"] == order_id for row in self.bybit_orders):
            self.add_bybit_order(category, symbol, side, exec_qty, exec_price, order_type=order_type, status="Filled",
                                 order_id=order_id, order_link_id=order_link_id, position_idx=position_idx,
                                 cum_exec_qty=exec_qty, created_time=exec_time, settle_coin=settle_coin,
                                 createType={"BustTrade": "CreateByLiq", "AdlTrade": "CreateByAdl_PassThrough"}.get(
                                     exec_type, "CreateByUser"))  # fmt: skip
        data: dict[str, Any] = {
            "symbol": symbol,
            "orderId": order_id,
            "orderLinkId": order_link_id,
            "side": side,
            "orderPrice": _num(exec_price),
            "orderQty": _num(exec_qty),
            "leavesQty": "0",
            "createType": "CreateByUser",
            "orderType": order_type,
            "stopOrderType": "UNKNOWN",
            "execFee": _num(exec_fee),
            "execId": exec_id or str(uuid.uuid4()),
            "execPrice": _num(exec_price),
            "execQty": _num(exec_qty),
            "execType": exec_type,
            "execValue": _fmt(qty_d * price_d),
            "execTime": str(_to_ms(exec_time)),
            "feeCurrency": fee_currency,
            "isMaker": is_maker,
            "feeRate": _num(fee_rate),
            "tradeIv": "",
            "markIv": "",
            "markPrice": _num(exec_price),
            "indexPrice": "",
            "underlyingPrice": "",
            "blockTradeId": "",
            "closedSize": _num(closed_size),
            "seq": next(self._seq),
            "extraFees": "",
        }
        data.update(extra)
        with self._lock:
            self.bybit_executions.append(_Row(category, settle_coin, data))
        return dict(data)

    # --------------------------------------------------------------------------------------- Alpaca: state

    def set_alpaca_account(self, **fields: Any) -> dict[str, Any]:
        """Update ``/v2/account`` (snake_case fields; numbers given as str/Decimal/int become strings)."""
        with self._lock:
            if not self.alpaca_account:
                self.alpaca_account = {
                    "id": str(uuid.uuid4()),
                    "account_number": "PA3FAKE00001",
                    "status": "ACTIVE",
                    "crypto_status": "ACTIVE",
                    "options_approved_level": 2,
                    "options_trading_level": 2,
                    "currency": "USD",
                    "buying_power": "0",
                    "regt_buying_power": "0",
                    "daytrading_buying_power": "0",
                    "effective_buying_power": "0",
                    "non_marginable_buying_power": "0",
                    "options_buying_power": "0",
                    "bod_dtbp": "0",
                    "cash": "0",
                    "accrued_fees": "0",
                    "portfolio_value": "0",
                    "pattern_day_trader": False,
                    "trading_blocked": False,
                    "transfers_blocked": False,
                    "account_blocked": False,
                    "created_at": "2024-01-02T15:04:05.123456Z",
                    "trade_suspended_by_user": False,
                    "multiplier": "2",
                    "shorting_enabled": True,
                    "equity": "0",
                    "last_equity": "0",
                    "long_market_value": "0",
                    "short_market_value": "0",
                    "position_market_value": "0",
                    "initial_margin": "0",
                    "maintenance_margin": "0",
                    "last_maintenance_margin": "0",
                    "sma": "0",
                    "daytrade_count": 0,
                    "balance_asof": datetime.now(UTC).date().isoformat(),
                    "crypto_tier": 1,
                    "intraday_adjustments": "0",
                    "pending_reg_taf_fees": "0",
                }
            for key, value in fields.items():
                self.alpaca_account[key] = _num(value) if isinstance(value, (int, Decimal)) else value
            account = self.alpaca_account
            if "equity" in fields:
                if "last_equity" not in fields:
                    account["last_equity"] = account["equity"]
                if "portfolio_value" not in fields:
                    account["portfolio_value"] = account["equity"]
            if "buying_power" in fields:
                for key in ("regt_buying_power", "daytrading_buying_power", "effective_buying_power"):
                    if key not in fields:
                        account[key] = account["buying_power"]
            if "cash" in fields and "non_marginable_buying_power" not in fields:
                account["non_marginable_buying_power"] = account["cash"]
            return dict(account)

    def add_alpaca_position(
        self,
        symbol: str,
        qty: Number,
        avg_entry_price: Number,
        current_price: Number,
        asset_class: str = "us_equity",
        *,
        exchange: str | None = None,
        lastday_price: Number | None = None,
        qty_available: Number | None = None,
        asset_id: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A position as ``/v2/positions`` returns it: a short has negative ``qty`` and ``side`` "short".
        Crypto is named without the slash (``BTCUSD``); options by their OCC symbol (x100 multiplier)."""
        if asset_class == "crypto":
            symbol = symbol.replace("/", "")
        qty_d, avg_d, price_d = _dec(qty), _dec(avg_entry_price), _dec(current_price)
        last_d = _dec(lastday_price) if lastday_price is not None else price_d
        multiplier = Decimal(100) if asset_class == "us_option" else Decimal(1)
        market_value = qty_d * price_d * multiplier
        cost_basis = qty_d * avg_d * multiplier
        unrealized = market_value - cost_basis
        intraday = qty_d * (price_d - last_d) * multiplier
        data: dict[str, Any] = {
            "asset_id": asset_id or str(uuid.uuid4()),
            "symbol": symbol,
            "exchange": exchange
            if exchange is not None
            else {"crypto": "CRYPTO", "us_option": ""}.get(asset_class, "NASDAQ"),
            "asset_class": asset_class,
            "asset_marginable": asset_class == "us_equity",
            "avg_entry_price": _num(avg_entry_price),
            "qty": _num(qty),
            "side": "short" if qty_d < 0 else "long",
            "market_value": _fmt(market_value),
            "cost_basis": _fmt(cost_basis),
            "unrealized_pl": _fmt(unrealized),
            "unrealized_plpc": _fmt((unrealized / abs(cost_basis)).quantize(Decimal("1e-10"))) if cost_basis else "0",
            "unrealized_intraday_pl": _fmt(intraday),
            "unrealized_intraday_plpc": _fmt((intraday / abs(qty_d * last_d * multiplier)).quantize(Decimal("1e-10")))
            if qty_d and last_d
            else "0",
            "current_price": _num(current_price),
            "lastday_price": _fmt(last_d),
            "change_today": _fmt(((price_d - last_d) / last_d).quantize(Decimal("1e-10"))) if last_d else "0",
            "qty_available": _num(qty_available) if qty_available is not None else _num(qty),
        }
        data.update(extra)
        with self._lock:
            self.alpaca_positions = [p for p in self.alpaca_positions if p["symbol"] != symbol]
            self.alpaca_positions.append(data)
        return dict(data)

    def remove_alpaca_position(self, symbol: str) -> None:
        with self._lock:
            self.alpaca_positions = [p for p in self.alpaca_positions if p["symbol"] != symbol.replace("/", "")]

    def add_alpaca_order(
        self,
        symbol: str,
        qty: Number | None,
        side: str,
        *,
        type: str = "limit",
        limit_price: Number | None = None,
        status: str = "new",
        filled_qty: Number = "0",
        filled_avg_price: Number | None = None,
        client_order_id: str | None = None,
        order_id: str | None = None,
        submitted_at: TimeLike = None,
        asset_class: str | None = None,
        time_in_force: str = "gtc",
        position_intent: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """An order as ``/v2/orders`` returns it; crypto symbols are written ``BTC/USD``."""
        asset_class = asset_class or _alpaca_asset_class(symbol)
        if asset_class == "crypto":
            symbol = _alpaca_order_symbol(symbol)
        submitted = _iso(_to_dt(submitted_at))
        data: dict[str, Any] = {
            "id": order_id or str(uuid.uuid4()),
            "client_order_id": client_order_id or str(uuid.uuid4()),
            "created_at": submitted,
            "updated_at": submitted,
            "submitted_at": submitted,
            "filled_at": submitted if status == "filled" else None,
            "expired_at": None,
            "canceled_at": submitted if status == "canceled" else None,
            "failed_at": None,
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, symbol)),
            "symbol": symbol,
            "asset_class": asset_class,
            "notional": None,
            "qty": _num(qty) if qty is not None else None,  # None: an order sized by notional
            "filled_qty": _num(filled_qty),
            "filled_avg_price": _num(filled_avg_price) if filled_avg_price is not None else None,
            "order_class": "",
            "order_type": type,
            "type": type,
            "side": side,
            "position_intent": position_intent,
            "time_in_force": time_in_force,
            "limit_price": _num(limit_price) if limit_price is not None else None,
            "stop_price": None,
            "status": status,
            "extended_hours": False,
            "legs": None,
            "trail_percent": None,
            "trail_price": None,
            "hwm": None,
            "subtag": None,
            "source": None,
            "expires_at": None,
        }
        data.update(extra)
        with self._lock:
            self.alpaca_orders.append(data)
        return dict(data)

    def set_alpaca_order_status(self, order_id: str, status: str, filled_qty: Number | None = None) -> None:
        """Move an order (by ``id`` or ``client_order_id``) to ``status``."""
        with self._lock:
            for order in self.alpaca_orders:
                if order_id in (order["id"], order["client_order_id"]):
                    order["status"] = status
                    if filled_qty is not None:
                        order["filled_qty"] = _num(filled_qty)
                    order["updated_at"] = _iso(datetime.now(UTC))
                    return
        raise KeyError(order_id)

    def add_alpaca_fill(
        self,
        symbol: str,
        qty: Number,
        price: Number,
        side: str,
        *,
        transaction_time: TimeLike = None,
        order_id: str | None = None,
        fill_type: str = "fill",
        leaves_qty: Number = "0",
        cum_qty: Number | None = None,
        order_status: str | None = None,
        activity_id: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A FILL activity (``side`` "buy", "sell" or "sell_short"; ``fill_type`` "fill" or "partial_fill").
        Its id is ``YYYYMMDDHHMMSSmmm::<uuid>``, so ids sort by time; crypto is named ``BTC/USD``."""
        when = _to_dt(transaction_time)
        data: dict[str, Any] = {
            "id": activity_id or f"{when:%Y%m%d%H%M%S}{when.microsecond // 1000:03d}::{uuid.uuid4()}",
            "activity_type": "FILL",
            "transaction_time": _iso(when),
            "type": fill_type,
            "price": _num(price),
            "qty": _num(qty),
            "side": side,
            "symbol": _alpaca_order_symbol(symbol),
            "leaves_qty": _num(leaves_qty),
            "order_id": order_id or str(uuid.uuid4()),
            "cum_qty": _num(cum_qty) if cum_qty is not None else _num(qty),
            "order_status": order_status or ("filled" if fill_type == "fill" else "partially_filled"),
        }
        data.update(extra)
        with self._lock:
            self.alpaca_fills.append(data)
        return dict(data)

    # ------------------------------------------------------------------------------------------- serving

    def _serve(self, handler: _Handler) -> None:
        method = handler.command
        split = urlsplit(handler.path)
        path, raw_query = split.path, split.query
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query))
            self.arrivals.setdefault(_sent_key(handler.headers), []).append(time.time())
        fault = self._take_fault(path)
        venue = "bybit" if path.startswith("/v5/") else "alpaca"
        reply: _Reply | None = None
        if fault is not None:
            if fault.kind == "slow":
                self._stopping.wait(fault.delay)
            elif fault.kind == "disconnect":
                reply = _Reply(0, drop_connection=True)
            elif fault.kind != "missing_field":
                reply = self._fault_reply(fault, venue, _sent_key(handler.headers))
        if reply is None:
            reply = self._route(method, path, raw_query, query, handler.headers, body)
            if fault is not None and fault.kind == "missing_field" and reply.status == 200:
                self._drop_field(reply, fault, path, venue)
        self._apply_mutation(reply, path)
        if reply.drop_connection:
            handler.close_connection = True
            return
        payload = reply.payload()
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def _apply_mutation(self, reply: _Reply, path: str) -> None:
        """Let ``mutate`` rewrite a JSON body (a copy: the fake's own state stays as it was)."""
        mutate = self.mutate
        if mutate is None or reply.raw is not None or reply.drop_connection:
            return
        document = mutate(path, copy.deepcopy(reply.body))
        if isinstance(document, bytes):
            reply.raw = document
        else:
            reply.body = document

    def _echo(self, message: str, key: str, signed: str = "") -> str:
        """``message``, followed by the key as sent and URL-encoded when ``echo_credentials`` is on."""
        if not self.echo_credentials:
            return message
        return f"{message} origin_string[{signed or key}] key[{quote(key, safe='')}] form[{quote_plus(key)}]"

    def _fault_reply(self, fault: Fault, venue: str, key: str) -> _Reply:
        kind = fault.kind
        if kind == "redirect":
            return _Reply(fault.status, {"moved": fault.location}, {"Location": fault.location})
        if kind == "malformed":
            return _Reply(200, raw=b"{not json")
        if kind == "non_json_error":
            return _Reply(502, raw=HTML_502.encode(), content_type="text/html")
        if venue == "bybit":
            reset = fault.reset_at_ms if fault.reset_at_ms is not None else _now_ms() + fault.reset_in_ms
            limit_headers = {
                "X-Bapi-Limit-Status": "0",
                "X-Bapi-Limit": "10",
                "X-Bapi-Limit-Reset-Timestamp": str(reset),
            }
            if fault.reset_at_ms == "":  # no reset header at all: the client falls back to Retry-After
                limit_headers = {"X-Bapi-Limit-Status": "0", "Retry-After": fault.retry_after}
            if kind == "retcode10006":
                return _Reply(200, self._bybit_envelope(10006, "Too many visits!"), limit_headers)
            if kind == "http429":
                return _Reply(429, self._bybit_envelope(10006, "Too many visits!"), limit_headers)
            if kind == "http403":
                return _Reply(403, raw=b"access too frequent", content_type="text/plain")
            status = 500 if kind == "http500" else 503
            text = self._echo(f"{status} Service Error", key)
            return _Reply(status, raw=text.encode(), content_type="text/plain")
        if kind in ("http429", "retcode10006"):
            return _Reply(429, {"code": 42910000, "message": "rate limit exceeded"}, {"Retry-After": fault.retry_after})
        if kind == "http403":
            return _Reply(403, {"code": 40310000, "message": "forbidden"})
        if kind == "http500":
            return _Reply(500, {"code": 50010000, "message": self._echo("internal server error occurred", key)})
        return _Reply(503, {"code": 50310000, "message": "service unavailable"})

    @staticmethod
    def _drop_field(reply: _Reply, fault: Fault, path: str, venue: str) -> None:
        name = fault.field or DEFAULT_MISSING_FIELD.get(path, "size" if venue == "bybit" else "qty")
        body = reply.body
        items: Any = body
        if venue == "bybit" and isinstance(body, dict):
            items = body.get("result", {}).get("list", [])
        if isinstance(items, dict):
            items.pop(name, None)
            return
        if not isinstance(items, list):
            return
        chosen = items if fault.item is None else items[fault.item : fault.item + 1]
        for entry in chosen:
            if isinstance(entry, dict):
                entry.pop(name, None)

    def _route(
        self, method: str, path: str, raw_query: str, query: dict[str, str], headers: Any, body: bytes
    ) -> _Reply:
        if path.startswith("/v5/"):
            return self._bybit(method, path, raw_query, query, headers, body)
        if path.startswith("/v2/"):
            return self._alpaca(method, path, query, headers, body)
        return _Reply(404, raw=b"404 page not found", content_type="text/plain")

    # ------------------------------------------------------------------------------------- Bybit: serving

    def _bybit_envelope(self, code: int, message: str, result: Any = None) -> dict[str, Any]:
        return {
            "retCode": code,
            "retMsg": message,
            "result": result if result is not None else {},
            "retExtInfo": {},
            "time": _now_ms(),
        }

    def _bybit(
        self, method: str, path: str, raw_query: str, query: dict[str, str], headers: Any, body: bytes
    ) -> _Reply:
        routes: dict[tuple[str, str], Callable[[dict[str, str], bytes], Any]] = {
            ("GET", "/v5/position/list"): self._bybit_positions,
            ("GET", "/v5/account/wallet-balance"): self._bybit_wallet,
            ("GET", "/v5/order/realtime"): self._bybit_open_orders,
            ("GET", "/v5/order/history"): self._bybit_order_history,
            ("GET", "/v5/execution/list"): self._bybit_execution_list,
            ("POST", "/v5/order/create"): self._bybit_create_order,
            ("POST", "/v5/order/cancel"): self._bybit_cancel_order,
            ("GET", "/v5/market/instruments-info"): self._bybit_instruments,
        }
        rate_headers = {
            "X-Bapi-Limit": "10",
            "X-Bapi-Limit-Status": "9",
            "X-Bapi-Limit-Reset-Timestamp": str(_now_ms()),
        }
        route = routes.get((method, path))
        if route is None:
            return _Reply(404, raw=b"404 page not found", content_type="text/plain")
        try:
            if path not in BYBIT_PUBLIC_PATHS:
                self._bybit_authenticate(method, raw_query, headers, body)
            with self._lock:
                result = route(query, body)
        except _BybitError as error:
            message = error.message
            if error.code in (10001, 10003, 10004):  # Bybit repeats the signed string, key included
                message = self._echo(
                    message, headers.get("X-BAPI-API-KEY") or "", self._signed(method, raw_query, headers, body)
                )
            return _Reply(200, self._bybit_envelope(error.code, message), rate_headers)
        return _Reply(200, self._bybit_envelope(0, "OK", result), rate_headers)

    @staticmethod
    def _signed(method: str, raw_query: str, headers: Any, body: bytes) -> str:
        """The string a Bybit request signs: timestamp, key, receive window and payload."""
        payload = raw_query if method == "GET" else body.decode("utf-8", errors="replace")
        return (
            "".join(headers.get(name) or "" for name in ("X-BAPI-TIMESTAMP", "X-BAPI-API-KEY", "X-BAPI-RECV-WINDOW"))
            + payload
        )

    def _bybit_authenticate(self, method: str, raw_query: str, headers: Any, body: bytes) -> None:
        key = headers.get("X-BAPI-API-KEY") or ""
        secret = self.bybit_keys.get(key)
        if secret is None or key in self.revoked:
            raise _BybitError(10003, "API key is invalid.")
        timestamp = headers.get("X-BAPI-TIMESTAMP") or ""
        recv_window = headers.get("X-BAPI-RECV-WINDOW") or "5000"
        if not timestamp.isdigit() or not recv_window.isdigit():
            raise _BybitError(10002, "invalid request, please check your server timestamp or recv_window param")
        server_time = _now_ms() + self.clock_skew_ms
        if not server_time - int(recv_window) <= int(timestamp) < server_time + 1000:
            raise _BybitError(
                10002,
                f"invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{timestamp}],server_timestamp[{server_time}],recv_window[{recv_window}]",
            )
        payload = raw_query if method == "GET" else body.decode("utf-8", errors="replace")
        expected = hmac.new(
            secret.encode(), (timestamp + key + recv_window + payload).encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected, headers.get("X-BAPI-SIGN") or ""):
            raise _BybitError(10004, "error sign!")

    @staticmethod
    def _bybit_limit(query: Mapping[str, str], default: int, maximum: int) -> int:
        text = query.get("limit")
        if text is None or text == "":
            return default
        try:
            limit = int(text)
        except ValueError:
            raise _BybitError(10001, "params error: limit must be an integer") from None
        if not 1 <= limit <= maximum:
            raise _BybitError(10001, f"params error: limit must be in [1, {maximum}]")
        return limit

    @staticmethod
    def _bybit_category(query: Mapping[str, str], allowed: tuple[str, ...] = BYBIT_CATEGORIES) -> str:
        category = query.get("category", "")
        if category not in allowed:
            raise _BybitError(10001, "params error: category is invalid" if category else "params error: category")
        return category

    @staticmethod
    def _bybit_page(
        rows: list[dict[str, Any]], limit: int, query: Mapping[str, str], fingerprint: str
    ) -> tuple[list[dict[str, Any]], str]:
        offset = 0
        cursor = query.get("cursor", "")
        if cursor:
            text = unquote(cursor) if "%" in cursor else cursor  # lenient with a cursor encoded twice
            parts = dict(parse_qsl(text))
            if parts.get("fp") != fingerprint or not parts.get("offset", "").isdigit():
                raise _BybitError(10001, "params error: cursor is invalid")
            offset = int(parts["offset"])
        page = [dict(row) for row in rows[offset : offset + limit]]
        end = offset + len(page)
        return page, (_cursor(end, fingerprint) if end < len(rows) else "")

    def _bybit_positions(self, query: dict[str, str], body: bytes) -> dict[str, Any]:
        category = self._bybit_category(query)
        limit = self._bybit_limit(query, 20, 200)
        symbol, settle_coin, base_coin = query.get("symbol"), query.get("settleCoin"), query.get("baseCoin")
        if category in ("linear", "inverse") and not symbol and not settle_coin:
            raise _BybitError(10001, "params error: symbol or settleCoin is required")
        rows = self.bybit_positions[category]
        if symbol:  # by symbol: every leg, flat or not
            rows = [row for row in rows if row.data["symbol"] == symbol]
        else:  # by settleCoin / baseCoin: open positions only
            rows = [row for row in rows if _dec(row.data.get("size", "0") or "0") != 0]
            if settle_coin:
                rows = [row for row in rows if row.settle_coin == settle_coin]
            if base_coin:
                rows = [row for row in rows if row.data["symbol"].startswith(base_coin)]
        fingerprint = _fingerprint("/v5/position/list", query, ("category", "symbol", "settleCoin", "baseCoin"))
        page, next_cursor = self._bybit_page([row.data for row in rows], limit, query, fingerprint)
        return {"category": category, "list": page, "nextPageCursor": next_cursor}

    def _bybit_instruments(self, query: dict[str, str], body: bytes) -> dict[str, Any]:
        """Instruments of a category; by default those Trading or PendingOpen, else those of ``status``."""
        category = self._bybit_category(query, ("linear", "inverse", "option", "spot"))
        limit = self._bybit_limit(query, 500, 1000)
        statuses = {query["status"]} if query.get("status") else {"Trading", "PendingOpen"}
        rows = [row for row in self.bybit_instruments.get(category, {}).values() if row["status"] in statuses]
        for param in ("symbol", "baseCoin"):
            if query.get(param):
                rows = [row for row in rows if row[param] == query[param]]
        fingerprint = _fingerprint("/v5/market/instruments-info", query, ("category", "symbol", "status", "baseCoin"))
        page, next_cursor = self._bybit_page(rows, limit, query, fingerprint)
        return {"category": category, "list": page, "nextPageCursor": next_cursor}

    def _bybit_wallet(self, query: dict[str, str], body: bytes) -> dict[str, Any]:
        if query.get("accountType") != "UNIFIED":
            raise _BybitError(10001, "accountType only support UNIFIED.")
        account = copy.deepcopy(self.bybit_wallet)
        wanted = [coin for coin in query.get("coin", "").split(",") if coin]
        if wanted:
            account["coin"] = [row for row in account["coin"] if row["coin"] in wanted]
        return {"list": [account]}

    def _bybit_order_rows(self, query: Mapping[str, str], category: str) -> list[_Row]:
        rows = [row for row in self.bybit_orders if row.category == category]
        for param, key in (("symbol", "symbol"), ("orderId", "orderId"), ("orderLinkId", "orderLinkId")):
            if query.get(param):
                rows = [row for row in rows if row.data[key] == query[param]]
        if query.get("settleCoin"):
            rows = [row for row in rows if row.settle_coin == query["settleCoin"]]
        if query.get("baseCoin"):
            rows = [row for row in rows if row.data["symbol"].startswith(query["baseCoin"])]
        return sorted(rows, key=lambda row: int(row.data["createdTime"]), reverse=True)

    def _bybit_open_orders(self, query: dict[str, str], body: bytes) -> dict[str, Any]:
        category = self._bybit_category(query, ("linear", "inverse", "option", "spot"))
        limit = self._bybit_limit(query, 20, 50)
        if category == "linear" and not (query.get("symbol") or query.get("settleCoin") or query.get("baseCoin")):
            raise _BybitError(10001, "params error: symbol, baseCoin or settleCoin is required")
        rows = self._bybit_order_rows(query, category)
        if not (query.get("orderId") or query.get("orderLinkId")):
            rows = [row for row in rows if row.data["orderStatus"] in BYBIT_OPEN_STATUSES]
        keys = ("category", "symbol", "settleCoin", "baseCoin", "orderId", "orderLinkId")
        fingerprint = _fingerprint("/v5/order/realtime", query, keys)
        page, next_cursor = self._bybit_page([row.data for row in rows], limit, query, fingerprint)
        return {"category": category, "list": page, "nextPageCursor": next_cursor}

    def _bybit_order_history(self, query: dict[str, str], body: bytes) -> dict[str, Any]:
        """Orders by id (any age), else those created in ``startTime``..``endTime`` (at most 7 days apart; the
        last 7 days when neither is given)."""
        category = self._bybit_category(query, ("linear", "inverse", "option", "spot"))
        limit = self._bybit_limit(query, 20, 50)
        rows = self._bybit_order_rows(query, category)
        if not (query.get("orderId") or query.get("orderLinkId")):
            start, end = self._bybit_window(query)
            rows = [row for row in rows if start <= int(row.data["createdTime"]) <= end]
        if query.get("orderStatus"):
            rows = [row for row in rows if row.data["orderStatus"] == query["orderStatus"]]
        keys = ("category", "symbol", "settleCoin", "baseCoin", "orderId", "orderLinkId", "orderStatus")
        fingerprint = _fingerprint("/v5/order/history", query, keys)
        page, next_cursor = self._bybit_page([row.data for row in rows], limit, query, fingerprint)
        return {"category": category, "list": page, "nextPageCursor": next_cursor}

    def _bybit_window(self, query: Mapping[str, str]) -> tuple[int, int]:
        """Bybit's ``startTime``/``endTime`` rule: at most 7 days apart; one alone spans 7 days from it; neither is
        the last ``execution_default_window_ms`` (7 days)."""
        try:
            start = int(query["startTime"]) if query.get("startTime") else None
            end = int(query["endTime"]) if query.get("endTime") else None
        except ValueError:
            raise _BybitError(10001, "params error: startTime/endTime must be ms timestamps") from None
        if start is not None and end is not None:
            if end < start:
                raise _BybitError(10001, "params error: endTime must be after startTime")
            if end - start > SEVEN_DAYS_MS:
                raise _BybitError(10001, "The time range cannot exceed 7 days")
            return start, end
        if start is not None:
            return start, start + SEVEN_DAYS_MS
        if end is not None:
            return end - SEVEN_DAYS_MS, end
        end = _now_ms()
        return end - self.execution_default_window_ms, end

    def _bybit_execution_list(self, query: dict[str, str], body: bytes) -> dict[str, Any]:
        category = self._bybit_category(query, ("linear", "inverse", "option", "spot"))
        limit = self._bybit_limit(query, 50, 100)
        start, end = self._bybit_window(query)
        rows = [row for row in self.bybit_executions if row.category == category]
        for param in ("symbol", "orderId", "orderLinkId", "execType"):
            if query.get(param):
                rows = [row for row in rows if row.data[param] == query[param]]
        if query.get("baseCoin"):
            rows = [row for row in rows if row.data["symbol"].startswith(query["baseCoin"])]
        rows = [row for row in rows if start <= int(row.data["execTime"]) <= end]
        rows.sort(key=lambda row: (int(row.data["execTime"]), row.data["seq"]), reverse=True)
        keys = ("category", "symbol", "orderId", "orderLinkId", "execType", "baseCoin", "startTime", "endTime")
        fingerprint = _fingerprint("/v5/execution/list", query, keys)
        page, next_cursor = self._bybit_page([row.data for row in rows], limit, query, fingerprint)
        return {"category": category, "list": page, "nextPageCursor": next_cursor}

    def _bybit_cancel_order(self, query: dict[str, str], body: bytes) -> dict[str, Any]:
        """Cancel an open order by orderId or orderLinkId; 110001 when it is not open (or unknown)."""
        params = json.loads(body or b"{}")
        wanted = params.get("orderId") or params.get("orderLinkId")
        for row in self.bybit_orders:
            if wanted in (row.data["orderId"], row.data["orderLinkId"]):
                if row.data["orderStatus"] not in BYBIT_OPEN_STATUSES:
                    break
                row.data["orderStatus"] = "Cancelled"
                self.cancelled_orders.append(str(row.data["orderId"]))
                return {"orderId": row.data["orderId"], "orderLinkId": row.data["orderLinkId"]}
        raise _BybitError(110001, "order not exists or too late to cancel")

    def _bybit_create_order(self, query: dict[str, str], body: bytes) -> dict[str, Any]:
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            raise _BybitError(10001, "params error: request body is not JSON") from None
        if not isinstance(params, dict):
            raise _BybitError(10001, "params error: request body must be a JSON object")
        for name in ("category", "symbol", "side", "orderType", "qty"):
            if params.get(name) in (None, ""):
                raise _BybitError(10001, f"params error: {name} is required")
        category = self._bybit_category({"category": str(params["category"])}, ("linear", "inverse", "option", "spot"))
        if params["side"] not in ("Buy", "Sell"):
            raise _BybitError(10001, "params error: side invalid")
        if params["orderType"] not in ("Market", "Limit"):
            raise _BybitError(10001, "params error: orderType invalid")
        if params["orderType"] == "Limit" and params.get("price") in (None, ""):
            raise _BybitError(10001, "params error: price is required for Limit orders")
        if not isinstance(params["qty"], str):
            raise _BybitError(10001, "params error: qty must be a string")
        try:
            _dec(params["qty"])
        except InvalidOperation:
            raise _BybitError(10001, "params error: qty invalid") from None
        link_id = str(params.get("orderLinkId") or "")
        if len(link_id) > 36:
            raise _BybitError(10001, "params error: orderLinkId is longer than 36 characters")
        if link_id and any(row.data["orderLinkId"] == link_id for row in self.bybit_orders):
            raise _BybitError(110072, "OrderLinkedID is duplicate")
        position_idx = params.get("positionIdx", 0)
        if isinstance(position_idx, bool) or position_idx not in (0, 1, 2):
            raise _BybitError(10001, "params error: positionIdx invalid")
        hedge = self.bybit_hedge_mode.get((category, str(params["symbol"])))
        if hedge is not None and (position_idx != 0) != hedge:
            raise _BybitError(10001, "position idx not match position mode")
        settle = _guess_settle_coin(category, str(params["symbol"]))
        order = self.add_bybit_order(
            category,
            str(params["symbol"]),
            str(params["side"]),
            params["qty"],
            str(params.get("price") or "0"),
            order_type=str(params["orderType"]),
            order_link_id=link_id,
            position_idx=int(position_idx),
            reduce_only=bool(params.get("reduceOnly", False)),
            time_in_force=str(params.get("timeInForce") or ("IOC" if params["orderType"] == "Market" else "GTC")),
            settle_coin=settle,
        )
        self.submitted_orders.append(SubmittedOrder("bybit", order["orderId"], params))
        return {"orderId": order["orderId"], "orderLinkId": link_id}

    # ------------------------------------------------------------------------------------ Alpaca: serving

    def _alpaca(self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes) -> _Reply:
        key = headers.get("APCA-API-KEY-ID") or ""
        secret = headers.get("APCA-API-SECRET-KEY") or ""
        expected = self.alpaca_keys.get(key)
        if expected is None or key in self.revoked or not hmac.compare_digest(expected, secret):
            message = f"key {key} is not authorized" if self.echo_credentials else "request is not authorized"
            return _Reply(401, {"code": 40110000, "message": self._echo(message, key)})
        try:
            with self._lock:
                if method == "GET" and path == "/v2/account":
                    return _Reply(200, dict(self.alpaca_account))
                if method == "GET" and path == "/v2/positions":
                    return _Reply(200, [dict(position) for position in self.alpaca_positions])
                if method == "GET" and path == "/v2/orders":
                    return _Reply(200, self._alpaca_list_orders(query))
                if method == "POST" and path == "/v2/orders":
                    return _Reply(200, self._alpaca_create_order(body))
                if method == "GET" and path == "/v2/orders:by_client_order_id":
                    return _Reply(200, self._alpaca_find_order(client_order_id=query.get("client_order_id", "")))
                if method == "GET" and path.startswith("/v2/orders/"):
                    return _Reply(200, self._alpaca_find_order(order_id=path.removeprefix("/v2/orders/")))
                if method == "DELETE" and path.startswith("/v2/orders/"):
                    self._alpaca_cancel_order(path.removeprefix("/v2/orders/"))
                    return _Reply(204, raw=b"")
                if method == "GET" and path.startswith("/v2/account/activities"):
                    return _Reply(200, self._alpaca_activities(path, query))
        except _AlpacaError as error:
            return _Reply(error.status, {"code": error.code, "message": error.message})
        return _Reply(404, {"code": 40410000, "message": "endpoint not found"})

    @staticmethod
    def _alpaca_int(query: Mapping[str, str], name: str, default: int, maximum: int) -> int:
        text = query.get(name)
        if text is None or text == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise _AlpacaError(422, 40010001, f"invalid {name}") from None
        if not 1 <= value <= maximum:
            raise _AlpacaError(422, 40010001, f"{name} must be between 1 and {maximum}")
        return value

    @staticmethod
    def _alpaca_time(query: Mapping[str, str], name: str) -> datetime | None:
        text = query.get(name)
        if not text:
            return None
        try:
            return _parse_iso(text)
        except ValueError:
            raise _AlpacaError(422, 40010001, f"invalid {name}: {text}") from None

    @staticmethod
    def _alpaca_direction(query: Mapping[str, str]) -> str:
        direction = query.get("direction") or "desc"
        if direction not in ("asc", "desc"):
            raise _AlpacaError(422, 40010001, "direction must be asc or desc")
        return direction

    def _alpaca_list_orders(self, query: dict[str, str]) -> list[dict[str, Any]]:
        status = query.get("status") or "open"
        if status not in ("open", "closed", "all"):
            raise _AlpacaError(422, 40010001, "invalid status")
        limit = self._alpaca_int(query, "limit", 50, 500)
        direction = self._alpaca_direction(query)
        after, until = self._alpaca_time(query, "after"), self._alpaca_time(query, "until")
        symbols = {_alpaca_order_symbol(symbol) for symbol in query.get("symbols", "").split(",") if symbol}
        orders = []
        for order in self.alpaca_orders:
            closed = order["status"] in ALPACA_CLOSED_STATUSES
            if (status == "open" and closed) or (status == "closed" and not closed):
                continue
            submitted = _parse_iso(order["submitted_at"])
            if (after is not None and submitted <= after) or (until is not None and submitted >= until):
                continue
            if symbols and order["symbol"] not in symbols:
                continue
            if query.get("side") and order["side"] != query["side"]:
                continue
            orders.append(order)
        orders.sort(key=lambda order: _parse_iso(order["submitted_at"]), reverse=direction == "desc")
        return [dict(order) for order in orders[:limit]]

    def _alpaca_find_order(self, order_id: str = "", client_order_id: str = "") -> dict[str, Any]:
        for order in self.alpaca_orders:
            by_id = bool(order_id) and order["id"] == order_id
            if by_id or (bool(client_order_id) and order["client_order_id"] == client_order_id):
                return dict(order)
        raise _AlpacaError(404, 40410000, "order not found")

    def _alpaca_cancel_order(self, order_id: str) -> None:
        """Cancel an open order; 404 when unknown, 422 when it can no longer be cancelled."""
        for order in self.alpaca_orders:
            if order["id"] == order_id:
                if order["status"] in ("filled", "canceled", "expired", "rejected"):
                    raise _AlpacaError(422, 42210000, "order is not cancelable")
                order["status"] = "canceled"
                self.cancelled_orders.append(order_id)
                return
        raise _AlpacaError(404, 40410000, "order not found")

    def _alpaca_create_order(self, body: bytes) -> dict[str, Any]:
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            raise _AlpacaError(400, 40010000, "request body format is invalid") from None
        if not isinstance(params, dict):
            raise _AlpacaError(400, 40010000, "request body format is invalid")
        for name in ("symbol", "side", "type", "time_in_force"):
            if not params.get(name):
                raise _AlpacaError(422, 40010001, f"{name} is required")
        if params.get("qty") in (None, "") and params.get("notional") in (None, ""):
            raise _AlpacaError(422, 40010001, "qty or notional is required")
        if params["side"] not in ("buy", "sell"):
            raise _AlpacaError(422, 40010001, "invalid side")
        if params["type"] not in ("market", "limit", "stop", "stop_limit", "trailing_stop"):
            raise _AlpacaError(422, 40010001, "invalid order type")
        if params["type"] in ("limit", "stop_limit") and params.get("limit_price") in (None, ""):
            raise _AlpacaError(422, 40010001, "limit_price is required")
        client_id = str(params.get("client_order_id") or uuid.uuid4())
        if len(client_id) > 128:
            raise _AlpacaError(422, 40010001, "client_order_id must be no more than 128 characters")
        if any(order["client_order_id"] == client_id for order in self.alpaca_orders):
            raise _AlpacaError(422, 40010001, "client_order_id must be unique")
        qty = params.get("qty")  # alpaca-py sends numbers as JSON floats (2.0); the API answers strings ("2")
        order = self.add_alpaca_order(
            str(params["symbol"]),
            _fmt(Decimal(str(qty))) if qty not in (None, "") else "0",
            str(params["side"]),
            type=str(params["type"]),
            limit_price=_fmt(Decimal(str(params["limit_price"])))
            if params.get("limit_price") not in (None, "")
            else None,
            status="accepted",
            client_order_id=client_id,
            time_in_force=str(params["time_in_force"]),
            position_intent=params.get("position_intent"),
        )
        if qty in (None, ""):
            self._alpaca_find_raw(order["id"]).update({"qty": None, "notional": str(params["notional"])})
            order.update({"qty": None, "notional": str(params["notional"])})
        self.submitted_orders.append(SubmittedOrder("alpaca", order["id"], params))
        return order

    def _alpaca_find_raw(self, order_id: str) -> dict[str, Any]:
        return next(order for order in self.alpaca_orders if order["id"] == order_id)

    def _alpaca_activities(self, path: str, query: dict[str, str]) -> list[dict[str, Any]]:
        if path == "/v2/account/activities":
            types = {kind for kind in query.get("activity_types", "").split(",") if kind}
        else:
            types = {path.removeprefix("/v2/account/activities/")}
        if types and "FILL" not in types:
            return []
        page_size = self._alpaca_int(query, "page_size", 100, 100)
        direction = self._alpaca_direction(query)
        after, until = self._alpaca_time(query, "after"), self._alpaca_time(query, "until")
        on_date = query.get("date")
        fills = sorted(self.alpaca_fills, key=lambda fill: fill["id"], reverse=direction == "desc")
        selected = []
        token = query.get("page_token")
        for fill in fills:
            when = _parse_iso(fill["transaction_time"])
            if (after is not None and when <= after) or (until is not None and when >= until):
                continue
            if on_date and when.date().isoformat() != on_date[:10]:
                continue
            if token and (fill["id"] >= token if direction == "desc" else fill["id"] <= token):
                continue
            selected.append(dict(fill))
        return selected[:page_size]


# ------------------------------------------------------------------------------------------ recording server


class ReceivedRequest(NamedTuple):
    """One request a ``RecordingServer`` received: method, path with query, headers and body."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _RecordingHandler(BaseHTTPRequestHandler):
    server: _RecordingHTTPServer
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        self.server.owner.received.append(ReceivedRequest(self.command, self.path, dict(self.headers), body))
        payload = b'{"retCode":0,"retMsg":"OK","result":{"list":[]}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._record()

    def do_POST(self) -> None:
        self._record()

    def do_DELETE(self) -> None:
        self._record()


class _RecordingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: RecordingServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _RecordingHandler)


class RecordingServer:
    """A second loopback server that answers every request with an empty success and records it, headers and all:
    where a redirect points, to prove that nothing reached it."""

    def __init__(self) -> None:
        self.received: list[ReceivedRequest] = []
        self._server = _RecordingHTTPServer(self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="recording-server", daemon=True)  # fmt: skip

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)


__all__ = [
    "DEFAULT_ALPACA_KEYS",
    "DEFAULT_BYBIT_KEYS",
    "FAULT_KINDS",
    "FakeExchange",
    "Fault",
    "Mutation",
    "ReceivedRequest",
    "RecordedRequest",
    "RecordingServer",
    "SubmittedOrder",
]
