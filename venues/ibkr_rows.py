"""ib_async's objects as our value types: positions, account values, orders, executions, and how they are keyed.

Each reader takes one object and the place it came from (``where``, e.g. ``ibkr positions[3]``) and returns a value
the books can hold, or raises ``InvalidResponse`` naming the field. ib_async hands numbers over as ``float``
(its decoder calls ``float()`` on the wire text); ``repr`` of a float is the shortest text that reads back to it,
so ``Decimal(repr(x))`` gives back the gateway's decimal text for every quantity and price it sends. The unset
marker (``UNSET_DOUBLE``, the largest float) and non-finite values are refused, never read as numbers.

Instrument keys: the category comes from ``secType`` (``CATEGORIES``; an unlisted type is kept lowercased, so a
position of a kind we did not foresee is still a position); the symbol is ``localSymbol`` (for options the OCC
symbol, spaces removed: ``AAPL  261218C00150000`` -> ``AAPL261218C00150000``; for futures ``ESZ6``), else
``symbol``; the leg is 0. IB's ``avgCost`` of an option or a future includes the multiplier (315 for an option
bought at 3.15): it is divided by the multiplier, so positions and fills share one price per unit.
"""

from __future__ import annotations

import math
from datetime import UTC
from decimal import Decimal
from typing import Any

from ib_async import AccountValue, Contract, Trade
from ib_async import Fill as IbFill
from ib_async import Position as IbPosition
from ib_async.util import UNSET_DOUBLE

from reconciliation.errors import InvalidResponse
from reconciliation.limits import MAX_CATEGORY, MAX_CURRENCY, MAX_ID, MAX_SYMBOL, text_problem
from reconciliation.values import ZERO, Fill, FillKind, InstrumentKey, Order, OrderStatus, Side, VenuePosition
from venues import parsing

#: IB's security types and the instrument categories they become.
CATEGORIES = {
    "STK": "stock",
    "OPT": "option",
    "FUT": "future",
    "FOP": "future_option",
    "CASH": "forex",
    "CRYPTO": "crypto",
    "CFD": "cfd",
    "BOND": "bond",
    "WAR": "warrant",
    "FUND": "fund",
    "CMDTY": "commodity",
}
SECURITY_TYPES = {category: sec_type for sec_type, category in CATEGORIES.items()}
#: Order statuses of TWS (``OrderState.status``, ``orderStatus.status``).
STATUSES = {
    "ApiPending": OrderStatus.OPEN,
    "PendingSubmit": OrderStatus.OPEN,
    "PreSubmitted": OrderStatus.OPEN,
    "Submitted": OrderStatus.OPEN,
    "PendingCancel": OrderStatus.OPEN,  # still able to fill until IB confirms the cancel
    "ApiUpdate": OrderStatus.OPEN,
    "ValidationError": OrderStatus.OPEN,  # a modification was refused; the order itself is still working
    "Filled": OrderStatus.FILLED,
    "Cancelled": OrderStatus.CANCELLED,
    "ApiCancelled": OrderStatus.CANCELLED,
    "Inactive": OrderStatus.REJECTED,  # received, but rejected or cancelled by the system
}
ACTIONS = {"BUY": Side.BUY, "SELL": Side.SELL, "SSHORT": Side.SELL}
EXECUTION_SIDES = {"BOT": Side.BUY, "SLD": Side.SELL}


def category_of(sec_type: str, where: str) -> str:
    """The instrument category of an IB security type (``STK`` -> ``stock``)."""
    if not sec_type:
        raise InvalidResponse(f"{where}.secType: missing")
    category = CATEGORIES.get(sec_type, sec_type.lower())
    _check_text(category, f"{where}.secType", MAX_CATEGORY)
    return category


