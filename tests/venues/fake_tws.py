"""A loopback fake of TWS / IB Gateway's socket API, for tests that drive the real ib_async client.

``FakeTws`` listens on 127.0.0.1 (random port); each connection is served by its own daemon thread. It speaks the
protocol as ib_async 2.1.0 does (read from its client, decoder and wrapper):

- handshake: the client sends ``API\\0`` and a framed ``v157..178``; every frame is a 4-byte big-endian length and
  fields each ended by ``\\0``. The fake answers server version 157 (which keeps every version-dependent field out
  of the layouts) and a connection time.
- ``startApi`` (71) -> nextValidId (9) and managedAccounts (15); ib_async is ready once both arrived.
- positions 61 -> position 61 rows, positionEnd 62; open orders 5 and all open orders 16 -> openOrder 5 and
  orderStatus 3 per order, openOrderEnd 53; completed orders 99 -> completedOrder 101 rows, completedOrdersEnd 102;
  account updates 6 -> updateAccountValue 6, updatePortfolio 7, accountDownloadEnd 54; account updates multi 76 ->
  accountUpdateMultiEnd 74; executions 7 -> execDetails 11 and commissionReport 59 per execution, execDetailsEnd 55;
  placeOrder 3 -> openOrder + orderStatus (``permId`` assigned); cancelOrder 4 -> orderStatus Cancelled + error 202.
  Errors are ``4, 2, reqId, code, text``.

State is plain lists (``positions``, ``account_values``, ``open_orders``, ``completed_orders``, ``executions``) filled
with the ``add_*`` helpers. Faults: ``fail(msg_id, code, text)`` answers the next request of that id with an error
instead; ``silent`` holds request ids never answered; ``handshake`` is ``"normal"``, ``"drop"`` (close the socket
after the server version), ``"silent"`` (accept and never answer) or ``"no_accounts"`` (nextValidId, then an empty
managedAccounts: a gateway up but not logged in); ``errors_on_start`` are sent right after the session starts (1100:
connectivity to IB lost); ``place_reply`` / ``cancel_reply`` are ``"ack"``, ``"silent"`` or an ``(code, text)`` error;
``place_notices`` are warnings sent for a placed order before its acknowledgement; ``commissions_after_end`` sends
the executions' commission reports that many seconds after execDetailsEnd instead of before it.
What arrived is in ``received`` (every frame, as fields) and ``placed`` (placeOrder frames, by name).
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

SERVER_VERSION = 157
DEFAULT_ACCOUNT = "DU1234567"


@dataclass(frozen=True)
class FakeContract:
    """The 11 contract fields every message here repeats (conId ... tradingClass)."""

    con_id: int
    symbol: str
    sec_type: str = "STK"
    last_trade: str = ""
    strike: str = ""
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    currency: str = "USD"
    local_symbol: str = ""
    trading_class: str = ""

    def fields(self) -> list[str]:
        return [
            str(self.con_id),
            self.symbol,
            self.sec_type,
            self.last_trade,
            self.strike,
            self.right,
            self.multiplier,
            self.exchange,
            self.currency,
            self.local_symbol or self.symbol,
            self.trading_class,
        ]


def stock(con_id: int, symbol: str, currency: str = "USD") -> FakeContract:
    return FakeContract(con_id, symbol, "STK", exchange="NASDAQ", currency=currency, local_symbol=symbol)


def option(con_id: int, local_symbol: str, multiplier: str = "100") -> FakeContract:
    """An equity option; ``local_symbol`` in IB's form, the root padded to 6 characters (``AAPL  261218C00150000``)."""
    root = local_symbol[:6].strip()
    return FakeContract(
        con_id,
        root,
        "OPT",
        local_symbol[6:12],
        str(int(local_symbol[-8:]) / 1000),
        local_symbol[12],
        multiplier,
        "",
        "USD",
        local_symbol,
        root,
    )


