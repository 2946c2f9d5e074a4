"""Interactive Brokers through ib_async, talking to TWS or IB Gateway over its socket API.

Each call (a snapshot, a look-up, an order, a cancel) opens its own API session and closes it after, in a private
event loop on a private thread (``venues.ibkr_session``): it works the same from a Celery prefork child, a worker
thread, the CLI or a thread whose own event loop runs, and no socket outlives a call to go stale across a fork or
the gateway's nightly restart. Calls of one process that share a client id wait for each other (the gateway admits
one connection per client id); another process using the same id is told apart by IB's error 326, a retry later.

What is read, and how (``venues.ibkr_rows`` parses it):

    positions        reqPositions, the configured account's rows (a row of another account is not ours)
    cash, marks      reqAccountUpdates: ``CashBalance`` in ``cash_currency``; each position's ``marketPrice``
    open orders      reqAllOpenOrders: every client's orders and TWS's own, those still working
    fills            reqExecutions from the lookback start, with their commission reports (waited for: IB may send
                     them after the executions' end); IB keeps executions of the current day (up to 7 with TWS's
                     "Show trades for" setting): older ones are not served
    order look-ups   open orders, then completed orders (reqCompletedOrders), then executions; by ``orderRef``

The venue's order id is IB's ``permId`` (unique across every client and TWS; ``orderId`` is per client id).
Orders are market DAY orders with ``orderRef`` = our client order id, sent for the contract id of the position
(or stock at SMART in ``cash_currency``); IB has no reduce-only flag: the quantity is already bounded by the plan.
An ``orderRef`` IB already shows (open, completed or executed today) raises ``DuplicateClientOrderId``: an earlier
attempt got through, and this one is not sent again. Errors are translated in ``venues.ibkr_errors``.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from ib_async import Contract, ExecutionFilter, MarketOrder, Stock, Trade
from ib_async import Fill as IbFill

from reconciliation.errors import (
    DuplicateClientOrderId,
    FixConfiguration,
    InvalidResponse,
    RequestRejected,
    VenueUnavailable,
)
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
    VenuePosition,
)
from venues import ibkr_rows, parsing
from venues.budget import UNLIMITED, RequestBudget
from venues.endpoints import Endpoint, ibkr_endpoint
from venues.ibkr_errors import IbError, translated
from venues.ibkr_session import Session, Target, connected, run_private

T = TypeVar("T")
#: IB confirms a cancel with an "error" 202 ("Order Canceled - reason:") for the order: not a failure.
CANCELLED_CONFIRMATION = 202
#: Order statuses after which an order can no longer fill or be cancelled.
DONE = ("Cancelled", "ApiCancelled", "Filled", "Inactive")
#: Waits of ``timeout_seconds`` one call may take at most (connecting 3, then up to 5 requests and an acknowledgement
#: or the commission reports).
MAX_STEPS = 10
#: Messages one call sends the gateway at most (the API session's start and sync, then its requests): what it takes
#: from the shared request budget before it connects.
MESSAGES_PER_CALL = 10


@dataclass(frozen=True)
class IbkrSettings:
    """Where and how to reach one IBKR account through TWS or IB Gateway."""

    client_id: int
    host: str = "127.0.0.1"
    port: int = 4002
    account: str | None = None
    environment: str = "paper"
    timeout_seconds: float = 10.0
    fill_lookback: timedelta = field(default=timedelta(days=7))
    cash_currency: str = "USD"

    @property
    def endpoint(self) -> Endpoint:
        """``ibkr://host:port`` and whether the port is known as live or paper (an unknown port counts as live)."""
        return ibkr_endpoint(self.environment, self.host, self.port)

    @property
    def target(self) -> Target:
        """What a session connects to."""
        return Target(self.host, self.port, self.client_id, self.account, self.timeout_seconds)


