"""The books API: record fills (FIFO applied), pending orders and expected cash; read positions and trades.

Every writer locks the account row first (``SELECT … FOR UPDATE`` on Postgres; SQLite transactions begin
IMMEDIATE), so fills, reconciliation and bots never interleave on one account. A fill id already in the
books is never applied twice: the insert does nothing and the call says so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import ColumnElement, Insert, Table, and_, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models import books as tables
from reconciliation.errors import FixConfiguration
from reconciliation.fifo import FifoOutcome, apply_fill, position_of
from reconciliation.values import (
    ZERO,
    Books,
    Cash,
    Fill,
    FillKind,
    InstrumentKey,
    Lot,
    LotSide,
    Order,
    OrderStatus,
    Position,
    PositionStatus,
    Side,
    Source,
    Trade,
    exact,
)

OPEN = PositionStatus.OPEN.value
LOTS = cast(Table, tables.Lot.__table__)
TRADES = cast(Table, tables.Trade.__table__)
GROUPS = cast(Table, tables.PositionGroup.__table__)
FILLS = cast(Table, tables.Fill.__table__)


def insert_ignoring_duplicates(session: Session, table: Any) -> Insert:
    """An INSERT that skips rows violating a unique constraint, on Postgres and SQLite alike."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(Insert, postgresql.insert(table).on_conflict_do_nothing())
    return cast(Insert, sqlite.insert(table).on_conflict_do_nothing())


# --- accounts -------------------------------------------------------------------------------------------------


def get_or_create_account(session: Session, bot: str, account: str, now: datetime, venue: str = "") -> tables.Account:
    """The account row for (bot, account), created with its bot if missing; ``venue`` is recorded when given."""
    session.execute(insert_ignoring_duplicates(session, tables.Bot).values(name=bot, created_at=now))
    bot_id = session.scalar(select(tables.Bot.id).where(tables.Bot.name == bot))
    session.execute(
        insert_ignoring_duplicates(session, tables.Account).values(
            bot_id=bot_id, name=account, venue=venue, epoch=0, halted=False, created_at=now
        )
    )
    row = session.scalars(
        select(tables.Account).where(tables.Account.bot_id == bot_id, tables.Account.name == account)
    ).one()
    if venue and row.venue != venue:
        row.venue = venue
    return row


def find_account(session: Session, bot: str, account: str) -> tables.Account:
    """The account row for (bot, account); an unknown pair is a configuration error naming it."""
    row = session.scalars(
        select(tables.Account)
        .join(tables.Bot, tables.Bot.id == tables.Account.bot_id)
        .where(tables.Bot.name == bot, tables.Account.name == account)
    ).one_or_none()
    if row is None:
        raise FixConfiguration(f"no books for {bot}/{account}: record something or run a reconciliation first")
    return row