def future(con_id: int, local_symbol: str, multiplier: str = "50", exchange: str = "CME") -> FakeContract:
    return FakeContract(
        con_id,
        local_symbol[:-2],
        "FUT",
        "20261218",
        "",
        "",
        multiplier,
        exchange,
        "USD",
        local_symbol,
        local_symbol[:-2],
    )


@dataclass
class FakePosition:
    account: str
    contract: FakeContract
    qty: str
    avg_cost: str
    market_price: str | None = None


@dataclass
class FakeOrder:
    order_id: int
    perm_id: int
    client_id: int
    account: str
    contract: FakeContract
    action: str
    qty: str
    order_type: str = "LMT"
    lmt_price: str = ""
    tif: str = "DAY"
    order_ref: str = ""
    status: str = "Submitted"
    filled: str = "0"


@dataclass
class FakeExecution:
    exec_id: str
    account: str
    contract: FakeContract
    side: str  # BOT / SLD
    shares: str
    price: str
    time: datetime
    perm_id: int = 0
    order_id: int = 0
    client_id: int = 0
    order_ref: str = ""
    liquidation: int = 0
    commission: str | None = "1.0"  # None: no commission report is sent
    commission_currency: str = "USD"
    zone: str = "UTC"


@dataclass
class Connection:
    """One client connection: its socket and the client id it started the API with."""

    sock: socket.socket
    client_id: int = -1
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, *fields: object) -> None:
        payload = "".join(f"{f}\0" for f in fields).encode()
        with self.lock:
            self.sock.sendall(struct.pack(">I", len(payload)) + payload)


