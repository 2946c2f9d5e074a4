"""Pending orders as the books know them: recorded by bots, followed and changed by reconciliation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from models import books as tables
from models.accounts import lock_account
from models.lots import key_of
from models.runs import Action, Run
from reconciliation.effects import CancelOrder, PlaceOrder
from reconciliation.errors import FixConfiguration
from reconciliation.values import InstrumentKey, Order, OrderStatus, Side, Source

ORDERS = cast(Table, tables.PendingOrder.__table__)
LIVE_STATUSES = tuple(status.value for status in OrderStatus if status.is_live)
_LIVE_ORDERS = select(ORDERS).where(ORDERS.c.account_id == bindparam("account_id"), ORDERS.c.status.in_(LIVE_STATUSES))


def order_of(row: Any) -> Order:
    """An order row as an engine value."""
    return Order(
        client_order_id=row.client_order_id,
        venue_order_id=row.venue_order_id,
        key=key_of(row),
        side=Side(row.side),
        qty=row.qty,
        price=row.price,
        status=OrderStatus(row.status),
    )


def record_order(session: Session, account_id: int, order: Order, now: datetime, source: Source = Source.BOT) -> bool:
    """Record a pending order, or update its status and venue id if its client order id is known.

    Returns True when the order was new.
    """
    lock_account(session, account_id)
    existing = None
    if order.client_order_id:
        existing = session.scalars(
            select(tables.PendingOrder).where(
                tables.PendingOrder.account_id == account_id,
                tables.PendingOrder.client_order_id == order.client_order_id,
            )
        ).one_or_none()
    if existing is not None:
        existing.status = order.status.value
        existing.venue_order_id = order.venue_order_id or existing.venue_order_id
        existing.updated_at = now
        return False
    session.add(
        tables.PendingOrder(
            account_id=account_id,
            client_order_id=order.client_order_id,
            venue_order_id=order.venue_order_id,
            category=order.key.category,
            symbol=order.key.symbol,
            leg=order.key.leg,
            side=order.side.value,
            qty=order.qty,
            price=order.price,
            status=order.status.value,
            source=source.value,
            updated_at=now,
        )
    )
    return True


def order_statuses(session: Session, account_id: int, names: Iterable[str]) -> dict[str, str]:
    """Current status of the account's orders named by client order id or venue order id."""
    wanted = sorted(set(names))
    rows = session.execute(
        select(
            tables.PendingOrder.client_order_id, tables.PendingOrder.venue_order_id, tables.PendingOrder.status
        ).where(
            tables.PendingOrder.account_id == account_id,
            or_(tables.PendingOrder.client_order_id.in_(wanted), tables.PendingOrder.venue_order_id.in_(wanted)),
        )
    )
    statuses: dict[str, str] = {}
    for client_id, venue_id, status in rows:
        statuses.update({name: status for name in (client_id, venue_id) if name in wanted})
    return statuses


def live_orders(session: Session, account_id: int) -> tuple[Order, ...]:
    """The account's orders that can still fill, as the books know them."""
    rows = session.execute(select(ORDERS).where(ORDERS.c.account_id == account_id, ORDERS.c.status.in_(LIVE_STATUSES)))
    return tuple(order_of(row) for row in rows)


def set_order_status(session: Session, account_id: int, order: Order, status: OrderStatus, now: datetime) -> None:
    """Set the status of a pending order found by client order id, else by venue order id."""
    column = tables.PendingOrder.client_order_id if order.client_order_id else tables.PendingOrder.venue_order_id
    session.execute(
        update(tables.PendingOrder)
        .where(tables.PendingOrder.account_id == account_id, column == (order.client_order_id or order.venue_order_id))
        .values(status=status.value, updated_at=now)
    )


# --- orders reconciliation planned for the venue (sync_to_local) -------------------------------------------------