def lock_account(session: Session, account_id: int) -> tables.Account:
    """Lock the account row for the rest of the transaction and return its current state."""
    return session.scalars(
        select(tables.Account)
        .where(tables.Account.id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


# --- lots -----------------------------------------------------------------------------------------------------


def key_of(row: Any) -> InstrumentKey:
    """The instrument key of a row with category, symbol and leg columns."""
    return InstrumentKey(row.category, row.symbol, row.leg)


@dataclass
class OpenLots:
    """Open lots of an account as engine values, with the row ids and group names needed to write them back."""

    by_key: dict[InstrumentKey, tuple[Lot, ...]]
    ids: dict[str, int]
    group_ids: dict[str, int]

    def position(self, key: InstrumentKey) -> Position:
        """The current position on ``key``."""
        return position_of(key, self.by_key.get(key, ()))


def load_open_lots(
    session: Session,
    account_id: int,
    keys: Iterable[InstrumentKey] | None = None,
    groups: Iterable[str] = (),
) -> OpenLots:
    """Open lots of the account, oldest first: all of them, or those on ``keys`` and in ``groups``."""
    group_ids = _group_ids(session, account_id)
    condition: ColumnElement[bool] = and_(LOTS.c.account_id == account_id, LOTS.c.status == OPEN)
    wanted_keys: set[InstrumentKey] | None = None
    wanted_groups: set[int] = set()
    if keys is not None:
        wanted_keys = set(keys)
        wanted_groups = {group_ids[g] for g in groups if g in group_ids}
        if not wanted_keys and not wanted_groups:
            return OpenLots({}, {}, group_ids)
        # symbol IN (...) is hashed by Postgres; a (category, symbol, leg) IN list is not. Exact keys below.
        condition = and_(
            condition,
            or_(LOTS.c.symbol.in_(sorted({k.symbol for k in wanted_keys})), LOTS.c.group_id.in_(sorted(wanted_groups))),
        )
    names = {gid: name for name, gid in group_ids.items()}
    interned: dict[tuple[str, str, int], InstrumentKey] = {}
    by_key: dict[InstrumentKey, list[Lot]] = defaultdict(list)
    ids: dict[str, int] = {}
    columns = (LOTS.c.id, *(LOTS.c[name] for name in _LOT_COLUMNS))
    for row in session.execute(select(*columns).where(condition).order_by(LOTS.c.entry_time, LOTS.c.id)):
        lot_id, category, symbol, leg, side, quantity, remaining, price, time, fill_id, fee, source, group_id = row
        key = interned.setdefault((category, symbol, leg), InstrumentKey(category, symbol, leg))
        if wanted_keys is not None and key not in wanted_keys and group_id not in wanted_groups:
            continue
        group = names[group_id] if group_id is not None else None
        by_key[key].append(
            Lot(fill_id, key, _LOT_SIDES[side], quantity, remaining, price, time, fee, _SOURCES[source], group)
        )
        ids[fill_id] = lot_id
    return OpenLots({k: tuple(v) for k, v in by_key.items()}, ids, group_ids)


_LOT_COLUMNS = (
    "category", "symbol", "leg", "side", "quantity", "remaining", "entry_price", "entry_time", "entry_fill_id",
    "commission", "source", "group_id",
)  # fmt: skip
_LOT_SIDES = {side.value: side for side in LotSide}
_SOURCES = {source.value: source for source in Source}


def _group_ids(session: Session, account_id: int) -> dict[str, int]:
    rows = session.execute(
        select(tables.PositionGroup.name, tables.PositionGroup.id).where(tables.PositionGroup.account_id == account_id)
    )
    return {name: gid for name, gid in rows}


# --- fills ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FillResult:
    """What recording one fill did: whether it was new, and the position before and after it."""

    fill: Fill
    recorded: bool
    before: Position
    after: Position
    trades: tuple[Trade, ...] = ()
    opened: Lot | None = None


@dataclass
class _Changes:
    lot_updates: dict[str, Lot] = field(default_factory=dict)
    closed: dict[str, Trade] = field(default_factory=dict)
    new_lots: dict[str, Lot] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    credit: dict[str, Decimal] = field(default_factory=lambda: defaultdict(lambda: ZERO))


@exact
def write_fills(
    session: Session,
    account_id: int,
    fills: Sequence[tuple[Fill, Source]],
    lots: OpenLots,
    now: datetime,
    run_id: int | None = None,
) -> list[FillResult]:
    """Insert ``fills`` (duplicates skipped) and apply the new ones FIFO to ``lots``, in order.

    The caller holds the account lock and loaded ``lots`` inside the same transaction. ``lots`` is updated
    in place to the state after the fills. The number of statements does not grow with the number of fills.
    """
    if not fills:
        return []
    inserted = _insert_fills(session, account_id, fills, now, run_id)
    _ensure_groups(session, account_id, {f.group for f, _ in fills if f.group and f.fill_id in inserted}, lots, now)
    changes = _Changes()
    results: list[FillResult] = []
    for fill, source in fills:
        before = lots.position(fill.key)
        if fill.fill_id not in inserted:
            results.append(FillResult(fill, False, before, before))
            continue
        inserted.discard(fill.fill_id)  # a fill id repeated within one call applies once
        outcome = apply_fill(lots.by_key.get(fill.key, ()), fill, source)
        _collect(changes, lots.by_key.get(fill.key, ()), outcome, fill)
        lots.by_key[fill.key] = outcome.lots
        results.append(FillResult(fill, True, before, lots.position(fill.key), outcome.trades, outcome.opened))
    _persist(session, account_id, changes, lots, run_id)
    return results


def fill_row(account_id: int, fill: Fill, source: Source, now: datetime, run_id: int | None) -> dict[str, Any]:
    """The ``fills`` row recording ``fill`` for the account."""
    return {
        "account_id": account_id,
        "fill_id": fill.fill_id,
        "order_id": fill.order_id,
        "category": fill.key.category,
        "symbol": fill.key.symbol,
        "leg": fill.key.leg,
        "side": fill.side.value,
        "qty": fill.qty,
        "price": fill.price,
        "fee": fill.fee,
        "time": fill.time,
        "kind": fill.kind.value,
        "source": source.value,
        "group_name": fill.group,
        "reason": fill.reason,
        "estimated": fill.estimated,
        "run_id": run_id,
        "recorded_at": now,
    }


def _insert_fills(
    session: Session, account_id: int, fills: Sequence[tuple[Fill, Source]], now: datetime, run_id: int | None
) -> set[str]:
    rows = [fill_row(account_id, f, source, now, run_id) for f, source in fills]
    # Core, not the ORM class: ORM bulk inserts start a new statement whenever the set of NULL columns changes.
    statement = insert_ignoring_duplicates(session, FILLS).returning(FILLS.c.fill_id)
    return set(session.execute(statement, rows).scalars())


def _ensure_groups(session: Session, account_id: int, names: set[Any], lots: OpenLots, now: datetime) -> None:
    missing = sorted(n for n in names if n not in lots.group_ids)
    if not missing:
        return
    session.execute(
        insert_ignoring_duplicates(session, GROUPS),
        [
            {"account_id": account_id, "name": n, "status": OPEN, "net_entry_credit": ZERO, "opened_at": now}
            for n in missing
        ],
    )
    lots.group_ids.update(_group_ids(session, account_id))


def _collect(changes: _Changes, before: tuple[Lot, ...], outcome: FifoOutcome, fill: Fill) -> None:
    after = {lot.entry_fill_id: lot for lot in outcome.lots}
    last_trade = {t.entry_fill_id: t for t in outcome.trades}
    for lot in before:
        if lot.entry_fill_id in after and after[lot.entry_fill_id] == lot:
            continue
        target = changes.new_lots if lot.entry_fill_id in changes.new_lots else changes.lot_updates
        target[lot.entry_fill_id] = after.get(lot.entry_fill_id, replace(lot, remaining=ZERO))
        if lot.entry_fill_id not in after:
            changes.closed[lot.entry_fill_id] = last_trade[lot.entry_fill_id]
    if outcome.opened is not None:
        changes.new_lots[outcome.opened.entry_fill_id] = outcome.opened
        if outcome.opened.group:
            sign = Decimal(1) if fill.side is Side.SELL else Decimal(-1)
            changes.credit[outcome.opened.group] += sign * outcome.opened.quantity * fill.price
    changes.trades.extend(outcome.trades)


def _closing_columns(changes: _Changes, entry_fill_id: str) -> dict[str, Any]:
    trade = changes.closed.get(entry_fill_id)
    if trade is None:
        return {"status": OPEN, "exit_reason": None, "closed_at": None}
    return {"status": trade.status.value, "exit_reason": trade.exit_reason, "closed_at": trade.exit_time}


def _persist(session: Session, account_id: int, changes: _Changes, lots: OpenLots, run_id: int | None) -> None:
    if changes.lot_updates:
        session.connection().execute(
            update(LOTS).where(LOTS.c.id == bindparam("lot_id")),
            [
                {"lot_id": lots.ids[fid], "remaining": lot.remaining, **_closing_columns(changes, fid)}
                for fid, lot in changes.lot_updates.items()
            ],
        )
    if changes.new_lots:
        rows = [
            _lot_row(account_id, lot, lots, _closing_columns(changes, fid)) for fid, lot in changes.new_lots.items()
        ]
        inserted = session.execute(LOTS.insert().returning(tables.Lot.id, tables.Lot.entry_fill_id), rows)
        lots.ids.update({fid: lot_id for lot_id, fid in inserted})
    if changes.trades:
        session.execute(
            TRADES.insert(),
            [_trade_row(account_id, t, lots.ids[t.entry_fill_id]) for t in changes.trades],
        )
    if changes.credit:
        session.connection().execute(
            update(GROUPS)
            .where(GROUPS.c.id == bindparam("group_id"))
            .values(net_entry_credit=GROUPS.c.net_entry_credit + bindparam("delta")),
            [{"group_id": lots.group_ids[name], "delta": delta} for name, delta in changes.credit.items()],
        )
    _close_finished_groups(session, account_id, lots, changes)


def _close_finished_groups(session: Session, account_id: int, lots: OpenLots, changes: _Changes) -> None:
    """A group whose lots this write closed, and which has no open lot left, takes its last close's status."""
    closing = {t.group: t for t in changes.trades if t.group}
    if not closing:
        return
    still_open = set(
        session.scalars(
            select(tables.Lot.group_id).where(
                tables.Lot.account_id == account_id,
                tables.Lot.status == OPEN,
                tables.Lot.group_id.in_([lots.group_ids[g] for g in closing]),
            )
        )
    )
    finished = [
        {
            "group_id": lots.group_ids[g],
            "status": t.status.value,
            "exit_reason": t.exit_reason,
            "closed_at": t.exit_time,
        }
        for g, t in closing.items()
        if lots.group_ids[g] not in still_open
    ]
    if finished:
        session.connection().execute(
            update(GROUPS).where(GROUPS.c.id == bindparam("group_id"), GROUPS.c.status == OPEN), finished
        )


def _lot_row(account_id: int, lot: Lot, lots: OpenLots, closing: dict[str, Any]) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "category": lot.key.category,
        "symbol": lot.key.symbol,
        "leg": lot.key.leg,
        "side": lot.side.value,
        "quantity": lot.quantity,
        "remaining": lot.remaining,
        "entry_price": lot.entry_price,
        "entry_time": lot.entry_time,
        "entry_fill_id": lot.entry_fill_id,
        "commission": lot.commission,
        "source": lot.source.value,
        "group_id": lots.group_ids.get(lot.group) if lot.group else None,
        **closing,
    }


def _trade_row(account_id: int, trade: Trade, lot_id: int) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "lot_id": lot_id,
        "category": trade.key.category,
        "symbol": trade.key.symbol,
        "leg": trade.key.leg,
        "side": trade.side.value,
        "quantity": trade.quantity,
        "entry_fill_id": trade.entry_fill_id,
        "exit_fill_id": trade.exit_fill_id,
        "entry_price": trade.entry_price,
        "exit_price": trade.exit_price,
        "entry_time": trade.entry_time,
        "exit_time": trade.exit_time,
        "gross_pnl": trade.gross_pnl,
        "fees": trade.fees,
        "net_pnl": trade.net_pnl,
        "pnl_pct": trade.pnl_pct,
        "status": trade.status.value,
        "exit_reason": trade.exit_reason,
        "exit_estimated": trade.exit_estimated,
    }