class FakeTws:
    """A started-on-enter fake gateway; see the module docstring."""

    def __init__(self, accounts: tuple[str, ...] = (DEFAULT_ACCOUNT,)) -> None:
        self.accounts = accounts
        self.positions: list[FakePosition] = []
        self.account_values: list[tuple[str, str, str, str]] = []  # key, value, currency, account
        self.open_orders: list[FakeOrder] = []
        self.completed_orders: list[FakeOrder] = []
        self.executions: list[FakeExecution] = []
        self.faults: dict[int, list[tuple[int, str]]] = {}
        self.silent: set[int] = set()
        self.handshake = "normal"
        self.errors_on_start: list[tuple[int, str]] = []
        self.place_reply: str | tuple[int, str] = "ack"
        self.cancel_reply: str | tuple[int, str] = "ack"
        self.place_notices: list[tuple[int, str]] = []  # warnings sent for an order before it is acknowledged
        self.commissions_after_end: float | None = None  # seconds after execDetailsEnd the commission reports follow
        self.received: list[list[str]] = []
        self.placed: list[dict[str, str]] = []
        self.connections = 0
        self._perm_ids = itertools.count(900_000_001)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # the accept loop looks at the stop flag between waits
        self._threads: list[threading.Thread] = []
        self._open: list[socket.socket] = []
        self.port: int = self._listener.getsockname()[1]

    # --- state ---

    def add_position(
        self,
        contract: FakeContract,
        qty: str,
        avg_cost: str,
        *,
        market_price: str | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        self.positions.append(FakePosition(account, contract, qty, avg_cost, market_price))

    def set_cash(self, currency: str, balance: str, account: str = DEFAULT_ACCOUNT) -> None:
        self.account_values.append(("CashBalance", balance, currency, account))

    def add_order(
        self,
        contract: FakeContract,
        action: str,
        qty: str,
        *,
        order_id: int,
        client_id: int = 0,
        lmt_price: str = "",
        order_ref: str = "",
        status: str = "Submitted",
        filled: str = "0",
        account: str = DEFAULT_ACCOUNT,
    ) -> FakeOrder:
        order = FakeOrder(
            order_id,
            next(self._perm_ids),
            client_id,
            account,
            contract,
            action,
            qty,
            "LMT" if lmt_price else "MKT",
            lmt_price,
            "DAY",
            order_ref,
            status,
            filled,
        )
        (self.open_orders if status not in ("Filled", "Cancelled") else self.completed_orders).append(order)
        return order

    def add_execution(
        self,
        contract: FakeContract,
        side: str,
        shares: str,
        price: str,
        time: datetime,
        *,
        exec_id: str,
        order: FakeOrder | None = None,
        commission: str | None = "1.0",
        liquidation: int = 0,
        zone: str = "UTC",
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        self.executions.append(
            FakeExecution(
                exec_id,
                account,
                contract,
                side,
                shares,
                price,
                time,
                order.perm_id if order else 0,
                order.order_id if order else 0,
                order.client_id if order else 0,
                order.order_ref if order else "",
                liquidation,
                commission,
                "USD",
                zone,
            )
        )

    def fail(self, msg_id: int, code: int, text: str) -> None:
        """Answer the next request with id ``msg_id`` with error ``code`` instead of its answer."""
        self.faults.setdefault(msg_id, []).append((code, text))

    # --- life cycle ---

    def __enter__(self) -> Self:
        thread = threading.Thread(target=self._accept, name="fake-tws", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(sock)
            thread = threading.Thread(target=self._serve, args=(Connection(sock),), daemon=True)
            thread.start()
            self._threads.append(thread)

    # --- one connection ---

    def _serve(self, conn: Connection) -> None:
        try:
            if self._read_exact(conn.sock, 4) != b"API\0" or self._read_frame(conn.sock) is None:
                return
            if self.handshake == "silent":
                self._stop.wait()
                return
            conn.send(SERVER_VERSION, datetime.now(UTC).strftime("%Y%m%d %H:%M:%S UTC"))
            if self.handshake == "drop":
                return
            while not self._stop.is_set():
                fields = self._read_frame(conn.sock)
                if fields is None:
                    return
                with self._lock:
                    self.received.append(fields)
                    self._answer(conn, fields)
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                conn.sock.close()

    def _read_exact(self, sock: socket.socket, size: int) -> bytes | None:
        data = b""
        sock.settimeout(0.1)
        while len(data) < size:
            if self._stop.is_set():
                return None
            try:
                chunk = sock.recv(size - len(data))
            except TimeoutError:
                continue
            if not chunk:
                return None
            data += chunk
        return data

    def _read_frame(self, sock: socket.socket) -> list[str] | None:
        header = self._read_exact(sock, 4)
        if header is None:
            return None
        body = self._read_exact(sock, struct.unpack(">I", header)[0])
        if body is None:
            return None
        return body.decode().split("\0")[:-1] if b"\0" in body else [body.decode()]

    def _answer(self, conn: Connection, fields: list[str]) -> None:
        msg_id = int(fields[0])
        if msg_id in self.silent:
            return
        fault = self.faults.get(msg_id)
        if fault:
            code, text = fault.pop(0)
            req_id = fields[2] if msg_id in (7, 76) else fields[1] if msg_id in (3, 4) else "-1"
            conn.send(4, 2, req_id, code, text)
            return
        handler = {
            71: self._start_api,
            61: self._positions,
            5: self._open_orders,
            16: self._open_orders,
            99: self._completed,
            6: self._account_updates,
            76: self._account_updates_multi,
            7: self._executions,
            3: self._place,
            4: self._cancel,
            8: self._next_id,
        }.get(msg_id)
        if handler is not None:
            handler(conn, fields)

    def _start_api(self, conn: Connection, fields: list[str]) -> None:
        conn.client_id = int(fields[2])
        next_id = 1 + max([o.order_id for o in self.open_orders + self.completed_orders] + [0])
        conn.send(9, 1, next_id)
        conn.send(15, 1, "" if self.handshake == "no_accounts" else ",".join(self.accounts))
        for code, text in self.errors_on_start:
            conn.send(4, 2, -1, code, text)

    def _next_id(self, conn: Connection, fields: list[str]) -> None:
        conn.send(9, 1, 1 + max([o.order_id for o in self.open_orders + self.completed_orders] + [0]))

    def _account_updates_multi(self, conn: Connection, fields: list[str]) -> None:
        conn.send(74, 1, fields[2])  # no values: the adapter reads reqAccountUpdates; ib_async may sync this

    def _positions(self, conn: Connection, fields: list[str]) -> None:
        for p in self.positions:
            conn.send(61, 3, p.account, *p.contract.fields(), p.qty, p.avg_cost)
        conn.send(62, 1)

    def _open_orders(self, conn: Connection, fields: list[str]) -> None:
        for order in self.open_orders:
            conn.send(*open_order_fields(order))
            conn.send(*order_status_fields(order))
        conn.send(53, 1)

    def _completed(self, conn: Connection, fields: list[str]) -> None:
        for order in self.completed_orders:
            conn.send(*completed_order_fields(order))
        conn.send(102)

    def _account_updates(self, conn: Connection, fields: list[str]) -> None:
        subscribe, account = fields[2], fields[3]
        if subscribe != "1":
            return
        for key, value, currency, owner in self.account_values:
            if owner == account:
                conn.send(6, 2, key, value, currency, owner)
        for p in self.positions:
            if p.account == account and p.market_price is not None:
                c = p.contract
                fields11 = [*c.fields()[:7], "", *c.fields()[8:]]  # primaryExchange in place of exchange
                conn.send(7, 8, *fields11, p.qty, p.market_price, "0", p.avg_cost, "0", "0", account)
        conn.send(54, 1, account)

    def _executions(self, conn: Connection, fields: list[str]) -> None:
        req_id, account, since = fields[2], fields[4], fields[5]
        start = datetime.strptime(since, "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC) if since else None
        sent = []
        for e in self.executions:
            if (account and e.account != account) or (start is not None and e.time < start):
                continue
            conn.send(*exec_details_fields(req_id, e))
            sent.append(e)
        if self.commissions_after_end is None:
            self._commission_reports(conn, sent)
        conn.send(55, 1, req_id)
        if self.commissions_after_end is not None:
            time.sleep(self.commissions_after_end)  # the client waits for them before it asks anything more
            self._commission_reports(conn, sent)

    @staticmethod
    def _commission_reports(conn: Connection, executions: list[FakeExecution]) -> None:
        for e in executions:
            if e.commission is not None:
                conn.send(59, 1, e.exec_id, e.commission, e.commission_currency, "", "", "")

    def _place(self, conn: Connection, fields: list[str]) -> None:
        names = (
            "orderId",
            "conId",
            "symbol",
            "secType",
            "lastTradeDate",
            "strike",
            "right",
            "multiplier",
            "exchange",
            "primaryExchange",
            "currency",
            "localSymbol",
            "tradingClass",
            "secIdType",
            "secId",
            "action",
            "totalQuantity",
            "orderType",
            "lmtPrice",
            "auxPrice",
            "tif",
            "ocaGroup",
            "account",
            "openClose",
            "origin",
            "orderRef",
        )
        placed = dict(zip(names, fields[1:], strict=False))
        self.placed.append(placed)
        order_id = int(placed["orderId"])
        if isinstance(self.place_reply, tuple):
            code, text = self.place_reply
            conn.send(4, 2, order_id, code, text)
            return
        known = next((p.contract for p in self.positions if str(p.contract.con_id) == placed["conId"]), None)
        contract = known or FakeContract(
            int(placed["conId"] or 0) or 7_000_000 + len(self.placed),
            placed["symbol"],
            placed["secType"],
            exchange=placed["exchange"],
            currency=placed["currency"],
        )
        order = FakeOrder(
            order_id,
            next(self._perm_ids),
            conn.client_id,
            placed["account"],
            contract,
            placed["action"],
            placed["totalQuantity"],
            placed["orderType"],
            "",
            placed["tif"],
            placed["orderRef"],
            "PreSubmitted",
        )
        self.open_orders.append(order)
        for code, text in self.place_notices:
            conn.send(4, 2, order_id, code, text)
        if self.place_reply == "silent":  # taken, but the acknowledgement never comes back
            return
        conn.send(*open_order_fields(order))
        conn.send(*order_status_fields(order))

    def _cancel(self, conn: Connection, fields: list[str]) -> None:
        order_id = int(fields[2])
        order = next((o for o in self.open_orders if o.order_id == order_id and o.client_id == conn.client_id), None)
        if order is None:
            conn.send(4, 2, order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found.")
            return
        if self.cancel_reply == "silent":
            return
        if isinstance(self.cancel_reply, tuple):
            code, text = self.cancel_reply
            conn.send(4, 2, order_id, code, text)
            return
        self.open_orders.remove(order)
        cancelled = replace(order, status="Cancelled")
        self.completed_orders.append(cancelled)
        conn.send(*order_status_fields(cancelled))
        conn.send(4, 2, order_id, 202, "Order Canceled - reason:")


def open_order_fields(o: FakeOrder) -> list[object]:
    """openOrder (5) at server version 157: 120 fields, as ``ib_async.decoder.Decoder.openOrder`` reads them."""
    head = [
        5,
        o.order_id,
        *o.contract.fields(),
        o.action,
        o.qty,
        o.order_type,
        o.lmt_price,
        "",
        o.tif,
        "",
        o.account,
        "",
        "0",
        o.order_ref,
        o.client_id,
        o.perm_id,
        "0",
        "0",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
    ]
    fields = [*head, *[""] * 29, *[""] * 7, 0, 0, 0, "", "", "", "", "", "", "", "", 0, ""]
    fields += ["", 0, o.status, *[""] * 14, "", ""]
    fields += [0, *[""] * 16]
    assert len(fields) == 120, len(fields)
    return fields


def completed_order_fields(o: FakeOrder) -> list[object]:
    """completedOrder (101) at server version 157, as ``Decoder.completedOrder`` reads it."""
    head = [
        101,
        *o.contract.fields(),
        o.action,
        o.qty,
        o.order_type,
        o.lmt_price,
        "",
        o.tif,
        "",
        o.account,
        "",
        "0",
        o.order_ref,
        o.perm_id,
        "0",
        "0",
        "",
        "",
        "",
        "",
        "",
        "",
    ]
    fields = [*head, *[""] * 23, *[""] * 5, 0, 0, 0, "", "", "", "", "", "", "", 0, ""]
    fields += ["", o.status, "", "", 0]
    fields += ["", "", "", "", "", "", o.filled, "", "", "", "", "", "", "", o.status]
    return fields


def order_status_fields(o: FakeOrder) -> list[object]:
    """orderStatus (3): orderId, status, filled, remaining, avgFillPrice, permId, parentId, lastFillPrice, clientId,
    whyHeld, mktCapPrice."""
    remaining = float(o.qty) - float(o.filled)
    return [3, o.order_id, o.status, o.filled, remaining, 0, o.perm_id, 0, 0, o.client_id, "", 0]


def exec_details_fields(req_id: str, e: FakeExecution) -> list[object]:
    """execDetails (11), no version field: 31 fields."""
    when = e.time.astimezone(UTC).strftime("%Y%m%d %H:%M:%S") + f" {e.zone}" if e.zone == "UTC" else _in_zone(e)
    return [
        11,
        req_id,
        e.order_id,
        *e.contract.fields(),
        e.exec_id,
        when,
        e.account,
        "ISLAND",
        e.side,
        e.shares,
        e.price,
        e.perm_id,
        e.client_id,
        e.liquidation,
        e.shares,
        e.price,
        e.order_ref,
        "",
        "",
        "",
        1,
    ]


def _in_zone(e: FakeExecution) -> str:
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    return e.time.astimezone(ZoneInfo(e.zone)).strftime("%Y%m%d %H:%M:%S") + f" {e.zone}"


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return int(probe.getsockname()[1])