_LOCKS: dict[tuple[str, int, int], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _client_lock(settings: IbkrSettings) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault((settings.host, settings.port, settings.client_id), threading.Lock())


class IbkrVenue:
    """An Interactive Brokers account behind TWS or IB Gateway."""

    name = "ibkr"

    def __init__(self, settings: IbkrSettings, budget: RequestBudget | None = None) -> None:
        settings.endpoint  # noqa: B018 - a label contradicting the port is refused before anything connects
        self.settings = settings
        self._budget = budget or UNLIMITED

    def describe(self) -> str:
        """Environment, gateway address, client id and account."""
        s = self.settings
        account = f", account {s.account}" if s.account else ""
        return f"ibkr {s.environment} at {s.host}:{s.port} (client id {s.client_id}{account})"

    def __repr__(self) -> str:
        return f"<IbkrVenue {self.describe()}>"

    # --- the Venue interface ------------------------------------------------------------------------------------

    def fetch_snapshot(self, now: datetime) -> Snapshot:
        """Positions (with marks), cash in ``cash_currency``, open orders and the fills of the lookback period."""
        return self._call("ibkr snapshot", lambda session: self._snapshot(session, now))

    def fills_between(self, start: datetime, end: datetime) -> tuple[Fill, ...]:
        """Executions from ``start`` to ``end`` with their commissions, oldest first (IB serves recent days only)."""
        return self._call("ibkr executions", lambda session: self._fills(session, start, end))

    def lookup_order(self, order: Order) -> OrderLookup:
        """The order among open, then completed orders, with its executions; None when IB shows neither."""
        return self._call("ibkr order lookup", lambda session: self._lookup(session, order))

    def place_order(self, key: InstrumentKey, side: Side, qty: Decimal, reduce_only: bool, client_order_id: str) -> str:
        """A market DAY order with ``orderRef`` = ``client_order_id``; returns IB's ``permId`` once IB acknowledged
        it. ``reduce_only`` has no IB counterpart (the plan already bounds the quantity)."""
        return self._call("ibkr order place", lambda session: self._place(session, key, side, qty, client_order_id))

    def cancel_order(self, order: Order) -> None:
        """Cancel a working order by its ``permId``; returns once IB confirms the cancel."""
        self._call("ibkr order cancel", lambda session: self._cancel(session, order))

    # --- one session per call -------------------------------------------------------------------------------------

    def _call(self, where: str, work: Callable[[Session], Awaitable[T]]) -> T:
        async def session_run() -> T:
            async with connected(self.settings.target, where) as session:
                return await work(session)

        self._budget.take(MESSAGES_PER_CALL)  # the gateway's message budget, shared by every client, before connecting
        lock = _client_lock(self.settings)
        # another call on this client id holds the gateway's one slot for it: wait as long as that call may take
        if not lock.acquire(timeout=self.settings.timeout_seconds * MAX_STEPS):
            raise VenueUnavailable(f"{where}: another call on client id {self.settings.client_id} is still running")
        try:
            return run_private(session_run, where)
        finally:
            lock.release()

    # --- reading ----------------------------------------------------------------------------------------------------

    async def _snapshot(self, session: Session, now: datetime) -> Snapshot:
        ib = session.ib
        await session.ask(ib.reqAccountUpdatesAsync(session.account), "account updates")
        where = f"ibkr account values ({session.account})"
        balance = ibkr_rows.cash(ib.accountValues(session.account), self.settings.cash_currency, where)
        marks = {item.contract.conId: item.marketPrice for item in ib.portfolio(session.account)}
        positions = await self._positions(session, marks)
        orders = [o for o in await self._orders(session, open_only=True) if o.status.is_live]
        parsing.refuse_duplicates((o.venue_order_id for o in orders if o.venue_order_id), "ibkr open orders", "permId")
        return Snapshot(
            as_of=now,
            positions=tuple(p for p in positions if p.qty != ZERO),
            cash=Cash(self.settings.cash_currency, balance),
            open_orders=tuple(orders),
            fills=await self._fills(session, now - self.settings.fill_lookback, now),
        )

    async def _positions(self, session: Session, marks: dict[int, float]) -> list[VenuePosition]:
        rows = await session.ask(session.ib.reqPositionsAsync(), "positions")
        mine = [row for row in rows if row.account == session.account]
        positions = [
            ibkr_rows.position(row, f"ibkr positions[{index}]", marks.get(row.contract.conId))
            for index, row in enumerate(mine)
        ]
        parsing.refuse_duplicates((p.key for p in positions if p.qty != ZERO), "ibkr positions", "instrument")
        return positions

    async def _orders(self, session: Session, open_only: bool) -> list[Order]:
        """Every client's open orders of the account; with ``open_only`` False, today's completed ones too."""
        trades = await self._open_trades(session)
        if not open_only:
            trades += await self._completed_trades(session)
        return [ibkr_rows.order(trade, f"ibkr orders[{index}]") for index, trade in enumerate(trades)]

    async def _open_trades(self, session: Session) -> list[Trade]:
        trades = await session.ask(session.ib.reqAllOpenOrdersAsync(), "open orders")
        return [t for t in trades if t.order.account in (session.account, "")]

    async def _completed_trades(self, session: Session) -> list[Trade]:
        trades = await session.ask(session.ib.reqCompletedOrdersAsync(False), "completed orders")
        return [t for t in trades if t.order.account in (session.account, "")]

    async def _executions(self, session: Session, start: datetime | None) -> list[IbFill]:
        since = start.astimezone(UTC).strftime("%Y%m%d-%H:%M:%S") if start is not None else ""
        request = session.ib.reqExecutionsAsync(ExecutionFilter(acctCode=session.account, time=since))
        rows = await session.ask(request, "executions")
        return [row for row in rows if row.execution.acctNumber == session.account]

    async def _fills(self, session: Session, start: datetime, end: datetime) -> tuple[Fill, ...]:
        rows = await self._executions(session, start)
        await self._commission_reports(session, rows)
        fills: dict[str, Fill] = {}
        for index, row in enumerate(rows):
            fill = ibkr_rows.fill(row, f"ibkr executions[{index}]")
            if start <= fill.time <= end:
                fills[fill.fill_id] = fill  # a corrected execution comes again under its id: the last one counts
        return tuple(sorted(fills.values(), key=lambda f: (f.time, f.fill_id)))

    async def _commission_reports(self, session: Session, rows: list[IbFill]) -> None:
        """Wait until every execution has its commission report: IB may send them after the executions' end, and
        ``ib_async`` fills them into the rows as they come. One that never comes is refused rather than read as a
        fee of zero: IB sends the reports of other clients' orders only to the Master API client id."""

        def missing() -> list[str]:
            return [r.execution.execId for r in rows if r.commissionReport.execId != r.execution.execId]

        def unreported() -> FixConfiguration:
            absent = missing()
            shown = ", ".join(absent[:3]) + (f" and {len(absent) - 3} more" if len(absent) > 3 else "")
            return FixConfiguration(
                f"ibkr executions: no commission report for {shown} within {self.settings.timeout_seconds:g} s; "
                f"IB sends the reports of other clients' orders only to the Master API client id: set it to "
                f"{self.settings.client_id} in TWS / IB Gateway (Configure > API > Settings)"
            )

        await session.until(lambda: None if missing() else True, "commission reports", unreported)

    async def _lookup(self, session: Session, order: Order) -> OrderLookup:
        found = _matching(await self._orders(session, open_only=False), order)
        if found is None:
            return OrderLookup(None)
        if found.status not in (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED, OrderStatus.CANCELLED):
            return OrderLookup(found)
        now = datetime.now(UTC)
        fills = await self._fills(session, now - self.settings.fill_lookback, now)
        return OrderLookup(found, tuple(f for f in fills if f.order_id == found.venue_order_id))

    # --- writing ----------------------------------------------------------------------------------------------------

    async def _place(self, session: Session, key: InstrumentKey, side: Side, qty: Decimal, client_order_id: str) -> str:
        ib = session.ib
        open_trades = await self._open_trades(session)
        completed = await self._completed_trades(session)
        executions = await self._executions(session, None)
        refs = {t.order.orderRef for t in open_trades + completed} | {e.execution.orderRef for e in executions}
        if client_order_id in refs:
            raise DuplicateClientOrderId(f"ibkr order place: IB already shows an order with orderRef {client_order_id}")
        positions = await session.ask(ib.reqPositionsAsync(), "positions")
        known = [p.contract for p in positions if p.account == session.account]
        known += [t.contract for t in open_trades + completed] + [e.contract for e in executions]
        contract = self._contract_for(key, known)
        ib_order = MarketOrder(
            "BUY" if side is Side.BUY else "SELL",
            float(qty),  # ib_async sends str(float): the shortest text that reads back as this quantity
            orderRef=client_order_id,
            account=session.account,
            tif="DAY",
        )
        trade = ib.placeOrder(contract, ib_order)
        order_id = trade.order.orderId

        def acknowledged() -> str | None:
            rejection = _rejection(session.errors_for(order_id))
            if rejection is not None:
                raise translated(rejection, "ibkr order place")
            perm = trade.order.permId or trade.orderStatus.permId
            if perm:
                return str(perm)
            if trade.orderStatus.status in DONE:
                raise RequestRejected(f"ibkr order place: IB ended order {order_id} as {trade.orderStatus.status}")
            return None

        return await session.until(acknowledged, f"order {order_id} ({client_order_id})")

    def _contract_for(self, key: InstrumentKey, known: list[Contract]) -> Contract:
        """The contract to order ``key`` with: one IB already named (by contract id), else a stock at SMART."""
        for contract in known:
            try:
                if contract.conId and ibkr_rows.key_of(contract, "contract") == key:
                    # stocks and options route SMART; a future goes to the exchange that lists it
                    exchange = "SMART" if contract.secType in ("STK", "OPT") else contract.exchange
                    if not exchange:
                        break
                    return Contract(conId=contract.conId, exchange=exchange)
            except InvalidResponse:  # a contract we cannot key is not the one we look for
                continue
        if key.category == "stock":
            return Stock(key.symbol, "SMART", self.settings.cash_currency)
        raise RequestRejected(
            f"ibkr order place: no contract id known for {key} (IB needs one for a {key.category}); "
            "it is known once the account holds it, or has an order or execution in it"
        )

    async def _cancel(self, session: Session, order: Order) -> None:
        trades = await self._open_trades(session)
        trade = next((t for t in trades if str(t.order.permId or t.orderStatus.permId) == order.venue_order_id), None)
        if trade is None or trade.orderStatus.status in DONE:
            raise RequestRejected(f"ibkr order cancel: no working order with permId {order.venue_order_id}")
        if trade.order.clientId != self.settings.client_id:
            raise RequestRejected(
                f"ibkr order cancel: order {order.venue_order_id} was placed by client id {trade.order.clientId}; "
                f"IB lets only that client (or TWS) cancel it, not client id {self.settings.client_id}"
            )
        order_id = trade.order.orderId
        session.ib.cancelOrder(trade.order)

        def confirmed() -> bool | None:
            errors = [e for e in session.errors_for(order_id) if e.code != CANCELLED_CONFIRMATION]
            rejection = _rejection(errors)
            if rejection is not None:
                raise translated(rejection, "ibkr order cancel")
            status = trade.orderStatus.status
            if status in ("Cancelled", "ApiCancelled"):
                return True
            if status in DONE:
                raise RequestRejected(f"ibkr order cancel: order {order.venue_order_id} ended as {status} instead")
            return None

        await session.until(confirmed, f"the cancel of order {order.venue_order_id}")


def _rejection(errors: list[IbError]) -> IbError | None:
    return errors[-1] if errors else None


def _matching(orders: list[Order], wanted: Order) -> Order | None:
    """The order IB shows for ``wanted``: by client order id (``orderRef``), else by venue id (``permId``)."""
    for candidate in orders:
        if wanted.client_order_id and candidate.client_order_id == wanted.client_order_id:
            return candidate
        if not wanted.client_order_id and wanted.venue_order_id and candidate.venue_order_id == wanted.venue_order_id:
            return candidate
    return None