def record_fill(
    session: Session, account_id: int, fill: Fill, now: datetime, source: Source = Source.BOT
) -> FillResult:
    """Record one fill for a bot: lock the account, apply FIFO, write. A known fill id changes nothing."""
    lock_account(session, account_id)
    lots = load_open_lots(session, account_id, keys=[fill.key], groups=[fill.group] if fill.group else [])
    return write_fills(session, account_id, [(fill, source)], lots, now)[0]


# --- orders and cash ------------------------------------------------------------------------------------------


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
    return tuple(
        order_of(row)
        for row in session.execute(
            select(tables.PendingOrder.__table__).where(
                tables.PendingOrder.account_id == account_id,
                tables.PendingOrder.status.in_([s.value for s in OrderStatus if s.is_live]),
            )
        )
    )


def set_order_status(session: Session, account_id: int, order: Order, status: OrderStatus, now: datetime) -> None:
    """Set the status of a pending order found by client order id, else by venue order id."""
    column = tables.PendingOrder.client_order_id if order.client_order_id else tables.PendingOrder.venue_order_id
    session.execute(
        update(tables.PendingOrder)
        .where(tables.PendingOrder.account_id == account_id, column == (order.client_order_id or order.venue_order_id))
        .values(status=status.value, updated_at=now)
    )