def key_of(contract: Contract, where: str) -> InstrumentKey:
    """The instrument key of an IB contract: category from ``secType``, symbol from ``localSymbol`` (OCC symbol
    for options, spaces removed), else ``symbol``; leg 0."""
    category = category_of(contract.secType, f"{where}.contract")
    symbol = (contract.localSymbol or contract.symbol or "").strip()
    if contract.secType in ("OPT", "FOP"):
        symbol = "".join(symbol.split())
    if not symbol:
        raise InvalidResponse(f"{where}.contract: neither localSymbol nor symbol names the instrument")
    _check_text(symbol, f"{where}.contract.localSymbol", MAX_SYMBOL)
    return InstrumentKey(category, symbol, 0)


def multiplier_of(contract: Contract, where: str) -> Decimal | None:
    """``Contract.multiplier`` ("100" for an equity option) as a positive Decimal; None when IB gives none."""
    text = (contract.multiplier or "").strip()
    if not text:
        return None
    try:
        value = parsing.amount(text)
    except ValueError as error:
        raise InvalidResponse(f"{where}.contract.multiplier: {error}") from None
    if value <= ZERO:
        raise InvalidResponse(f"{where}.contract.multiplier: must be positive, got {parsing.shown(text)}")
    return value


def number(value: Any, where: str) -> Decimal:
    """A float from ib_async as the exact decimal the gateway sent; unset, non-finite or unstorable is refused."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise InvalidResponse(f"{where}: expected a number, got {type(value).__name__}")
    if isinstance(value, float) and (not math.isfinite(value) or value == UNSET_DOUBLE):
        raise InvalidResponse(f"{where}: no value (IB's unset marker or not finite)")
    text = repr(value) if isinstance(value, float) else value
    if isinstance(text, str) and text.endswith(".0"):
        text = text[:-2]  # repr's own ".0" on a whole float, not the gateway's digits
    try:
        return parsing.amount(text)
    except ValueError as error:
        raise InvalidResponse(f"{where}: {error}") from None


def optional_price(value: Any, where: str) -> Decimal | None:
    """A price that may be unset (IB's marker, zero): None; negative is refused."""
    if isinstance(value, float) and (value == UNSET_DOUBLE or not math.isfinite(value)):
        return None
    price = number(value, where)
    if price < ZERO:
        raise InvalidResponse(f"{where}: a price cannot be negative, got {price}")
    return price if price > ZERO else None


def position(row: IbPosition, where: str, mark: float | None = None) -> VenuePosition:
    """A position of ``reqPositions``: signed quantity, average price per unit, multiplier and currency."""
    contract = row.contract
    multiplier = multiplier_of(contract, where)
    qty = number(row.position, f"{where}.position")
    average = number(row.avgCost, f"{where}.avgCost")
    if average < ZERO:
        raise InvalidResponse(f"{where}.avgCost: must not be negative, got {average}")
    if multiplier is not None:
        average = parsing.amount(average / multiplier)  # IB's avgCost carries the multiplier: price per unit here
    return VenuePosition(
        key=key_of(contract, where),
        qty=qty,
        avg_price=average,
        mark_price=None if mark is None else optional_price(mark, f"{where}.marketPrice"),
        currency=_currency(contract.currency, f"{where}.contract.currency"),
        multiplier=multiplier,
    )


def cash(values: list[AccountValue], currency: str, where: str) -> Decimal:
    """The ``CashBalance`` of ``currency`` among an account's values (``BASE``: in the base currency); zero when the
    account holds none of it. An account without any values at all is refused: the download did not happen."""
    if not values:
        raise InvalidResponse(f"{where}: the gateway sent no account values")
    rows = [v for v in values if v.tag == "CashBalance" and v.currency == currency]
    if len(rows) > 1:
        raise InvalidResponse(f"{where}: a second CashBalance row for {currency}")
    if not rows:
        return ZERO
    try:
        return parsing.amount(rows[0].value)
    except ValueError as error:
        raise InvalidResponse(f"{where}.CashBalance[{currency}]: {error}") from None


def order(trade: Trade, where: str) -> Order:
    """An order (open or completed): client id from ``orderRef``, venue id the ``permId`` (unique across every
    API client and TWS itself, where ``orderId`` is per client)."""
    ib_order, state = trade.order, trade.orderStatus
    status = state.status
    if status not in STATUSES:
        raise InvalidResponse(f"{where}.status: {parsing.shown(status)} is not an order status we know")
    if ib_order.action not in ACTIONS:
        raise InvalidResponse(f"{where}.action: {parsing.shown(ib_order.action)} is not BUY, SELL or SSHORT")
    mapped = STATUSES[status]
    filled = state.filled if isinstance(state.filled, float) and state.filled != UNSET_DOUBLE else 0.0
    if mapped is OrderStatus.OPEN and filled > 0:
        mapped = OrderStatus.PARTIALLY_FILLED
    qty = number(ib_order.totalQuantity, f"{where}.totalQuantity")
    if qty <= ZERO:
        raise InvalidResponse(f"{where}.totalQuantity: must be positive, got {qty}")
    return Order(
        client_order_id=_optional_id(ib_order.orderRef, f"{where}.orderRef"),
        venue_order_id=perm_id(ib_order.permId or state.permId, f"{where}.permId"),
        key=key_of(trade.contract, where),
        side=ACTIONS[ib_order.action],
        qty=qty,
        price=optional_price(ib_order.lmtPrice, f"{where}.lmtPrice") if ib_order.orderType != "MKT" else None,
        status=mapped,
    )


def fill(row: IbFill, where: str) -> Fill:
    """An execution with its commission: fill id the ``execId``, order id the ``permId``; a liquidation by IB is
    marked as one; the multiplier is the contract's. The commission is the one IB reported for the execution: one
    without its report is refused, never read as free."""
    execution = row.execution
    if execution.side not in EXECUTION_SIDES:
        raise InvalidResponse(f"{where}.side: {parsing.shown(execution.side)} is not BOT or SLD")
    time = execution.time
    if time.tzinfo is None:
        raise InvalidResponse(f"{where}.time: {time.isoformat()} has no time zone")
    problem = parsing.moment_problem(time)
    if problem is not None:
        raise InvalidResponse(f"{where}.time: {time.isoformat()} is a time {problem}")
    report = row.commissionReport
    if report.execId != execution.execId:
        raise InvalidResponse(f"{where}: no commission report for execution {parsing.shown(execution.execId)}")
    fee = number(report.commission, f"{where}.commission")
    qty = number(execution.shares, f"{where}.shares")
    price = number(execution.price, f"{where}.price")
    if qty <= ZERO or price <= ZERO:
        raise InvalidResponse(f"{where}: shares and price must be positive, got {qty} @ {price}")
    fill_id = _optional_id(execution.execId, f"{where}.execId")
    if fill_id is None:
        raise InvalidResponse(f"{where}.execId: missing")
    return Fill(
        fill_id=fill_id,
        key=key_of(row.contract, where),
        side=EXECUTION_SIDES[execution.side],
        qty=qty,
        price=price,
        time=time.astimezone(UTC),
        fee=fee,
        order_id=perm_id(execution.permId, f"{where}.permId"),
        kind=FillKind.LIQUIDATION if execution.liquidation else FillKind.TRADE,
        multiplier=multiplier_of(row.contract, where) or Decimal(1),  # the contract's own, as IB reports it
    )


def perm_id(value: Any, where: str) -> str | None:
    """IB's permanent order id as text; None while IB has not assigned one (0)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidResponse(f"{where}: expected an integer, got {parsing.shown(value)}")
    return str(value) if value > 0 else None


def _optional_id(value: str, where: str) -> str | None:
    if not value:
        return None
    _check_text(value, where, MAX_ID)
    return value


def _currency(value: str, where: str) -> str | None:
    if not value:
        return None
    _check_text(value, where, MAX_CURRENCY)
    return value


def _check_text(value: str, where: str, limit: int) -> None:
    problem = text_problem(value, limit)
    if problem is not None:
        raise InvalidResponse(f"{where}: {parsing.shown(value)} is {problem}")