#: The states of a planned order (its action's ``after.state``): to send or refused when the run wrote it; then
#: sent, failed (the venue refused it) or dropped (the run was no longer the latest, too old, or halted).
TO_SEND, REFUSED, SENT, FAILED, DROPPED = "to_send", "refused", "sent", "failed", "dropped"


@dataclass(frozen=True)
class PlannedOrder:
    """An order or cancel a run recorded as ``to_send``: the action that holds it, and what to send."""

    action_id: int
    effect: PlaceOrder | CancelOrder
    detail: str


@dataclass(frozen=True)
class SendingContext:
    """What decides whether a run's planned orders may still go: is it the account's latest real run, how long
    ago did it end, is the account halted now."""

    run_id: int
    account_id: int
    bot: str
    account: str
    finished_at: datetime | None
    latest: bool
    halted: bool


def sending_context(session: Session, run_id: int) -> SendingContext:
    """The run's account, when it ended, whether a newer real run exists, and the halt flag, in one query."""
    run_table = Run
    later = cast(Table, Run.__table__).alias("later")
    row = session.execute(
        select(
            run_table.account_id,
            tables.Bot.name,
            tables.Account.name,
            run_table.finished_at,
            tables.Account.halted,
            select(func.count())
            .select_from(later)
            .where(later.c.account_id == run_table.account_id, later.c.id > run_table.id, later.c.dry_run.is_(False))
            .scalar_subquery(),
        )
        .join(tables.Account, tables.Account.id == run_table.account_id)
        .join(tables.Bot, tables.Bot.id == tables.Account.bot_id)
        .where(run_table.id == run_id)
    ).one_or_none()
    if row is None:
        raise FixConfiguration(f"no run with id {run_id}")
    account_id, bot, account, finished_at, halted, newer_runs = row
    return SendingContext(run_id, account_id, bot, account, finished_at, newer_runs == 0, halted)


def orders_to_send(session: Session, run_id: int) -> list[PlannedOrder]:
    """The run's planned orders and cancels still waiting to be sent, in plan order."""
    actions = session.scalars(
        select(Action).where(Action.run_id == run_id, Action.kind == "planned_order").order_by(Action.id)
    )
    return [
        PlannedOrder(action.id, _planned_effect(action.after or {}), action.detail)
        for action in actions
        if (action.after or {}).get("state") == TO_SEND
    ]


def _planned_effect(after: dict[str, Any]) -> PlaceOrder | CancelOrder:
    key = InstrumentKey(after["category"], after["symbol"], int(after["leg"]))
    if after.get("cancel") is not None:
        price = Decimal(after["price"]) if after.get("price") else None
        order = Order(after.get("client_order_id"), after["cancel"], key, Side(after["side"]), Decimal(after["qty"]),
                      price, OrderStatus(after["status"]))  # fmt: skip
        return CancelOrder(order)
    return PlaceOrder(key, Side(after["side"]), Decimal(after["qty"]), bool(after["reduce_only"]),
                      after["client_order_id"])  # fmt: skip


def record_sending(
    session: Session,
    account_id: int,
    planned: PlannedOrder,
    *,
    state: str,
    outcome: str,
    venue_order_id: str | None,
    now: datetime,
) -> None:
    """Record what became of one planned order (``state`` sent, failed or dropped, with ``outcome`` in words); a
    new order the venue took joins the books as a pending order, so the next run follows it."""
    action = session.get_one(Action, planned.action_id)
    planned_text = planned.detail.rsplit(": to ", 1)[0]
    action.applied = state == SENT
    action.detail = f"{planned_text}: {outcome}"
    action.after = {**(action.after or {}), "state": state, "venue_order_id": venue_order_id}
    effect = planned.effect
    if state == SENT and isinstance(effect, PlaceOrder):
        order = Order(effect.client_order_id, venue_order_id, effect.key, effect.side, effect.qty, None,
                      OrderStatus.OPEN)  # fmt: skip
        record_order(session, account_id, order, now, Source.RECONCILIATION)