def set_expected_cash(session: Session, account_id: int, cash: Cash, now: datetime) -> Cash | None:
    """Set the cash the books expect; returns what they expected before."""
    row = session.get(tables.ExpectedCash, account_id, with_for_update=True)
    if row is None:
        session.add(
            tables.ExpectedCash(account_id=account_id, currency=cash.currency, balance=cash.balance, updated_at=now)
        )
        return None
    before = Cash(row.currency, row.balance)
    row.currency, row.balance, row.updated_at = cash.currency, cash.balance, now
    return before


# --- reading --------------------------------------------------------------------------------------------------


def load_books(session: Session, account_id: int, venue_fill_ids: Iterable[str] = ()) -> tuple[Books, OpenLots]:
    """The account's books as the engine sees them, in a constant number of queries."""
    lots = load_open_lots(session, account_id)
    newest = (
        select(
            tables.Fill.category,
            tables.Fill.symbol,
            tables.Fill.leg,
            func.max(tables.Fill.id).label("last_id"),
            func.max(tables.Fill.time).label("last_time"),
        )
        .where(tables.Fill.account_id == account_id)
        .group_by(tables.Fill.category, tables.Fill.symbol, tables.Fill.leg)
        .subquery()
    )
    last_fills = {
        key_of(row): (row.fill_id, row.last_time)
        for row in session.execute(
            select(newest.c.category, newest.c.symbol, newest.c.leg, newest.c.last_time, tables.Fill.fill_id).join(
                tables.Fill, tables.Fill.id == newest.c.last_id
            )
        )
    }
    pending = live_orders(session, account_id)
    cash_row = session.get(tables.ExpectedCash, account_id)
    wanted = sorted(set(venue_fill_ids))
    known = (
        frozenset(
            session.scalars(
                select(tables.Fill.fill_id).where(tables.Fill.account_id == account_id, tables.Fill.fill_id.in_(wanted))
            )
        )
        if wanted
        else frozenset()
    )
    books = Books(
        lots=dict(lots.by_key),
        last_fills=last_fills,
        pending_orders=pending,
        expected_cash=Cash(cash_row.currency, cash_row.balance) if cash_row else None,
        known_fill_ids=known,
    )
    return books, lots


def positions(session: Session, account_id: int) -> list[Position]:
    """Current positions with their open lots, by instrument."""
    lots = load_open_lots(session, account_id)
    return [lots.position(key) for key in sorted(lots.by_key)]


def completed_trades(session: Session, account_id: int) -> list[tables.Trade]:
    """Completed trades, oldest exit first."""
    return list(
        session.scalars(
            select(tables.Trade)
            .where(tables.Trade.account_id == account_id)
            .order_by(tables.Trade.exit_time, tables.Trade.id)
        )
    )


def groups(session: Session, account_id: int) -> list[tables.PositionGroup]:
    """Position groups of the account, by name."""
    return list(
        session.scalars(
            select(tables.PositionGroup)
            .where(tables.PositionGroup.account_id == account_id)
            .order_by(tables.PositionGroup.name)
        )
    )


__all__ = ["FillKind", "OpenLots"]
